// Sharing a cache with the official clients: nothing in the cache root that huggingface_hub < 1.9 calls a
// broken repo, downloads the Python 0.x client left half-done are resumed, unused Python lock files are no
// problem; and a temp blob path someone planted a symlink at is refused.

#include "support/hub_fixture.hpp"

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string k_tiny = "models--test-org--tiny-model";

class InteropTest : public HubTest {
protected:
  // model.safetensors: 3 MiB LFS file served by the CDN.
  std::shared_ptr<const emulator::RepoFile> lfs_file() const
  {
    return repo("test-org/tiny-model").resolve("main")->find("model.safetensors");
  }
  fs::path blobs() const { return cache / k_tiny / "blobs"; }
};

TEST_F(InteropTest, PullWritesNoCachedirTagIntoTheCacheRoot)
{
  auto r = mm({"pull", "test-org/tiny-model", "config.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(cache / "CACHEDIR.TAG"));
  for (const auto& e : fs::directory_iterator(cache)) {
    EXPECT_TRUE(e.is_directory()) << e.path() << " is a file in the cache root";
  }
}

TEST_F(InteropTest, DownloadThePythonClientLeftIncompleteIsResumed)
{
  const auto f = lfs_file();
  const std::uint64_t half = f->size() / 2;
  fs::create_directories(blobs());
  const fs::path stray = blobs() / (f->sha256() + ".incomplete");
  write_file(stray, f->read(0, half));
  auto r = mm({"pull", "test-org/tiny-model", "model.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(blobs() / f->sha256()), f->content());
  EXPECT_FALSE(fs::exists(stray));
  for (const auto& p : list_tree(blobs())) {
    EXPECT_EQ(p.find(".incomplete"), std::string::npos) << p;
  }
  // Only the second half came over the network (one connection: the byte count is exact).
  EXPECT_EQ(counters().bytes_for("model.safetensors"), f->size() - half);
}

TEST_F(InteropTest, OversizedPythonIncompleteIsDiscarded)
{
  const auto f = lfs_file();
  fs::create_directories(blobs());
  const fs::path stray = blobs() / (f->sha256() + ".incomplete");
  write_file(stray, f->content() + "trailing garbage");
  auto r = mm({"pull", "test-org/tiny-model", "model.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(blobs() / f->sha256()), f->content());
  EXPECT_FALSE(fs::exists(stray));
  EXPECT_EQ(counters().bytes_for("model.safetensors"), f->size());
}

TEST_F(InteropTest, CacheLsJsonDoesNotCallUnusedLocksProblems)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "config.json", "README.md"}).exit_code, 0);
  // Every download leaves its lock file behind, as the Python client does.
  ASSERT_TRUE(fs::exists(cache / ".locks" / k_tiny));
  auto r = mm({"cache", "ls", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["problems"].empty()) << j["problems"].dump();
  EXPECT_EQ(j["unused_locks"], 2);
}

TEST_F(InteropTest, SymlinkPlantedAtTheTempBlobIsRefused)
{
  const auto f = lfs_file();
  fs::create_directories(blobs());
  const fs::path victim = tmp->path() / "victim.txt";
  write_file(victim, "not yours");
  const fs::path temp = blobs() / (f->sha256() + ".modelmgr.incomplete");
  fs::create_symlink(victim, temp);
  auto r = mm({"pull", "test-org/tiny-model", "model.safetensors"});
  EXPECT_EQ(r.exit_code, 7) << r.err; // disk
  EXPECT_THAT(r.err, HasSubstr(temp.string()));
  EXPECT_THAT(r.err, HasSubstr("symbolic link"));
  EXPECT_EQ(read_file(victim), "not yours");
  EXPECT_TRUE(fs::is_symlink(temp));
  EXPECT_FALSE(fs::exists(blobs() / f->sha256()));
}

} // namespace
} // namespace modelmgr::test
