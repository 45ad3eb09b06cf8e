// cache::plan_prune / execute_plan (`modelmgr cache prune`) on hand-built caches: exactly which files remain
// after removing detached revisions, orphan blobs, old temp files and unheld lock files; young temp files
// and temp files whose download lock is held stay; pins keep detached revisions; --keep-under evicts the
// least recently accessed repos first and never one a config pins (a catalog's revision pin does not
// protect the repo).

#include "cache/delete.hpp"
#include "cache_builder.hpp"
#include "util/lock.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace modelmgr::cache {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::CacheBuilder;
using test::TempDir;
using test::write_file;
using ::testing::ElementsAre;

const std::string k_c1 = std::string(40, 'a');
const std::string k_c2 = std::string(40, 'b');
const std::string k_f = "models--org--name";

class PruneTest : public ::testing::Test {
protected:
  TempDir tmp;
  CacheBuilder cb{tmp.path() / "hub"};

  // main = c1 {a → e1, b → e2}; c2 detached {a → e3, b → e2}; orphan blob e9.
  void build_repo()
  {
    cb.blob(k_f, "e1", "1");
    cb.blob(k_f, "e2", "22");
    cb.blob(k_f, "e3", "333");
    cb.blob(k_f, "e9", "orphan");
    cb.link(k_f, k_c1, "a", "e1");
    cb.link(k_f, k_c1, "b", "e2");
    cb.link(k_f, k_c2, "a", "e3");
    cb.link(k_f, k_c2, "b", "e2");
    cb.ref(k_f, "main", k_c1);
  }
};

TEST_F(PruneTest, RemovesDetachedRevisionsOrphansOldTempsAndUnheldLocks)
{
  build_repo();
  const auto blobs = cb.repo(k_f) / "blobs";
  write_file(blobs / "e5.incomplete", "old python partial");
  write_file(blobs / "e6.modelmgr.incomplete", "young partial");
  write_file(blobs / "e7.modelmgr.incomplete", "old partial, download alive");
  write_file(cb.repo(k_f) / "snapshots" / k_c1 / ".x.0123abcd.tmp", "old link temp");
  CacheBuilder::age(blobs / "e5.incomplete", 48h);
  CacheBuilder::age(blobs / "e7.modelmgr.incomplete", 48h);
  CacheBuilder::age(cb.repo(k_f) / "snapshots" / k_c1 / ".x.0123abcd.tmp", 48h);
  cb.lock_file(k_f, "e1"); // left behind by a finished download
  const auto held_lock = cb.lock_file(k_f, "e7");

  util::FileLock holder(held_lock); // flock: held per open file description, so scan/prune see it held
  ASSERT_TRUE(holder.try_lock());

  const auto plan = plan_prune(scan_cache(cb.root()), PruneOptions{});
  ASSERT_EQ(plan.repos.size(), 1u);
  EXPECT_THAT(plan.repos[0].commits, ElementsAre(k_c2));
  EXPECT_THAT(plan.repos[0].reasons, ElementsAre("detached"));
  EXPECT_EQ(plan.repos[0].freed, 3u + 6u); // e3 and the orphan; e2 is shared with main
  const auto report = execute_plan(plan);
  EXPECT_TRUE(report.errors.empty());
  ASSERT_EQ(report.in_use.size(), 1u);
  EXPECT_EQ(report.in_use[0].path, blobs / "e7.modelmgr.incomplete");

  EXPECT_THAT(cb.files(), ElementsAre(".locks/" + k_f + "/e7.lock", k_f + "/blobs/e1", k_f + "/blobs/e2",
                                      k_f + "/blobs/e6.modelmgr.incomplete",
                                      k_f + "/blobs/e7.modelmgr.incomplete", k_f + "/refs/main",
                                      k_f + "/snapshots/" + k_c1 + "/a", k_f + "/snapshots/" + k_c1 + "/b"));
}

TEST_F(PruneTest, OlderThanZeroTakesYoungTempFilesToo)
{
  build_repo();
  write_file(cb.repo(k_f) / "blobs" / "e6.modelmgr.incomplete", "young partial");
  PruneOptions o;
  o.temp_older_than = 0s;
  execute_plan(plan_prune(scan_cache(cb.root()), o));
  EXPECT_FALSE(fs::exists(cb.repo(k_f) / "blobs" / "e6.modelmgr.incomplete"));
}

