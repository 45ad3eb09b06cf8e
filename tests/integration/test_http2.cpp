// HTTP/2 for real: Debian's nginx with TLS and http2 in front of the hub emulator (tests/support/
// nginx_fixture.*). `modelmgr pull` must fetch a snapshot of many small files as streams of few
// connections, which nginx's access log shows ($connection, $server_protocol). Skipped where nginx or
// openssl is missing.

#include "net/http.hpp"
#include "support/hub_fixture.hpp"
#include "support/nginx_fixture.hpp"

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;

class Http2Test : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    if (auto why = NginxProxy::unavailable()) {
      GTEST_SKIP() << *why;
    }
    proxy = std::make_unique<NginxProxy>(tmp->path() / "nginx", hub->port(), hub->cdn_port());
    // Redirects to the CDN and tree pagination links must lead through nginx too.
    hub->set_public_origins(proxy->hub_origin(), proxy->cdn_origin());
  }
  void TearDown() override
  {
    proxy.reset();
    HubTest::TearDown();
  }

  // The binary talks to nginx only, and trusts the test certificate.
  ProcessResult pull(const std::vector<std::string>& args)
  {
    std::vector<std::string> argv = {"pull"};
    argv.insert(argv.end(), args.begin(), args.end());
    return mm(argv, {{"HF_ENDPOINT", proxy->hub_origin()}, {"CURL_CA_BUNDLE", proxy->ca_file().string()}});
  }

  // Every file of `revision` is in the snapshot, through a blob named by its hash, with its content.
  void expect_snapshot(const std::string& repo_id, const std::string& folder, const std::string& revision)
  {
    const auto& commit = *repo(repo_id).resolve(revision);
    const fs::path snap = cache / folder / "snapshots" / commit.sha;
    for (const auto& file : commit.files) {
      SCOPED_TRACE(file->path());
      const fs::path link = snap / file->path();
      ASSERT_TRUE(fs::is_symlink(link));
      EXPECT_EQ(fs::canonical(link), fs::canonical(cache / folder / "blobs" / file->etag()));
      EXPECT_EQ(read_file(link), file->content());
    }
  }

  std::unique_ptr<NginxProxy> proxy;
};

TEST_F(Http2Test, SnapshotOfManySmallFilesIsFetchedOverHttp2OnAtMostFourConnections)
{
  const auto& main = *repo("test-org/many-files").resolve("main");
  ASSERT_EQ(main.files.size(), 1500u);
  auto r = pull({"test-org/many-files", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_snapshot("test-org/many-files", "models--test-org--many-files", "main");
  auto verify = mm({"cache", "verify", "test-org/many-files"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  proxy->stop(); // every request is logged once nginx has exited
  const auto log = proxy->access_log();
  // Everything went through nginx: one upstream request per logged request, and at least one per file.
  EXPECT_EQ(log.size(), total_requests());
  EXPECT_GE(log.size(), main.files.size());
  std::set<std::string> connections;
  for (const auto& entry : log) {
    EXPECT_EQ(entry.protocol, "HTTP/2.0") << entry.request;
    EXPECT_LT(entry.status, 400) << entry.request;
    connections.insert(entry.connection);
  }
  EXPECT_LE(connections.size(), 4u) << log.size() << " requests";
}

TEST_F(Http2Test, LfsFilesComeFromTheCdnThroughTheProxyToo)
{
  auto r = pull({"test-org/tiny-embed", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_snapshot("test-org/tiny-embed", "models--test-org--tiny-embed", "main");

  proxy->stop();
  const auto log = proxy->access_log();
  EXPECT_EQ(log.size(), total_requests());
  EXPECT_EQ(counters().count(emulator::RouteKind::cdn_get), 1u);
  int cdn_requests = 0;
  for (const auto& entry : log) {
    EXPECT_EQ(entry.protocol, "HTTP/2.0") << entry.request;
    cdn_requests += entry.port == proxy->cdn_port();
  }
  EXPECT_EQ(cdn_requests, 1);
}

TEST_F(Http2Test, SlowSinksPauseTheirStreamWithoutHoldingUpTheOthers)
{
  // In process, through the HTTP client: 8 concurrent 3 MiB bodies as streams of one connection; one sink
  // is slow, so its stream is paused (HTTP/2 flow control) while the others complete.
  const auto file = repo("test-org/tiny-model").file("model.safetensors");
  net::ClientOptions options;
  options.ca_bundle = proxy->ca_file().string();
  net::Client client(options);
  constexpr int k_streams = 8;
  std::vector<std::string> bodies(k_streams);
  std::vector<net::Response> results(k_streams);
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::condition_variable cv;
  int fast_done = 0;
  bool others_first = false;
  for (int i = 0; i < k_streams; ++i) {
    threads.emplace_back([&, i] {
      net::Request req;
      req.url = proxy->hub_origin() + "/test-org/tiny-model/resolve/main/model.safetensors";
      req.follow_redirects = true;
      req.multiplex = true;
      req.stall_timeout = std::chrono::milliseconds(500);
      results[i] = client.perform(req, [&, i](std::span<const char> d, const net::Response&) {
        if (i == 0 && bodies[i].empty()) {
          // The slow one waits for all the others to finish (they must not be held up by its stream).
          std::unique_lock lock(mutex);
          others_first =
              cv.wait_for(lock, std::chrono::seconds(60), [&] { return fast_done == k_streams - 1; });
        }
        bodies[i].append(d.data(), d.size());
        return true;
      });
      if (i != 0) {
        std::lock_guard lock(mutex);
        ++fast_done;
        cv.notify_all();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_TRUE(others_first);
  for (int i = 0; i < k_streams; ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(results[i].is_success())
        << net::to_string(results[i].error) << ": " << results[i].error_message;
    EXPECT_EQ(bodies[i].size(), file->size());
    EXPECT_TRUE(bodies[i] == file->content());
  }
  proxy->stop();
  std::set<std::string> cdn_connections;
  for (const auto& entry : proxy->access_log()) {
    EXPECT_EQ(entry.protocol, "HTTP/2.0") << entry.request;
    if (entry.port == proxy->cdn_port()) {
      cdn_connections.insert(entry.connection);
    }
  }
  EXPECT_EQ(cdn_connections.size(), 1u);
}

} // namespace
} // namespace modelmgr::test
