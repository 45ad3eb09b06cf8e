// The HTTP side of the emulator: two httplib servers (hub + CDN), routing on the raw request target,
// the Hub's redirects and error shapes, ranged bodies with fault injection, counters.

#include "emulator/hub_emulator.hpp"

#include "emulator/http_util.hpp"
#include "emulator/rate_limit.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

namespace modelmgr::emulator {

namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t k_chunk = 1 << 20; // body write size: large writes keep loopback at several GB/s
constexpr std::size_t k_tree_page = 1000;
constexpr std::size_t k_tree_page_expand = 50;
constexpr const char* k_any_path = R"([\s\S]*)";
constexpr const char* k_last_modified = "Mon, 01 Jan 2024 00:00:00 GMT";
constexpr const char* k_iso_date = "2024-01-01T00:00:00.000Z";

class EmuServer : public httplib::Server {
public:
  // httplib listens with a backlog of 5; a downloader opening dozens of connections at once would overflow
  // the accept queue and pay 1 s SYN retransmits. listen() again on a listening socket updates the backlog.
  void raise_backlog() { ::listen(svr_sock_, 1024); }
};

enum class Auth { anonymous, full, no_gated, invalid };
// What a request is, for fault matching (see FaultSpec::Route).
enum class FaultClass { body, head, api, redirect };

// httplib's set_header appends (headers are a multimap); a header set twice on one path would be sent twice.
void put_header(httplib::Response& res, const std::string& key, const std::string& value)
{
  res.headers.erase(key);
  res.set_header(key, value);
}

std::string repo_key(std::string_view type, std::string_view id)
{
  return fmt::format("{}:{}", type, id);
}

std::string lower(std::string_view s)
{
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string type_from_plural(std::string_view plural)
{
  if (plural == "models") {
    return "model";
  }
  if (plural == "datasets") {
    return "dataset";
  }
  if (plural == "spaces") {
    return "space";
  }
  return "";
}

std::string join(const std::vector<std::string>& segs, std::size_t from, std::size_t to, char sep = '/')
{
  std::string out;
  for (std::size_t i = from; i < to && i < segs.size(); ++i) {
    if (i > from) {
      out.push_back(sep);
    }
    out += segs[i];
  }
  return out;
}

std::string decode_join(const std::vector<std::string>& segs, std::size_t from, std::size_t to)
{
  std::string out;
  for (std::size_t i = from; i < to && i < segs.size(); ++i) {
    if (i > from) {
      out.push_back('/');
    }
    out += detail::percent_decode(segs[i]);
  }
  return out;
}

std::string status_text(int status)
{
  switch (status) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 408: return "Request Timeout";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return fmt::format("Error {}", status);
  }
}

bool truthy(const std::string& v)
{
  return v == "true" || v == "True" || v == "1";
}

bool is_api_keyword(std::string_view s)
{
  return s == "revision" || s == "tree" || s == "paths-info" || s == "refs" || s == "xet-read-token" ||
         s == "commits" || s == "resolve-cache";
}

// A directory's oid: the real Hub reports the git tree sha1; a stable stand-in is enough for clients.
std::string tree_oid(std::string_view commit, std::string_view path)
{
  return util::git_blob_sha1_hex(fmt::format("tree {} {}", commit, path));
}

struct Lookup {
  std::shared_ptr<const Repo> repo;
  std::string redirect_id; // set when the id is an old name or differs in case: 307 to this id
  std::string id;          // the id as requested
  std::size_t next = 0;    // index of the first segment after the repo id
};

struct Exchange {
  const httplib::Request& req;
  httplib::Response& res;
  bool cdn = false;
  Auth auth = Auth::anonymous;
  RequestRecord record;
  std::string query; // raw query string, without '?'
};

} // namespace

struct HubEmulator::Impl {
  explicit Impl(HubEmulator& owner) : m_owner(owner) {}

  HubEmulator& m_owner;
  EmuServer m_hub;
  EmuServer m_cdn;
  std::thread m_hub_thread;
  std::thread m_cdn_thread;
  std::atomic<bool> m_running{false};
  bool m_started = false;

  std::mutex m_stop_mutex;
  std::condition_variable m_stop_cv;
  std::atomic<bool> m_stopping{false};

  mutable std::mutex m_repos_mutex;
  std::map<std::string, std::shared_ptr<const Repo>> m_repos; // repo_key(type, id)
  std::map<std::string, std::string> m_renamed;               // repo_key(type, old id) -> new id

  mutable std::mutex m_faults_mutex;
  std::vector<FaultSpec> m_faults;

  mutable std::mutex m_counters_mutex;
  mutable std::condition_variable m_counters_cv;
  Counters m_counters;

  std::mutex m_cdn_mutex;
  std::map<std::string, std::shared_ptr<const RepoFile>> m_cdn_objects; // sha256 -> file

  std::atomic<std::uint64_t> m_request_seq{0};

  mutable std::mutex m_public_mutex;
  std::string m_public_hub, m_public_cdn; // set_public_origins

  std::string public_origin(bool cdn) const
  {
    std::lock_guard lock(m_public_mutex);
    return cdn ? m_public_cdn : m_public_hub;
  }

  // Options::total_rate: one bucket for all body responses.
  std::mutex m_link_mutex;
  std::optional<TokenBucket> m_link;

  const Options& options() const { return m_owner.m_options; }

  // Waits for the shared link to carry `n` more bytes (Options::total_rate); false when stopping.
  bool wait_for_link(std::uint64_t n)
  {
    Clock::time_point due;
    {
      std::lock_guard lock(m_link_mutex);
      if (!m_link) {
        return true;
      }
      due = m_link->reserve(n, Clock::now());
    }
    return due <= Clock::now() || wait_until(due);
  }

  template <typename F> void update_counters(F&& f)
  {
    {
      std::lock_guard lock(m_counters_mutex);
      f(m_counters);
    }
    m_counters_cv.notify_all();
  }

  // Sleeps until `deadline` or stop(); returns false when stopping.
  bool wait_until(Clock::time_point deadline)
  {
    std::unique_lock lock(m_stop_mutex);
    m_stop_cv.wait_until(lock, deadline, [&] { return m_stopping.load(); });
    return !m_stopping;
  }

  bool wait_for(std::chrono::milliseconds duration)
  {
    if (duration == FaultSpec::forever_duration()) {
      std::unique_lock lock(m_stop_mutex);
      m_stop_cv.wait(lock, [&] { return m_stopping.load(); });
      return false;
    }
    return wait_until(Clock::now() + duration);
  }

  // ---- repos ----

  std::shared_ptr<const Repo> get_repo(std::string_view type, std::string_view id) const
  {
    std::lock_guard lock(m_repos_mutex);
    auto it = m_repos.find(repo_key(type, id));
    return it == m_repos.end() ? nullptr : it->second;
  }

  Lookup lookup(std::string_view type, const std::string& id) const
  {
    Lookup result;
    result.id = id;
    std::lock_guard lock(m_repos_mutex);
    if (auto it = m_repos.find(repo_key(type, id)); it != m_repos.end()) {
      result.repo = it->second;
      return result;
    }
    if (auto it = m_renamed.find(repo_key(type, id)); it != m_renamed.end()) {
      result.redirect_id = it->second;
      return result;
    }
    // The Hub redirects ids that differ only in case to the canonical spelling.
    auto wanted = lower(id);
    for (const auto& [key, repo] : m_repos) {
      if (repo->type == type && lower(repo->id) == wanted) {
        result.redirect_id = repo->id;
        return result;
      }
    }
    return result;
  }

  // A repo id is "ns/name" or a canonical "name"; try both shapes, prefer the one that exists.
  // `canonical_ok(segs, start)` says whether the 1-segment reading is plausible.
  Lookup pick_repo(std::string_view type, const std::vector<std::string>& segs, std::size_t start,
                   const std::function<bool(std::size_t next)>& shape_ok) const
  {
    std::vector<Lookup> candidates;
    if (segs.size() >= start + 2 && shape_ok(start + 2)) {
      auto l =
          lookup(type, detail::percent_decode(segs[start]) + "/" + detail::percent_decode(segs[start + 1]));
      l.next = start + 2;
      candidates.push_back(std::move(l));
    }
    if (segs.size() >= start + 1 && shape_ok(start + 1)) {
      auto l = lookup(type, detail::percent_decode(segs[start]));
      l.next = start + 1;
      candidates.push_back(std::move(l));
    }
    for (auto& c : candidates) {
      if (c.repo || !c.redirect_id.empty()) {
        return c;
      }
    }
    if (!candidates.empty()) {
      return candidates.front();
    }
    Lookup none;
    none.next = segs.size();
    return none;
  }

