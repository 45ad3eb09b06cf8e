// Fault injection, counters, the admin API and prompt shutdown.

#include "emulator_fixture.hpp"
#include "util/hash.hpp"

#include <future>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

using namespace modelmgr::emulator;
using namespace modelmgr::emulator::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

FaultSpec fault(FaultSpec::Kind kind, std::string path, std::uint64_t after_bytes = 0)
{
  FaultSpec f;
  f.kind = kind;
  f.path_contains = std::move(path);
  f.after_bytes = after_bytes;
  return f;
}

double seconds_since(Clock::time_point start)
{
  return std::chrono::duration<double>(Clock::now() - start).count();
}

} // namespace

TEST_F(EmulatorTest, TruncateDeclaresFullLengthThenCloses)
{
  auto file = tiny()->file("model.safetensors");
  std::string cdn = body_url("model.safetensors");
  hub->add_fault(fault(FaultSpec::Kind::truncate, "model.safetensors", 1000));
  auto r = http_get(cdn);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-length"), std::to_string(file->size()));
  EXPECT_EQ(r.code, CURLE_PARTIAL_FILE);
  EXPECT_EQ(r.body, file->read(0, 1000));
  // Consumed: the next request is clean.
  EXPECT_EQ(hub->pending_faults(), 0u);
  auto again = http_get(cdn);
  EXPECT_EQ(again.code, CURLE_OK);
  EXPECT_EQ(again.body.size(), file->size());
  auto c = hub->counters();
  EXPECT_EQ(c.faults_fired, 1u);
  EXPECT_EQ(c.gets_for("model.safetensors"), 2u);
  EXPECT_EQ(c.bytes_for("model.safetensors"), file->size() + 1000);
}

TEST_F(EmulatorTest, TruncateOnResolveCacheAndApi)
{
  auto text = tiny()->file("config.json");
  std::string cache_url = body_url("config.json");
  hub->add_fault(fault(FaultSpec::Kind::truncate, "config.json", 10));
  auto r = http_get(cache_url);
  EXPECT_EQ(r.code, CURLE_PARTIAL_FILE);
  EXPECT_EQ(r.body, text->content().substr(0, 10));

  FaultSpec api = fault(FaultSpec::Kind::truncate, "/tree/", 5);
  api.route = FaultSpec::Route::api;
  hub->add_fault(api);
  auto tree = http_get(url("/api/models/test-org/tiny-model/tree/main"));
  EXPECT_EQ(tree.code, CURLE_PARTIAL_FILE);
  EXPECT_EQ(tree.body.size(), 5u);
}

TEST_F(EmulatorTest, ResetAbortsTheConnection)
{
  auto file = tiny()->file("model.safetensors");
  std::string cdn = body_url("model.safetensors");
  hub->add_fault(fault(FaultSpec::Kind::reset, "model.safetensors", 100000));
  auto r = http_get(cdn);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.code, CURLE_RECV_ERROR) << curl_easy_strerror(r.code);
  EXPECT_LE(r.body.size(), 100000u);
  EXPECT_EQ(r.body, file->read(0, r.body.size()));
  EXPECT_EQ(http_get(cdn).code, CURLE_OK);

  // Before any byte, on a HEAD.
  FaultSpec head = fault(FaultSpec::Kind::reset, "config.json");
  head.route = FaultSpec::Route::head;
  hub->add_fault(head);
  auto h = http_head(resolve("config.json"));
  EXPECT_NE(h.code, CURLE_OK);
  EXPECT_EQ(h.status, 0);
  // The client sees the reset before the handler returns and logs the request.
  ASSERT_TRUE(
      hub->wait_for([](const Counters& c) { return !c.log.empty() && c.log.back().method == "HEAD"; }));
  EXPECT_EQ(hub->counters().log.back().status, 0) << "the log marks aborted requests with status 0";
}

