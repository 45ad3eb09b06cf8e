// net/: the multiplexed path (Request::multiplex, the client's event loop) against the plain emulator
// (HTTP/1.1, so concurrent requests get parallel connections): same Responses as the blocking path, the
// sink on the caller's thread with a bounded buffer, refusal, exceptions, cancel, stalls and shutdown.
// HTTP/2 itself is tested through nginx in tests/integration/test_http2.cpp.

#include "emulator/hub_emulator.hpp"
#include "net/http.hpp"
#include "net/multi_loop.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

namespace modelmgr::net {
namespace {

using namespace std::chrono_literals;
using emulator::FaultSpec;

// What a Response says, minus the headers that differ between any two requests (request ids, signed
// CDN URLs with their expiry time).
struct Observed {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;      // Response::body
  std::string sink_body; // what the sink received
  std::string effective_url;
  TransferError error = TransferError::none;
  std::string error_message;
  std::uint64_t body_bytes = 0;
  bool sink_refused = false;
  bool sink_on_caller_thread = true;

  bool operator==(const Observed&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Observed& o)
{
  os << "status " << o.status << ", error " << to_string(o.error) << " '" << o.error_message << "', "
     << o.body_bytes << " body bytes, url " << o.effective_url << ", headers:";
  for (const auto& [k, v] : o.headers) {
    os << " " << k << "=" << v.substr(0, 40);
  }
  return os;
}

Observed observe(Client& client, const Request& req, bool with_sink)
{
  Observed o;
  const auto caller = std::this_thread::get_id();
  Sink sink;
  if (with_sink) {
    sink = [&](std::span<const char> d, const Response& head) {
      o.sink_on_caller_thread = o.sink_on_caller_thread && std::this_thread::get_id() == caller;
      EXPECT_GE(head.status, 200);
      o.sink_body.append(d.data(), d.size());
      return true;
    };
  }
  Response r = client.perform(req, sink);
  o.status = r.status;
  o.headers = r.headers;
  for (const char* volatile_header : {"x-request-id", "x-amz-cf-id", "date"}) {
    o.headers.erase(volatile_header);
  }
  if (auto loc = o.headers.find("location");
      loc != o.headers.end() && loc->second.find("Expires=") != std::string::npos) {
    loc->second = loc->second.substr(0, loc->second.find('?'));
  }
  o.body = r.body;
  o.effective_url = r.effective_url;
  o.error = r.error;
  o.error_message = r.error_message;
  o.body_bytes = r.body_bytes;
  o.sink_refused = r.sink_refused;
  return o;
}

class MultiTest : public ::testing::Test {
protected:
  void SetUp() override { hub.start(); }

  std::string resolve(const std::string& repo, const std::string& file) const
  {
    return hub.endpoint() + "/" + repo + "/resolve/main/" + file;
  }
  static std::string many_file(int i)
  {
    return "dir" + std::string(i / 100 % 15 < 10 ? "0" : "") + std::to_string(i / 100 % 15) + "/sub" +
           std::to_string(i / 10 % 10) + "/file" + std::to_string(i % 10) + ".txt";
  }
  // Request number i of a mix: small bodies through redirects with a sink, JSON without a sink, HEADs,
  // a POST, and errors with bodies.
  std::pair<Request, bool> mixed_request(int i) const
  {
    Request req;
    bool sink = false;
    switch (i % 6) {
    case 0:
    case 1:
      req.url = resolve("test-org/many-files", many_file(i));
      req.follow_redirects = true;
      sink = true;
      break;
    case 2: req.url = hub.endpoint() + "/api/models/test-org/tiny-model/tree/main?recursive=true"; break;
    case 3:
      req.method = "HEAD";
      req.url = resolve(i % 12 == 3 ? "test-org/tiny-model" : "test-org/many-files",
                        i % 12 == 3 ? "model.safetensors" : many_file(i));
      break;
    case 4:
      req.method = "POST";
      req.url = hub.endpoint() + "/api/models/test-org/many-files/paths-info/main";
      req.headers = {"Content-Type: application/json"};
      req.body = R"({"paths":[")" + many_file(i) + R"("],"expand":false})";
      break;
    case 5:
      req.url = resolve("test-org/tiny-model", "does/not/exist-" + std::to_string(i) + ".bin");
      sink = true;
      break;
    }
    return {req, sink};
  }