  // ---- faults ----

  std::optional<FaultSpec> take_fault(FaultClass cls, std::string_view path,
                                      std::optional<std::uint64_t> range_start,
                                      std::optional<detail::ByteRange> covered)
  {
    std::optional<FaultSpec> fired;
    {
      std::lock_guard lock(m_faults_mutex);
      for (auto it = m_faults.begin(); it != m_faults.end(); ++it) {
        const FaultSpec& f = *it;
        bool route_ok = f.route == FaultSpec::Route::any ||
                        (f.route == FaultSpec::Route::body && cls == FaultClass::body) ||
                        (f.route == FaultSpec::Route::head && cls == FaultClass::head) ||
                        (f.route == FaultSpec::Route::api && cls == FaultClass::api);
        if (!route_ok) {
          continue;
        }
        bool body_only = f.kind == FaultSpec::Kind::flip_byte || f.kind == FaultSpec::Kind::throttle ||
                         f.kind == FaultSpec::Kind::lying_206 || f.kind == FaultSpec::Kind::ignore_range;
        if (body_only && cls != FaultClass::body) {
          continue;
        }
        if (f.kind == FaultSpec::Kind::truncate && cls == FaultClass::head) {
          continue; // nothing to truncate
        }
        if (f.kind == FaultSpec::Kind::link_loop && cls != FaultClass::api) {
          continue;
        }
        if (!f.path_contains.empty() && path.find(f.path_contains) == std::string_view::npos) {
          continue;
        }
        if (f.range_start_at_least && (!range_start || *range_start < *f.range_start_at_least)) {
          continue;
        }
        if (f.kind == FaultSpec::Kind::flip_byte &&
            (!covered || f.after_bytes < covered->first || f.after_bytes > covered->last)) {
          continue;
        }
        fired = f;
        if (it->times > 0 && --it->times == 0) {
          m_faults.erase(it);
        }
        break;
      }
    }
    if (fired) {
      update_counters([](Counters& c) { ++c.faults_fired; });
    }
    return fired;
  }

  // status / reset / stall on a response without a file body. Returns true when the response is done.
  bool apply_simple_fault(Exchange& ex, const FaultSpec& fault)
  {
    switch (fault.kind) {
    case FaultSpec::Kind::status: fault_status(ex, fault); return true;
    case FaultSpec::Kind::reset: abort_connection(ex); return true;
    case FaultSpec::Kind::redirect:
      redirect(ex, fault.status >= 300 && fault.status < 400 ? fault.status : 302, fault.location);
      return true;
    case FaultSpec::Kind::body:
      ex.res.status = fault.status;
      ex.res.set_content(fault.body, "application/json; charset=utf-8");
      return true;
    case FaultSpec::Kind::endless_body: endless_body(ex, fault); return true;
    case FaultSpec::Kind::stall: {
      update_counters([](Counters& c) { ++c.stalls_active; });
      bool alive = wait_for(fault.stall_for);
      update_counters([](Counters& c) { --c.stalls_active; });
      if (!alive) {
        abort_connection(ex);
        return true;
      }
      return false;
    }
    default: return false;
    }
  }

  void fault_status(Exchange& ex, const FaultSpec& fault)
  {
    if (fault.retry_after_s > 0) {
      put_header(ex.res, "Retry-After", std::to_string(fault.retry_after_s));
    }
    std::string message = fault.message.empty() ? status_text(fault.status) : fault.message;
    if (fault.status == 429) {
      put_header(ex.res, "RateLimit",
                 fmt::format("\"resolvers\";r=0;t={}", std::max(fault.retry_after_s, 1)));
    }
    error(ex, fault.status, "", message);
  }

