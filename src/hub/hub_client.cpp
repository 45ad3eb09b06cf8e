#include "hub/hub_client.hpp"

#include "modelmgr/errors.hpp"

#include "net/http_parse.hpp"
#include "util/env.hpp"
#include "util/hash.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

namespace modelmgr::hub {

namespace {

std::string clean_token(std::string t)
{
  t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return c == '\r' || c == '\n'; }), t.end());
  auto b = t.find_first_not_of(" \t");
  auto e = t.find_last_not_of(" \t");
  if (b == std::string::npos) {
    return {};
  }
  return t.substr(b, e - b + 1);
}

std::optional<std::chrono::milliseconds> seconds_from_env(const util::Env& env, const char* name)
{
  auto v = env.get(name);
  if (!v || v->empty()) {
    return std::nullopt;
  }
  try {
    double s = std::stod(*v);
    if (s > 0) {
      return std::chrono::milliseconds(static_cast<long long>(s * 1000));
    }
  } catch (const std::exception&) {
  }
  throw ConfigurationError(fmt::format("{}={}: not a number of seconds", name, *v),
                           fmt::format("set {} to a positive number such as 30", name), ErrorKind::usage);
}

// The server's own explanation of an error, escaped for the terminal and bounded: it is shown to the user.
std::string server_message_raw(const net::Response& r)
{
  if (auto m = r.header("x-error-message"); m && !m->empty()) {
    return *m;
  }
  auto json = nlohmann::json::parse(r.body, nullptr, false);
  if (json.is_object()) {
    if (json.contains("error")) {
      const auto& e = json["error"];
      if (e.is_string()) {
        return e.get<std::string>();
      }
      if (e.is_array() && !e.empty() && e[0].is_string()) {
        return e[0].get<std::string>();
      }
    }
    if (json.contains("errors") && json["errors"].is_array() && !json["errors"].empty() &&
        json["errors"][0].is_object() && json["errors"][0].contains("message")) {
      return json["errors"][0]["message"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  }
  return {};
}

std::string server_message(const net::Response& r)
{
  std::string m = util::escape_for_terminal(server_message_raw(r));
  if (m.size() > 500) {
    m = m.substr(0, 500) + "…";
  }
  return m;
}

constexpr std::string_view k_not_a_hub_hint =
    "check HF_ENDPOINT (and any proxy or mirror in between): the server does not answer like the Hugging "
    "Face Hub";

// A size header (X-Linked-Size, Content-Length): digits only, and no larger than any file the Hub stores.
std::uint64_t size_header(const net::Response& r, const char* name, std::string_view path, const RepoId& repo,
                          std::string_view url)
{
  const std::string raw = r.single_header(name).value_or("");
  auto v = net::parse_uint(raw);
  if (!v || *v > k_max_file_size) {
    throw BadResponseError(
        fmt::format("the server's answer for '{}' of {} has an invalid {} header '{}' ({})", path,
                    repo.describe(), name, raw.substr(0, 80), net::display_url(url)),
        std::string(k_not_a_hub_hint));
  }
  return *v;
}

} // namespace

std::optional<std::string> find_token(const util::Env& env)
{
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    if (auto v = env.get(name)) {
      std::string t = clean_token(*v);
      if (!t.empty()) {
        return t;
      }
    }
  }
  std::filesystem::path file;
  if (auto p = env.get("HF_TOKEN_PATH"); p && !p->empty()) {
    file = util::expand_path(*p, env);
  } else {
    file = cache::hf_home(env) / "token";
  }
  std::ifstream in(file);
  if (in) {
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string t = clean_token(content);
    if (!t.empty()) {
      return t;
    }
  }
  return std::nullopt;
}

std::string normalize_endpoint(std::string_view endpoint)
{
  std::string e(endpoint);
  while (!e.empty() && e.back() == '/') {
    e.pop_back();
  }
  auto parts = net::parse_url(e);
  if (!parts || (parts->scheme != "http" && parts->scheme != "https")) {
    throw ConfigurationError(fmt::format("invalid Hub endpoint '{}'", net::display_url(endpoint)),
                             "use a URL such as https://huggingface.co or http://mirror.local:8080",
                             ErrorKind::usage);
  }
  return e;
}

