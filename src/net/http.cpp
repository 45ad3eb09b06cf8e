#include "net/http.hpp"

#include "modelmgr/errors.hpp"

#include "net/easy.hpp"
#include "net/http_parse.hpp"
#include "net/multi_loop.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <exception>
#include <mutex>

#include <curl/curl.h>

namespace modelmgr::net {

namespace {

// Bodies of error responses are kept for messages, but bounded: a hostile server cannot fill memory.
constexpr std::size_t k_max_error_body = 64 * 1024;

std::string to_lower(std::string s)
{
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(std::string_view s)
{
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

struct GlobalInit {
  GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

void ensure_global_init()
{
  static GlobalInit init;
}

TransferError classify(CURLcode code)
{
  switch (code) {
  case CURLE_OK: return TransferError::none;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return TransferError::resolve;
  case CURLE_COULDNT_CONNECT: return TransferError::connect;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE: return TransferError::tls;
  case CURLE_OPERATION_TIMEDOUT: return TransferError::stalled;
  case CURLE_PARTIAL_FILE: return TransferError::partial;
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM: return TransferError::recv;
  case CURLE_SEND_ERROR: return TransferError::send;
  case CURLE_ABORTED_BY_CALLBACK:
  case CURLE_WRITE_ERROR: return TransferError::aborted;
  case CURLE_UNSUPPORTED_PROTOCOL: return TransferError::protocol;
  default: return TransferError::other;
  }
}

using detail::Transfer;

// Runs `body` as a curl callback: an exception is stored in the transfer and turned into `abort_value`.
template <typename R, typename F> R barrier(Transfer* t, R abort_value, F&& body) noexcept
{
  try {
    return body();
  } catch (...) {
    if (!t->exception) {
      t->exception = std::current_exception();
    }
    return abort_value;
  }
}

size_t header_cb_body(Transfer* t, char* data, size_t size, size_t n)
{
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response starts (redirect hop, 100-continue): forget the previous one's headers.
    t->response->headers.clear();
    t->status_known = false;
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    return size * n;
  }
  std::string name = to_lower(trim(line.substr(0, colon)));
  // Values may end up in messages: nothing raw from the server reaches a terminal.
  std::string value = util::escape_for_terminal(trim(line.substr(colon + 1)));
  auto [it, inserted] = t->response->headers.emplace(name, value);
  if (!inserted) {
    it->second += ", " + value;
  }
  return size * n;
}

size_t header_cb(char* data, size_t size, size_t n, void* user)
{
  auto* t = static_cast<Transfer*>(user);
  // Any return value other than size * n makes curl fail the transfer.
  return barrier(t, size_t{0}, [&] { return header_cb_body(t, data, size, n); });
}

size_t write_cb_body(Transfer* t, char* data, size_t size, size_t n)
{
  const size_t len = size * n;
  if (!t->status_known) {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    t->response->status = status;
    t->status_known = true;
    t->deliver_to_sink = t->sink && *t->sink && status >= 200 && status < 300;
    if (!t->deliver_to_sink && status >= 200 && status < 300) {
      // Refuse an announced oversized body before reading any of it.
      curl_off_t announced = -1;
      curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
      if (announced > 0 && static_cast<std::uint64_t>(announced) > t->request->max_body) {
        t->too_large = true;
        return 0;
      }
    }
  }
  if (t->deliver_to_sink && t->relay) {
    // Multiplexed path: the caller's thread gives the bytes to the sink and counts them.
    return t->relay->accept(std::span<const char>(data, len), *t->response);
  }
  t->response->body_bytes += len;
  if (t->deliver_to_sink) {
    if (!(*t->sink)(std::span<const char>(data, len), *t->response)) {
      t->response->sink_refused = true;
      return 0; // makes curl fail with CURLE_WRITE_ERROR
    }
    return len;
  }
  const bool is_error = t->response->status < 200 || t->response->status >= 300;
  if (is_error) {
    if (t->response->body.size() < k_max_error_body) {
      t->response->body.append(data, std::min(len, k_max_error_body - t->response->body.size()));
    }
  } else {
    if (t->response->body.size() + len > t->request->max_body) {
      t->too_large = true;
      return 0;
    }
    t->response->body.append(data, len);
  }
  return len;
}

size_t write_cb(char* data, size_t size, size_t n, void* user)
{
  auto* t = static_cast<Transfer*>(user);
  // 0 (not size * n) makes curl fail with CURLE_WRITE_ERROR.
  return barrier(t, size_t{0}, [&] { return write_cb_body(t, data, size, n); });
}

int xferinfo_cb_body(Transfer* t, curl_off_t dlnow, curl_off_t ulnow)
{
  if (t->cancel && t->cancel->load(std::memory_order_relaxed)) {
    return 1;
  }
  const auto now = std::chrono::steady_clock::now();
  if (t->paused) {
    // Paused by the multiplexed path because its caller is still busy with earlier bytes: not a stall.
    t->last_progress = now;
    return 0;
  }
  // Stall detection with millisecond resolution (CURLOPT_LOW_SPEED_TIME only has seconds). curl calls this
  // at least once a second while a transfer is idle.
  const curl_off_t total = dlnow + ulnow;
  if (total != t->last_bytes) {
    t->last_bytes = total;
    t->last_progress = now;
  } else if (t->request->stall_timeout.count() > 0 && now - t->last_progress > t->request->stall_timeout) {
    t->stalled = true;
    return 1;
  }
  return 0;
}

int xferinfo_cb(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow)
{
  auto* t = static_cast<Transfer*>(user);
  // Non-zero aborts with CURLE_ABORTED_BY_CALLBACK.
  return barrier(t, 1, [&] { return xferinfo_cb_body(t, dlnow, ulnow); });
}

} // namespace

namespace detail {

void configure_easy(CURL* easy, const Request& request, const ClientOptions& options, CURLSH* share,
                    Transfer& t, EasyResources& resources)
{
  for (const auto& h : request.headers) {
    resources.headers = curl_slist_append(resources.headers, h.c_str());
  }

  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  if (share) {
    curl_easy_setopt(easy, CURLOPT_SHARE, share);
  }
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, resources.errbuf);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, resources.headers);
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 10L);
  // Only http and https, for the request and for any redirect curl follows: Debian's libcurl also speaks
  // file, dict, gopher, smb, ftp… and a hostile mirror or CDN must not reach them through a Location.
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  // Never send credentials set by us to another host after a redirect.
  curl_easy_setopt(easy, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 512L * 1024L);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &t);
  if (options.ca_bundle) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_bundle->c_str());
  }
  if (options.verbose) {
    curl_easy_setopt(easy, CURLOPT_VERBOSE, 1L);
  }
  if (request.range) {
    resources.range = std::to_string(request.range->first) + "-" +
                      (request.range->second ? std::to_string(*request.range->second) : std::string());
    curl_easy_setopt(easy, CURLOPT_RANGE, resources.range.c_str());
  }
  if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST") {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  } else if (request.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
}

