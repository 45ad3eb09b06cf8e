// cache::plan_delete / execute_plan (`modelmgr cache rm`) on hand-built caches: exactly which files remain
// after deleting one revision (a blob shared with a kept revision stays), every revision (the folder goes),
// short commits and ref names as targets, errors that list what exists, and a blob whose download lock is
// held by another process (a forked child, sequenced with pipes) being skipped, not deleted; with a lock
// timeout, waited for (and deleted once released) or reported with its holder when the wait runs out; a
// lock whose holder was killed is free; emptied refs/pr/ folders go with their last ref.

#include "modelmgr/errors.hpp"

#include "cache/delete.hpp"
#include "cache_builder.hpp"
#include "util/lock.hpp"

#include <atomic>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace modelmgr::cache {
namespace {

namespace fs = std::filesystem;
using test::CacheBuilder;
using test::TempDir;
using test::write_file;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string k_c1 = std::string(40, 'a');
const std::string k_c2 = std::string(40, 'b');
const std::string k_folder = "models--org--name";
const std::string k_other = "models--org--other";

class DeleteTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    // org/name: main = c1 {config.json → e1, tok/t.json → e2}; v1.0 = c2 {config.json → e3, tok/t.json → e2}.
    cb.blob(k_folder, "e1", "config one");
    cb.blob(k_folder, "e2", "shared tokenizer");
    cb.blob(k_folder, "e3", "config two, longer");
    cb.link(k_folder, k_c1, "config.json", "e1");
    cb.link(k_folder, k_c1, "tok/t.json", "e2");
    cb.link(k_folder, k_c2, "config.json", "e3");
    cb.link(k_folder, k_c2, "tok/t.json", "e2");
    cb.ref(k_folder, "main", k_c1);
    cb.ref(k_folder, "v1.0", k_c2);
    cb.ref(k_folder, "refs/pr/1", k_c2);
    write_file(cb.repo(k_folder) / ".no_exist" / k_c2 / "missing.bin", "");
    cb.lock_file(k_folder, "e3");
    // org/other: one revision.
    cb.blob(k_other, "f1", "other");
    cb.link(k_other, k_c1, "model.bin", "f1");
    cb.ref(k_other, "main", k_c1);
  }

  DeletePlan plan(const std::vector<std::string>& targets)
  {
    std::vector<DeleteTarget> t;
    for (const auto& s : targets) {
      t.push_back(parse_delete_target(s, RepoType::model));
    }
    return plan_delete(scan_cache(cb.root()), t);
  }

  std::vector<std::string> other_repo_files() const
  {
    return {".locks/" + k_folder + "/e3.lock", k_other + "/blobs/f1", k_other + "/refs/main",
            k_other + "/snapshots/" + k_c1 + "/model.bin"};
  }

  TempDir tmp;
  CacheBuilder cb{tmp.path() / "hub"};
};