  // A JSON array of tree entries that does not end (or ends after fault.after_bytes bytes, announced).
  void endless_body(Exchange& ex, const FaultSpec& fault)
  {
    static const std::string k_entry =
        R"({"type":"file","path":"f.bin","size":1,"oid":"0000000000000000000000000000000000000000"},)";
    auto piece = std::make_shared<std::string>("[");
    while (piece->size() < 64 * 1024) {
      *piece += k_entry;
    }
    ex.res.status = 200;
    const std::uint64_t limit = fault.after_bytes;
    // Bytes [offset, offset + n) of the endless text: "[" then entries, repeating `piece` minus its "[".
    auto fill = [piece](std::uint64_t offset, std::size_t n, std::string& out) {
      out.clear();
      const std::uint64_t period = piece->size() - 1;
      while (out.size() < n) {
        if (offset == 0) {
          out.push_back('[');
          ++offset;
          continue;
        }
        const std::uint64_t at = 1 + (offset - 1) % period;
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(piece->size() - at, n - out.size()));
        out.append(*piece, static_cast<std::size_t>(at), take);
        offset += take;
      }
    };
    if (limit > 0) {
      ex.res.set_content_provider(
          static_cast<std::size_t>(limit), "application/json",
          [this, fill](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
            if (m_stopping) {
              return false;
            }
            std::string chunk;
            fill(offset, std::min<std::size_t>(length, 64 * 1024), chunk);
            return sink.write(chunk.data(), chunk.size());
          });
      return;
    }
    ex.res.set_chunked_content_provider("application/json",
                                        [this, fill](std::size_t offset, httplib::DataSink& sink) {
                                          if (m_stopping) {
                                            return false;
                                          }
                                          std::string chunk;
                                          fill(offset, 64 * 1024, chunk);
                                          return sink.write(chunk.data(), chunk.size());
                                        });
  }

  void abort_connection(Exchange& ex)
  {
    int fd = detail::find_connection_socket(ex.req.local_port, ex.req.remote_port);
    if (fd >= 0) {
      detail::reset_connection(fd);
    }
    ex.res.status = 500;
    put_header(ex.res, "Connection", "close");
    ex.record.status = 0; // no response reached the client
  }

  // ---- responses ----

  void error(Exchange& ex, int status, std::string_view code, const std::string& message)
  {
    ex.res.status = status;
    if (!code.empty()) {
      put_header(ex.res, "X-Error-Code", std::string(code));
    }
    put_header(ex.res, "X-Error-Message", message);
    ex.res.set_content(Json{{"error", message}}.dump(), "application/json; charset=utf-8");
  }

  void not_found_page(Exchange& ex)
  {
    error(ex, 404, "", "Sorry, we can't find the page you are looking for.");
  }

  void repo_not_found(Exchange& ex)
  {
    if (ex.auth == Auth::anonymous) {
      // What huggingface.co says to anonymous callers: it does not reveal whether a private repo exists.
      error(ex, 401, "RepoNotFound", "Invalid username or password.");
    } else {
      error(ex, 404, "RepoNotFound", "Repository not found");
    }
  }

  // Private repos need a full token; gated repos need one for file access only (metadata is public).
  bool check_access(Exchange& ex, const Repo& repo, bool file_access)
  {
    if (repo.private_repo && ex.auth != Auth::full) {
      repo_not_found(ex);
      return false;
    }
    if (file_access && !repo.gated.empty() && ex.auth != Auth::full) {
      if (ex.auth == Auth::anonymous) {
        error(ex, 401, "GatedRepo",
              fmt::format(
                  "Access to {} {} is restricted. You must have access to it and be authenticated to access "
                  "it. Please log in.",
                  repo.type, repo.id));
      } else {
        error(ex, 403, "GatedRepo",
              fmt::format("Access to {} {} is restricted and you are not in the authorized list. Visit "
                          "{}/{}{} to ask for access.",
                          repo.type, repo.id, m_owner.endpoint(), repo.url_prefix(), repo.id));
      }
      return false;
    }
    return true;
  }

  void redirect(Exchange& ex, int status, const std::string& location)
  {
    ex.res.status = status;
    put_header(ex.res, "Location", location);
    ex.res.set_content(
        fmt::format("{}. Redirecting to {}", status == 302 ? "Found" : "Temporary Redirect", location),
        "text/plain; charset=utf-8");
  }

  std::string host_for_urls(const Exchange& ex) const
  {
    std::string host = ex.req.get_header_value("Host");
    if (host.empty()) {
      return m_owner.endpoint().substr(7);
    }
    return host;
  }

  std::string cdn_base(const Exchange& ex) const
  {
    if (auto base = public_origin(true); !base.empty()) {
      return base;
    }
    // Same host name the client used for the hub, on the CDN port: a different origin, like the real CDN.
    std::string host = host_for_urls(ex);
    if (host.starts_with("[")) {
      host = host.substr(0, host.find(']') + 1);
    } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
      host = host.substr(0, colon);
    }
    return fmt::format("http://{}:{}", host, m_owner.m_cdn_port);
  }

  std::string cdn_url(const Exchange& ex, const std::shared_ptr<const RepoFile>& file)
  {
    const std::string& sha = file->sha256();
    {
      // The CDN finds files by sha256, like the real one; only URLs handed out in a 302 need to work.
      std::lock_guard lock(m_cdn_mutex);
      m_cdn_objects[sha] = file;
    }
    auto name = file->path().substr(file->path().rfind('/') + 1);
    auto disposition = fmt::format("inline; filename*=UTF-8''{}; filename=\"{}\";",
                                   detail::percent_encode(name, false), name);
    auto expires = std::time(nullptr) + 3600;
    auto signature = util::sha256_hex(fmt::format("{}:{}", sha, expires)).substr(0, 43);
    return fmt::format(
        "{}/repos/{}/{}/{}?response-content-disposition={}&Expires={}&Policy={}&Signature={}"
        "&Key-Pair-Id=KVTP0A1DKRTAX",
        cdn_base(ex), sha.substr(0, 2), sha.substr(2, 2), sha, detail::percent_encode(disposition, false),
        expires, detail::base64url(fmt::format(R"({{"Statement":[{{"Resource":"{}"}}]}})", sha)), signature);
  }

  void common_hub_headers(Exchange& ex)
  {
    auto seq = ++m_request_seq;
    put_header(ex.res, "X-Request-Id",
               fmt::format("Root=1-{:08x}-{:024x}", static_cast<std::uint32_t>(std::time(nullptr)), seq));
    put_header(ex.res, "X-Powered-By", "huggingface-moon");
    put_header(ex.res, "RateLimit", "\"resolvers\";r=2999;t=300");
    put_header(ex.res, "RateLimit-Policy", "\"fixed window\";\"resolvers\";q=3000;w=300");
    put_header(ex.res, "Access-Control-Allow-Origin", "*");
    put_header(
        ex.res, "Access-Control-Expose-Headers",
        "X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,X-Total-Count,ETag,Link,Accept-Ranges,"
        "Content-Range,X-Linked-Size,X-Linked-ETag,X-Xet-Hash");
    put_header(ex.res, "Vary", "Origin");
    if (ex.auth == Auth::anonymous) {
      put_header(ex.res, "X-HF-Warning",
                 "unauthenticated; You are sending unauthenticated requests to the HF Hub. "
                 "Please set a HF_TOKEN to enable higher rate limits and faster downloads.");
    }
  }

  Auth auth_of(const httplib::Request& req) const
  {
    if (!req.has_header("Authorization")) {
      return Auth::anonymous;
    }
    std::string value = req.get_header_value("Authorization");
    if (value.size() < 7 || lower(value.substr(0, 7)) != "bearer ") {
      return Auth::invalid;
    }
    std::string token = value.substr(7);
    while (!token.empty() && token.front() == ' ') {
      token.erase(0, 1);
    }
    if (options().valid_tokens.contains(token)) {
      return Auth::full;
    }
    if (options().tokens_without_gated_access.contains(token)) {
      return Auth::no_gated;
    }
    return Auth::invalid;
  }

  // ---- entry point ----

  void handle(const httplib::Request& req, httplib::Response& res, bool cdn)
  {
    // httplib slices bodies by req.ranges on its own and can neither lie nor ignore a range; the emulator
    // answers Range itself, so the parsed ranges are hidden from httplib. (The Request is a non-const local
    // of httplib's process_request, so modifying it is well-defined.)
    const_cast<httplib::Request&>(req).ranges.clear();
    Exchange ex{req, res};
    ex.cdn = cdn;
    ex.record.method = req.method;
    ex.record.target = req.target;
    ex.record.port = cdn ? m_owner.m_cdn_port : m_owner.m_hub_port;
    ex.record.cdn = cdn;
    ex.record.range = req.get_header_value("Range");
    ex.record.authorization = req.has_header("Authorization");
    auto qpos = req.target.find('?');
    std::string path = req.target.substr(0, qpos);
    ex.query = qpos == std::string::npos ? "" : req.target.substr(qpos + 1);

    if (!cdn && path.starts_with("/_emulator/")) {
      handle_admin(ex, path);
      return; // admin traffic is not counted
    }
    ex.record.status = -1;
    update_counters([](Counters& c) {
      ++c.requests_active;
      c.requests_active_peak = std::max(c.requests_active_peak, c.requests_active);
    });
    try {
      if (cdn) {
        handle_cdn(ex, path);
      } else {
        handle_hub(ex, path);
      }
    } catch (const std::exception& e) {
      error(ex, 500, "", fmt::format("emulator error: {}", e.what()));
    }
    const auto& o = options();
    if (o.latency.count() > 0 && (o.latency_routes.empty() || o.latency_routes.contains(ex.record.kind))) {
      // The answer (headers and any streamed body) leaves only after the handler returns.
      wait_for(o.latency);
    }
    if (ex.record.status == -1) {
      ex.record.status = res.status;
    }
    update_counters([&](Counters& c) {
      --c.requests_active;
      ++c.requests[static_cast<std::size_t>(ex.record.kind)];
      c.log.push_back(std::move(ex.record));
    });
  }

  void handle_hub(Exchange& ex, const std::string& path)
  {
    ex.auth = auth_of(ex.req);
    common_hub_headers(ex);
    auto segs = detail::split(std::string_view(path).substr(1), '/');
    // Classify first so that even refused requests are counted under their route.
    std::function<void()> route;
    if (segs[0] == "api" && segs.size() >= 2) {
      if (segs[1] == "resolve-cache") {
        ex.record.kind = RouteKind::resolve_cache;
        route = [&] { handle_resolve_cache(ex, segs); };
      } else if (auto type = type_from_plural(segs[1]); !type.empty() && segs.size() >= 3) {
        route = [&, type] { handle_api(ex, type, segs); };
      } else if (segs[1] == "whoami-v2") {
        route = [&] { handle_whoami(ex); };
      }
    } else if (!segs[0].empty()) {
      std::size_t start = 0;
      std::string type = "model";
      if (segs[0] == "datasets" || segs[0] == "spaces") {
        type = segs[0] == "datasets" ? "dataset" : "space";
        start = 1;
      }
      bool resolve = (segs.size() > start + 1 && segs[start + 1] == "resolve") ||
                     (segs.size() > start + 2 && segs[start + 2] == "resolve");
      if (resolve) {
        ex.record.kind = ex.req.method == "HEAD" ? RouteKind::head_resolve : RouteKind::get_resolve;
        route = [&, type, start] { handle_resolve(ex, type, segs, start); };
      }
    }
    if (ex.auth == Auth::invalid) {
      error(ex, 401, "", "Invalid credentials in Authorization header");
      return;
    }
    if (!route) {
      not_found_page(ex);
      return;
    }
    route();
  }

  // HEAD|GET /{prefix}{repo}/resolve/{revision}/{path}
  void handle_resolve(Exchange& ex, const std::string& type, const std::vector<std::string>& segs,
                      std::size_t start)
  {
    auto l = pick_repo(type, segs, start,
                       [&](std::size_t next) { return next < segs.size() && segs[next] == "resolve"; });
    std::size_t rev_at = l.next + 1;
    if (segs.size() < rev_at + 2) {
      not_found_page(ex);
      return;
    }
    const bool head = ex.req.method == "HEAD";
    std::string naive_path = decode_join(segs, rev_at + 1, segs.size());
    ex.record.file_path = naive_path;
    if (head) {
      if (auto fault = take_fault(FaultClass::head, naive_path, std::nullopt, std::nullopt)) {
        if (apply_simple_fault(ex, *fault)) {
          return;
        }
      }
    }
    std::string prefix = type == "model" ? "" : type + "s/";
    if (!l.redirect_id.empty()) {
      std::string location = "/" + prefix + l.redirect_id + "/" + join(segs, l.next, segs.size());
      if (!ex.query.empty()) {
        location += "?" + ex.query;
      }
      redirect(ex, 307, location);
      return;
    }
    if (!l.repo) {
      repo_not_found(ex);
      return;
    }
    const Repo& repo = *l.repo;
    if (!check_access(ex, repo, true)) {
      return;
    }
    // The revision is one percent-encoded segment; some clients send "refs/pr/1" unencoded, so also try
    // longer runs of segments when the first one is not a revision.
    const Commit* commit = nullptr;
    std::string file_path;
    std::string revision_raw;
    for (std::size_t k = rev_at + 1; k < segs.size() && !commit; ++k) {
      commit = repo.resolve(decode_join(segs, rev_at, k));
      if (commit) {
        file_path = decode_join(segs, k, segs.size());
        revision_raw = join(segs, rev_at, k);
      }
    }
    if (!commit) {
      error(ex, 404, "RevisionNotFound",
            fmt::format("Invalid rev id: {}", detail::percent_decode(segs[rev_at])));
      return;
    }
    ex.record.file_path = file_path;
    put_header(ex.res, "X-Repo-Commit", commit->sha);
    auto file = commit->find(file_path);
    if (!file) {
      error(ex, 404, "EntryNotFound", "Entry not found");
      return;
    }
    if (file->is_lfs()) {
      if (!head) {
        if (auto fault = take_fault(FaultClass::redirect, file_path, std::nullopt, std::nullopt)) {
          if (apply_simple_fault(ex, *fault)) {
            return;
          }
        }
      }
      put_header(ex.res, "X-Linked-Etag", "\"" + file->sha256() + "\"");
      put_header(ex.res, "X-Linked-Size", std::to_string(file->size()));
      // The 302's own ETag is not the content hash on the real Hub either; clients must ignore it.
      put_header(ex.res, "ETag", "W/\"" + file->blob_id().substr(0, 16) + "-redirect\"");
      put_header(ex.res, "Accept-Ranges", "bytes");
      put_header(ex.res, "Cache-Control", "no-store");
      redirect(ex, 302, cdn_url(ex, file));
      return;
    }
    bool canonical = repo.id.find('/') == std::string::npos;
    if (!repo.private_repo && repo.gated.empty() && !canonical && file->size() > 0) {
      if (!head) {
        if (auto fault = take_fault(FaultClass::redirect, file_path, std::nullopt, std::nullopt)) {
          if (apply_simple_fault(ex, *fault)) {
            return;
          }
        }
      }
      // Python drops this query when following; it only has to look like the Hub's.
      std::string original =
          "/" + prefix + repo.id + "/resolve/" + revision_raw + "/" + detail::percent_encode(file_path, true);
      std::string location = fmt::format("/api/resolve-cache/{}s/{}/{}/{}?{}=&etag=%22{}%22", repo.type,
                                         repo.id, commit->sha, detail::percent_encode(file_path, true),
                                         detail::percent_encode(original, false), file->git_sha1());
      redirect(ex, 307, location);
      return;
    }
    serve_file(ex, file, commit->sha);
  }

  // HEAD|GET /api/resolve-cache/{models|datasets|spaces}/{repo}/{commit}/{path}
  void handle_resolve_cache(Exchange& ex, const std::vector<std::string>& segs)
  {
    auto type = segs.size() > 2 ? type_from_plural(segs[2]) : "";
    if (type.empty()) {
      not_found_page(ex);
      return;
    }
    auto l = pick_repo(type, segs, 3, [&](std::size_t next) {
      return next + 1 < segs.size() && segs[next].size() == 40 && util::is_hex(segs[next]);
    });
    if (l.next + 1 >= segs.size()) {
      not_found_page(ex);
      return;
    }
    std::string file_path = decode_join(segs, l.next + 1, segs.size());
    ex.record.file_path = file_path;
    const bool head = ex.req.method == "HEAD";
    if (head) {
      if (auto fault = take_fault(FaultClass::head, file_path, std::nullopt, std::nullopt)) {
        if (apply_simple_fault(ex, *fault)) {
          return;
        }
      }
    }
    if (!l.repo) {
      repo_not_found(ex);
      return;
    }
    if (!check_access(ex, *l.repo, true)) {
      return;
    }
    const Commit* commit = l.repo->commit(segs[l.next]);
    if (!commit) {
      error(ex, 404, "RevisionNotFound", fmt::format("Invalid rev id: {}", segs[l.next]));
      return;
    }
    put_header(ex.res, "X-Repo-Commit", commit->sha);
    auto file = commit->find(file_path);
    if (!file) {
      error(ex, 404, "EntryNotFound", "Entry not found");
      return;
    }
    serve_file(ex, file, commit->sha);
  }

  void handle_cdn(Exchange& ex, const std::string& path)
  {
    const bool head = ex.req.method == "HEAD";
    ex.record.kind = head ? RouteKind::cdn_head : RouteKind::cdn_get;
    auto seq = ++m_request_seq;
    put_header(ex.res, "x-amz-cf-id", detail::base64url(fmt::format("cf-{:016x}", seq)));
    put_header(ex.res, "x-amz-cf-pop", "LOCAL-P1");
    put_header(ex.res, "Via", "1.1 emulator.cloudfront.net (CloudFront)");
    auto s3_error = [&](int status, const char* code, const char* message) {
      ex.res.status = status;
      ex.res.set_content(
          fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}"
                      "</Message><RequestId>{:016X}</RequestId></Error>",
                      code, message, seq),
          "application/xml");
    };
    if (ex.req.has_header("Authorization")) {
      // S3/CloudFront refuse a second auth mechanism on a signed URL: a client must drop the Hub token on
      // the cross-host redirect (hub-protocol.md §3.1).
      update_counters([](Counters& c) { ++c.cdn_authorization_rejected; });
      s3_error(400, "InvalidArgument",
               "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
               "string parameter or the Authorization header should be specified");
      return;
    }
    auto segs = detail::split(std::string_view(path).substr(1), '/');
    std::shared_ptr<const RepoFile> file;
    if (segs.size() == 4 && segs[0] == "repos") {
      std::lock_guard lock(m_cdn_mutex);
      if (auto it = m_cdn_objects.find(segs[3]); it != m_cdn_objects.end()) {
        file = it->second;
      }
    }
    if (!file) {
      s3_error(404, "NoSuchKey", "The specified key does not exist.");
      return;
    }
    ex.record.file_path = file->path();
    if (!ex.req.has_param("Signature") || !ex.req.has_param("Expires")) {
      s3_error(403, "AccessDenied", "Access denied");
      return;
    }
    if (head) {
      if (auto fault = take_fault(FaultClass::head, file->path(), std::nullopt, std::nullopt)) {
        if (apply_simple_fault(ex, *fault)) {
          return;
        }
      }
    }
    serve_file(ex, file, "");
  }

  // ---- bodies ----

  struct BodyStream {
    Impl* impl = nullptr;
    std::shared_ptr<const RepoFile> file; // source: a file...
    std::string literal;                  // ...or literal bytes
    std::uint64_t first = 0;              // source offset of the first body byte
    std::optional<FaultSpec> fault;
    bool fault_done = false;
    int local_port = -1;
    int remote_port = -1;
    std::string count_path; // empty: do not count file bytes
    std::vector<char> buffer;
    Clock::time_point started = Clock::now();
  };

  static bool provide(BodyStream& s, std::size_t offset, std::size_t length, httplib::DataSink& sink)
  {
    Impl& impl = *s.impl;
    if (impl.m_stopping) {
      return false;
    }
    std::uint64_t n = std::min<std::uint64_t>(length, k_chunk);
    const FaultSpec* fault = s.fault ? &*s.fault : nullptr;
    // Per-connection pace: a throttle fault, else Options::connection_rate.
    const std::uint64_t pace = fault && fault->kind == FaultSpec::Kind::throttle
                                   ? fault->bytes_per_sec
                                   : impl.options().connection_rate;
    if (pace > 0) {
      n = std::min<std::uint64_t>(n, std::max<std::uint64_t>(pace / 20, 1));
    }
    if (impl.options().total_rate > 0) {
      // Small slices so that connections sharing the link interleave finely.
      n = std::min<std::uint64_t>(n, std::max<std::uint64_t>(impl.options().total_rate / 100, 16384));
    }
    bool cut_fault = fault && !s.fault_done &&
                     (fault->kind == FaultSpec::Kind::truncate || fault->kind == FaultSpec::Kind::reset ||
                      fault->kind == FaultSpec::Kind::stall);
    if (cut_fault) {
      if (offset >= fault->after_bytes) {
        switch (fault->kind) {
        case FaultSpec::Kind::truncate: return false; // httplib closes; the client sees a short body
        case FaultSpec::Kind::reset: {
          int fd = detail::find_connection_socket(s.local_port, s.remote_port);
          if (fd >= 0) {
            detail::reset_connection(fd);
          }
          return false;
        }
        default: {
          impl.update_counters([](Counters& c) { ++c.stalls_active; });
          bool alive = impl.wait_for(fault->stall_for);
          impl.update_counters([](Counters& c) { --c.stalls_active; });
          if (!alive) {
            return false;
          }
          s.fault_done = true;
        }
        }
      } else {
        n = std::min<std::uint64_t>(n, fault->after_bytes - offset);
      }
    }
    s.buffer.resize(static_cast<std::size_t>(n));
    std::span<char> out(s.buffer.data(), s.buffer.size());
    std::uint64_t source_offset = s.first + offset;
    if (s.file) {
      s.file->read(source_offset, out);
    } else {
      std::copy_n(s.literal.data() + source_offset, n, out.data());
    }
    if (fault && fault->kind == FaultSpec::Kind::flip_byte && fault->after_bytes >= source_offset &&
        fault->after_bytes < source_offset + n) {
      out[fault->after_bytes - source_offset] ^= static_cast<char>(0xff);
    }
    // Counted before the write so that a client which has just received the last byte already sees it in
    // the counters (tests assert right after a download); taken back if the write fails.
    auto count = [&](std::int64_t sign) {
      if (!s.count_path.empty()) {
        impl.update_counters([&](Counters& c) {
          c.body_bytes_total += static_cast<std::uint64_t>(sign) * n;
          c.body_bytes_by_path[s.count_path] += static_cast<std::uint64_t>(sign) * n;
        });
      }
    };
    if (!impl.wait_for_link(n)) {
      return false;
    }
    count(1);
    if (!sink.write(out.data(), out.size())) {
      count(-1);
      return false;
    }
    if (pace > 0) {
      auto sent = offset + n;
      auto due = s.started + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                 static_cast<long double>(sent) * 1e9L / static_cast<long double>(pace)));
      if (!impl.wait_until(due)) {
        return false;
      }
    }
    return true;
  }

  void stream_body(Exchange& ex, std::shared_ptr<BodyStream> stream, std::uint64_t length)
  {
    stream->impl = this;
    stream->local_port = ex.req.local_port;
    stream->remote_port = ex.req.remote_port;
    ex.res.set_content_provider(static_cast<std::size_t>(length), "application/octet-stream",
                                [stream](std::size_t offset, std::size_t len, httplib::DataSink& sink) {
                                  return provide(*stream, offset, len, sink);
                                });
  }

  void serve_file(Exchange& ex, const std::shared_ptr<const RepoFile>& file, const std::string& commit)
  {
    const bool head = ex.req.method == "HEAD";
    auto& res = ex.res;
    const std::uint64_t size = file->size();
    std::string etag;
    if (ex.cdn) {
      // S3's ETag is an MD5-like value, not the sha256; clients must take the sha256 from X-Linked-Etag.
      etag = "\"" + util::sha256_hex(file->sha256()).substr(0, 32) + "\"";
      put_header(res, "Cache-Control", "public, max-age=604800, immutable, s-maxage=604800");
      put_header(res, "X-Cache", "Hit from cloudfront");
    } else {
      etag = "\"" + file->etag() + "\"";
      put_header(res, "X-Repo-Commit", commit);
    }
    put_header(res, "ETag", etag);
    put_header(res, "Accept-Ranges", "bytes");
    put_header(res, "Last-Modified", k_last_modified);
    auto name = file->path().substr(file->path().rfind('/') + 1);
    put_header(res, "Content-Disposition",
               fmt::format("inline; filename*=UTF-8''{}; filename=\"{}\";",
                           detail::percent_encode(name, false), name));
    if (!ex.cdn && ex.req.get_header_value("If-None-Match") == etag) {
      res.status = 304;
      return;
    }

    detail::ByteRange range{0, size == 0 ? 0 : size - 1};
    auto range_result = detail::parse_range(ex.req.get_header_value("Range"), size, range);
    std::optional<std::uint64_t> range_start;
    if (range_result == detail::RangeResult::ok) {
      range_start = range.first;
    }
    std::optional<FaultSpec> fault;
    if (!head) {
      update_counters([&](Counters& c) { ++c.body_gets_by_path[file->path()]; });
      std::optional<detail::ByteRange> covered;
      if (size > 0) {
        covered = range_result == detail::RangeResult::ok ? range : detail::ByteRange{0, size - 1};
      }
      fault = take_fault(FaultClass::body, file->path(), range_start, covered);
    }
    if (fault && fault->kind == FaultSpec::Kind::status) {
      fault_status(ex, *fault);
      return;
    }
    if (fault && (fault->kind == FaultSpec::Kind::redirect || fault->kind == FaultSpec::Kind::body ||
                  fault->kind == FaultSpec::Kind::endless_body)) {
      apply_simple_fault(ex, *fault);
      return;
    }
    if (range_result == detail::RangeResult::unsatisfiable &&
        !(fault && fault->kind == FaultSpec::Kind::ignore_range)) {
      res.status = 416;
      put_header(res, "Content-Range", fmt::format("bytes */{}", size));
      res.set_content("", "text/plain");
      return;
    }
    bool partial = range_result == detail::RangeResult::ok;
    if (fault && fault->kind == FaultSpec::Kind::ignore_range) {
      partial = false;
      range = detail::ByteRange{0, size == 0 ? 0 : size - 1};
    }
    if (fault && fault->kind == FaultSpec::Kind::lying_206 && size >= 2) {
      // Answer 206 for bytes next to the ones asked (same length where possible): a client that does not
      // compare Content-Range with its request writes the wrong bytes.
      if (!partial) {
        range = detail::ByteRange{1, size - 1};
      } else if (range.first > 0) {
        range = detail::ByteRange{range.first - 1, range.last - 1};
      } else {
        range = detail::ByteRange{1, std::min(range.last + 1, size - 1)};
      }
      partial = true;
    }
    if (partial) {
      res.status = 206;
      put_header(res, "Content-Range", fmt::format("bytes {}-{}/{}", range.first, range.last, size));
    } else {
      res.status = 200;
    }
    const std::uint64_t length = size == 0 ? 0 : range.length();
    if (head || length == 0) {
      put_header(res, "Content-Length", std::to_string(length));
      put_header(res, "Content-Type", "application/octet-stream");
      return;
    }
    auto stream = std::make_shared<BodyStream>();
    stream->file = file;
    stream->first = range.first;
    stream->count_path = file->path();
    if (fault && fault->kind != FaultSpec::Kind::ignore_range && fault->kind != FaultSpec::Kind::lying_206) {
      stream->fault = fault;
    }
    stream_body(ex, std::move(stream), length);
  }

  // JSON body; a pending api fault may truncate or cut it like a file body.
  void send_json(Exchange& ex, const Json& body, const std::optional<FaultSpec>& fault)
  {
    std::string text = body.dump();
    ex.res.status = 200;
    if (fault &&
        (fault->kind == FaultSpec::Kind::truncate || fault->kind == FaultSpec::Kind::reset ||
         fault->kind == FaultSpec::Kind::stall) &&
        !text.empty()) {
      auto stream = std::make_shared<BodyStream>();
      stream->literal = std::move(text);
      stream->fault = fault;
      auto length = stream->literal.size();
      stream_body(ex, stream, length);
      put_header(ex.res, "Content-Type", "application/json; charset=utf-8");
      return;
    }
    ex.res.set_content(text, "application/json; charset=utf-8");
  }

  // ---- JSON APIs ----

  Json file_entry(const RepoFile& file, const Commit& commit, bool expand)
  {
    Json e;
    e["type"] = "file";
    e["oid"] = file.blob_id();
    e["size"] = file.size();
    e["path"] = file.path();
    if (file.is_lfs()) {
      e["lfs"] = {{"oid", file.sha256()}, {"size", file.size()}, {"pointerSize", file.lfs_pointer().size()}};
    }
    if (expand) {
      e["lastCommit"] = {{"id", commit.sha}, {"title", commit.title}, {"date", k_iso_date}};
      e["securityFileStatus"] = {{"status", "safe"}};
    }
    return e;
  }

  Json dir_entry(const std::string& path, const Commit& commit, bool expand)
  {
    Json e;
    e["type"] = "directory";
    e["oid"] = tree_oid(commit.sha, path);
    e["size"] = 0;
    e["path"] = path;
    if (expand) {
      e["lastCommit"] = {{"id", commit.sha}, {"title", commit.title}, {"date", k_iso_date}};
    }
    return e;
  }

  static bool is_directory(const Commit& commit, const std::string& path)
  {
    std::string prefix = path + "/";
    auto it = std::lower_bound(commit.files.begin(), commit.files.end(), prefix,
                               [](const auto& f, const std::string& p) { return f->path() < p; });
    return it != commit.files.end() && (*it)->path().starts_with(prefix);
  }

  // Revision segments may be one encoded segment or several raw ones; the shortest run that resolves wins.
  const Commit* resolve_segments(const Repo& repo, const std::vector<std::string>& segs, std::size_t from,
                                 std::size_t& after)
  {
    for (std::size_t k = from + 1; k <= segs.size(); ++k) {
      if (const Commit* c = repo.resolve(decode_join(segs, from, k))) {
        after = k;
        return c;
      }
    }
    return nullptr;
  }

  void handle_api(Exchange& ex, const std::string& type, const std::vector<std::string>& segs)
  {
    auto l = pick_repo(type, segs, 2, [&](std::size_t next) {
      if (next == 3) {
        return segs.size() == 3 || is_api_keyword(segs[3]);
      }
      return true;
    });
    std::string sub = l.next < segs.size() ? segs[l.next] : "";
    if (sub.empty() || sub == "revision") {
      ex.record.kind = RouteKind::api_repo_info;
    } else if (sub == "tree") {
      ex.record.kind = RouteKind::api_tree;
    } else if (sub == "paths-info") {
      ex.record.kind = RouteKind::api_paths_info;
    } else if (sub == "refs") {
      ex.record.kind = RouteKind::api_refs;
    }
    std::optional<FaultSpec> fault =
        take_fault(FaultClass::api, detail::percent_decode(ex.req.target.substr(0, ex.req.target.find('?'))),
                   std::nullopt, std::nullopt);
    if (fault && fault->kind != FaultSpec::Kind::truncate && apply_simple_fault(ex, *fault)) {
      return;
    }
    if (!l.redirect_id.empty()) {
      std::string location = fmt::format("/api/{}/{}", segs[1], l.redirect_id);
      if (l.next < segs.size()) {
        location += "/" + join(segs, l.next, segs.size());
      }
      if (!ex.query.empty()) {
        location += "?" + ex.query;
      }
      redirect(ex, 307, location);
      return;
    }
    if (!l.repo) {
      repo_not_found(ex);
      return;
    }
    const Repo& repo = *l.repo;
    if (!check_access(ex, repo, false)) {
      return;
    }
    if (sub.empty() || sub == "revision") {
      std::string revision = sub.empty() ? "main" : decode_join(segs, l.next + 1, segs.size());
      const Commit* commit = repo.resolve(revision);
      if (!commit || (sub == "revision" && l.next + 1 >= segs.size())) {
        error(ex, 404, "RevisionNotFound", fmt::format("Invalid rev id: {}", revision));
        return;
      }
      send_json(ex, repo_info(repo, *commit, truthy(ex.req.get_param_value("blobs"))), fault);
    } else if (sub == "tree" && ex.req.method == "GET") {
      api_tree(ex, repo, segs, l.next + 1, fault);
    } else if (sub == "paths-info" && ex.req.method == "POST") {
      api_paths_info(ex, repo, segs, l.next + 1, fault);
    } else if (sub == "refs" && ex.req.method == "GET") {
      send_json(ex, refs(repo), fault);
    } else {
      not_found_page(ex);
    }
    if (fault && fault->kind == FaultSpec::Kind::link_loop) {
      // By default the next page is this very page: a client without a cycle check pages forever.
      put_header(
          ex.res, "Link",
          fmt::format("<{}>; rel=\"next\"", fault->location.empty()
                                                ? fmt::format("http://{}{}", host_for_urls(ex), ex.req.target)
                                                : fault->location));
    }
  }

  Json repo_info(const Repo& repo, const Commit& commit, bool blobs)
  {
    Json j;
    j["_id"] = util::sha256_hex(repo.id).substr(0, 24);
    j["id"] = repo.id;
    if (repo.type == "model") {
      j["modelId"] = repo.id;
    }
    auto slash = repo.id.find('/');
    j["author"] = slash == std::string::npos ? repo.id : repo.id.substr(0, slash);
    j["sha"] = commit.sha;
    j["lastModified"] = k_iso_date;
    j["createdAt"] = k_iso_date;
    j["private"] = repo.private_repo;
    j["gated"] = repo.gated.empty() ? Json(false) : Json(repo.gated);
    j["disabled"] = false;
    j["downloads"] = 0;
    j["likes"] = 0;
    j["tags"] = Json::array();
    if (repo.type == "model") {
      j["library_name"] = "transformers";
    }
    if (repo.type == "space") {
      j["sdk"] = "static";
    }
    Json siblings = Json::array();
    std::uint64_t used = 0;
    for (const auto& file : commit.files) {
      Json s{{"rfilename", file->path()}};
      if (blobs) {
        s["blobId"] = file->blob_id();
        s["size"] = file->size();
        if (file->is_lfs()) {
          s["lfs"] = {{"sha256", file->sha256()},
                      {"size", file->size()},
                      {"pointerSize", file->lfs_pointer().size()}};
        }
      }
      used += file->size();
      siblings.push_back(std::move(s));
    }
    j["siblings"] = std::move(siblings);
    j["usedStorage"] = used;
    return j;
  }

  void api_tree(Exchange& ex, const Repo& repo, const std::vector<std::string>& segs, std::size_t rev_at,
                const std::optional<FaultSpec>& fault)
  {
    if (rev_at >= segs.size()) {
      not_found_page(ex);
      return;
    }
    std::size_t after = 0;
    const Commit* commit = resolve_segments(repo, segs, rev_at, after);
    if (!commit) {
      error(ex, 404, "RevisionNotFound",
            fmt::format("Invalid rev id: {}", detail::percent_decode(segs[rev_at])));
      return;
    }
    std::string base = decode_join(segs, after, segs.size());
    while (base.ends_with('/')) {
      base.pop_back();
    }
    if (!base.empty() && !is_directory(*commit, base)) {
      put_header(ex.res, "X-Repo-Commit", commit->sha);
      error(ex, 404, "EntryNotFound",
            fmt::format("{} does not exist on \"{}\"", base, detail::percent_decode(segs[rev_at])));
      return;
    }
    const bool recursive = truthy(ex.req.get_param_value("recursive"));
    const bool expand = truthy(ex.req.get_param_value("expand"));
    // (path, file or nullptr for a directory), sorted by path.
    std::map<std::string, std::shared_ptr<const RepoFile>> entries;
    const std::string prefix = base.empty() ? "" : base + "/";
    for (const auto& file : commit->files) {
      if (!file->path().starts_with(prefix)) {
        continue;
      }
      std::string rel = file->path().substr(prefix.size());
      if (recursive) {
        for (auto pos = rel.find('/'); pos != std::string::npos; pos = rel.find('/', pos + 1)) {
          entries.emplace(prefix + rel.substr(0, pos), nullptr);
        }
        entries[file->path()] = file;
      } else if (auto pos = rel.find('/'); pos != std::string::npos) {
        entries.emplace(prefix + rel.substr(0, pos), nullptr);
      } else {
        entries[file->path()] = file;
      }
    }
    std::size_t page = expand ? k_tree_page_expand : k_tree_page;
    if (auto limit = ex.req.get_param_value("limit"); !limit.empty()) {
      page = std::clamp<std::size_t>(std::stoul(limit), 1, page);
    }
    std::size_t offset = 0;
    if (auto cursor = ex.req.get_param_value("cursor"); !cursor.empty()) {
      auto decoded = detail::base64url_decode(cursor);
      if (!decoded.starts_with("o:")) {
        error(ex, 400, "BadRequest", "Invalid cursor");
        return;
      }
      offset = std::stoul(decoded.substr(2));
    }
    Json out = Json::array();
    std::size_t index = 0;
    for (const auto& [path, file] : entries) {
      if (index >= offset && index < offset + page) {
        out.push_back(file ? file_entry(*file, *commit, expand) : dir_entry(path, *commit, expand));
      }
      ++index;
    }
    if (offset + page < entries.size()) {
      // Keep every parameter but the cursor: the client treats the URL as opaque.
      std::string query;
      for (const auto& part : detail::split(ex.query, '&')) {
        if (!part.empty() && !part.starts_with("cursor=")) {
          query += part + "&";
        }
      }
      query += "cursor=" + detail::base64url(fmt::format("o:{}", offset + page));
      std::string path = ex.req.target.substr(0, ex.req.target.find('?'));
      std::string origin = public_origin(false);
      if (origin.empty()) {
        origin = "http://" + host_for_urls(ex);
      }
      put_header(ex.res, "Link", fmt::format("<{}{}?{}>; rel=\"next\"", origin, path, query));
    }
    send_json(ex, out, fault);
  }

  void api_paths_info(Exchange& ex, const Repo& repo, const std::vector<std::string>& segs,
                      std::size_t rev_at, const std::optional<FaultSpec>& fault)
  {
    std::size_t after = 0;
    const Commit* commit = rev_at < segs.size() ? resolve_segments(repo, segs, rev_at, after) : nullptr;
    if (!commit) {
      error(ex, 404, "RevisionNotFound",
            fmt::format("Invalid rev id: {}",
                        rev_at < segs.size() ? detail::percent_decode(segs[rev_at]) : ""));
      return;
    }
    std::vector<std::string> paths;
    bool expand = false;
    const std::string& body = ex.req.body;
    bool json_body = ex.req.get_header_value("Content-Type").find("json") != std::string::npos ||
                     (!body.empty() && body.front() == '{');
    if (json_body) {
      Json j = Json::parse(body, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("paths") || !j["paths"].is_array()) {
        error(ex, 400, "BadRequest", "Invalid JSON body: expected {\"paths\": [...]}");
        return;
      }
      for (const auto& p : j["paths"]) {
        if (p.is_string()) {
          paths.push_back(p.get<std::string>());
        }
      }
      expand = j.contains("expand") && j["expand"].is_boolean() && j["expand"].get<bool>();
    } else {
      for (const auto& [key, value] : detail::parse_form(body)) {
        if (key == "paths" || key == "paths[]") {
          paths.push_back(value);
        } else if (key == "expand") {
          expand = truthy(value);
        }
      }
    }
    Json out = Json::array();
    for (auto path : paths) {
      while (path.ends_with('/')) {
        path.pop_back();
      }
      if (auto file = commit->find(path)) {
        out.push_back(file_entry(*file, *commit, expand));
      } else if (!path.empty() && is_directory(*commit, path)) {
        out.push_back(dir_entry(path, *commit, expand));
      }
    }
    send_json(ex, out, fault);
  }

  Json refs(const Repo& repo)
  {
    Json j;
    Json branches = Json::array();
    for (const auto& [name, sha] : repo.branches) {
      branches.push_back({{"name", name}, {"ref", "refs/heads/" + name}, {"targetCommit", sha}});
    }
    Json tags = Json::array();
    for (const auto& [name, sha] : repo.tags) {
      tags.push_back({{"name", name}, {"ref", "refs/tags/" + name}, {"targetCommit", sha}});
    }
    Json prs = Json::array();
    for (const auto& [number, sha] : repo.pull_requests) {
      prs.push_back({{"name", fmt::format("refs/pr/{}", number)},
                     {"ref", fmt::format("refs/pr/{}", number)},
                     {"targetCommit", sha}});
    }
    j["branches"] = std::move(branches);
    j["converts"] = Json::array();
    j["tags"] = std::move(tags);
    j["pullRequests"] = std::move(prs);
    return j;
  }

  void handle_whoami(Exchange& ex)
  {
    if (ex.auth == Auth::anonymous) {
      error(ex, 401, "", "Invalid username or password.");
      return;
    }
    send_json(
        ex,
        Json{{"type", "user"},
             {"name", "test-user"},
             {"fullname", "Test User"},
             {"auth",
              {{"type", "access_token"}, {"accessToken", {{"displayName", "test"}, {"role", "read"}}}}}},
        std::nullopt);
  }

  // ---- admin API (out-of-process control) ----

  void handle_admin(Exchange& ex, const std::string& path)
  {
    auto& res = ex.res;
    auto ok = [&](const Json& body) { res.set_content(body.dump(), "application/json"); };
    try {
      if (path == "/_emulator/faults" && ex.req.method == "POST") {
        auto faults = faults_from_json_list(ex.req.body);
        for (auto& f : faults) {
          m_owner.add_fault(std::move(f));
        }
        ok(Json{{"added", faults.size()}});
      } else if (path == "/_emulator/faults" && ex.req.method == "DELETE") {
        m_owner.clear_faults();
        ok(Json{{"cleared", true}});
      } else if (path == "/_emulator/faults" && ex.req.method == "GET") {
        Json list = Json::array();
        std::lock_guard lock(m_faults_mutex);
        for (const auto& f : m_faults) {
          list.push_back(Json::parse(fault_to_json(f)));
        }
        ok(list);
      } else if (path == "/_emulator/counters" && ex.req.method == "GET") {
        res.set_content(m_owner.counters().to_json(), "application/json");
      } else if (path == "/_emulator/counters/reset" && ex.req.method == "POST") {
        m_owner.reset_counters();
        ok(Json{{"reset", true}});
      } else if (path == "/_emulator/branches" && ex.req.method == "POST") {
        Json j = Json::parse(ex.req.body);
        m_owner.set_branch(j.at("repo").get<std::string>(), j.at("branch").get<std::string>(),
                           j.at("sha").get<std::string>(), j.value("type", std::string("model")));
        ok(Json{{"ok", true}});
      } else {
        res.status = 404;
        ok(Json{{"error", "unknown emulator admin route"}});
      }
    } catch (const std::exception& e) {
      res.status = 400;
      ok(Json{{"error", e.what()}});
    }
  }

  // ---- repo building ----

  std::shared_ptr<const Repo> build_repo(const RepoSpec& spec) const
  {
    if (spec.id.empty() || spec.id.front() == '/' || spec.id.back() == '/' ||
        std::count(spec.id.begin(), spec.id.end(), '/') > 1) {
      throw std::invalid_argument(fmt::format("bad repo id '{}'", spec.id));
    }
    if (spec.type != "model" && spec.type != "dataset" && spec.type != "space") {
      throw std::invalid_argument(fmt::format("{}: bad repo type '{}'", spec.id, spec.type));
    }
    if (spec.commits.empty()) {
      throw std::invalid_argument(fmt::format("{}: a repo needs at least one commit", spec.id));
    }
    auto repo = std::make_shared<Repo>();
    repo->id = spec.id;
    repo->type = spec.type;
    repo->private_repo = spec.private_repo;
    repo->gated = spec.gated;
    repo->renamed_from = spec.renamed_from;
    for (std::size_t i = 0; i < spec.commits.size(); ++i) {
      repo->commits.push_back(build_commit(spec.id, spec.commits[i], i));
    }
    auto target = [&](const std::string& value) -> std::string {
      if (!value.empty() && value.size() < 7 && std::all_of(value.begin(), value.end(), ::isdigit)) {
        auto index = std::stoul(value);
        if (index < repo->commits.size()) {
          return repo->commits[index].sha;
        }
      }
      for (const auto& c : repo->commits) {
        if (value.size() >= 7 && c.sha.starts_with(value)) {
          return c.sha;
        }
      }
      throw std::invalid_argument(
          fmt::format("{}: ref target '{}' is not a commit of the repo", spec.id, value));
    };
    for (const auto& [name, value] : spec.branches) {
      repo->branches[name] = target(value);
    }
    if (!repo->branches.contains("main")) {
      repo->branches["main"] = repo->commits.back().sha;
    }
    for (const auto& [name, value] : spec.tags) {
      repo->tags[name] = target(value);
    }
    for (const auto& [number, value] : spec.pull_requests) {
      repo->pull_requests[number] = target(value);
    }
    return repo;
  }

  static Commit build_commit(const std::string& repo_id, const CommitSpec& spec, std::size_t index)
  {
    Commit commit;
    commit.sha = spec.sha.empty() ? derived_commit_sha(repo_id, index) : lower(spec.sha);
    if (commit.sha.size() != 40 || !util::is_hex(commit.sha)) {
      throw std::invalid_argument(fmt::format("{}: commit sha '{}' is not 40 hex digits", repo_id, spec.sha));
    }
    commit.title = spec.title;
    for (const auto& file : spec.files) {
      commit.files.push_back(std::make_shared<const RepoFile>(file));
    }
    std::sort(commit.files.begin(), commit.files.end(),
              [](const auto& a, const auto& b) { return a->path() < b->path(); });
    for (std::size_t i = 1; i < commit.files.size(); ++i) {
      if (commit.files[i]->path() == commit.files[i - 1]->path()) {
        throw std::invalid_argument(fmt::format("{}: duplicate file '{}'", repo_id, commit.files[i]->path()));
      }
    }
    return commit;
  }
};