HubConfig hub_config_from_env(const util::Env& env)
{
  HubConfig c;
  if (auto e = env.get("HF_ENDPOINT"); e && !e->empty()) {
    c.endpoint = normalize_endpoint(*e);
  }
  if (!util::env_bool(env, "HF_HUB_DISABLE_IMPLICIT_TOKEN")) {
    c.token = find_token(env);
  }
  if (auto t = seconds_from_env(env, "HF_HUB_ETAG_TIMEOUT")) {
    c.etag_timeout = *t;
  }
  if (auto t = seconds_from_env(env, "HF_HUB_DOWNLOAD_TIMEOUT")) {
    c.download_timeout = *t;
  }
  if (auto t = seconds_from_env(env, "MODEL_DOWNLOAD_TIMEOUT")) {
    c.download_timeout = *t;
  }
  if (auto v = env.get("MODELMGR_RETRY_BASE_MS"); v && !v->empty()) {
    c.retry_base = std::chrono::milliseconds(std::max(0L, std::atol(v->c_str())));
  }
  return c;
}

std::string RepoId::describe() const
{
  return fmt::format("{} '{}'", cache::to_string(type), id);
}

bool is_commit_hash(std::string_view revision) noexcept
{
  return revision.size() == 40 && std::all_of(revision.begin(), revision.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string normalize_etag(std::string_view etag)
{
  std::string_view e = etag;
  if (e.starts_with("W/")) {
    e.remove_prefix(2);
  }
  while (!e.empty() && e.front() == '"') {
    e.remove_prefix(1);
  }
  while (!e.empty() && e.back() == '"') {
    e.remove_suffix(1);
  }
  return std::string(e);
}

HubClient::HubClient(HubConfig config, net::Client& http, const std::atomic<bool>* cancel)
    : m_config(std::move(config)), m_http(http), m_cancel(cancel)
{
  m_config.endpoint = normalize_endpoint(m_config.endpoint);
  m_endpoint_origin = net::origin_of(m_config.endpoint);
}

static std::string type_prefix(cache::RepoType t)
{
  switch (t) {
  case cache::RepoType::model: return "";
  case cache::RepoType::dataset: return "datasets/";
  case cache::RepoType::space: return "spaces/";
  }
  return "";
}

std::string HubClient::resolve_url(const RepoId& repo, std::string_view revision, std::string_view path) const
{
  return fmt::format("{}/{}{}/resolve/{}/{}", m_config.endpoint, type_prefix(repo.type), repo.id,
                     net::percent_encode(revision, false), net::percent_encode(path, true));
}

std::string HubClient::api_url(const RepoId& repo, std::string_view suffix) const
{
  return fmt::format("{}/api/{}s/{}{}", m_config.endpoint, cache::to_string(repo.type), repo.id, suffix);
}

std::vector<std::string> HubClient::headers_for(std::string_view url) const
{
  std::vector<std::string> h{"Accept-Encoding: identity"};
  if (m_config.token && net::origin_of(url) == m_endpoint_origin) {
    h.push_back("Authorization: Bearer " + *m_config.token);
  }
  return h;
}

bool interruptible_sleep(std::chrono::milliseconds d, const std::atomic<bool>* cancel)
{
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (cancel && cancel->load()) {
      return false;
    }
    auto left = until - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
  }
  return !(cancel && cancel->load());
}

std::chrono::milliseconds backoff_delay(int attempt, std::chrono::milliseconds base, const net::Response* r)
{
  if (r) {
    if (auto ra = net::retry_after(*r)) {
      // Cap what a server may ask for, so a bogus header cannot park a download for a day.
      return std::min<std::chrono::milliseconds>(*ra, std::chrono::minutes(5));
    }
  }
  const int step = std::clamp(attempt - 1, 0, 3);
  auto d = base * (1 << step);
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<long long>(static_cast<double>(d.count()) * jitter(rng)));
}