void finish_response(CURL* easy, CURLcode code, const Transfer& t, const EasyResources& resources)
{
  Response& response = *t.response;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  response.status = status;
  char* effective = nullptr;
  curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &effective);
  if (effective) {
    response.effective_url = effective;
  }
  response.error = classify(code);
  if (code == CURLE_ABORTED_BY_CALLBACK && t.stalled) {
    response.error = TransferError::stalled;
  }
  if (t.too_large) {
    response.error = TransferError::too_large;
  }
  if (code != CURLE_OK) {
    if (t.stalled) {
      response.error_message =
          "no data received for " + std::to_string(t.request->stall_timeout.count()) + " ms";
    } else if (t.too_large) {
      response.error_message =
          "the body is larger than the " + std::to_string(t.request->max_body / (1024 * 1024)) + " MiB limit";
    } else if (response.sink_refused) {
      response.error_message = k_refused_message;
    } else {
      response.error_message = resources.errbuf[0] ? resources.errbuf : curl_easy_strerror(code);
    }
    while (!response.error_message.empty() && response.error_message.back() == '\n') {
      response.error_message.pop_back();
    }
  }
}

} // namespace detail

struct Client::Impl {
  std::mutex pool_mutex;
  std::vector<CURL*> pool;
  CURLSH* share = nullptr;
  std::mutex share_locks[CURL_LOCK_DATA_LAST];
  // Multiplexed requests: one event-loop thread, started by the first of them. Declared after `share` so
  // that it stops (and cleans up its easy handles, which use the share) before the share goes.
  std::once_flag loop_once;
  std::unique_ptr<detail::MultiLoop> loop;

