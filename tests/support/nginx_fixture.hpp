#pragma once
// Debian's nginx with TLS and HTTP/2 in front of a hub emulator, for tests that need a real HTTP/2 server
// (the emulator speaks HTTP/1.1 only). The certificate is self-signed, made at test time with the openssl
// CLI; the ports are free loopback ports picked at start (retried when another process takes one first);
// the access log records, per request, nginx's connection serial number and the protocol, so a test can
// count the connections a client used.

#include "support/test_util.hpp"

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace modelmgr::test {

class NginxProxy {
public:
  // Why the proxy cannot run on this machine (nginx or openssl missing), or nothing.
  static std::optional<std::string> unavailable();

  // Writes the certificate, config, logs and nginx's temp files below `dir` and starts nginx proxying one
  // TLS port to `hub_port` and another to `cdn_port` (both on 127.0.0.1); returns once both accept
  // connections. Throws std::runtime_error with nginx's messages when it cannot start.
  NginxProxy(const std::filesystem::path& dir, int hub_port, int cdn_port);
  ~NginxProxy(); // stops nginx
  NginxProxy(const NginxProxy&) = delete;
  NginxProxy& operator=(const NginxProxy&) = delete;

  std::string hub_origin() const; // https://127.0.0.1:PORT
  std::string cdn_origin() const;
  int hub_port() const noexcept { return m_hub_port; }
  int cdn_port() const noexcept { return m_cdn_port; }
  // The self-signed certificate, to trust as a CA (CURL_CA_BUNDLE).
  const std::filesystem::path& ca_file() const noexcept { return m_cert; }

  // Stops nginx (fast shutdown: requests still open are finished and logged first). Idempotent.
  void stop();

  struct LogEntry {
    std::string connection; // nginx's connection serial number
    std::string protocol;   // "HTTP/2.0", "HTTP/1.1"
    int status = 0;
    int port = 0;        // the port the request came in on
    std::string request; // "GET /path HTTP/2.0"
  };
  // The access log: one entry per finished request. Read it after stop() to be sure every request is in.
  std::vector<LogEntry> access_log() const;

private:
  std::filesystem::path m_dir;
  std::filesystem::path m_cert;
  int m_hub_port = 0;
  int m_cdn_port = 0;
  std::unique_ptr<Process> m_nginx;
};

// Debian's nginx with a given http-level config (e.g. deploy/nginx/modelmgr-serve.conf filled in), on a free
// loopback port (retried when another process takes it first), plain HTTP. The access log records, per
// request, `$status $request_method "$request_uri" $uri $body_bytes_sent`: after an X-Accel-Redirect,
// $uri is the internal location that nginx served the body from.
class NginxSite {
public:
  // Why nginx cannot run here, or nothing.
  static std::optional<std::string> unavailable();

  // `render(port)` returns the http-level config for listening on 127.0.0.1:port. Writes it, a main config
  // around it, logs and temp files below `dir`, starts nginx, and returns once it accepts connections.
  // Throws std::runtime_error with nginx's messages when it cannot start.
  NginxSite(const std::filesystem::path& dir, const std::function<std::string(int port)>& render);
  ~NginxSite(); // stops nginx
  NginxSite(const NginxSite&) = delete;
  NginxSite& operator=(const NginxSite&) = delete;

  int port() const noexcept { return m_port; }
  std::string origin() const; // http://127.0.0.1:PORT
  // Stops nginx (requests in flight are finished and logged first). Idempotent.
  void stop();

  struct LogEntry {
    int status = 0;
    std::string method;
    std::string request_uri; // as the client sent it
    std::string uri;         // where nginx served it from (internal location after X-Accel-Redirect)
    std::uint64_t body_bytes = 0;
  };
  // Read it after stop() to be sure every request is in.
  std::vector<LogEntry> access_log() const;

private:
  std::filesystem::path m_dir;
  int m_port = 0;
  std::unique_ptr<Process> m_nginx;
};

} // namespace modelmgr::test