// ---- HubEmulator ----------------------------------------------------------------------------------------

HubEmulator::HubEmulator() : HubEmulator(Options{}) {}

HubEmulator::HubEmulator(Options options)
    : m_options(std::move(options)), m_impl(std::make_unique<Impl>(*this))
{
  if (m_options.default_repos) {
    for (const auto& spec : default_repo_specs()) {
      add_repo(spec);
    }
  }
  if (m_options.demo_repos) {
    for (const auto& spec : demo_repo_specs()) {
      add_repo(spec);
    }
  }
}

HubEmulator::~HubEmulator()
{
  stop();
}

void HubEmulator::start()
{
  auto& impl = *m_impl;
  if (impl.m_started) {
    throw std::logic_error("HubEmulator::start: an emulator can be started once");
  }
  impl.m_started = true;
  if (m_options.total_rate > 0) {
    // A burst of 50 ms: enough to keep the link busy between slices, small enough to hold the cap.
    impl.m_link.emplace(m_options.total_rate, std::chrono::milliseconds(50));
  }
  auto setup = [&](EmuServer& server, bool cdn) {
    auto threads = m_options.worker_threads;
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server.set_keep_alive_max_count(100000);
    server.set_keep_alive_timeout(5);
    server.set_read_timeout(30);
    // A reader that pauses (a test holding a response) must not make writes fail; stop() does not wait on
    // this because it shuts the sockets down.
    server.set_write_timeout(60);
    server.set_tcp_nodelay(true);
    auto handler = [this, cdn](const httplib::Request& req, httplib::Response& res) {
      m_impl->handle(req, res, cdn);
    };
    server.Get(k_any_path, handler);
    server.Post(k_any_path, handler);
    server.Delete(k_any_path, handler);
  };
  setup(impl.m_hub, false);
  setup(impl.m_cdn, true);
  auto bind = [&](EmuServer& server, int wanted) {
    int port = wanted == 0 ? server.bind_to_any_port(m_options.bind)
                           : (server.bind_to_port(m_options.bind, wanted) ? wanted : -1);
    if (port <= 0) {
      throw std::runtime_error(fmt::format("hub emulator: cannot bind {}:{}", m_options.bind, wanted));
    }
    server.raise_backlog();
    return port;
  };
  m_hub_port = bind(impl.m_hub, m_options.hub_port);
  m_cdn_port = bind(impl.m_cdn, m_options.cdn_port);
  impl.m_hub_thread = std::thread([&impl] { impl.m_hub.listen_after_bind(); });
  impl.m_cdn_thread = std::thread([&impl] { impl.m_cdn.listen_after_bind(); });
  // httplib's stop() is a no-op until the listen loop has flagged itself running; wait for that so a stop()
  // right after start() cannot hang the join. (Connections are already queued by the kernel meanwhile.)
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while ((!impl.m_hub.is_running() || !impl.m_cdn.is_running()) && Clock::now() < deadline) {
    std::this_thread::yield();
  }
  impl.m_running = true;
}