std::string describe_transport_error(const net::Response& r, std::string_view url)
{
  return fmt::format("{} ({}: {})", net::display_url(url), net::to_string(r.error), r.error_message);
}

net::Response HubClient::request_with_retries(net::Request request, std::string_view what)
{
  request.connect_timeout = m_config.etag_timeout;
  request.stall_timeout = m_config.etag_timeout;
  request.multiplex = true; // small API calls share connections (HTTP/2 streams) with the small files
  for (int attempt = 1;; ++attempt) {
    request.headers = headers_for(request.url);
    if (request.method == "POST") {
      request.headers.push_back("Content-Type: application/json");
    }
    count_request();
    net::Response r = m_http.perform(request, {}, m_cancel);
    if (m_cancel && m_cancel->load()) {
      throw DownloadError(ErrorKind::interrupted, fmt::format("interrupted while {}", what));
    }
    if (!net::is_transient(r) || attempt > m_config.max_retries) {
      return r;
    }
    if (!interruptible_sleep(backoff_delay(attempt, m_config.retry_base, &r), m_cancel)) {
      throw DownloadError(ErrorKind::interrupted, fmt::format("interrupted while {}", what));
    }
  }
}

void HubClient::throw_for_response(const net::Response& r, const RepoId& repo, std::string_view revision,
                                   std::string_view path) const
{
  const std::string where = path.empty()
                                ? fmt::format("{} at revision '{}'", repo.describe(), revision)
                                : fmt::format("'{}' of {} at revision '{}'", path, repo.describe(), revision);
  const std::string repo_page = fmt::format("{}/{}{}", m_config.endpoint, type_prefix(repo.type), repo.id);
  if (!r.transport_ok()) {
    if (r.error == net::TransferError::aborted && m_cancel && m_cancel->load()) {
      throw DownloadError(ErrorKind::interrupted, fmt::format("interrupted while fetching {}", where));
    }
    const std::string url = net::display_url(r.effective_url.empty() ? m_config.endpoint : r.effective_url);
    if (r.error == net::TransferError::too_large) {
      throw BadResponseError(
          fmt::format("the server's answer for {} is too large: {} ({}); refusing to read more", where,
                      r.error_message, url),
          std::string(k_not_a_hub_hint));
    }
    if (r.error == net::TransferError::protocol) {
      throw BadResponseError(fmt::format("refusing a non-HTTP URL while fetching {}: {} ({})", where,
                                         util::escape_for_terminal(r.error_message), url),
                             "modelmgr only speaks http and https; check HF_ENDPOINT and proxy settings");
    }
    throw DownloadError(ErrorKind::network,
                        fmt::format("cannot reach the Hub for {}: {}", where,
                                    describe_transport_error(r, r.effective_url.empty() ? m_config.endpoint
                                                                                        : r.effective_url)),
                        "check the network, HF_ENDPOINT and proxy settings; or set HF_HUB_OFFLINE=1 to use "
                        "only what is already in the cache");
  }
  const std::string code = r.single_header("x-error-code").value_or("");
  const std::string msg = server_message(r);
  const std::string server = msg.empty() ? "" : fmt::format(" (server: {})", msg);
  if (code == "GatedRepo") {
    if (r.status == 401 || !m_config.token) {
      throw DownloadError(
          ErrorKind::auth,
          fmt::format("{} is gated: you must be logged in to download {}", repo.describe(), where),
          fmt::format("accept the conditions at {} and set HF_TOKEN (or --token, or run "
                      "`hf auth login`) to a token of that account",
                      repo_page));
    }
    throw DownloadError(
        ErrorKind::auth,
        fmt::format("{} is gated and your token's account has not been granted access{}", repo.describe(),
                    server),
        fmt::format("request access at {} and wait for approval, or use a token of an account "
                    "that has it",
                    repo_page));
  }
  if (msg == "Access to this resource is disabled.") {
    throw MissingModelError(fmt::format("{} has been disabled on the Hub", repo.describe()));
  }
  if (code == "RevisionNotFound") {
    throw MissingModelError(
        fmt::format("revision '{}' not found in {}{}", revision, repo.describe(), server),
        fmt::format("check the branch, tag or commit name (see {}/tree/main)", repo_page));
  }
  if (code == "EntryNotFound") {
    throw MissingModelError(
        fmt::format("file '{}' not found in {} at revision '{}'", path, repo.describe(), revision),
        fmt::format("check the file name (the repo's files are listed at {}/tree/{})", repo_page,
                    net::percent_encode(revision, false)));
  }
  if (r.status == 401 && msg.find("Invalid credentials") != std::string::npos) {
    throw DownloadError(ErrorKind::auth,
                        fmt::format("the Hub refused the token while fetching {}{}", where, server),
                        "check HF_TOKEN / --token / the token file: the token is invalid or expired");
  }
  if (code == "RepoNotFound" || r.status == 401 || (r.status == 404 && path.empty())) {
    throw MissingModelError(
        fmt::format("{} not found on {} (or it is private and the request was not authorized)",
                    repo.describe(), m_config.endpoint),
        m_config.token
            ? "check the repo id and --repo-type; for a private repo the token's account needs read access"
            : "check the repo id and --repo-type; for a private repo set HF_TOKEN (or --token) to a "
              "token that can read it");
  }
  if (r.status == 404) {
    throw MissingModelError(fmt::format("{} not found (HTTP 404){}", where, server));
  }
  if (r.status == 429) {
    throw DownloadError(ErrorKind::network,
                        fmt::format("rate limited by the Hub while fetching {}{}", where, server),
                        m_config.token ? "wait a few minutes and retry"
                                       : "set HF_TOKEN for higher rate limits, or wait and retry");
  }
  if (r.status == 403) {
    throw DownloadError(ErrorKind::auth, fmt::format("access denied (HTTP 403) to {}{}", where, server),
                        "check that your token has read access to this repo");
  }
  throw DownloadError(ErrorKind::network,
                      fmt::format("HTTP {} from the Hub for {}{}", r.status, where, server),
                      "retry later; if it persists, check HF_ENDPOINT");
}