TEST_F(EmulatorTest, FlipByteCorruptsOneByte)
{
  auto file = tiny()->file("model.safetensors");
  std::string cdn = body_url("model.safetensors");
  hub->add_fault(fault(FaultSpec::Kind::flip_byte, "model.safetensors", 1'500'001));
  // A range that does not cover the byte is untouched and does not consume the fault.
  auto before = http_get(cdn, {"Range: bytes=0-99"});
  EXPECT_EQ(before.body, file->read(0, 100));
  EXPECT_EQ(hub->pending_faults(), 1u);

  auto r = http_get(cdn, {"Range: bytes=1000000-1999999"});
  ASSERT_EQ(r.status, 206);
  auto expected = file->read(1'000'000, 1'000'000);
  ASSERT_EQ(r.body.size(), expected.size());
  std::vector<std::size_t> diffs;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (r.body[i] != expected[i]) {
      diffs.push_back(i);
    }
  }
  ASSERT_EQ(diffs.size(), 1u);
  EXPECT_EQ(diffs[0], 500'001u);
  EXPECT_EQ(static_cast<unsigned char>(r.body[diffs[0]] ^ expected[diffs[0]]), 0xffu);
  EXPECT_EQ(hub->pending_faults(), 0u);
}

TEST_F(EmulatorTest, StatusFaultWithRetryAfter)
{
  std::string cdn = body_url("model.safetensors");
  FaultSpec f = fault(FaultSpec::Kind::status, "model.safetensors");
  f.status = 503;
  f.retry_after_s = 7;
  f.times = 2;
  hub->add_fault(f);
  for (int i = 0; i < 2; ++i) {
    auto r = http_get(cdn);
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.header("retry-after"), "7");
    EXPECT_TRUE(json::parse(r.body).contains("error"));
  }
  EXPECT_EQ(http_get(cdn).status, 200);

  // Route head: only HEADs, and the resolve route.
  FaultSpec head = fault(FaultSpec::Kind::status, "config.json");
  head.route = FaultSpec::Route::head;
  head.status = 500;
  hub->add_fault(head);
  EXPECT_EQ(http_get(resolve("config.json")).status, 307);
  EXPECT_EQ(http_head(resolve("config.json")).status, 500);

  // Route api.
  FaultSpec api = fault(FaultSpec::Kind::status, "");
  api.route = FaultSpec::Route::api;
  api.status = 429;
  api.retry_after_s = 1;
  hub->add_fault(api);
  auto limited = http_get(url("/api/models/test-org/tiny-model"));
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.header("retry-after"), "1");
  EXPECT_EQ(http_get(url("/api/models/test-org/tiny-model")).status, 200);
}

TEST_F(EmulatorTest, AlwaysFaultAndRangeCondition)
{
  std::string cdn = body_url("model.safetensors");
  FaultSpec f = fault(FaultSpec::Kind::status, "model.safetensors");
  f.times = -1;
  f.range_start_at_least = 1000;
  hub->add_fault(f);
  EXPECT_EQ(http_get(cdn).status, 200);
  EXPECT_EQ(http_get(cdn, {"Range: bytes=0-9"}).status, 206);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(http_get(cdn, {"Range: bytes=2000-2009"}).status, 503);
  }
  EXPECT_EQ(hub->pending_faults(), 1u);
  hub->clear_faults();
  EXPECT_EQ(http_get(cdn, {"Range: bytes=2000-2009"}).status, 206);
}

TEST_F(EmulatorTest, PathFilterMatchesOnlyThatFile)
{
  hub->add_fault(fault(FaultSpec::Kind::status, "tokenizer.json"));
  EXPECT_EQ(http_get(body_url("config.json")).status, 200);
  EXPECT_EQ(hub->pending_faults(), 1u);
  EXPECT_EQ(http_get(body_url("tokenizer.json")).status, 503);
}

TEST_F(EmulatorTest, LyingAndIgnoredRanges)
{
  auto file = tiny()->file("model.safetensors");
  std::string cdn = body_url("model.safetensors");
  hub->add_fault(fault(FaultSpec::Kind::lying_206, "model.safetensors"));
  auto lie = http_get(cdn, {"Range: bytes=100-199"});
  EXPECT_EQ(lie.status, 206);
  std::string claimed = lie.header("content-range");
  EXPECT_NE(claimed, fmt::format("bytes 100-199/{}", file->size()));
  std::uint64_t first = 0, last = 0, total = 0;
  ASSERT_EQ(std::sscanf(claimed.c_str(), "bytes %lu-%lu/%lu", &first, &last, &total), 3);
  EXPECT_EQ(total, file->size());
  EXPECT_EQ(lie.body, file->read(first, last - first + 1));

  hub->add_fault(fault(FaultSpec::Kind::ignore_range, "model.safetensors"));
  auto full = http_get(cdn, {"Range: bytes=100-199"});
  EXPECT_EQ(full.status, 200);
  EXPECT_FALSE(full.has("content-range"));
  EXPECT_EQ(full.body.size(), file->size());
}

