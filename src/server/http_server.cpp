#include "server/http_server.hpp"

// GCC 12 reports asio's coroutine frame allocator (operator new with a size, the matching class operator
// delete) as mismatched: a known false positive (GCC bug 109224) in every awaitable function below.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

namespace modelmgr::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// One connection: its stream, and a generation counter so that a timer firing late never cancels a wait
// that is not its own.
struct Connection {
  explicit Connection(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  std::uint64_t wait_generation = 0;
};

std::string lower(std::string_view s)
{
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    }
  }
  return out;
}

void set_cork(tcp::socket& socket, bool on)
{
  int value = on ? 1 : 0;
  ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}

std::string format_endpoint(const tcp::endpoint& ep)
{
  auto addr = ep.address();
  if (addr.is_v6()) {
    return fmt::format("[{}]:{}", addr.to_string(), ep.port());
  }
  return fmt::format("{}:{}", addr.to_string(), ep.port());
}

} // namespace

struct HttpServer::Impl {
  const Handler& handler;
  ServerOptions options;
  std::function<void(const AccessEvent&)> on_access;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  // Runs the handler when it may block (declared after ioc: destroyed first).
  std::unique_ptr<asio::thread_pool> blocking;
  std::atomic<std::size_t> active{0};
  std::atomic<bool> running{false};
  int port = 0;
  std::string host_for_url;

  Impl(const Handler& h, ServerOptions o, std::function<void(const AccessEvent&)> a)
      : handler(h), options(std::move(o)), on_access(std::move(a))
  {
  }

  void report(const AccessEvent& event) const noexcept
  {
    if (!on_access) {
      return;
    }
    try {
      on_access(event);
    } catch (...) {
      // The observer's problem must not take the connection down.
    }
  }