void HubEmulator::stop()
{
  auto& impl = *m_impl;
  if (!impl.m_running.exchange(false)) {
    return;
  }
  {
    std::lock_guard lock(impl.m_stop_mutex);
    impl.m_stopping = true;
  }
  impl.m_stop_cv.notify_all();
  impl.m_hub.stop();
  impl.m_cdn.stop();
  // Workers sit in keep-alive waits or blocking writes; shutting their sockets down wakes them at once.
  detail::shutdown_connections({m_hub_port, m_cdn_port});
  if (impl.m_hub_thread.joinable()) {
    impl.m_hub_thread.join();
  }
  if (impl.m_cdn_thread.joinable()) {
    impl.m_cdn_thread.join();
  }
}

bool HubEmulator::running() const noexcept
{
  return m_impl->m_running;
}

std::string HubEmulator::endpoint() const
{
  std::string host = m_options.bind == "0.0.0.0" || m_options.bind.empty() ? "127.0.0.1" : m_options.bind;
  if (host.find(':') != std::string::npos) {
    host = "[" + host + "]";
  }
  return fmt::format("http://{}:{}", host, m_hub_port);
}

std::string HubEmulator::cdn_endpoint() const
{
  std::string base = endpoint();
  return base.substr(0, base.rfind(':')) + ":" + std::to_string(m_cdn_port);
}