TEST_F(EmulatorTest, StallThenResume)
{
  auto file = tiny()->file("model.safetensors");
  std::string cdn = body_url("model.safetensors");
  FaultSpec f = fault(FaultSpec::Kind::stall, "model.safetensors", 4096);
  f.stall_for = std::chrono::milliseconds(50);
  hub->add_fault(f);
  auto start = Clock::now();
  auto r = http_get(cdn);
  EXPECT_GE(seconds_since(start), 0.045);
  EXPECT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(modelmgr::util::sha256_hex(r.body), file->sha256());
  EXPECT_EQ(hub->counters().stalls_active, 0u);
}

TEST_F(EmulatorTest, ThrottleLimitsRate)
{
  auto file = tiny()->file("model.safetensors");
  std::string cdn = body_url("model.safetensors");
  FaultSpec f = fault(FaultSpec::Kind::throttle, "model.safetensors");
  f.bytes_per_sec = 1 << 20;
  hub->add_fault(f);
  auto start = Clock::now();
  auto r = http_get(cdn, {"Range: bytes=0-409599"}); // 400 KiB at 1 MiB/s: at least ~0.39 s
  EXPECT_GE(seconds_since(start), 0.35);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, file->read(0, 409600));
}

TEST_F(EmulatorTest, StopReturnsPromptlyDuringStall)
{
  auto file = tiny()->file("weights/big.bin");
  std::string cdn = body_url("weights/big.bin");
  hub->add_fault(fault(FaultSpec::Kind::stall, "big.bin", 65536)); // stalls until stop()
  auto pending = std::async(std::launch::async, [&] { return http_get(cdn); });
  ASSERT_TRUE(hub->wait_for([](const Counters& c) { return c.stalls_active == 1; }));
  auto start = Clock::now();
  hub->stop();
  EXPECT_LT(seconds_since(start), 2.0);
  auto r = pending.get();
  EXPECT_NE(r.code, CURLE_OK);
  EXPECT_EQ(r.body, file->read(0, 65536));
  EXPECT_FALSE(hub->running());
}

TEST_F(EmulatorTest, StopReturnsPromptlyDuringThrottleAndIdleKeepAlive)
{
  std::string cdn = body_url("weights/big.bin");
  // An idle keep-alive connection: the handle keeps it open after the request.
  CURL* keep = curl_easy_init();
  HttpRequest req{"GET", url("/api/models/test-org/tiny-model/refs")};
  req.reuse = keep;
  ASSERT_EQ(http(req).status, 200);

  FaultSpec f = fault(FaultSpec::Kind::throttle, "big.bin");
  f.bytes_per_sec = 100000;
  hub->add_fault(f);
  auto pending = std::async(std::launch::async, [&] { return http_get(cdn); });
  ASSERT_TRUE(hub->wait_for([](const Counters& c) { return c.bytes_for("weights/big.bin") > 0; }));
  auto start = Clock::now();
  hub->stop();
  EXPECT_LT(seconds_since(start), 2.0);
  EXPECT_NE(pending.get().code, CURLE_OK);
  curl_easy_cleanup(keep);
}

TEST_F(EmulatorTest, CountersAndRequestLog)
{
  http_head(resolve("config.json"), {k_token});
  http_follow("GET", resolve("config.json"));
  http_get(url("/api/models/test-org/tiny-model"));
  http_get(url("/api/models/test-org/tiny-model/tree/main"));
  http(HttpRequest{"POST", url("/api/models/test-org/tiny-model/paths-info/main"), {}, "paths=config.json"});
  http_get(url("/api/models/test-org/tiny-model/refs"));
  http_follow("GET", resolve("model.safetensors"));
  http_get(url("/favicon.ico"));
  auto c = hub->counters();
  EXPECT_EQ(c.count(RouteKind::head_resolve), 1u);
  EXPECT_EQ(c.count(RouteKind::get_resolve), 2u);
  EXPECT_EQ(c.count(RouteKind::resolve_cache), 1u);
  EXPECT_EQ(c.count(RouteKind::cdn_get), 1u);
  EXPECT_EQ(c.count(RouteKind::api_repo_info), 1u);
  EXPECT_EQ(c.count(RouteKind::api_tree), 1u);
  EXPECT_EQ(c.count(RouteKind::api_paths_info), 1u);
  EXPECT_EQ(c.count(RouteKind::api_refs), 1u);
  EXPECT_EQ(c.count(RouteKind::other), 1u);
  auto model = tiny()->file("model.safetensors");
  auto config = tiny()->file("config.json");
  EXPECT_EQ(c.body_bytes_total, model->size() + config->size());
  ASSERT_EQ(c.log.size(), 10u);
  EXPECT_EQ(c.log[0].method, "HEAD");
  EXPECT_TRUE(c.log[0].authorization);
  EXPECT_EQ(c.log[0].status, 307);
  EXPECT_EQ(c.log[0].port, hub->port());
  EXPECT_EQ(c.log[0].file_path, "config.json");
  EXPECT_FALSE(c.log[1].authorization);
  const auto& cdn = c.log[8];
  EXPECT_TRUE(cdn.cdn);
  EXPECT_EQ(cdn.port, hub->cdn_port());
  EXPECT_EQ(cdn.kind, RouteKind::cdn_get);

  http_get(body_url("config.json"), {"Range: bytes=0-3"});
  EXPECT_EQ(hub->counters().log.back().range, "bytes=0-3");
  hub->reset_counters();
  c = hub->counters();
  EXPECT_TRUE(c.log.empty());
  EXPECT_EQ(c.body_bytes_total, 0u);
}

