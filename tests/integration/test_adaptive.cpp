// Adaptive concurrency through the binary: with no flags the connection count grows when each connection is
// paced (a CDN limiting every TCP connection); --connections fixes it. The counts are read from the `done`
// event of --json progress, never from timing.

#include "support/hub_fixture.hpp"

#include <regex>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

struct Connections {
  int settled = 0;
  int peak = 0;
};

// "N connections to ORIGIN (peak P)" from the done event of `path`.
std::optional<Connections> connections_of(const std::string& err, const std::string& path)
{
  std::regex done(R"re("event":"done","message":"(\d+) connections to [^"]*\(peak (\d+)\)","path":")re" +
                  path + "\"");
  std::smatch m;
  if (!std::regex_search(err, m, done)) {
    return std::nullopt;
  }
  return Connections{std::stoi(m[1]), std::stoi(m[2])};
}

class AdaptiveTest : public HubTest {
protected:
  void pace_each_connection(std::uint64_t bytes_per_sec)
  {
    emulator::FaultSpec pace;
    pace.kind = emulator::FaultSpec::Kind::throttle;
    pace.path_contains = "weights/big.bin";
    pace.times = -1;
    pace.bytes_per_sec = bytes_per_sec;
    hub->add_fault(pace);
  }
};

TEST_F(AdaptiveTest, DefaultPullAddsConnectionsWhenEachOneIsPaced)
{
  // 300 MiB at 10 MB/s per connection: only more connections make it faster.
  pace_each_connection(10'000'000);
  auto r = mm({"--json", "pull", "test-org/tiny-model", "weights/big.bin"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto c = connections_of(r.err, "weights/big.bin");
  ASSERT_TRUE(c) << r.err;
  // It starts with 4; the first doubling gives twice the throughput, so it must have grown at least once.
  EXPECT_GE(c->peak, 8);
  // More connections than at the start means more ranges than the first four pieces.
  std::size_t ranges = 0;
  for (const auto& rec : counters().log) {
    ranges += rec.file_path == "weights/big.bin" && rec.cdn && !rec.range.empty() ? 1 : 0;
  }
  EXPECT_GE(ranges, 8u);
  auto big = repo("test-org/tiny-model").resolve("main")->find("weights/big.bin");
  EXPECT_EQ(std::filesystem::file_size(cache / "models--test-org--tiny-model" / "blobs" / big->sha256()),
            big->size());
}

TEST_F(AdaptiveTest, ConnectionsFlagFixesTheCount)
{
  pace_each_connection(20'000'000);
  auto r = mm({"--json", "pull", "test-org/tiny-model", "weights/big.bin", "--connections", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto c = connections_of(r.err, "weights/big.bin");
  ASSERT_TRUE(c) << r.err;
  EXPECT_EQ(c->settled, 3);
  EXPECT_EQ(c->peak, 3);
}

} // namespace
} // namespace modelmgr::test
