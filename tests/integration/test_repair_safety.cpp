// `verify --repair` and `cache verify --repair` only ever delete inside the cache, and Ctrl-C during a
// verify or a repair is an interruption (exit 130), never a "repair failed".

#include "support/hub_fixture.hpp"

#include <csignal>
#include <fstream>

#include <gmock/gmock.h>
#include <unistd.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using emulator::FaultSpec;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_tiny = "models--test-org--tiny-model";

class RepairSafetyTest : public HubTest {
protected:
  const emulator::RepoFile& file(const std::string& path) const
  {
    return *repo("test-org/tiny-model").resolve("main")->find(path);
  }
  fs::path snap() const
  {
    return cache / k_tiny / "snapshots" / repo("test-org/tiny-model").resolve("main")->sha;
  }
  void flip_byte(const fs::path& p, std::streamoff offset)
  {
    std::fstream io(p, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(offset);
    char c = 0;
    io.read(&c, 1);
    io.seekp(offset);
    io.put(static_cast<char>(c ^ 0x5a));
  }
};

TEST_F(RepairSafetyTest, RepairNeverDeletesWhatASnapshotLinkPointsAtOutsideTheCache)
{
  const fs::path config = tmp->path() / "project" / "models.yaml";
  write_file(config, "verify: sha256\nmodels:\n  - id: tiny\n    repo_id: test-org/tiny-model\n"
                     "    files: [config.json]\n    sha256:\n      config.json: " +
                         file("config.json").sha256() + "\n");
  auto r = mm({"sync", "--config", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Someone points the snapshot entry at a file of theirs, outside the cache.
  const fs::path outside = tmp->path() / "mine" / "my notes.json";
  write_file(outside, "{\"mine\": true}\n");
  fs::remove(snap() / "config.json");
  fs::create_symlink(outside, snap() / "config.json");
  r = mm({"verify", "--config", config.string(), "--repair"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(outside), "{\"mine\": true}\n");
  // The link itself was replaced by the real file.
  EXPECT_EQ(read_file(snap() / "config.json"), file("config.json").content());
  EXPECT_FALSE(fs::equivalent(snap() / "config.json", outside));
}

TEST_F(RepairSafetyTest, CtrlCWhileCacheVerifyHashesExitsInterrupted)
{
  // A sparse blob far too large to hash before the test gives up (512 GiB of zeros, no disk used).
  const fs::path blobs = cache / "models--test-org--huge" / "blobs";
  const std::string etag(64, 'a');
  fs::create_directories(blobs);
  fs::create_directories(cache / "models--test-org--huge" / "refs");
  fs::create_directories(cache / "models--test-org--huge" / "snapshots");
  {
    std::ofstream(blobs / etag).put('x');
  }
  fs::resize_file(blobs / etag, 512ull << 30);
  Process p({modelmgr_binary(), "cache", "verify"}, env());
  ASSERT_TRUE(p.wait_for_output("verifying"));
  p.signal(SIGINT);
  const auto r = p.wait(std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 130) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("interrupted"));
}

TEST_F(RepairSafetyTest, CtrlCDuringVerifyRepairIsAnInterruptionNotAFailedRepair)
{
  const fs::path config = tmp->path() / "project" / "models.yaml";
  write_file(config, "models:\n  - id: tiny\n    repo_id: test-org/tiny-model\n"
                     "    files: [model.safetensors]\n");
  ASSERT_EQ(mm({"sync", "--config", config.string()}).exit_code, 0);
  flip_byte(snap() / "model.safetensors", 1000);
  // The re-download crawls, so the interrupt lands in the middle of it.
  FaultSpec slow;
  slow.kind = FaultSpec::Kind::throttle;
  slow.path_contains = "model.safetensors";
  slow.times = -1;
  slow.bytes_per_sec = 64 << 10;
  hub->add_fault(slow);
  hub->reset_counters();
  Process p({modelmgr_binary(), "verify", "--config", config.string(), "--repair"}, env());
  ASSERT_TRUE(
      hub->wait_for([](const emulator::Counters& c) { return c.bytes_for("model.safetensors") > 0; }));
  p.signal(SIGINT);
  const auto r = p.wait(std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 130) << r.out << r.err;
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("repair failed")));
}

TEST_F(RepairSafetyTest, CtrlCDuringCacheVerifyRepairIsAnInterruption)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "model.safetensors"}).exit_code, 0);
  flip_byte(cache / k_tiny / "blobs" / file("model.safetensors").sha256(), 1000);
  FaultSpec slow;
  slow.kind = FaultSpec::Kind::throttle;
  slow.path_contains = "model.safetensors";
  slow.times = -1;
  slow.bytes_per_sec = 64 << 10;
  hub->add_fault(slow);
  hub->reset_counters();
  Process p({modelmgr_binary(), "cache", "verify", "--repair"}, env());
  ASSERT_TRUE(
      hub->wait_for([](const emulator::Counters& c) { return c.bytes_for("model.safetensors") > 0; }));
  p.signal(SIGINT);
  const auto r = p.wait(std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 130) << r.out << r.err;
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("re-download failed")));
}

} // namespace
} // namespace modelmgr::test