  // Also C callbacks: std::mutex::lock only throws on a broken invariant (deadlock detected, invalid
  // mutex), where terminating is the right answer, so noexcept says so instead of letting it unwind.
  static void lock_cb(CURL*, curl_lock_data data, curl_lock_access, void* user) noexcept
  {
    static_cast<Impl*>(user)->share_locks[data].lock();
  }
  static void unlock_cb(CURL*, curl_lock_data data, void* user) noexcept
  {
    static_cast<Impl*>(user)->share_locks[data].unlock();
  }

  Impl()
  {
    share = curl_share_init();
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, lock_cb);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, unlock_cb);
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  ~Impl()
  {
    loop.reset();
    for (CURL* e : pool) {
      curl_easy_cleanup(e);
    }
    curl_share_cleanup(share);
  }

  detail::MultiLoop& multi_loop(const ClientOptions& options)
  {
    std::call_once(loop_once, [&] { loop = std::make_unique<detail::MultiLoop>(options, share); });
    return *loop;
  }

  CURL* acquire()
  {
    {
      std::lock_guard lock(pool_mutex);
      if (!pool.empty()) {
        CURL* e = pool.back();
        pool.pop_back();
        return e;
      }
    }
    CURL* e = curl_easy_init();
    return e;
  }
  void release(CURL* e)
  {
    std::lock_guard lock(pool_mutex);
    pool.push_back(e);
  }
};

Client::Client(ClientOptions options) : m_options(std::move(options))
{
  ensure_global_init();
  m_impl = std::make_unique<Impl>();
}

Client::~Client() = default;

Response Client::perform(const Request& request, const Sink& sink, const std::atomic<bool>* cancel)
{
  if (request.multiplex) {
    return m_impl->multi_loop(m_options).perform(request, sink, cancel);
  }
  Response response;
  CURL* easy = m_impl->acquire();
  if (!easy) {
    response.error = TransferError::other;
    response.error_message = "curl_easy_init failed";
    return response;
  }
  curl_easy_reset(easy);

  Transfer t;
  t.request = &request;
  t.sink = &sink;
  t.cancel = cancel;
  t.easy = easy;
  t.response = &response;
  t.last_progress = std::chrono::steady_clock::now();
  detail::EasyResources resources;
  detail::configure_easy(easy, request, m_options, m_impl->share, t, resources);

  CURLcode code = curl_easy_perform(easy);
  detail::finish_response(easy, code, t, resources);
  // A connection whose transfer was aborted is closed by curl; the handle itself stays reusable.
  m_impl->release(easy);
  if (t.exception) {
    std::rethrow_exception(t.exception);
  }
  return response;
}

const char* to_string(TransferError e) noexcept
{
  switch (e) {
  case TransferError::none: return "none";
  case TransferError::resolve: return "cannot resolve host";
  case TransferError::connect: return "cannot connect";
  case TransferError::tls: return "TLS error";
  case TransferError::stalled: return "stalled";
  case TransferError::partial: return "connection closed early";
  case TransferError::recv: return "connection reset";
  case TransferError::send: return "send failed";
  case TransferError::aborted: return "aborted";
  case TransferError::too_large: return "response too large";
  case TransferError::protocol: return "protocol not allowed";
  case TransferError::other: return "transfer error";
  }
  return "transfer error";
}

std::optional<std::string> Response::header(const std::string& lower_name) const
{
  auto it = headers.find(lower_name);
  if (it == headers.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::optional<std::string> Response::single_header(const std::string& lower_name) const
{
  auto v = header(lower_name);
  if (v) {
    if (auto comma = v->find(", "); comma != std::string::npos) {
      v->resize(comma);
    }
  }
  return v;
}

bool is_transient(const Response& r) noexcept
{
  switch (r.error) {
  case TransferError::none: break;
  case TransferError::aborted:
  case TransferError::too_large:
  case TransferError::protocol:
  case TransferError::tls: return false;
  default: return true;
  }
  return r.status == 408 || r.status == 429 || (r.status >= 500 && r.status <= 599);
}

std::optional<std::chrono::seconds> retry_after(const Response& r)
{
  auto v = r.header("retry-after");
  if (!v || v->empty()) {
    return std::nullopt;
  }
  if (auto n = parse_uint(*v)) {
    return std::chrono::seconds(std::min<std::uint64_t>(*n, 86400));
  }
  if (std::all_of(v->begin(), v->end(), [](unsigned char c) { return std::isdigit(c); })) {
    return std::chrono::seconds(86400); // more digits than 64 bits hold
  }
  std::tm tm{};
  if (strptime(v->c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
    const std::time_t when = timegm(&tm);
    const std::time_t now = std::time(nullptr);
    return std::chrono::seconds(when > now ? when - now : 0);
  }
  return std::nullopt;
}

std::optional<UrlParts> parse_url(std::string_view url)
{
  auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    return std::nullopt;
  }
  UrlParts p;
  p.scheme = to_lower(std::string(url.substr(0, sep)));
  std::string_view rest = url.substr(sep + 3);
  auto path_start = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_start);
  p.path_and_query = path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    p.host = to_lower(std::string(host.substr(0, close + 1)));
    if (close + 1 < host.size() && host[close + 1] == ':') {
      p.port = std::string(host.substr(close + 2));
    }
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    p.host = to_lower(std::string(host.substr(0, colon)));
    p.port = std::string(host.substr(colon + 1));
  } else {
    p.host = to_lower(std::string(host));
  }
  if (p.host.empty()) {
    return std::nullopt;
  }
  return p;
}

