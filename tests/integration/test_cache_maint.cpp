// `modelmgr cache rm|prune|verify|locks` on caches the binary filled from the hub emulator: rm refuses to
// delete off a terminal without -y, --dry-run changes nothing, rm of one revision keeps the other intact;
// prune --keep-under evicts what the config does not pin; verify finds a truncated and a flipped blob in
// one pass (exit 5) and --repair downloads exactly those files again.

#include "support/hub_fixture.hpp"
#include "util/hash.hpp"

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_model = "models--test-org--tiny-model";

class CacheMaintTest : public HubTest {
protected:
  fs::path blobs() const { return repo_dir(k_model) / "blobs"; }

  // The first non-empty blob whose name has `hex_len` hex digits.
  fs::path blob_of_kind(std::size_t hex_len) const
  {
    for (const auto& e : fs::directory_iterator(blobs())) {
      const std::string name = e.path().filename().string();
      if (name.size() == hex_len && util::is_hex(name) && fs::file_size(e.path()) > 0) {
        return e.path();
      }
    }
    return {};
  }
};

TEST_F(CacheMaintTest, VerifyFindsTruncatedAndFlippedBlobsAndRepairRestoresThem)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  const fs::path lfs = blob_of_kind(64);
  const fs::path git = blob_of_kind(40);
  ASSERT_FALSE(lfs.empty());
  ASSERT_FALSE(git.empty());
  const std::string lfs_content = read_file(lfs);
  const std::string git_content = read_file(git);
  fs::resize_file(lfs, lfs_content.size() / 2);
  std::string flipped = git_content;
  flipped[0] = static_cast<char>(flipped[0] ^ 0x01);
  write_file(git, flipped);

  auto r = mm({"cache", "verify"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr(lfs.filename().string()));
  EXPECT_THAT(r.out, HasSubstr(git.filename().string()));
  EXPECT_THAT(r.out, HasSubstr("2 corrupt"));

  r = mm({"cache", "verify", "test-org/tiny-model", "--json"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(nlohmann::json::parse(r.out)["corrupt"].size(), 2u);

  r = mm({"cache", "verify", "--repair", "-q"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(lfs), lfs_content);
  EXPECT_EQ(read_file(git), git_content);

  r = mm({"cache", "verify"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr(": 0 corrupt"));
}

TEST_F(CacheMaintTest, RmNeedsYesOffTerminalDryRunChangesNothingAndOneRevisionGoes)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--revision", "v1.0", "--exclude", "weights/*"}).exit_code, 0);
  const std::string v1 = repo("test-org/tiny-model").resolve("v1.0")->sha;
  const std::string main = repo("test-org/tiny-model").resolve("main")->sha;
  const auto before = list_tree(cache);

  auto r = mm({"cache", "rm", "test-org/tiny-model@v1.0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("-y"));
  EXPECT_EQ(list_tree(cache), before);

  r = mm({"cache", "rm", "test-org/tiny-model@v1.0", "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Would free"));
  EXPECT_THAT(r.out, HasSubstr(v1));
  EXPECT_EQ(list_tree(cache), before);

  r = mm({"cache", "rm", "test-org/nope", "-y"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("model/test-org/tiny-model"));

  r = mm({"cache", "rm", "test-org/tiny-model@v1.0", "-y"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("freed"));
  EXPECT_FALSE(fs::exists(repo_dir(k_model) / "snapshots" / v1));
  EXPECT_FALSE(fs::exists(repo_dir(k_model) / "refs" / "v1.0"));
  EXPECT_TRUE(fs::exists(repo_dir(k_model) / "snapshots" / main / "config.json"));
  // What remains is complete: no broken link, no orphan, every blob intact.
  r = mm({"cache", "ls", "--json"});
  const auto j = nlohmann::json::parse(r.out);
  for (const auto& p : j["problems"]) {
    EXPECT_EQ(p["kind"], "stale_lock") << p.dump(); // locks every download leaves behind
  }
  EXPECT_EQ(mm({"cache", "verify"}).exit_code, 0);
}

TEST_F(CacheMaintTest, PruneKeepUnderEvictsWhatTheConfigDoesNotPin)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  ASSERT_EQ(mm({"pull", "test-org/tiny-dataset", "--repo-type", "dataset"}).exit_code, 0);
  const fs::path config = tmp->path() / "models.yaml";
  write_file(config, "models:\n  - id: tiny\n    repo_id: test-org/tiny-model\n");

  auto r = mm({"cache", "prune", "--keep-under", "1", "--config", config.string(), "--dry-run"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("dataset/test-org/tiny-dataset: whole repo"));
  EXPECT_THAT(r.out, Not(HasSubstr("model/test-org/tiny-model")));
  EXPECT_TRUE(fs::exists(repo_dir("datasets--test-org--tiny-dataset")));

  r = mm({"cache", "prune", "--keep-under", "1", "--config", config.string(), "-y"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(fs::exists(repo_dir("datasets--test-org--tiny-dataset")));
  EXPECT_TRUE(fs::exists(repo_dir(k_model)));
  // The lock files the downloads left behind were unheld: prune took them too.
  r = mm({"cache", "locks", "--all", "--json"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(nlohmann::json::parse(r.out)["locks"].empty()) << r.out;
}

} // namespace
} // namespace modelmgr::test