  emulator::HubEmulator hub;
  Client client;
};

TEST_F(MultiTest, ConcurrentRequestsFromManyThreadsGetTheBlockingPathsResponses)
{
  constexpr int k_threads = 8;
  constexpr int k_per_thread = 30;
  std::vector<std::vector<std::pair<Observed, Observed>>> results(k_threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < k_per_thread; ++k) {
        auto [req, with_sink] = mixed_request(t * k_per_thread + k);
        Observed blocking = observe(client, req, with_sink);
        req.multiplex = true;
        Observed multiplexed = observe(client, req, with_sink);
        results[t].emplace_back(std::move(blocking), std::move(multiplexed));
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  int with_body = 0;
  for (int t = 0; t < k_threads; ++t) {
    for (int k = 0; k < k_per_thread; ++k) {
      const auto& [blocking, multiplexed] = results[t][k];
      SCOPED_TRACE("request " + std::to_string(t * k_per_thread + k));
      EXPECT_TRUE(blocking.error == TransferError::none) << blocking;
      EXPECT_EQ(multiplexed, blocking);
      EXPECT_TRUE(multiplexed.sink_on_caller_thread);
      with_body += !multiplexed.sink_body.empty() || !multiplexed.body.empty();
    }
  }
  EXPECT_GT(with_body, k_threads * k_per_thread / 2);
}

TEST_F(MultiTest, SlowSinkPausesTheTransferWithABoundedBufferAndIsNotAStall)
{
  const auto file = hub.repo("test-org/tiny-model")->file("model.safetensors"); // 3 MiB
  Request req;
  req.url = resolve("test-org/tiny-model", "model.safetensors");
  req.follow_redirects = true;
  req.multiplex = true;
  req.stall_timeout = 300ms;
  std::string body;
  std::size_t largest = 0;
  Response r = client.perform(req, [&](std::span<const char> d, const Response&) {
    if (body.empty()) {
      // A consumer much slower than the stall timeout (a disk that hangs): the loop must pause the
      // transfer rather than buffer the rest of the body or call the silence a stall.
      std::this_thread::sleep_for(req.stall_timeout * 5);
    }
    largest = std::max(largest, d.size());
    body.append(d.data(), d.size());
    return true;
  });
  ASSERT_TRUE(r.is_success()) << to_string(r.error) << ": " << r.error_message;
  EXPECT_EQ(body, file->content());
  EXPECT_EQ(r.body_bytes, file->size());
  EXPECT_LE(largest, detail::k_relay_capacity);
}

TEST_F(MultiTest, RefusingSinkAbortsTheTransferLikeTheBlockingPath)
{
  Request req;
  req.url = resolve("test-org/tiny-model", "weights/big.bin");
  req.follow_redirects = true;
  std::vector<Response> results;
  std::vector<std::size_t> seen;
  for (bool multiplex : {false, true}) {
    req.multiplex = multiplex;
    std::size_t got = 0;
    results.push_back(client.perform(req, [&](std::span<const char> d, const Response&) {
      got += d.size();
      return got < 100'000;
    }));
    seen.push_back(got);
  }
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(results[i].error, TransferError::aborted);
    EXPECT_TRUE(results[i].sink_refused);
    EXPECT_EQ(results[i].error_message, "transfer refused by the receiver");
    EXPECT_EQ(results[i].status, 200);
    EXPECT_EQ(results[i].body_bytes, seen[i]); // the bytes the sink saw, the refused piece included
  }
  // The loop goes on serving.
  req.url = resolve("test-org/tiny-model", "config.json");
  std::string body;
  Response next = client.perform(req, [&](std::span<const char> d, const Response&) {
    body.append(d.data(), d.size());
    return true;
  });
  ASSERT_TRUE(next.is_success()) << next.error_message;
  EXPECT_EQ(body, hub.repo("test-org/tiny-model")->file("config.json")->content());
}

TEST_F(MultiTest, ExceptionFromTheSinkLeavesPerformAfterTheTransferIsAborted)
{
  Request req;
  req.url = resolve("test-org/tiny-model", "weights/big.bin");
  req.follow_redirects = true;
  req.multiplex = true;
  EXPECT_THROW(
      {
        try {
          client.perform(req, [](std::span<const char>, const Response&) -> bool {
            throw std::runtime_error("disk on fire");
          });
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "disk on fire");
          throw;
        }
      },
      std::runtime_error);
  // The transfer was taken off the connection: the server sees it go, long before 300 MiB were sent.
  EXPECT_TRUE(hub.wait_for([](const emulator::Counters& c) {
    return std::any_of(c.log.begin(), c.log.end(),
                       [](const auto& rec) { return rec.cdn && rec.file_path == "weights/big.bin"; });
  }));
  EXPECT_LT(hub.counters().bytes_for("weights/big.bin"), 300ull << 20);
  req.url = resolve("test-org/tiny-model", "config.json");
  Response next = client.perform(req, [](std::span<const char>, const Response&) { return true; });
  EXPECT_TRUE(next.is_success()) << next.error_message;
}

TEST_F(MultiTest, StalledServerTimesOutWithTheBlockingPathsError)
{
  FaultSpec stall;
  stall.kind = FaultSpec::Kind::stall;
  stall.path_contains = "config.json";
  stall.after_bytes = 10;
  stall.times = 2;
  hub.add_fault(stall);
  Request req;
  req.url = resolve("test-org/tiny-model", "config.json");
  req.follow_redirects = true;
  req.stall_timeout = 500ms;
  std::vector<Observed> results;
  for (bool multiplex : {false, true}) {
    req.multiplex = multiplex;
    results.push_back(observe(client, req, true));
  }
  EXPECT_EQ(results[1].error, TransferError::stalled);
  EXPECT_EQ(results[1].error_message, "no data received for 500 ms");
  EXPECT_EQ(results[1].sink_body.size(), 10u);
  EXPECT_EQ(results[1], results[0]);
}

TEST_F(MultiTest, CancelFlagAbortsAWaitingTransfer)
{
  FaultSpec stall;
  stall.kind = FaultSpec::Kind::stall;
  stall.path_contains = "config.json";
  stall.after_bytes = 10;
  hub.add_fault(stall);
  Request req;
  req.url = resolve("test-org/tiny-model", "config.json");
  req.follow_redirects = true;
  req.multiplex = true;
  req.stall_timeout = 60s;
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    EXPECT_TRUE(hub.wait_for([](const emulator::Counters& c) { return c.stalls_active == 1; }));
    cancel = true;
  });
  Response r = client.perform(
      req, [](std::span<const char>, const Response&) { return true; }, &cancel);
  canceller.join();
  EXPECT_EQ(r.error, TransferError::aborted);
  EXPECT_FALSE(r.sink_refused);
  EXPECT_FALSE(is_transient(r));