std::string origin_of(std::string_view url)
{
  auto p = parse_url(url);
  if (!p) {
    return {};
  }
  std::string port = p->port;
  if ((p->scheme == "https" && port == "443") || (p->scheme == "http" && port == "80")) {
    port.clear();
  }
  return p->scheme + "://" + p->host + (port.empty() ? "" : ":" + port);
}

bool is_allowed_scheme(std::string_view scheme) noexcept
{
  return scheme == "http" || scheme == "https";
}

std::string scheme_of(std::string_view url)
{
  const auto colon = url.find(':');
  if (colon == std::string_view::npos || colon == 0 || !std::isalpha(static_cast<unsigned char>(url[0]))) {
    return {};
  }
  for (std::size_t i = 1; i < colon; ++i) {
    const auto c = static_cast<unsigned char>(url[i]);
    if (!std::isalnum(c) && c != '+' && c != '-' && c != '.') {
      return {}; // a '/' or '?' before the ':': a relative reference such as "a/b:c"
    }
  }
  return to_lower(std::string(url.substr(0, colon)));
}

namespace {

std::string resolve_unchecked(std::string_view base_url, std::string_view location)
{
  if (!scheme_of(location).empty()) {
    return std::string(location);
  }
  auto base = parse_url(base_url);
  if (!base) {
    return std::string(location);
  }
  if (location.starts_with("//")) {
    return base->scheme + ":" + std::string(location);
  }
  const std::string origin = origin_of(base_url);
  if (location.starts_with("/")) {
    return origin + std::string(location);
  }
  std::string path = base->path_and_query.substr(0, base->path_and_query.find_first_of("?#"));
  path = path.substr(0, path.rfind('/') + 1);
  return origin + path + std::string(location);
}

} // namespace

std::string resolve_location(std::string_view base_url, std::string_view location)
{
  std::string target = resolve_unchecked(base_url, location);
  const std::string scheme = scheme_of(target);
  if (!is_allowed_scheme(scheme) || !parse_url(target)) {
    // A data: URL can be long and is all payload: show its start only.
    std::string shown = util::escape_for_terminal(display_url(target));
    if (shown.size() > 200) {
      shown = shown.substr(0, 200) + "…";
    }
    throw BadResponseError(
        scheme.empty() || is_allowed_scheme(scheme)
            ? "refusing to follow a redirect from " + display_url(base_url) + " to the malformed URL '" +
                  shown + "'"
            : "refusing to follow a redirect from " + display_url(base_url) + " to '" + shown +
                  "': scheme '" + util::escape_for_terminal(scheme) +
                  "' is not allowed (only http and https)",
        "the server (or a proxy or mirror in between) sent a Location that modelmgr will not follow; check "
        "the endpoint and proxy settings");
  }
  return target;
}

std::string display_url(std::string_view url)
{
  std::string out(url);
  if (auto q = out.find('?'); q != std::string::npos) {
    out = out.substr(0, q) + "?…";
  }
  if (auto sep = out.find("://"); sep != std::string::npos) {
    auto at = out.find('@', sep + 3);
    auto slash = out.find('/', sep + 3);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      out.erase(sep + 3, at - (sep + 3) + 1);
    }
  }
  return out;
}

std::string percent_encode(std::string_view s, bool keep_slash)
{
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xf]);
    }
  }
  return out;
}

} // namespace modelmgr::net