FileMetadata HubClient::file_metadata(const RepoId& repo, std::string_view revision, std::string_view path)
{
  std::string missing_commit;
  auto m = try_file_metadata(repo, revision, path, missing_commit);
  if (!m) {
    net::Response r;
    r.status = 404;
    r.headers["x-error-code"] = "EntryNotFound";
    throw_for_response(r, repo, revision, path);
  }
  return *m;
}

std::optional<FileMetadata> HubClient::try_file_metadata(const RepoId& repo, std::string_view revision,
                                                         std::string_view path, std::string& missing_commit)
{
  std::string url = resolve_url(repo, revision, path);
  for (int hop = 0; hop < 10; ++hop) {
    net::Request req;
    req.method = "HEAD";
    req.url = url;
    net::Response r = request_with_retries(req, fmt::format("fetching metadata of '{}'", path));
    if (r.is_redirect()) {
      auto loc = r.single_header("location");
      if (loc) {
        std::string next = net::resolve_location(url, *loc);
        // Relative redirects (resolve-cache, renamed repos) and redirects to the endpoint's own host are
        // followed; a redirect to another host (CDN) carries the metadata itself.
        if (net::origin_of(next) == m_endpoint_origin) {
          // Python drops the query of relative redirects; the resolve-cache query is informative only.
          url = next;
          continue;
        }
      }
    }
    if (r.transport_ok() && r.status == 404 &&
        r.single_header("x-error-code").value_or("") == "EntryNotFound") {
      missing_commit = r.single_header("x-repo-commit").value_or("");
      if (!is_commit_hash(missing_commit)) {
        missing_commit.clear();
      }
      return std::nullopt;
    }
    if (!r.transport_ok() || (r.status >= 400) || (!r.is_success() && !r.is_redirect())) {
      throw_for_response(r, repo, revision, path);
    }
    FileMetadata m;
    m.commit = r.single_header("x-repo-commit").value_or("");
    std::string etag = r.single_header("x-linked-etag").value_or(r.single_header("etag").value_or(""));
    m.etag = normalize_etag(etag);
    if (r.single_header("x-linked-size")) {
      m.size = size_header(r, "x-linked-size", path, repo, url);
    } else if (r.single_header("content-length") && !r.is_redirect()) {
      m.size = size_header(r, "content-length", path, repo, url);
    } else {
      throw DownloadError(ErrorKind::network,
                          fmt::format("the server gave no size for '{}' of {} ({})", path, repo.describe(),
                                      net::display_url(url)),
                          "check HF_ENDPOINT: it does not behave like the Hugging Face Hub");
    }
    if (m.commit.empty() || m.etag.empty()) {
      throw DownloadError(ErrorKind::network,
                          fmt::format("the server's answer for '{}' of {} has no {} header ({})", path,
                                      repo.describe(), m.commit.empty() ? "X-Repo-Commit" : "ETag",
                                      net::display_url(url)),
                          "check HF_ENDPOINT: it does not seem to be a Hugging Face Hub");
    }
    auto loc = r.single_header("location");
    m.location = (r.is_redirect() && loc) ? net::resolve_location(url, *loc) : url;
    return m;
  }
  throw DownloadError(ErrorKind::network,
                      fmt::format("too many redirects for '{}' of {}", path, repo.describe()));
}