TEST_F(PruneTest, PinnedDetachedRevisionIsKept)
{
  build_repo();
  PruneOptions o;
  o.pins.push_back({RepoType::model, "org/name", k_c2.substr(0, 8)});
  const auto plan = plan_prune(scan_cache(cb.root()), o);
  ASSERT_EQ(plan.repos.size(), 1u);
  EXPECT_TRUE(plan.repos[0].commits.empty()); // only the orphan blob
  execute_plan(plan);
  EXPECT_TRUE(fs::exists(cb.repo(k_f) / "snapshots" / k_c2 / "a"));
  EXPECT_TRUE(fs::exists(cb.repo(k_f) / "blobs" / "e3"));
  EXPECT_FALSE(fs::exists(cb.repo(k_f) / "blobs" / "e9"));
}

TEST_F(PruneTest, KeepUnderEvictsLeastRecentlyUsedReposButNeverPinnedOnes)
{
  // Four 100-byte repos; a is the least recently accessed but pinned, then b, c, d.
  const std::vector<std::pair<std::string, std::chrono::hours>> repos = {
      {"a", 400h}, {"b", 300h}, {"c", 200h}, {"d", 100h}};
  for (const auto& [name, age] : repos) {
    const std::string f = "models--org--" + name;
    const auto blob = cb.blob(f, "e" + name, std::string(100, 'x'));
    cb.link(f, k_c1, "w.bin", "e" + name);
    cb.ref(f, "main", k_c1);
    CacheBuilder::age(blob, age);
  }
  PruneOptions o;
  o.keep_under = 250;
  o.pins.push_back({RepoType::model, "org/a", "main"});
  const auto plan = plan_prune(scan_cache(cb.root()), o);
  ASSERT_EQ(plan.repos.size(), 2u);
  EXPECT_EQ(plan.repos[0].display_id, "model/org/b");
  EXPECT_EQ(plan.repos[1].display_id, "model/org/c");
  EXPECT_TRUE(plan.repos[0].whole_repo);
  EXPECT_THAT(plan.repos[0].reasons, ElementsAre("least recently used"));
  EXPECT_EQ(plan.freed(), 200u);
  execute_plan(plan);
  EXPECT_THAT(cb.files(),
              ElementsAre("models--org--a/blobs/ea", "models--org--a/refs/main",
                          "models--org--a/snapshots/" + k_c1 + "/w.bin", "models--org--d/blobs/ed",
                          "models--org--d/refs/main", "models--org--d/snapshots/" + k_c1 + "/w.bin"));
}

TEST_F(PruneTest, ARevisionOnlyPinKeepsTheRevisionButNotTheRepoFromEviction)
{
  // A catalog model downloaded at its pinned commit: no ref, so detached. Its pin (keep_repo = false) keeps
  // the revision from the detached rule, but --keep-under may still evict the whole repo.
  const std::string f = "models--org--pinned";
  cb.blob(f, "e1", std::string(100, 'x'));
  cb.link(f, k_c2, "w.gguf", "e1");
  PruneOptions o;
  o.pins.push_back({RepoType::model, "org/pinned", k_c2, false});
  EXPECT_TRUE(plan_prune(scan_cache(cb.root()), o).repos.empty());
  o.keep_under = 50;
  const auto plan = plan_prune(scan_cache(cb.root()), o);
  ASSERT_EQ(plan.repos.size(), 1u);
  EXPECT_TRUE(plan.repos[0].whole_repo);
  EXPECT_THAT(plan.repos[0].reasons, ElementsAre("least recently used"));
}

TEST_F(PruneTest, KeepUnderCountsWhatDetachedRevisionsAlreadyFree)
{
  build_repo(); // 1 + 2 + 3 bytes referenced; pruning c2 frees 3
  PruneOptions o;
  o.keep_under = 3;
  const auto plan = plan_prune(scan_cache(cb.root()), o);
  ASSERT_EQ(plan.repos.size(), 1u);
  EXPECT_FALSE(plan.repos[0].whole_repo);
}

} // namespace
} // namespace modelmgr::cache