TEST_F(DeleteTest, OneRevisionKeepsTheBlobSharedWithAKeptRevision)
{
  const auto p = plan({"org/name@v1.0"});
  ASSERT_EQ(p.repos.size(), 1u);
  const auto& d = p.repos[0];
  EXPECT_FALSE(d.whole_repo);
  EXPECT_THAT(d.commits, ElementsAre(k_c2));
  EXPECT_EQ(d.freed, std::string("config two, longer").size()); // e2 is shared: not freed
  ASSERT_EQ(d.blobs.size(), 1u);
  EXPECT_EQ(d.blobs[0].etag, "e3");

  const auto report = execute_plan(p);
  EXPECT_TRUE(report.in_use.empty());
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(report.freed, d.freed);
  std::vector<std::string> expected = {k_folder + "/.no_exist/" + k_c2 + "/missing.bin",
                                       k_folder + "/blobs/e1",
                                       k_folder + "/blobs/e2",
                                       k_folder + "/refs/main",
                                       k_folder + "/snapshots/" + k_c1 + "/config.json",
                                       k_folder + "/snapshots/" + k_c1 + "/tok/t.json"};
  auto others = other_repo_files();
  expected.insert(expected.end(), others.begin(), others.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(cb.files(), expected);
}

TEST_F(DeleteTest, EveryRevisionDeletesTheRepoFolderButNotItsLocks)
{
  const auto p = plan({"org/name@main", "org/name@" + k_c2.substr(0, 7)});
  ASSERT_EQ(p.repos.size(), 1u);
  EXPECT_TRUE(p.repos[0].whole_repo);
  const auto report = execute_plan(p);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_FALSE(fs::exists(cb.repo(k_folder)));
  EXPECT_EQ(cb.files(), other_repo_files());
}

TEST_F(DeleteTest, RepoWithoutRevisionDeletesTheFolder)
{
  const auto p = plan({"org/name"});
  ASSERT_EQ(p.repos.size(), 1u);
  EXPECT_TRUE(p.repos[0].whole_repo);
  EXPECT_EQ(p.repos[0].freed, 10u + 16u + 18u);
  execute_plan(p);
  EXPECT_EQ(cb.files(), other_repo_files());
}

TEST_F(DeleteTest, RefNamesWithSlashAndShortCommitsResolve)
{
  EXPECT_THAT(plan({"org/name@refs/pr/1"}).repos.at(0).commits, ElementsAre(k_c2));
  EXPECT_THAT(plan({"org/name@bbbb"}).repos.at(0).commits, ElementsAre(k_c2));
  EXPECT_THAT(plan({"org/name@" + k_c1}).repos.at(0).commits, ElementsAre(k_c1));
  // Deleting c2 also deletes both refs naming it.
  const auto p = plan({"org/name@" + k_c2});
  EXPECT_EQ(p.repos.at(0).refs.size(), 2u);
}

TEST_F(DeleteTest, UnknownTargetsAreErrorsListingWhatExists)
{
  const auto before = cb.files();
  try {
    plan({"org/nope"});
    FAIL() << "expected MissingModelError";
  } catch (const MissingModelError& e) {
    EXPECT_THAT(e.what(), HasSubstr("model/org/nope"));
    EXPECT_THAT(e.hint(), HasSubstr("model/org/name"));
    EXPECT_THAT(e.hint(), HasSubstr("model/org/other"));
  }
  try {
    plan({"org/name@v9"});
    FAIL() << "expected MissingModelError";
  } catch (const MissingModelError& e) {
    EXPECT_THAT(e.what(), HasSubstr("'v9'"));
    EXPECT_THAT(e.hint(), HasSubstr(k_c1 + " (main)"));
    EXPECT_THAT(e.hint(), HasSubstr(k_c2 + " (refs/pr/1, v1.0)"));
  }
  EXPECT_THROW(parse_delete_target("org/name@", RepoType::model), ConfigurationError);
  EXPECT_THROW(parse_delete_target("bad--id", RepoType::model), ConfigurationError);
  // A dataset of the same name is another repo.
  EXPECT_THROW(plan_delete(scan_cache(cb.root()), {parse_delete_target("org/name", RepoType::dataset)}),
               MissingModelError);
  EXPECT_EQ(cb.files(), before); // nothing touched
}

TEST_F(DeleteTest, BlobWhoseLockIsHeldIsSkippedAndReported)
{
  const auto p = plan({"org/name@v1.0"});
  test::LockHolderChild holder(cb.root() / ".locks" / k_folder / "e3.lock");
  ASSERT_TRUE(holder.locked());
  const auto report = execute_plan(p);
  ASSERT_EQ(report.in_use.size(), 1u);
  EXPECT_EQ(report.in_use[0].path, cb.repo(k_folder) / "blobs" / "e3");
  EXPECT_THAT(report.in_use[0].reason, HasSubstr("in use"));
  EXPECT_EQ(report.freed, 0u);
  EXPECT_TRUE(fs::exists(cb.repo(k_folder) / "blobs" / "e3"));
  // The snapshot and its refs are gone all the same: the downloader re-links what it needs.
  EXPECT_FALSE(fs::exists(cb.repo(k_folder) / "snapshots" / k_c2));
  EXPECT_FALSE(fs::exists(cb.repo(k_folder) / "refs" / "v1.0"));
}

TEST_F(DeleteTest, WholeRepoWithAHeldLockIsDeletedPieceByPieceAroundIt)
{
  write_file(cb.repo(k_folder) / "blobs" / "e4.incomplete", "partial");
  const auto p = plan({"org/name"});
  test::LockHolderChild holder(cb.root() / ".locks" / k_folder / "e3.lock");
  ASSERT_TRUE(holder.locked());
  const auto report = execute_plan(p);
  ASSERT_EQ(report.in_use.size(), 1u);
  std::vector<std::string> expected = {k_folder + "/.no_exist/" + k_c2 + "/missing.bin",
                                       k_folder + "/blobs/e3", k_folder + "/blobs/e4.incomplete"};
  auto others = other_repo_files();
  expected.insert(expected.end(), others.begin(), others.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(cb.files(), expected);
}

TEST_F(DeleteTest, RefSubfoldersLeftEmptyAreRemovedOthersStay)
{
  cb.ref(k_folder, "refs/pr/2", k_c1); // keeps refs/refs/pr/ non-empty until main's revision goes too
  auto report = execute_plan(plan({"org/name@v1.0"}));
  EXPECT_TRUE(report.errors.empty());
  EXPECT_FALSE(fs::exists(cb.repo(k_folder) / "refs" / "refs" / "pr" / "1"));
  EXPECT_TRUE(fs::exists(cb.repo(k_folder) / "refs" / "refs" / "pr" / "2"));

  write_file(cb.repo(k_other) / "refs" / "refs" / "pr" / "7", k_c1);
  cb.link(k_other, k_c2, "model.bin", "f1");
  cb.ref(k_other, "refs/pr/8", k_c2);
  report = execute_plan(plan({"org/other@" + k_c2}));
  EXPECT_TRUE(report.errors.empty());
  EXPECT_TRUE(fs::exists(cb.repo(k_other) / "refs" / "refs" / "pr" / "7")); // not empty: stays
  EXPECT_FALSE(fs::exists(cb.repo(k_other) / "refs" / "refs" / "pr" / "8"));

  fs::remove(cb.repo(k_other) / "refs" / "refs" / "pr" / "7");
  cb.link(k_other, k_c2, "model.bin", "f1");
  cb.ref(k_other, "refs/pr/8", k_c2);
  report = execute_plan(plan({"org/other@" + k_c2}));
  EXPECT_FALSE(fs::exists(cb.repo(k_other) / "refs" / "refs")); // emptied: gone, up to refs/
  EXPECT_TRUE(fs::exists(cb.repo(k_other) / "refs" / "main"));
}

TEST_F(DeleteTest, HeldLockIsWaitedForAndTheBlobDeletedOnceReleased)
{
  const auto p = plan({"org/name@v1.0"});
  const fs::path lock = cb.root() / ".locks" / k_folder / "e3.lock";
  test::LockHolderChild holder(lock);
  ASSERT_TRUE(holder.locked());
  ExecuteOptions o;
  o.lock_timeout = std::chrono::minutes(5); // never reached: the holder lets go on the first wait report
  std::vector<std::pair<fs::path, long>> waits;
  o.on_wait = [&](const fs::path& path, const std::optional<util::LockHolder>& who,
                  std::chrono::milliseconds) {
    waits.emplace_back(path, who ? who->pid : 0);
    holder.release();
  };
  const auto report = execute_plan(p, o);
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(waits[0].first, lock);
  EXPECT_EQ(waits[0].second, holder.pid());
  EXPECT_TRUE(report.in_use.empty());
  EXPECT_FALSE(report.timed_out);
  EXPECT_FALSE(fs::exists(cb.repo(k_folder) / "blobs" / "e3"));
  EXPECT_EQ(report.freed, p.freed());
}

TEST_F(DeleteTest, LockStillHeldAfterTheTimeoutIsReportedWithItsHolder)
{
  const auto p = plan({"org/name"}); // whole repo: waited for once, then piecewise without a second wait
  test::LockHolderChild holder(cb.root() / ".locks" / k_folder / "e3.lock");
  ASSERT_TRUE(holder.locked());
  ExecuteOptions o;
  o.lock_timeout = std::chrono::milliseconds(1);
  std::size_t wait_calls = 0;
  o.on_wait = [&](const fs::path&, const std::optional<util::LockHolder>&, std::chrono::milliseconds) {
    ++wait_calls;
  };
  const auto report = execute_plan(p, o);
  EXPECT_TRUE(report.timed_out);
  EXPECT_GE(wait_calls, 1u);
  ASSERT_EQ(report.in_use.size(), 1u);
  EXPECT_EQ(report.in_use[0].path, cb.repo(k_folder) / "blobs" / "e3");
  EXPECT_THAT(report.in_use[0].reason, HasSubstr("pid " + std::to_string(holder.pid())));
  EXPECT_THAT(report.in_use[0].reason, HasSubstr("still held after waiting"));
  EXPECT_TRUE(fs::exists(cb.repo(k_folder) / "blobs" / "e3"));
  EXPECT_FALSE(fs::exists(cb.repo(k_folder) / "blobs" / "e1"));
}

TEST_F(DeleteTest, CancelStopsWaitingAndALockOfADeadHolderIsFree)
{
  const auto p = plan({"org/name@v1.0"});
  const fs::path lock = cb.root() / ".locks" / k_folder / "e3.lock";
  {
    test::LockHolderChild holder(lock);
    ASSERT_TRUE(holder.locked());
    std::atomic<bool> cancel{true};
    ExecuteOptions o;
    o.lock_timeout = std::chrono::minutes(5);
    o.cancel = &cancel;
    const auto report = execute_plan(p, o);
    ASSERT_EQ(report.in_use.size(), 1u);
    EXPECT_FALSE(report.timed_out);
    // Killed: the flock dies with the process, the holder info it wrote stays in the file.
    holder.kill();
  }
  ASSERT_TRUE(util::read_holder(lock).has_value());
  ExecuteOptions o;
  o.lock_timeout = std::chrono::minutes(5);
  o.on_wait = [](const fs::path& path, const std::optional<util::LockHolder>&, std::chrono::milliseconds) {
    ADD_FAILURE() << "waited for " << path << " whose holder is dead";
  };
  const auto report = execute_plan(p, o); // the rest of the plan: the blob left behind
  EXPECT_TRUE(report.in_use.empty());
  EXPECT_FALSE(fs::exists(cb.repo(k_folder) / "blobs" / "e3"));
}

} // namespace
} // namespace modelmgr::cache