  // Waits until the socket accepts more bytes, at most idle_timeout; false on timeout or error.
  asio::awaitable<bool> wait_writable(std::shared_ptr<Connection> conn)
  {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor);
    timer.expires_after(options.idle_timeout);
    std::uint64_t generation = ++conn->wait_generation;
    std::weak_ptr<Connection> weak = conn;
    bool timed_out = false;
    timer.async_wait([weak, generation, &timed_out](error_code ec) {
      if (ec) {
        return;
      }
      if (auto c = weak.lock(); c && c->wait_generation == generation) {
        timed_out = true;
        error_code ignored;
        c->stream.socket().cancel(ignored);
      }
    });
    error_code ec;
    co_await conn->stream.socket().async_wait(tcp::socket::wait_write,
                                              asio::redirect_error(asio::use_awaitable, ec));
    ++conn->wait_generation; // a late timer no longer matches
    timer.cancel();
    co_return !ec && !timed_out;
  }

  // Sends `length` bytes of `fd` from `offset` with sendfile(2). Returns the bytes sent.
  asio::awaitable<std::uint64_t> send_file(std::shared_ptr<Connection> conn, int fd, std::uint64_t offset,
                                           std::uint64_t length)
  {
    auto& socket = conn->stream.socket();
    error_code ec;
    socket.native_non_blocking(true, ec);
    if (ec) {
      co_return 0;
    }
    std::uint64_t sent = 0;
    auto off = static_cast<off_t>(offset);
    while (sent < length) {
      // Chunks of at most 8 MiB keep one connection from holding a thread for long.
      std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(length - sent, 8u << 20));
      ssize_t n = ::sendfile(socket.native_handle(), fd, &off, chunk);
      if (n > 0) {
        sent += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n == 0) {
        break; // the file shrank under us: the connection is closed, the client sees a short body
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        break;
      }
      if (!co_await wait_writable(conn)) {
        break;
      }
    }
    co_return sent;
  }

  asio::awaitable<void> session(tcp::socket socket)
  {
    auto conn = std::make_shared<Connection>(std::move(socket));
    std::string remote;
    {
      error_code ec;
      auto ep = conn->stream.socket().remote_endpoint(ec);
      remote = ec ? "?" : format_endpoint(ep);
    }
    try {
      beast::flat_buffer buffer(options.max_header_bytes + options.max_body_bytes);
      while (running.load()) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
        parser.body_limit(options.max_body_bytes);
        conn->stream.expires_after(options.idle_timeout);
        error_code ec;
        co_await http::async_read(conn->stream, buffer, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
          int status = 0;
          if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
            status = 431;
          } else if (ec == http::error::body_limit) {
            status = 413;
          } else if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                     ec != asio::error::eof && ec != asio::error::connection_reset &&
                     ec != asio::error::operation_aborted) {
            status = 400;
          }
          if (status != 0) {
            Response r =
                error_response(status, "", fmt::format("Malformed or too large request: {}", ec.message()));
            std::string head = serialize_head(r, false) + r.body;
            conn->stream.expires_after(options.idle_timeout);
            error_code wec;
            co_await asio::async_write(conn->stream, asio::buffer(head),
                                       asio::redirect_error(asio::use_awaitable, wec));
            report({remote, "?", "?", status, 0});
          }
          break;
        }
        auto& message = parser.get();
        Request request;
        auto method = message.method_string();
        request.method = std::string(method.data(), method.size());
        auto target = message.target();
        request.target = std::string(target.data(), target.size());
        for (const auto& field : message) {
          auto name = field.name_string();
          auto value = field.value();
          request.headers.emplace_back(lower(std::string_view(name.data(), name.size())),
                                       std::string(value.data(), value.size()));
        }
        request.body = std::move(message.body());
        const bool keep_alive = message.keep_alive() && running.load();

        Response response;
        if (blocking) {
          // The answer may wait for an upstream download: computed on the blocking pool, the coroutine
          // resumes on this connection's strand afterwards.
          response = co_await asio::co_spawn(
              blocking->get_executor(),
              [this, &request]() -> asio::awaitable<Response> { co_return handler.handle(request); },
              asio::use_awaitable);
        } else {
          response = handler.handle(request);
        }
        std::string head = serialize_head(response, keep_alive);
        std::uint64_t body_sent = 0;
        conn->stream.expires_after(options.idle_timeout);
        const bool send_body = !response.head && response.status != 304;
        if (send_body && !response.file) {
          std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(response.body)};
          co_await asio::async_write(conn->stream, buffers, asio::redirect_error(asio::use_awaitable, ec));
          body_sent = ec ? 0 : response.body.size();
        } else {
          // Head and file body leave as one stream of full segments: corked until sendfile is done (else the
          // head goes out alone and the body waits for the client's delayed ACK, 40 ms per small file).
          const bool cork = send_body && response.file && response.file->length > 0;
          if (cork) {
            set_cork(conn->stream.socket(), true);
          }
          co_await asio::async_write(conn->stream, asio::buffer(head),
                                     asio::redirect_error(asio::use_awaitable, ec));
          if (!ec && cork) {
            conn->stream.expires_never(); // send_file has its own idle timeout
            body_sent = co_await send_file(conn, response.file->file->fd(), response.file->offset,
                                           response.file->length);
            if (body_sent < response.file->length) {
              ec = asio::error::broken_pipe;
            }
          }
          if (cork) {
            set_cork(conn->stream.socket(), false); // flushes the last partial segment
          }
        }
        report({remote, request.method, request.target, response.status, body_sent});
        if (ec || !keep_alive) {
          break;
        }
      }
    } catch (const std::exception&) {
      // A connection's failure ends that connection only.
    }
    error_code ignored;
    conn->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    conn->stream.socket().close(ignored);
    --active;
  }

  asio::awaitable<void> accept_loop()
  {
    while (running.load()) {
      error_code ec;
      tcp::socket socket(asio::make_strand(ioc));
      co_await acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
          co_return;
        }
        // EMFILE and friends: back off a moment instead of spinning.
        asio::steady_timer pause(ioc, std::chrono::milliseconds(50));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      if (active.load() >= options.max_connections) {
        Response r = error_response(503, "", "Too many connections to this mirror; retry later");
        r.set_header("Retry-After", "1");
        std::string text = serialize_head(r, false) + r.body;
        error_code wec;
        asio::write(socket, asio::buffer(text), wec); // small: fits the socket buffer of a new connection
        socket.close(wec);
        continue;
      }
      ++active;
      // Answers are written whole (one gather write, or corked head + sendfile): nothing to gain from Nagle.
      socket.set_option(tcp::no_delay(true), ec);
      auto executor = socket.get_executor();
      asio::co_spawn(executor, session(std::move(socket)), asio::detached);
    }
  }
};

