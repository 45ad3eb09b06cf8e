#pragma once
// The socket side of `modelmgr serve`: HTTP/1.1 with keep-alive on Boost.Asio (C++20 coroutines, one
// strand per connection, a few threads), requests parsed by Boost.Beast with hard limits, answers written
// by hand, and file bodies sent with sendfile(2) from the page cache straight to the socket (no copy
// through user space; cpp-httplib cannot do that). Memory is bounded per connection (16 KiB of headers,
// 1 MiB of request body, one small write buffer) and by the connection cap. Never prints: every finished
// request is reported to an optional observer.

#include "server/handler.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace modelmgr::server {

struct ServerOptions {
  std::string host = "127.0.0.1"; // loopback unless asked otherwise
  int port = 0;                   // 0 = any free port
  unsigned threads = 0;           // 0 = min(4, hardware threads), at least 2
  std::size_t max_connections = 1024;
  // A connection that neither sends a request nor accepts bytes for this long is closed.
  std::chrono::milliseconds idle_timeout{60'000};
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 1024 * 1024;
  // Threads that run the handler when it may block (pull-through: it waits for upstream downloads), so
  // that the socket threads keep serving the cache meanwhile.
  unsigned blocking_threads = 16;
};

struct AccessEvent {
  std::string remote; // "127.0.0.1:53210"
  std::string method;
  std::string target; // as sent (no credentials are ever part of it: tokens travel in headers)
  int status = 0;
  std::uint64_t body_bytes = 0; // body bytes actually sent
};

class HttpServer {
public:
  // `handler` must outlive the server. `on_access` runs on a server thread; exceptions from it are
  // swallowed.
  HttpServer(const Handler& handler, ServerOptions options,
             std::function<void(const AccessEvent&)> on_access = {});
  ~HttpServer(); // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving. Throws std::runtime_error naming host and port when it cannot listen.
  void start();
  // Stops accepting, closes every connection and joins the threads. Idempotent.
  void stop();

  int port() const noexcept;
  // "http://127.0.0.1:PORT" ("[::1]" for IPv6).
  std::string endpoint() const;
  std::size_t connections() const noexcept;

  struct Impl;

private:
  std::unique_ptr<Impl> m_impl;
};

} // namespace modelmgr::server