void HubEmulator::set_public_origins(std::string hub, std::string cdn)
{
  std::lock_guard lock(m_impl->m_public_mutex);
  m_impl->m_public_hub = std::move(hub);
  m_impl->m_public_cdn = std::move(cdn);
}

void HubEmulator::add_repo(const RepoSpec& spec)
{
  auto repo = m_impl->build_repo(spec);
  std::lock_guard lock(m_impl->m_repos_mutex);
  m_impl->m_repos[repo_key(repo->type, repo->id)] = repo;
  if (!spec.renamed_from.empty()) {
    m_impl->m_renamed[repo_key(repo->type, spec.renamed_from)] = repo->id;
  }
}

std::string HubEmulator::add_commit(std::string_view repo_id, CommitSpec commit,
                                    std::optional<std::string> branch, std::string_view type)
{
  std::lock_guard lock(m_impl->m_repos_mutex);
  auto it = m_impl->m_repos.find(repo_key(type, repo_id));
  if (it == m_impl->m_repos.end()) {
    throw std::invalid_argument(fmt::format("add_commit: unknown repo '{}'", repo_id));
  }
  auto copy = std::make_shared<Repo>(*it->second);
  copy->commits.push_back(Impl::build_commit(copy->id, commit, copy->commits.size()));
  if (copy->commit(copy->commits.back().sha) != &copy->commits.back()) {
    throw std::invalid_argument(
        fmt::format("add_commit: commit {} already exists", copy->commits.back().sha));
  }
  if (branch) {
    copy->branches[*branch] = copy->commits.back().sha;
  }
  std::string sha = copy->commits.back().sha;
  it->second = std::move(copy);
  return sha;
}

