// Proxies come from the usual environment variables (through libcurl): a pull through an HTTP forward
// proxy reaches the hub only via the proxy.

#include "support/hub_fixture.hpp"

#include <atomic>
#include <thread>

#include <gmock/gmock.h>
#include <httplib.h>

namespace modelmgr::test {
namespace {

// A minimal forward proxy for plain HTTP: requests arrive in absolute form ("GET http://host:port/path")
// and are relayed with httplib's client, redirects not followed (the client must see them).
class ForwardProxy {
public:
  ForwardProxy()
  {
    m_server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      ++m_requests;
      const std::string& target = req.target;
      const auto scheme = target.find("://");
      const auto path_start = scheme == std::string::npos ? std::string::npos : target.find('/', scheme + 3);
      if (path_start == std::string::npos) {
        res.status = 400;
        return httplib::Server::HandlerResponse::Handled;
      }
      httplib::Client upstream(target.substr(0, path_start));
      upstream.set_follow_location(false);
      upstream.set_url_encode(false); // the target is already encoded: relay it byte for byte
      httplib::Headers headers;
      for (const auto& [k, v] : req.headers) {
        if (k != "Host" && k != "Proxy-Connection" && k != "REMOTE_ADDR" && k != "REMOTE_PORT" &&
            k != "LOCAL_ADDR" && k != "LOCAL_PORT") {
          headers.emplace(k, v);
        }
      }
      const std::string path = target.substr(path_start);
      // The body is relayed whole (test files are small); streaming is not the point here.
      auto r = req.method == "HEAD" ? upstream.Head(path, headers) : upstream.Get(path, headers);
      const bool head = req.method == "HEAD";
      if (!r) {
        res.status = 502;
        return httplib::Server::HandlerResponse::Handled;
      }
      res.status = r->status;
      for (const auto& [k, v] : r->headers) {
        if (k != "Content-Length" && k != "Transfer-Encoding" && k != "Connection") {
          res.set_header(k, v);
        }
      }
      if (head) {
        // httplib answers HEAD without a body but computes Content-Length from the content: keep the
        // upstream's length by giving a body of that size that is never sent.
        res.set_content(
            std::string(std::stoull(r->has_header("Content-Length") ? r->get_header_value("Content-Length")
                                                                    : std::string("0")),
                        '\0'),
            "application/octet-stream");
      } else {
        res.set_content(r->body, "application/octet-stream");
      }
      return httplib::Server::HandlerResponse::Handled;
    });
    m_port = m_server.bind_to_any_port("127.0.0.1");
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
    // bind_to_any_port() already listens: connections queue in the backlog until the accept loop runs.
  }
  ~ForwardProxy()
  {
    m_server.stop();
    m_thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }
  int requests() const { return m_requests.load(); }

private:
  httplib::Server m_server;
  int m_port = 0;
  std::thread m_thread;
  std::atomic<int> m_requests{0};
};

class ProxyTest : public HubTest {};

TEST_F(ProxyTest, HttpProxyFromTheEnvironmentIsUsed)
{
  ForwardProxy proxy;
  // Files served by the hub itself (resolve → 307 → resolve-cache). LFS files redirected to the CDN port
  // through this test proxy fail with curl's "URL malformed" — not yet understood, see the closing notes.
  auto r =
      mm({"pull", "test-org/tiny-model", "config.json", "tokenizer.json"}, {{"http_proxy", proxy.url()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  EXPECT_EQ(read_file(cache / "models--test-org--tiny-model" / "snapshots" / main.sha / "tokenizer.json"),
            main.find("tokenizer.json")->content());
  // Every request of the pull went through the proxy.
  std::uint64_t hub_requests = total_requests();
  EXPECT_GT(proxy.requests(), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(proxy.requests()), hub_requests) << counters().to_json();
}

TEST_F(ProxyTest, NoProxyBypassesIt)
{
  ForwardProxy proxy;
  auto r = mm({"pull", "test-org/tiny-model", "config.json"},
              {{"http_proxy", proxy.url()}, {"no_proxy", "127.0.0.1"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(proxy.requests(), 0);
}

} // namespace
} // namespace modelmgr::test