  // Already cancelled: nothing is fetched.
  Response early = client.perform(req, {}, &cancel);
  EXPECT_EQ(early.error, TransferError::aborted);
}

TEST_F(MultiTest, DestroyingTheClientFailsTransfersInFlightAsAborted)
{
  FaultSpec stall;
  stall.kind = FaultSpec::Kind::stall;
  stall.path_contains = "config.json";
  stall.times = -1;
  hub.add_fault(stall);
  auto doomed = std::make_unique<Client>();
  Client* client_in_flight = doomed.get();
  constexpr int k_waiting = 4;
  std::vector<Response> results(k_waiting);
  std::vector<std::thread> threads;
  for (int i = 0; i < k_waiting; ++i) {
    threads.emplace_back([&, i] {
      Request req;
      req.url = resolve("test-org/tiny-model", "config.json");
      req.follow_redirects = true;
      req.multiplex = true;
      req.stall_timeout = 60s;
      results[i] =
          client_in_flight->perform(req, [](std::span<const char>, const Response&) { return true; });
    });
  }
  ASSERT_TRUE(hub.wait_for([](const emulator::Counters& c) { return c.stalls_active == k_waiting; }));
  doomed.reset();
  for (auto& th : threads) {
    th.join();
  }
  for (const auto& r : results) {
    EXPECT_EQ(r.error, TransferError::aborted);
    EXPECT_EQ(r.error_message, "the HTTP client was shut down");
  }
}

} // namespace
} // namespace modelmgr::net
