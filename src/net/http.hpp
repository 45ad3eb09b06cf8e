#pragma once
// The HTTP client: the only code in modelmgr that includes curl. Knows nothing of Hugging Face.
// Requests are plain values; a response carries the status, the headers of the last response, and a
// classified transport error. Redirects are not followed unless asked: the hub layer follows them itself so
// that it can drop credentials when a redirect leaves the endpoint's host.
//
// The server is not trusted: only http and https are spoken (for requests and for redirects, both when
// curl follows them and when a caller resolves a Location with resolve_location), a body kept in memory is
// capped (Request::max_body), header values reach callers with control characters escaped, and header
// numbers go through the strict parsers of net/http_parse.hpp.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace modelmgr::net {

struct Request {
  std::string method = "GET"; // GET, HEAD or POST
  std::string url;
  std::vector<std::string> headers; // "Name: value"
  std::string body;                 // POST body
  // Inclusive byte range [first, last]; `last` absent means to the end.
  std::optional<std::pair<std::uint64_t, std::optional<std::uint64_t>>> range;
  std::chrono::milliseconds connect_timeout{10'000};
  // No byte received for this long aborts the transfer with TransferError::stalled.
  std::chrono::milliseconds stall_timeout{10'000};
  bool follow_redirects = false;
  // Run on the client's event loop, which shares connections between concurrent requests: over HTTP/2 many
  // requests go as streams of few connections (the request waits for a connection that can multiplex
  // rather than opening one more); over HTTP/1.1 they get parallel connections as usual. For small
  // requests (API calls, small files); a big range wants its own connection, as CDNs cap each one. The
  // sink still runs on the calling thread.
  bool multiplex = false;
  // Largest body kept in memory (a request without a sink, 2xx answer): beyond it the transfer is aborted
  // with TransferError::too_large, so a hostile or broken server cannot fill memory. Bodies given to a sink
  // are the sink's business.
  std::uint64_t max_body = k_default_max_body;

  static constexpr std::uint64_t k_default_max_body = 64ull * 1024 * 1024;
};

enum class TransferError {
  none,
  resolve,   // DNS failure
  connect,   // could not connect (refused, unreachable, connect timeout)
  tls,       // TLS handshake or certificate problem
  stalled,   // no bytes for the stall timeout
  partial,   // the connection closed before the announced body was complete
  recv,      // the connection broke while receiving (reset)
  send,      // the request could not be sent
  aborted,   // cancelled by the caller or refused by the sink
  too_large, // body larger than the caller allows
  protocol,  // a URL or redirect with a scheme other than http/https (refused, never retried)
  other,
};

const char* to_string(TransferError e) noexcept;

struct Response {
  long status = 0;
  // Headers of the final response, names lower-cased. A repeated header keeps its values joined by ", ".
  // Control characters and invalid UTF-8 in values are escaped (util::escape_for_terminal): a value may be
  // shown in a message as it is.
  std::map<std::string, std::string> headers;
  // The body when no sink was given, or (bounded) the body of a non-2xx response.
  std::string body;
  std::string effective_url;
  TransferError error = TransferError::none;
  std::string error_message;    // transport error text from curl, never contains credentials
  std::uint64_t body_bytes = 0; // bytes of body received (all of them, including those given to a sink)
  bool sink_refused = false;    // the sink returned false

  bool transport_ok() const noexcept { return error == TransferError::none; }
  bool is_success() const noexcept { return transport_ok() && status >= 200 && status < 300; }
  bool is_redirect() const noexcept { return transport_ok() && status >= 300 && status < 400; }
  std::optional<std::string> header(const std::string& lower_name) const;
  // For headers that carry one value (ETag, X-Repo-Commit, Content-Length…): the first of repeated values.
  std::optional<std::string> single_header(const std::string& lower_name) const;
};

// Receives body bytes of a 2xx response in order, with the response head (status and headers are filled
// in). Return false to abort the transfer. An exception thrown by the sink aborts the transfer too and is
// rethrown by Client::perform once curl has returned (it never unwinds through curl's C frames).
using Sink = std::function<bool(std::span<const char>, const Response& head)>;

struct ClientOptions {
  std::string user_agent = "modelmgr";
  std::optional<std::string> ca_bundle; // CURLOPT_CAINFO; proxies come from the usual env vars via curl
  bool verbose = false;
};

class Client {
public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Performs one request (thread-safe; handles and their connections are pooled and reused). Never throws
  // for HTTP or transport failures: they are in the Response. `cancel` set to true aborts promptly. An
  // exception thrown by the sink aborts the transfer and leaves perform() once curl let go of it.
  // Destroying the client fails multiplexed requests still in flight as aborted.
  Response perform(const Request& request, const Sink& sink = {}, const std::atomic<bool>* cancel = nullptr);

  const ClientOptions& options() const noexcept { return m_options; }

private:
  struct Impl;
  ClientOptions m_options;
  std::unique_ptr<Impl> m_impl;
};

// Transient failures worth retrying: transport errors other than cancellation, 408, 429 and 5xx.
bool is_transient(const Response& r) noexcept;
// Retry-After as seconds (numeric or HTTP-date), if present and sane.
std::optional<std::chrono::seconds> retry_after(const Response& r);

// URL helpers (no curl needed).
struct UrlParts {
  std::string scheme, host, port, path_and_query; // host lower-cased, port may be empty
};
std::optional<UrlParts> parse_url(std::string_view url);
// scheme://host[:port] of an absolute URL, lower-cased; empty if not absolute.
std::string origin_of(std::string_view url);
// The schemes modelmgr speaks, for requests and redirects.
bool is_allowed_scheme(std::string_view scheme) noexcept;
// The scheme of `url` if it starts with one (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"),
// lower-cased; empty for a relative reference.
std::string scheme_of(std::string_view url);
// Resolves a Location header (or a Link target) against the URL it came from (absolute, scheme-relative,
// absolute-path or relative-path forms). Every redirect modelmgr follows goes through here, so this is
// where the scheme allow-list is enforced: throws BadResponseError naming the scheme and both URLs (for
// display, without query or credentials) when the result is not an http or https URL (file:, dict:,
// gopher:, smb:, ftp:, data:…).
std::string resolve_location(std::string_view base_url, std::string_view location);
// A URL fit for messages: the query string (signatures, tokens) replaced by "?…", userinfo removed.
std::string display_url(std::string_view url);
// Percent-encodes every byte outside the unreserved set; when `keep_slash`, '/' is kept.
std::string percent_encode(std::string_view s, bool keep_slash);

} // namespace modelmgr::net