void HubEmulator::set_branch(std::string_view repo_id, std::string_view branch, std::string_view sha,
                             std::string_view type)
{
  std::lock_guard lock(m_impl->m_repos_mutex);
  auto it = m_impl->m_repos.find(repo_key(type, repo_id));
  if (it == m_impl->m_repos.end()) {
    throw std::invalid_argument(fmt::format("set_branch: unknown repo '{}'", repo_id));
  }
  const Commit* commit = it->second->resolve(sha);
  if (!commit) {
    throw std::invalid_argument(fmt::format("set_branch: '{}' is not a commit of {}", sha, repo_id));
  }
  auto copy = std::make_shared<Repo>(*it->second);
  copy->branches[std::string(branch)] = commit->sha;
  it->second = std::move(copy);
}

std::shared_ptr<const Repo> HubEmulator::repo(std::string_view id, std::string_view type) const
{
  return m_impl->get_repo(type, id);
}

std::vector<std::shared_ptr<const Repo>> HubEmulator::repos() const
{
  std::lock_guard lock(m_impl->m_repos_mutex);
  std::vector<std::shared_ptr<const Repo>> out;
  for (const auto& [key, repo] : m_impl->m_repos) {
    out.push_back(repo);
  }
  return out;
}

void HubEmulator::warm_hashes() const
{
  for (const auto& repo : repos()) {
    for (const auto& commit : repo->commits) {
      for (const auto& file : commit.files) {
        (void)file->blob_id();
      }
    }
  }
}

