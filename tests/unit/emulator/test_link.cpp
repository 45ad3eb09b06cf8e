// The emulator as a network for benchmarks and scheduler tests: per-request latency on chosen routes, a
// per-connection rate, a total rate shared by all connections (a token bucket, tested as a pure unit on an
// injected clock), and enough server threads for 128+ connections at once. Timing is only ever asserted as a
// lower bound (a cap or a delay holds however fast or slow the machine is).

#include "emulator/rate_limit.hpp"
#include "emulator_fixture.hpp"

#include <future>
#include <random>

using namespace modelmgr::emulator;
using namespace modelmgr::emulator::test;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start)
{
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(TokenBucket, PacesReservationsAtTheRate)
{
  TokenBucket b(1000, 0ms);
  const Clock::time_point t0{};
  EXPECT_EQ(b.reserve(500, t0), t0);
  EXPECT_EQ(b.reserve(500, t0), t0 + 500ms);
  EXPECT_EQ(b.reserve(1000, t0), t0 + 1s);
  // Later callers queue behind the earlier ones.
  EXPECT_EQ(b.reserve(1, t0 + 100ms), t0 + 2s);
}

TEST(TokenBucket, IdleTimeSavesAtMostTheBurst)
{
  TokenBucket b(1000, 100ms);
  const Clock::time_point t0 = Clock::time_point{} + 10s;
  // After a long idle time 100 ms worth (100 bytes) go at once, then the rate applies.
  EXPECT_EQ(b.reserve(50, t0), t0);
  EXPECT_EQ(b.reserve(50, t0), t0);
  EXPECT_EQ(b.reserve(100, t0), t0);
  EXPECT_EQ(b.reserve(100, t0), t0 + 100ms);
}

TEST(TokenBucket, ManySendersNeverExceedTheRateOverAnyInterval)
{
  const std::uint64_t rate = 1'000'000;
  const auto burst = 50ms;
  TokenBucket b(rate, burst);
  std::mt19937 rng(7);
  // 64 senders reserving random slices at random times; record when each slice becomes due.
  std::vector<std::pair<Clock::time_point, std::uint64_t>> due;
  Clock::time_point now{};
  std::uint64_t largest = 0;
  for (int i = 0; i < 5000; ++i) {
    now += std::chrono::microseconds(rng() % 2000);
    const std::uint64_t n = 1 + rng() % 20000;
    largest = std::max(largest, n);
    due.emplace_back(b.reserve(n, now), n);
  }
  std::sort(due.begin(), due.end());
  // Over every window [due[i], due[j]] the bytes due are within rate × (length + burst) + one slice (+ a few
  // bytes: each reservation rounds its duration down to the clock's nanoseconds).
  for (std::size_t i = 0; i < due.size(); i += 97) {
    std::uint64_t sum = 0;
    for (std::size_t j = i; j < due.size(); ++j) {
      sum += due[j].second;
      const double window = std::chrono::duration<double>(due[j].first - due[i].first + burst).count();
      ASSERT_LE(static_cast<double>(sum),
                static_cast<double>(rate) * window + static_cast<double>(largest) + 16)
          << i << ".." << j;
    }
  }
  // And the link is used: the last slice is due about when the bytes at the rate would be.
  std::uint64_t total = 0;
  for (const auto& d : due) {
    total += d.second;
  }
  const double span = std::chrono::duration<double>(due.back().first - Clock::time_point{}).count();
  EXPECT_GE(static_cast<double>(total), static_cast<double>(rate) * span * 0.95);
}

TEST(TokenBucket, RejectsAZeroRate)
{
  EXPECT_THROW(TokenBucket(0, 0ms), std::invalid_argument);
}

class LinkTest : public ::testing::Test {
protected:
  void start(HubEmulator::Options o)
  {
    hub = std::make_unique<HubEmulator>(o);
    hub->start();
  }
  void TearDown() override
  {
    if (hub) {
      hub->stop();
    }
  }
  std::string cdn_url(const std::string& file)
  {
    auto head = http_head(hub->endpoint() + "/test-org/tiny-model/resolve/main/" + file);
    EXPECT_EQ(head.status, 302);
    return head.header("location");
  }
  std::unique_ptr<HubEmulator> hub;
};

TEST_F(LinkTest, LatencyDelaysTheChosenRoutes)
{
  HubEmulator::Options o;
  o.latency = 300ms;
  o.latency_routes = {RouteKind::cdn_get};
  start(o);
  const std::string cdn = cdn_url("model.safetensors"); // a HEAD on the Hub: no delay asked for it
  auto t = Clock::now();
  auto r = http_get(cdn, {"Range: bytes=0-99"});
  EXPECT_GE(seconds_since(t), 0.29);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, hub->repo("test-org/tiny-model")->file("model.safetensors")->read(0, 100));
}

TEST_F(LinkTest, ConnectionRatePacesEachResponse)
{
  HubEmulator::Options o;
  o.connection_rate = 1 << 20;
  start(o);
  const std::string cdn = cdn_url("model.safetensors");
  auto t = Clock::now();
  auto r = http_get(cdn, {"Range: bytes=0-409599"}); // 400 KiB at 1 MiB/s: at least ~0.39 s
  EXPECT_GE(seconds_since(t), 0.35);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body.size(), 409600u);
}

TEST_F(LinkTest, TotalRateIsSharedByAllConnections)
{
  HubEmulator::Options o;
  o.total_rate = 2'000'000;
  start(o);
  const std::string cdn = cdn_url("weights/big.bin");
  auto big = hub->repo("test-org/tiny-model")->file("weights/big.bin");
  // Four connections of 500,000 bytes each: 2 MB through a 2 MB/s link takes about a second, however the
  // connections share it (less the 50 ms burst).
  auto t = Clock::now();
  std::vector<std::future<HttpResult>> parts;
  for (int i = 0; i < 4; ++i) {
    const std::uint64_t first = static_cast<std::uint64_t>(i) * 500'000;
    parts.push_back(std::async(std::launch::async, [&, first] {
      return http_get(cdn, {"Range: bytes=" + std::to_string(first) + "-" + std::to_string(first + 499'999)});
    }));
  }
  for (int i = 0; i < 4; ++i) {
    auto r = parts[static_cast<std::size_t>(i)].get();
    ASSERT_EQ(r.status, 206);
    EXPECT_EQ(r.body, big->read(static_cast<std::uint64_t>(i) * 500'000, 500'000));
  }
  EXPECT_GE(seconds_since(t), 0.9);
}

TEST_F(LinkTest, ServesMoreThan128ConnectionsAtOnce)
{
  // Every answer waits "forever" (until stop): the requests pile up in the server, one thread each.
  HubEmulator::Options o;
  o.latency = 10min;
  o.latency_routes = {RouteKind::api_refs};
  start(o);
  const std::string url = hub->endpoint() + "/api/models/test-org/tiny-model/refs";
  std::vector<std::future<HttpResult>> pending;
  for (int i = 0; i < 130; ++i) {
    pending.push_back(std::async(std::launch::async, [url] { return http_get(url); }));
  }
  EXPECT_TRUE(hub->wait_for([](const Counters& c) { return c.requests_active >= 130; }, 60s))
      << "peak " << hub->counters().requests_active_peak;
  hub->stop();
  for (auto& p : pending) {
    p.get();
  }
}

} // namespace