HttpServer::HttpServer(const Handler& handler, ServerOptions options,
                       std::function<void(const AccessEvent&)> on_access)
    : m_impl(std::make_unique<Impl>(handler, std::move(options), std::move(on_access)))
{
}

HttpServer::~HttpServer()
{
  stop();
}

void HttpServer::start()
{
  auto& impl = *m_impl;
  const auto& o = impl.options;
  error_code ec;
  tcp::resolver resolver(impl.ioc);
  auto results = resolver.resolve(o.host, std::to_string(o.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    throw std::runtime_error(
        fmt::format("cannot listen on {}:{}: cannot resolve the host ({}); use an IP address "
                    "such as 127.0.0.1 or 0.0.0.0",
                    o.host, o.port, ec ? ec.message() : "no address"));
  }
  tcp::endpoint ep = results.begin()->endpoint();
  impl.acceptor.open(ep.protocol(), ec);
  if (!ec) {
    impl.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    impl.acceptor.bind(ep, ec);
  }
  if (!ec) {
    impl.acceptor.listen(1024, ec);
  }
  if (ec) {
    throw std::runtime_error(fmt::format(
        "cannot listen on {}:{}: {}{}", o.host, o.port, ec.message(),
        ec == asio::error::address_in_use ? " (pick another --port, or 0 for any free port)" : ""));
  }
  auto local = impl.acceptor.local_endpoint();
  impl.port = local.port();
  impl.host_for_url =
      local.address().is_v6() ? "[" + local.address().to_string() + "]" : local.address().to_string();
  impl.running = true;
  if (impl.handler.may_block()) {
    impl.blocking = std::make_unique<asio::thread_pool>(std::max(1u, o.blocking_threads));
  }
  asio::co_spawn(impl.ioc, impl.accept_loop(), asio::detached);
  unsigned n = o.threads != 0 ? o.threads : std::clamp(std::thread::hardware_concurrency(), 2u, 4u);
  for (unsigned i = 0; i < n; ++i) {
    impl.threads.emplace_back([&impl] {
      while (true) {
        try {
          impl.ioc.run();
          return;
        } catch (...) {
          // A handler threw past its coroutine: keep serving the others (no exception leaves the thread).
        }
      }
    });
  }
}

void HttpServer::stop()
{
  auto& impl = *m_impl;
  if (!impl.running.exchange(false) && impl.threads.empty()) {
    return;
  }
  asio::post(impl.ioc, [&impl] {
    error_code ignored;
    impl.acceptor.close(ignored);
  });
  impl.ioc.stop();
  for (auto& t : impl.threads) {
    if (t.joinable()) {
      t.join();
    }
  }
  impl.threads.clear();
  if (impl.blocking) {
    // Handlers still running finish (upstream downloads stop on the caller's cancel flag).
    impl.blocking->join();
  }
}

int HttpServer::port() const noexcept
{
  return m_impl->port;
}

std::string HttpServer::endpoint() const
{
  return fmt::format("http://{}:{}", m_impl->host_for_url, m_impl->port);
}

std::size_t HttpServer::connections() const noexcept
{
  return m_impl->active.load();
}

} // namespace modelmgr::server