void HubEmulator::add_fault(FaultSpec fault)
{
  if (fault.times == 0 || fault.times < -1) {
    throw std::invalid_argument("add_fault: times must be -1 or positive");
  }
  if (fault.kind == FaultSpec::Kind::throttle && fault.bytes_per_sec == 0) {
    throw std::invalid_argument("add_fault: throttle needs bytes_per_sec > 0");
  }
  std::lock_guard lock(m_impl->m_faults_mutex);
  m_impl->m_faults.push_back(std::move(fault));
}

void HubEmulator::clear_faults()
{
  std::lock_guard lock(m_impl->m_faults_mutex);
  m_impl->m_faults.clear();
}

std::size_t HubEmulator::pending_faults() const
{
  std::lock_guard lock(m_impl->m_faults_mutex);
  return m_impl->m_faults.size();
}

Counters HubEmulator::counters() const
{
  std::lock_guard lock(m_impl->m_counters_mutex);
  return m_impl->m_counters;
}

void HubEmulator::reset_counters()
{
  m_impl->update_counters([](Counters& c) {
    // Still-running stalls and requests keep their count so that it returns to zero.
    auto stalls = c.stalls_active;
    auto active = c.requests_active;
    c = Counters{};
    c.stalls_active = stalls;
    c.requests_active = active;
  });
}

bool HubEmulator::wait_for(const std::function<bool(const Counters&)>& predicate,
                           std::chrono::milliseconds timeout) const
{
  std::unique_lock lock(m_impl->m_counters_mutex);
  return m_impl->m_counters_cv.wait_for(lock, timeout, [&] { return predicate(m_impl->m_counters); });
}

} // namespace modelmgr::emulator