RevisionInfo HubClient::revision_info(const RepoId& repo, std::string_view revision)
{
  std::string url = api_url(repo, "/revision/" + net::percent_encode(revision, false));
  for (int hop = 0; hop < 10; ++hop) {
    net::Request req;
    req.url = url;
    net::Response r = request_with_retries(req, fmt::format("resolving revision '{}'", revision));
    if (r.is_redirect()) {
      if (auto loc = r.single_header("location");
          loc && net::origin_of(net::resolve_location(url, *loc)) == m_endpoint_origin) {
        url = net::resolve_location(url, *loc);
        continue;
      }
    }
    if (!r.is_success()) {
      throw_for_response(r, repo, revision, {});
    }
    return parse_revision_info(r.body, net::display_url(url));
  }
  throw DownloadError(ErrorKind::network, fmt::format("too many redirects resolving {}", repo.describe()));
}

std::vector<cache::TreeFile> HubClient::list_files(const RepoId& repo, std::string_view commit)
{
  std::vector<cache::TreeFile> files;
  std::string url =
      api_url(repo, "/tree/" + net::percent_encode(commit, false) + "?recursive=true&expand=false");
  // Every page URL fetched (the cursor is part of it): a next link back to one of them is a loop that would
  // otherwise run until the page cap.
  std::set<std::string> fetched;
  for (int page = 0; !url.empty(); ++page) {
    if (page > 100000) {
      throw BadResponseError(
          fmt::format("the tree listing of {} does not end (more than 100000 pages)", repo.describe()),
          std::string(k_not_a_hub_hint));
    }
    fetched.insert(url);
    net::Request req;
    req.url = url;
    net::Response r = request_with_retries(req, "listing the repo's files");
    if (!r.is_success()) {
      throw_for_response(r, repo, commit, {});
    }
    auto page_files = parse_tree_page(r.body, net::display_url(url));
    files.insert(files.end(), std::make_move_iterator(page_files.begin()),
                 std::make_move_iterator(page_files.end()));
    url.clear();
    if (auto link = r.header("link")) {
      if (auto target = net::parse_link_next(*link)) {
        std::string next = net::resolve_location(req.url, *target);
        if (net::origin_of(next) != m_endpoint_origin) {
          // The token is only sent to the endpoint, and a listing split across hosts is not the Hub's.
          throw BadResponseError(
              fmt::format("the tree listing of {} links its next page to another host ({})", repo.describe(),
                          net::display_url(next)),
              std::string(k_not_a_hub_hint));
        }
        if (fetched.contains(next)) {
          throw BadResponseError(fmt::format("the tree listing of {} loops: the next page link of page {} "
                                             "points back to a page already fetched ({})",
                                             repo.describe(), page + 1, net::display_url(next)),
                                 std::string(k_not_a_hub_hint));
        }
        url = std::move(next);
      }
    }
  }
  return files;
}

} // namespace modelmgr::hub
