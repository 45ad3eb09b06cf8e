// `modelmgr cache rm|prune|verify|locks` on caches the binary filled from the hub emulator: rm refuses to
// delete off a terminal without -y, --dry-run changes nothing, rm of one revision keeps the other intact;
// prune --keep-under evicts what the config does not pin; verify finds a truncated and a flipped blob in
// one pass (exit 5) and --repair downloads exactly those files again; `rm -i` driven through a
// pseudo-terminal (larger repo first, the running total, Enter + y deletes exactly the ticked repo, q
// deletes nothing, no terminal is a usage error); --lock-timeout waiting for a lock held by a helper
// process until it lets go, and a lock file left by a killed process not blocking anything.

#include "support/hub_fixture.hpp"
#include "util/hash.hpp"
#include "util/size.hpp"

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

  // A lock file a download of the model left behind in .locks/.
  fs::path some_lock() const
  {
    for (const auto& e : fs::directory_iterator(cache / ".locks" / k_model)) {
      if (e.path().extension() == ".lock") {
        return e.path();
      }
    }
    return {};
  }

  // Pulls the model (without weights/) and the dataset: two repos of different sizes. Returns id → size.
  std::map<std::string, std::uint64_t> pull_two_repos()
  {
    EXPECT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
    EXPECT_EQ(mm({"pull", "test-org/tiny-dataset", "--repo-type", "dataset"}).exit_code, 0);
    std::map<std::string, std::uint64_t> sizes;
    const auto ls = nlohmann::json::parse(mm({"cache", "ls", "--json"}).out);
    for (const auto& r : ls["repos"]) {
      sizes[r["id"].get<std::string>()] = r["size_on_disk"].get<std::uint64_t>();
    }
    return sizes;
  }

  PtyProcess rm_interactive() const
  {
    return PtyProcess({modelmgr_binary(), "cache", "rm", "-i"}, env(), 24, 120);
  }

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

const std::string k_down = "\033[B";
const std::string k_dataset_id = "dataset/test-org/tiny-dataset";
const std::string k_model_id = "model/test-org/tiny-model";
const std::map<std::string, std::string> k_folder_of = {{k_dataset_id, "datasets--test-org--tiny-dataset"},
                                                        {k_model_id, k_model}};

TEST_F(CacheMaintTest, InteractiveRmListsLargestFirstAndDeletesExactlyTheTickedRepo)
{
  const auto sizes = pull_two_repos();
  ASSERT_EQ(sizes.size(), 2u);
  ASSERT_NE(sizes.at(k_dataset_id), sizes.at(k_model_id));
  const bool model_larger = sizes.at(k_model_id) > sizes.at(k_dataset_id);
  const std::string larger = model_larger ? k_model_id : k_dataset_id;
  const std::string smaller = model_larger ? k_dataset_id : k_model_id;
  const auto larger_before = list_tree(repo_dir(k_folder_of.at(larger)));

  auto p = rm_interactive();
  ASSERT_TRUE(p.wait_for("Will free " + util::format_size(0) + " of")) << p.output();
  const std::string first_frame = p.output();
  ASSERT_NE(first_frame.find(larger), std::string::npos) << first_frame;
  EXPECT_LT(first_frame.find(larger), first_frame.find(smaller)) << "largest first:\n" << first_frame;

  p.write(k_down);
  p.write(" ");
  ASSERT_TRUE(p.wait_for("Will free " + util::format_size(sizes.at(smaller)) + " of")) << p.unmatched();
  p.write("\r");
  ASSERT_TRUE(p.wait_for("Proceed? [y/N]")) << p.unmatched();
  p.write("y\r");
  const auto r = p.wait();
  EXPECT_EQ(r.exit_code, 0) << r.out;
  // The same plan as `cache rm` prints: the smaller repo, whole; the larger one is not in it.
  const std::string after_ui = r.out.substr(r.out.rfind("Will delete from"));
  EXPECT_THAT(after_ui, HasSubstr(smaller + ": whole repo"));
  EXPECT_THAT(after_ui, Not(HasSubstr(larger)));
  EXPECT_THAT(after_ui, HasSubstr("Deleted 1 item(s)"));
  EXPECT_FALSE(fs::exists(repo_dir(k_folder_of.at(smaller))));
  EXPECT_EQ(list_tree(repo_dir(k_folder_of.at(larger))), larger_before);
}

TEST_F(CacheMaintTest, InteractiveRmQuitDeletesNothingAndNeedsATerminal)
{
  const auto sizes = pull_two_repos();
  const auto before = list_tree(cache);
  {
    auto p = rm_interactive();
    ASSERT_TRUE(p.wait_for("Will free " + util::format_size(0) + " of")) << p.output();
    p.write("a"); // tick everything, then change one's mind
    ASSERT_TRUE(p.wait_for("Ticked: 2 repo(s)")) << p.unmatched();
    p.write("q");
    const auto r = p.wait();
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_THAT(r.out, HasSubstr("Nothing deleted."));
    EXPECT_THAT(r.out, Not(HasSubstr("Proceed?")));
    EXPECT_THAT(r.out, HasSubstr("\033[?25h")) << "the cursor is shown again";
  }
  EXPECT_EQ(list_tree(cache), before);

  const auto r = mm({"cache", "rm", "-i"}); // stdin /dev/null, stdout a pipe
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("needs a terminal"));
  EXPECT_THAT(r.err, HasSubstr("modelmgr cache rm REPO"));
  EXPECT_EQ(list_tree(cache), before);
}

TEST_F(CacheMaintTest, RmWithLockTimeoutWaitsForTheHolderThenDeletes)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  const fs::path lock = some_lock();
  ASSERT_FALSE(lock.empty());
  LockHolderChild holder(lock);
  ASSERT_TRUE(holder.locked());

  Process p({modelmgr_binary(), "cache", "rm", "test-org/tiny-model", "-y", "--lock-timeout", "600"}, env());
  ASSERT_TRUE(p.wait_for_output("(up to 600s)"));
  EXPECT_TRUE(fs::exists(repo_dir(k_model))) << "nothing is deleted while waiting";
  holder.release();
  const auto r = p.wait();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("waiting for " + lock.string() + ": held by pid " +
                               std::to_string(holder.pid()) + " on "));
  EXPECT_EQ(r.err.find("waiting for"), r.err.rfind("waiting for")) << "once per lock: " << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("Skipped")));
  EXPECT_FALSE(fs::exists(repo_dir(k_model)));
}

TEST_F(CacheMaintTest, LockLeftByAKilledProcessNeitherBlocksNorShowsAsHeld)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  const fs::path lock = some_lock();
  ASSERT_FALSE(lock.empty());
  {
    LockHolderChild holder(lock);
    ASSERT_TRUE(holder.locked());
    holder.kill();
  }
  ASSERT_THAT(read_file(lock), HasSubstr("pid=")) << "the dead holder's info stays in the file";

  auto r = mm({"cache", "locks", "--json"});
  EXPECT_TRUE(nlohmann::json::parse(r.out)["locks"].empty()) << r.out;
  r = mm({"cache", "rm", "test-org/tiny-model", "-y", "--lock-timeout", "600"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("waiting for")));
  EXPECT_THAT(r.out, Not(HasSubstr("Skipped")));
  EXPECT_FALSE(fs::exists(repo_dir(k_model)));
}

} // namespace
} // namespace modelmgr::test