TEST_F(EmulatorTest, AdminApi)
{
  auto post = http(HttpRequest{"POST",
                               url("/_emulator/faults"),
                               {"Content-Type: application/json"},
                               R"({"kind":"status","status":502,"path_contains":"config.json","times":-1})"});
  ASSERT_EQ(post.status, 200) << post.body;
  EXPECT_EQ(hub->pending_faults(), 1u);
  EXPECT_EQ(http_get(body_url("config.json")).status, 502);
  EXPECT_EQ(json::parse(http_get(url("/_emulator/faults")).body).size(), 1u);
  EXPECT_EQ(http(HttpRequest{"DELETE", url("/_emulator/faults")}).status, 200);
  EXPECT_EQ(hub->pending_faults(), 0u);
  EXPECT_EQ(http(HttpRequest{"POST", url("/_emulator/faults"), {}, R"({"kind":"nope"})"}).status, 400);

  auto counters = json::parse(http_get(url("/_emulator/counters")).body);
  EXPECT_EQ(counters["requests"]["head_resolve"], 1);
  EXPECT_EQ(counters["requests"]["resolve_cache"], 1);
  EXPECT_EQ(counters["faults_fired"], 1);
  EXPECT_EQ(counters["log"].size(), 2u) << "admin requests are not counted";
  EXPECT_EQ(http(HttpRequest{"POST", url("/_emulator/counters/reset")}).status, 200);
  EXPECT_TRUE(hub->counters().log.empty());

  auto old = tiny()->commits[0].sha;
  auto branch =
      http(HttpRequest{"POST",
                       url("/_emulator/branches"),
                       {},
                       fmt::format(R"({{"repo":"test-org/tiny-model","branch":"main","sha":"{}"}})", old)});
  EXPECT_EQ(branch.status, 200) << branch.body;
  EXPECT_EQ(tiny()->main().sha, old);
}

TEST(EmulatorLifecycle, StartStopWithoutTraffic)
{
  HubEmulator hub;
  hub.start();
  EXPECT_TRUE(hub.running());
  EXPECT_NE(hub.port(), 0);
  EXPECT_NE(hub.cdn_port(), 0);
  EXPECT_NE(hub.port(), hub.cdn_port());
  EXPECT_TRUE(hub.endpoint().starts_with("http://127.0.0.1:"));
  hub.stop();
  hub.stop(); // idempotent
  EXPECT_NE(http_get(hub.endpoint() + "/api/models/test-org/tiny-model").code, CURLE_OK);
}

TEST(EmulatorLifecycle, ManyParallelConnections)
{
  HubEmulator hub;
  hub.start();
  std::vector<std::future<HttpResult>> results;
  for (int i = 0; i < 32; ++i) {
    results.push_back(std::async(std::launch::async, [&, i] {
      return http_get(hub.endpoint() + "/gpt2-tiny/resolve/main/config.json",
                      {fmt::format("Range: bytes={}-", i)});
    }));
  }
  auto content = hub.repo("gpt2-tiny")->file("config.json")->content();
  for (int i = 0; i < 32; ++i) {
    auto r = results[i].get();
    EXPECT_EQ(r.status, 206);
    EXPECT_EQ(r.body, content.substr(i));
  }
}
