// net/: URL helpers, error classification and the client against the emulator (real sockets on loopback).

#include "emulator/hub_emulator.hpp"
#include "net/http.hpp"

#include <gtest/gtest.h>

namespace modelmgr::net {
namespace {

TEST(Url, ParseAndOrigin)
{
  auto p = parse_url("https://user:pw@Example.COM:8443/a/b?x=1#f");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->scheme, "https");
  EXPECT_EQ(p->host, "example.com");
  EXPECT_EQ(p->port, "8443");
  EXPECT_EQ(p->path_and_query, "/a/b?x=1#f");
  EXPECT_EQ(origin_of("https://huggingface.co:443/x"), "https://huggingface.co");
  EXPECT_EQ(origin_of("http://127.0.0.1:80/x"), "http://127.0.0.1");
  EXPECT_EQ(origin_of("http://[::1]:8080/x"), "http://[::1]:8080");
  EXPECT_EQ(origin_of("/relative"), "");
  EXPECT_FALSE(parse_url("no-scheme"));
}

TEST(Url, ResolveLocationForms)
{
  const std::string base = "https://hub.example/org/m/resolve/main/a/b.bin?x=1";
  EXPECT_EQ(resolve_location(base, "https://cdn.example/o?sig=1"), "https://cdn.example/o?sig=1");
  EXPECT_EQ(resolve_location(base, "/api/resolve-cache/x?y"), "https://hub.example/api/resolve-cache/x?y");
  EXPECT_EQ(resolve_location(base, "//cdn.example/p"), "https://cdn.example/p");
  EXPECT_EQ(resolve_location(base, "c.bin"), "https://hub.example/org/m/resolve/main/a/c.bin");
}

TEST(Url, DisplayUrlHidesSignaturesAndCredentials)
{
  EXPECT_EQ(display_url("https://cdn.example/o?Signature=secret&Expires=1"), "https://cdn.example/o?…");
  EXPECT_EQ(display_url("https://user:hf_secret@host/x"), "https://host/x");
}

TEST(Url, PercentEncode)
{
  EXPECT_EQ(percent_encode("refs/pr/1", false), "refs%2Fpr%2F1");
  EXPECT_EQ(percent_encode("fix#1", false), "fix%231");
  EXPECT_EQ(percent_encode("sub/file name #1.bin", true), "sub/file%20name%20%231.bin");
  EXPECT_EQ(percent_encode("données", true), "donn%C3%A9es");
}

TEST(Classify, TransientFailures)
{
  Response r;
  r.status = 503;
  EXPECT_TRUE(is_transient(r));
  r.status = 429;
  EXPECT_TRUE(is_transient(r));
  r.status = 408;
  EXPECT_TRUE(is_transient(r));
  r.status = 404;
  EXPECT_FALSE(is_transient(r));
  r.status = 0;
  r.error = TransferError::recv;
  EXPECT_TRUE(is_transient(r));
  r.error = TransferError::aborted;
  EXPECT_FALSE(is_transient(r));
  r.error = TransferError::tls;
  EXPECT_FALSE(is_transient(r));
}

TEST(Classify, RetryAfter)
{
  Response r;
  EXPECT_FALSE(retry_after(r));
  r.headers["retry-after"] = "7";
  EXPECT_EQ(retry_after(r), std::chrono::seconds(7));
  r.headers["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT"; // in the past
  EXPECT_EQ(retry_after(r), std::chrono::seconds(0));
  r.headers["retry-after"] = "soon";
  EXPECT_FALSE(retry_after(r));
}

TEST(Classify, SingleHeaderTakesTheFirstOfRepeatedValues)
{
  Response r;
  r.headers["x-repo-commit"] = "abc, abc";
  EXPECT_EQ(r.single_header("x-repo-commit"), "abc");
  EXPECT_EQ(r.header("x-repo-commit"), "abc, abc");
}

class ClientTest : public ::testing::Test {
protected:
  void SetUp() override { hub.start(); }
  emulator::HubEmulator hub;
  Client client;
};

TEST_F(ClientTest, HeadDoesNotFollowRedirectsAndKeepsHeaders)
{
  Request req;
  req.method = "HEAD";
  req.url = hub.endpoint() + "/test-org/tiny-model/resolve/main/model.safetensors";
  Response r = client.perform(req);
  ASSERT_TRUE(r.transport_ok()) << r.error_message;
  EXPECT_EQ(r.status, 302);
  EXPECT_TRUE(r.header("location"));
  EXPECT_TRUE(r.header("x-linked-etag"));
}

TEST_F(ClientTest, SinkReceivesTheBodyWithTheHeadAndCanAbort)
{
  Request req;
  req.url = hub.endpoint() + "/test-org/tiny-model/resolve/main/config.json";
  req.follow_redirects = true;
  std::string body;
  long status_seen = 0;
  Response r = client.perform(req, [&](std::span<const char> d, const Response& head) {
    status_seen = head.status;
    body.append(d.data(), d.size());
    return true;
  });
  ASSERT_TRUE(r.is_success()) << r.error_message;
  EXPECT_EQ(status_seen, 200);
  EXPECT_EQ(body, hub.repo("test-org/tiny-model")->file("config.json")->content());

  Request big;
  big.url = hub.cdn_endpoint(); // any URL with a body works; use the hub's large file through redirects
  big.url = hub.endpoint() + "/test-org/tiny-model/resolve/main/weights/big.bin";
  big.follow_redirects = true;
  std::size_t got = 0;
  Response aborted = client.perform(big, [&](std::span<const char> d, const Response&) {
    got += d.size();
    return got < 100'000;
  });
  EXPECT_EQ(aborted.error, TransferError::aborted);
  EXPECT_TRUE(aborted.sink_refused);
}

TEST_F(ClientTest, StallIsDetected)
{
  emulator::FaultSpec stall;
  stall.kind = emulator::FaultSpec::Kind::stall;
  stall.path_contains = "config.json";
  stall.after_bytes = 10;
  hub.add_fault(stall);
  Request req;
  req.url = hub.endpoint() + "/test-org/tiny-model/resolve/main/config.json";
  req.follow_redirects = true;
  req.stall_timeout = std::chrono::milliseconds(500);
  Response r = client.perform(req, [](std::span<const char>, const Response&) { return true; });
  EXPECT_EQ(r.error, TransferError::stalled);
  EXPECT_TRUE(is_transient(r));
}

TEST_F(ClientTest, CancelFlagAbortsPromptly)
{
  emulator::FaultSpec stall;
  stall.kind = emulator::FaultSpec::Kind::stall;
  stall.path_contains = "config.json";
  hub.add_fault(stall);
  std::atomic<bool> cancel{true};
  Request req;
  req.url = hub.endpoint() + "/test-org/tiny-model/resolve/main/config.json";
  req.follow_redirects = true;
  Response r = client.perform(req, {}, &cancel);
  EXPECT_EQ(r.error, TransferError::aborted);
}

TEST_F(ClientTest, ConnectionRefusedIsAConnectError)
{
  const std::string dead = hub.endpoint();
  hub.stop();
  Request req;
  req.url = dead + "/x";
  Response r = client.perform(req);
  EXPECT_EQ(r.error, TransferError::connect);
  EXPECT_TRUE(is_transient(r));
}

} // namespace
} // namespace modelmgr::net
