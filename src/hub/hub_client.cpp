#include "hub/hub_client.hpp"

#include "modelmgr/errors.hpp"

#include "util/env.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
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

std::string server_message(const net::Response& r)
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
      return json["errors"][0]["message"].dump();
    }
  }
  return {};
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
    if (auto ls = r.single_header("x-linked-size")) {
      m.size = std::stoull(*ls);
    } else if (auto cl = r.single_header("content-length"); cl && !r.is_redirect()) {
      m.size = std::stoull(*cl);
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
    auto json = nlohmann::json::parse(r.body, nullptr, false);
    if (!json.is_object() || !json.contains("sha") || !json["sha"].is_string()) {
      throw DownloadError(
          ErrorKind::network,
          fmt::format("unexpected answer from {} for {} (no 'sha')", net::display_url(url), repo.describe()),
          "check HF_ENDPOINT: it does not seem to be a Hugging Face Hub");
    }
    RevisionInfo info;
    info.sha = json["sha"].get<std::string>();
    info.is_private = json.value("private", false);
    if (json.contains("gated") && json["gated"].is_string()) {
      info.gated = json["gated"].get<std::string>();
    }
    if (!is_commit_hash(info.sha)) {
      throw DownloadError(ErrorKind::network, fmt::format("the Hub answered an invalid commit '{}' for {}",
                                                          info.sha, repo.describe()));
    }
    return info;
  }
  throw DownloadError(ErrorKind::network, fmt::format("too many redirects resolving {}", repo.describe()));
}

std::vector<cache::TreeFile> HubClient::list_files(const RepoId& repo, std::string_view commit)
{
  std::vector<cache::TreeFile> files;
  std::string url =
      api_url(repo, "/tree/" + net::percent_encode(commit, false) + "?recursive=true&expand=false");
  for (int page = 0; !url.empty(); ++page) {
    if (page > 100000) {
      throw DownloadError(ErrorKind::network, "tree listing does not end (more than 100000 pages)");
    }
    net::Request req;
    req.url = url;
    net::Response r = request_with_retries(req, "listing the repo's files");
    if (!r.is_success()) {
      throw_for_response(r, repo, commit, {});
    }
    auto json = nlohmann::json::parse(r.body, nullptr, false);
    if (!json.is_array()) {
      throw DownloadError(ErrorKind::network, fmt::format("unexpected tree listing from {} for {}",
                                                          net::display_url(url), repo.describe()));
    }
    for (const auto& e : json) {
      if (!e.is_object() || e.value("type", "") != "file") {
        continue;
      }
      cache::TreeFile f;
      f.path = e.value("path", "");
      f.size = e.value("size", std::uint64_t{0});
      f.blob_id = e.value("oid", "");
      if (e.contains("lfs") && e["lfs"].is_object()) {
        f.lfs_sha256 = e["lfs"].value("oid", "");
        f.lfs_size = e["lfs"].value("size", f.size);
      }
      if (e.contains("xetHash") && e["xetHash"].is_string()) {
        f.xet_hash = e["xetHash"].get<std::string>();
      }
      files.push_back(std::move(f));
    }
    url.clear();
    if (auto link = r.header("link")) {
      // Link: <https://…>; rel="next"
      auto rel = link->find("rel=\"next\"");
      if (rel != std::string::npos) {
        auto close = link->rfind('>', rel);
        auto open = link->rfind('<', close);
        if (open != std::string::npos && close != std::string::npos && close > open) {
          std::string next = net::resolve_location(req.url, link->substr(open + 1, close - open - 1));
          if (net::origin_of(next) == m_endpoint_origin) {
            url = next;
          }
        }
      }
    }
  }
  return files;
}

} // namespace modelmgr::hub
