// cache::scan_cache on hand-built caches: the layout Python writes, deduplicated sizes, nested refs, a
// symlink-less cache, and one test per problem kind (each must be reported without hiding the rest of the
// repo), plus filter/sort parsing.

#include "modelmgr/errors.hpp"

#include "cache/scan.hpp"
#include "support/test_util.hpp"
#include "util/lock.hpp"

#include <algorithm>

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

namespace modelmgr::cache {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::TempDir;
using test::write_file;

const std::string k_c1 = std::string(40, 'a');
const std::string k_c2 = std::string(40, 'b');
const std::string k_c3 = std::string(40, 'c');

// Builds repo folders the way huggingface_hub does (§4.3): blobs, relative links, refs without newline.
class CacheBuilder {
public:
  explicit CacheBuilder(fs::path root) : m_root(std::move(root)) { fs::create_directories(m_root); }

  fs::path repo(const std::string& folder) const { return m_root / folder; }

  fs::path blob(const std::string& folder, const std::string& etag, const std::string& content) const
  {
    const fs::path p = repo(folder) / "blobs" / etag;
    fs::create_directories(p.parent_path());
    write_file(p, content);
    return p;
  }

  // snapshots/<commit>/<path> → ../../(../ per folder)blobs/<etag>
  fs::path link(const std::string& folder, const std::string& commit, const std::string& path,
                const std::string& etag) const
  {
    const fs::path p = repo(folder) / "snapshots" / commit / path;
    fs::create_directories(p.parent_path());
    std::string target = "../../";
    for (auto c : path) {
      if (c == '/') {
        target += "../";
      }
    }
    fs::create_symlink(target + "blobs/" + etag, p);
    return p;
  }

  void ref(const std::string& folder, const std::string& name, const std::string& commit) const
  {
    const fs::path p = repo(folder) / "refs" / name;
    fs::create_directories(p.parent_path());
    write_file(p, commit);
  }

  const fs::path& root() const { return m_root; }

private:
  fs::path m_root;
};

class ScanTest : public ::testing::Test {
protected:
  TempDir tmp;
  CacheBuilder cb{tmp.path() / "hub"};

  std::vector<CacheProblem> problems_of(const CacheInfo& info, ProblemKind kind)
  {
    std::vector<CacheProblem> out;
    std::copy_if(info.problems.begin(), info.problems.end(), std::back_inserter(out),
                 [&](const CacheProblem& p) { return p.kind == kind; });
    return out;
  }
  static const CachedRevision* revision(const CachedRepo& repo, const std::string& commit)
  {
    for (const auto& r : repo.revisions) {
      if (r.commit == commit) {
        return &r;
      }
    }
    return nullptr;
  }
  static std::string describe(const CacheInfo& info)
  {
    std::string s;
    for (const auto& p : info.problems) {
      s += std::string(to_string(p.kind)) + " " + p.path.string() + ": " + p.message + "\n";
    }
    return s;
  }
};

TEST_F(ScanTest, MissingRootIsAnEmptyCache)
{
  const auto info = scan_cache(tmp.path() / "nope");
  EXPECT_FALSE(info.exists);
  EXPECT_TRUE(info.repos.empty());
  EXPECT_TRUE(info.problems.empty());
}

TEST_F(ScanTest, PythonWrittenCacheWithSharedBlobCountedOnce)
{
  const std::string f = "models--org--name";
  write_file(cb.root() / "CACHEDIR.TAG", std::string(k_cachedir_tag));
  write_file(cb.root() / "version.txt", "1");
  write_file(cb.root() / ".DS_Store", "x");
  // config.json differs between the commits; the tokenizer blob is shared.
  cb.blob(f, "e1", std::string(100, 'x'));  // config @c1
  cb.blob(f, "e2", std::string(200, 'y'));  // config @c2
  cb.blob(f, "e3", std::string(1000, 'z')); // tokenizer @c1 and @c2
  cb.blob(f, "e4", std::string(7, 'w'));    // sub/dir/deep.txt @c2
  cb.link(f, k_c1, "config.json", "e1");
  cb.link(f, k_c1, "tokenizer.json", "e3");
  cb.link(f, k_c2, "config.json", "e2");
  cb.link(f, k_c2, "tokenizer.json", "e3");
  cb.link(f, k_c2, "sub/dir/deep.txt", "e4");
  cb.ref(f, "main", k_c2);
  cb.ref(f, "v1.0", k_c1);
  fs::create_directories(cb.repo(f) / ".no_exist" / k_c2);
  write_file(cb.repo(f) / ".no_exist" / k_c2 / "missing.bin", "");
  fs::create_directories(cb.repo(f) / "trees");
  write_file(cb.repo(f) / "trees" / (k_c2 + ".json"), "{}");

  const auto info = scan_cache(cb.root());
  EXPECT_TRUE(info.exists);
  EXPECT_TRUE(info.problems.empty()) << describe(info);
  ASSERT_EQ(info.repos.size(), 1u);
  const auto& repo = info.repos[0];
  EXPECT_EQ(repo.repo_id, "org/name");
  EXPECT_EQ(repo.type, RepoType::model);
  EXPECT_EQ(repo.display_id(), "model/org/name");
  EXPECT_EQ(repo.path, cb.repo(f));
  EXPECT_EQ(repo.size_on_disk, 100u + 200u + 1000u + 7u);
  EXPECT_EQ(repo.nb_files, 4u);
  EXPECT_EQ(info.size_on_disk, repo.size_on_disk);
  EXPECT_EQ(info.revision_count(), 2u);
  EXPECT_EQ(repo.refs, (std::map<std::string, std::string>{{"main", k_c2}, {"v1.0", k_c1}}));

  const auto* r1 = revision(repo, k_c1);
  const auto* r2 = revision(repo, k_c2);
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->size_on_disk, 1100u);
  EXPECT_EQ(r1->nb_files, 2u);
  EXPECT_EQ(r1->refs, std::vector<std::string>{"v1.0"});
  EXPECT_EQ(r2->size_on_disk, 1207u);
  EXPECT_EQ(r2->nb_files, 3u);
  EXPECT_EQ(r2->refs, std::vector<std::string>{"main"});
  ASSERT_EQ(r2->files.size(), 3u);
  EXPECT_EQ(r2->files[0].path, "config.json");
  EXPECT_EQ(r2->files[1].path, "sub/dir/deep.txt");
  EXPECT_EQ(r2->files[1].blob_path, cb.repo(f) / "blobs" / "e4");
  EXPECT_EQ(r2->files[1].size, 7u);
}

TEST_F(ScanTest, TwoLinksToOneBlobInOneRevisionCountOnce)
{
  const std::string f = "models--dup";
  cb.blob(f, "e", std::string(50, 'a'));
  cb.link(f, k_c1, "a.bin", "e");
  cb.link(f, k_c1, "b/a.bin", "e");
  const auto info = scan_cache(cb.root());
  ASSERT_EQ(info.repos.size(), 1u);
  EXPECT_EQ(info.repos[0].revisions[0].files.size(), 2u);
  EXPECT_EQ(info.repos[0].revisions[0].size_on_disk, 50u);
  EXPECT_EQ(info.repos[0].revisions[0].nb_files, 1u);
  EXPECT_EQ(info.repos[0].size_on_disk, 50u);
}

TEST_F(ScanTest, NestedRefsAndTrimmedContent)
{
  const std::string f = "datasets--org--data";
  cb.blob(f, "e", "x");
  cb.link(f, k_c1, "a", "e");
  cb.link(f, k_c2, "a", "e");
  cb.ref(f, "refs/pr/1", k_c1);
  cb.ref(f, "feature/x", k_c2 + "\n"); // Python would choke on the newline; hf-hub trims, so do we
  const auto info = scan_cache(cb.root());
  EXPECT_TRUE(info.problems.empty()) << describe(info);
  ASSERT_EQ(info.repos.size(), 1u);
  const auto& repo = info.repos[0];
  EXPECT_EQ(repo.type, RepoType::dataset);
  EXPECT_EQ(repo.display_id(), "dataset/org/data");
  EXPECT_EQ(repo.refs.at("refs/pr/1"), k_c1);
  EXPECT_EQ(repo.refs.at("feature/x"), k_c2);
  EXPECT_EQ(revision(repo, k_c1)->refs, std::vector<std::string>{"refs/pr/1"});
  EXPECT_EQ(revision(repo, k_c2)->refs, std::vector<std::string>{"feature/x"});
}

TEST_F(ScanTest, BrokenSymlinkIsReportedAndTheRestOfTheRepoIsKept)
{
  const std::string f = "models--org--broken";
  cb.blob(f, "good", std::string(10, 'g'));
  cb.link(f, k_c1, "good.txt", "good");
  cb.link(f, k_c1, "gone.txt", "missing-etag");
  cb.link(f, k_c2, "good.txt", "good");
  cb.ref(f, "main", k_c1);
  const auto info = scan_cache(cb.root());
  const auto broken = problems_of(info, ProblemKind::broken_symlink);
  ASSERT_EQ(broken.size(), 1u) << describe(info);
  EXPECT_EQ(broken[0].path, cb.repo(f) / "snapshots" / k_c1 / "gone.txt");
  EXPECT_EQ(broken[0].repo, f);
  EXPECT_EQ(info.problems.size(), 1u) << describe(info);
  ASSERT_EQ(info.repos.size(), 1u);
  EXPECT_EQ(info.repos[0].revisions.size(), 2u);
  EXPECT_EQ(revision(info.repos[0], k_c1)->files.size(), 1u);
  EXPECT_EQ(info.repos[0].size_on_disk, 10u);
}

TEST_F(ScanTest, RefToMissingSnapshotIsReportedUnlessNoExistExplainsIt)
{
  const std::string f = "models--r";
  cb.blob(f, "e", "x");
  cb.link(f, k_c1, "a", "e");
  cb.ref(f, "main", k_c1);
  cb.ref(f, "stale", k_c2);
  cb.ref(f, "probed", k_c3);
  // Python writes refs/<rev> with .no_exist/<commit>/<file> when a file is absent at that commit.
  fs::create_directories(cb.repo(f) / ".no_exist" / k_c3);
  const auto info = scan_cache(cb.root());
  const auto missing = problems_of(info, ProblemKind::missing_snapshot);
  ASSERT_EQ(missing.size(), 1u) << describe(info);
  EXPECT_EQ(missing[0].path, cb.repo(f) / "refs" / "stale");
  EXPECT_THAT(missing[0].message, ::testing::HasSubstr(k_c2));
  EXPECT_EQ(info.repos[0].refs.at("stale"), k_c2);
  EXPECT_EQ(info.repos[0].revisions.size(), 1u);
}

TEST_F(ScanTest, BadRefContentIsReported)
{
  const std::string f = "models--r";
  cb.blob(f, "e", "x");
  cb.link(f, k_c1, "a", "e");
  cb.ref(f, "main", "not a commit");
  const auto info = scan_cache(cb.root());
  ASSERT_EQ(problems_of(info, ProblemKind::bad_ref).size(), 1u) << describe(info);
  EXPECT_TRUE(info.repos[0].refs.empty());
}

TEST_F(ScanTest, OrphanBlobIsReportedWithItsSizeAndNotCounted)
{
  const std::string f = "models--o";
  cb.blob(f, "used", std::string(3, 'u'));
  cb.blob(f, "orphan", std::string(42, 'o'));
  cb.link(f, k_c1, "a", "used");
  const auto info = scan_cache(cb.root());
  const auto orphans = problems_of(info, ProblemKind::orphan_blob);
  ASSERT_EQ(orphans.size(), 1u) << describe(info);
  EXPECT_EQ(orphans[0].path, cb.repo(f) / "blobs" / "orphan");
  EXPECT_EQ(orphans[0].size, 42u);
  EXPECT_EQ(info.repos[0].size_on_disk, 3u);
}

TEST_F(ScanTest, LeftoverTempFilesAreReported)
{
  const std::string f = "models--t";
  cb.blob(f, "e", "x");
  cb.link(f, k_c1, "a", "e");
  cb.ref(f, "main", k_c1);
  cb.blob(f, "python.incomplete", std::string(5, 'p'));
  cb.blob(f, "e2.modelmgr.incomplete", std::string(6, 'm'));
  cb.blob(f, "e2.modelmgr.state.incomplete", "{}");
  write_file(cb.repo(f) / "snapshots" / k_c1 / ".a.0123abcd.tmp", "");
  write_file(cb.repo(f) / "refs" / "main.89abcdef.tmp", k_c1);
  const auto info = scan_cache(cb.root());
  const auto temps = problems_of(info, ProblemKind::temp_file);
  EXPECT_EQ(temps.size(), 5u) << describe(info);
  EXPECT_EQ(info.problems.size(), 5u) << describe(info);
  std::uint64_t bytes = 0;
  for (const auto& p : temps) {
    bytes += p.size;
  }
  EXPECT_EQ(bytes, 5u + 6u + 2u + 40u);
  // Temp names never show up as files, refs or blobs.
  EXPECT_EQ(info.repos[0].revisions[0].files.size(), 1u);
  EXPECT_EQ(info.repos[0].refs.size(), 1u);
  EXPECT_EQ(info.repos[0].size_on_disk, 1u);
}

TEST_F(ScanTest, UnheldLockIsStaleHeldLockIsNot)
{
  const std::string f = "models--l";
  cb.blob(f, "e", "x");
  cb.link(f, k_c1, "a", "e");
  const fs::path stale = cb.root() / ".locks" / f / "e.lock";
  const fs::path held = cb.root() / ".locks" / f / "other.lock";
  fs::create_directories(stale.parent_path());
  write_file(stale, "");
  util::FileLock lock(held);
  ASSERT_TRUE(lock.try_lock());
  const auto info = scan_cache(cb.root());
  const auto locks = problems_of(info, ProblemKind::stale_lock);
  ASSERT_EQ(locks.size(), 1u) << describe(info);
  EXPECT_EQ(locks[0].path, stale);
  EXPECT_EQ(locks[0].repo, f);
  // Scanning deletes nothing and leaves the holder's lock intact.
  EXPECT_TRUE(fs::exists(stale));
  EXPECT_TRUE(lock.is_locked());
  util::FileLock again(held);
  EXPECT_FALSE(again.try_lock());
}

TEST_F(ScanTest, NonDirectoriesAndUnparseableNamesAreReported)
{
  const std::string f = "models--n";
  cb.blob(f, "e", "x");
  cb.link(f, k_c1, "a", "e");
  write_file(cb.root() / "stray.txt", "x");
  write_file(cb.repo(f) / "snapshots" / "not-a-commit-dir", "x");
  fs::create_directories(cb.root() / "kernels--org--k");
  fs::create_directories(cb.root() / "random");
  fs::create_directories(cb.root() / "models--");
  const auto info = scan_cache(cb.root());
  EXPECT_EQ(problems_of(info, ProblemKind::not_a_directory).size(), 2u) << describe(info);
  EXPECT_EQ(problems_of(info, ProblemKind::bad_folder_name).size(), 3u) << describe(info);
  ASSERT_EQ(info.repos.size(), 1u);
  EXPECT_EQ(info.repos[0].revisions.size(), 1u);
}

TEST_F(ScanTest, RepoWithoutSnapshotsIsBadLayoutAndItsBlobsAreOrphans)
{
  const std::string f = "models--nosnap";
  cb.blob(f, "e", "xyz");
  const auto info = scan_cache(cb.root());
  EXPECT_EQ(problems_of(info, ProblemKind::bad_layout).size(), 1u) << describe(info);
  EXPECT_EQ(problems_of(info, ProblemKind::orphan_blob).size(), 1u) << describe(info);
  ASSERT_EQ(info.repos.size(), 1u);
  EXPECT_EQ(info.repos[0].size_on_disk, 0u);
}

TEST_F(ScanTest, SymlinkLessCacheCountsEachRegularFileAsItsOwnBlob)
{
  const std::string f = "models--org--copies";
  for (const auto& c : {k_c1, k_c2}) {
    fs::create_directories(cb.repo(f) / "snapshots" / c / "sub");
    write_file(cb.repo(f) / "snapshots" / c / "config.json", std::string(10, 'c'));
    write_file(cb.repo(f) / "snapshots" / c / "sub" / "w.bin", std::string(90, 'w'));
  }
  fs::create_directories(cb.repo(f) / "blobs"); // empty: blobs were moved into the snapshot
  cb.ref(f, "main", k_c2);
  const auto info = scan_cache(cb.root());
  EXPECT_TRUE(info.problems.empty()) << describe(info);
  ASSERT_EQ(info.repos.size(), 1u);
  // Copies are distinct files on disk, so both revisions count.
  EXPECT_EQ(info.repos[0].size_on_disk, 200u);
  EXPECT_EQ(info.repos[0].nb_files, 4u);
  const auto* r = revision(info.repos[0], k_c2);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size_on_disk, 100u);
  ASSERT_EQ(r->files.size(), 2u);
  EXPECT_EQ(r->files[1].path, "sub/w.bin");
  EXPECT_EQ(r->files[1].blob_path, r->files[1].file_path);
}

TEST_F(ScanTest, TimesAreTheLatestBlobTimesOrTheRepoDirWithoutBlobs)
{
  const std::string f = "models--times";
  const auto b1 = cb.blob(f, "e1", "1");
  const auto b2 = cb.blob(f, "e2", "2");
  cb.link(f, k_c1, "a", "e1");
  cb.link(f, k_c1, "b", "e2");
  const auto set_times = [](const fs::path& p, std::time_t atime, std::time_t mtime) {
    const timespec ts[2] = {{atime, 0}, {mtime, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, 0), 0);
  };
  set_times(b1, 1'000'000'000, 1'000'000'500);
  set_times(b2, 1'000'000'900, 1'000'000'100);
  fs::create_directories(cb.repo("models--empty") / "snapshots" / k_c1);
  const auto info = scan_cache(cb.root());
  ASSERT_EQ(info.repos.size(), 2u);
  const auto& repo = info.repos[1].folder == f ? info.repos[1] : info.repos[0];
  EXPECT_EQ(util::to_unix_seconds(repo.last_accessed), 1'000'000'900.0);
  EXPECT_EQ(util::to_unix_seconds(repo.last_modified), 1'000'000'500.0);
  EXPECT_EQ(util::to_unix_seconds(repo.revisions[0].last_modified), 1'000'000'500.0);
  const auto& empty = info.repos[1].folder == f ? info.repos[0] : info.repos[1];
  EXPECT_EQ(empty.size_on_disk, 0u);
  EXPECT_GT(util::to_unix_seconds(empty.last_modified), 1'600'000'000.0);
}

TEST_F(ScanTest, TrailingSlashOrDotsInTheRootStillResolveLinksLexically)
{
  const std::string f = "models--slash";
  cb.blob(f, "e", "abc");
  cb.link(f, k_c1, "a", "e");
  const auto info = scan_cache(fs::path(cb.root().string() + "/"));
  EXPECT_TRUE(info.problems.empty()) << describe(info);
  EXPECT_EQ(info.repos.at(0).size_on_disk, 3u);
  const auto info2 = scan_cache(cb.root() / ".." / "hub");
  EXPECT_TRUE(info2.problems.empty()) << describe(info2);
  EXPECT_EQ(info2.repos.at(0).size_on_disk, 3u);
}

TEST_F(ScanTest, LinkTargetsInAnyFormResolveToTheListedBlob)
{
  // The scan resolves "../../blobs/<etag>" textually; every other spelling must give the same answer.
  const std::string f = "models--forms";
  const auto blob = cb.blob(f, "e", "12345");
  cb.link(f, k_c1, "usual", "e");
  const fs::path snap = cb.repo(f) / "snapshots" / k_c1;
  fs::create_symlink("./../../blobs/e", snap / "dotted");
  fs::create_symlink(blob, snap / "absolute");
  fs::create_symlink("usual", snap / "to_link");
  fs::create_symlink("../../../blobs/e", snap / "wrong_depth");
  const auto info = scan_cache(cb.root());
  const auto broken = problems_of(info, ProblemKind::broken_symlink);
  ASSERT_EQ(broken.size(), 1u) << describe(info);
  EXPECT_EQ(broken[0].path, snap / "wrong_depth");
  EXPECT_EQ(info.problems.size(), 1u) << describe(info); // in particular, no orphan blob
  const auto& rev = info.repos.at(0).revisions.at(0);
  ASSERT_EQ(rev.files.size(), 4u);
  for (const auto& file : rev.files) {
    EXPECT_EQ(file.size, 5u) << file.path;
    if (file.path != "to_link") {
      EXPECT_EQ(file.blob_path, blob) << file.path;
    }
  }
  EXPECT_EQ(rev.nb_files, 1u);
  EXPECT_EQ(info.repos[0].size_on_disk, 5u);
}

TEST_F(ScanTest, LocksAreProbedOnlyWhenAsked)
{
  const std::string f = "models--locks";
  cb.blob(f, "e", "x");
  cb.link(f, k_c1, "a", "e");
  write_file(cb.repo(f) / "blobs" / "e.lock", ""); // hf-hub 0.x
  fs::create_directories(cb.root() / ".locks" / f);
  write_file(cb.root() / ".locks" / f / "e.lock", "");
  EXPECT_EQ(problems_of(scan_cache(cb.root()), ProblemKind::stale_lock).size(), 2u);
  const auto info = scan_cache(cb.root(), {.check_locks = false});
  EXPECT_TRUE(info.problems.empty()) << describe(info);
  EXPECT_EQ(info.repos.at(0).size_on_disk, 1u);
}

TEST_F(ScanTest, WithoutFileListsTotalsTimesAndProblemsAreTheSame)
{
  const std::string f = "models--summary";
  cb.blob(f, "e1", "1");
  cb.blob(f, "e2", "22");
  cb.blob(f, "orphan", "333");
  cb.link(f, k_c1, "a", "e1");
  cb.link(f, k_c1, "sub/b", "e2");
  cb.link(f, k_c2, "a", "e1");
  cb.link(f, k_c2, "gone", "missing");
  cb.ref(f, "main", k_c1);
  fs::create_directories(cb.repo(f) / "snapshots" / k_c3); // empty revision: dated by its folder
  const auto full = scan_cache(cb.root());
  const auto summary = scan_cache(cb.root(), {.list_files = false});
  ASSERT_EQ(summary.repos.size(), 1u);
  const auto& a = full.repos[0];
  const auto& b = summary.repos[0];
  EXPECT_EQ(b.size_on_disk, 3u);
  EXPECT_EQ(b.size_on_disk, a.size_on_disk);
  EXPECT_EQ(b.nb_files, a.nb_files);
  EXPECT_EQ(b.last_accessed, a.last_accessed);
  EXPECT_EQ(b.last_modified, a.last_modified);
  EXPECT_EQ(b.refs, a.refs);
  ASSERT_EQ(b.revisions.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(b.revisions[i].files.empty());
    EXPECT_FALSE(a.revisions[i].files.empty() && i < 2);
    EXPECT_EQ(b.revisions[i].size_on_disk, a.revisions[i].size_on_disk);
    EXPECT_EQ(b.revisions[i].nb_files, a.revisions[i].nb_files);
    EXPECT_EQ(b.revisions[i].last_modified, a.revisions[i].last_modified);
    EXPECT_EQ(b.revisions[i].refs, a.revisions[i].refs);
  }
  EXPECT_EQ(describe(summary), describe(full));
  EXPECT_EQ(problems_of(summary, ProblemKind::broken_symlink).size(), 1u);
  EXPECT_EQ(problems_of(summary, ProblemKind::orphan_blob).size(), 1u);
}

TEST_F(ScanTest, ProblemsOfManyReposAreSortedByPath)
{
  // Enough repos for the scan to use its thread pool; names around '-', '.' and '/' where byte order and
  // path order differ.
  std::vector<std::string> folders;
  for (int i = 0; i < 12; ++i) {
    for (const std::string suffix : {"", "-b", ".b", "--b"}) {
      folders.push_back("models--a" + std::to_string(i) + suffix);
    }
  }
  for (const auto& f : folders) {
    cb.blob(f, "orphan", "o");
    cb.blob(f, "e", "x");
    cb.link(f, k_c1, "sub/a", "e");
    cb.ref(f, "main", k_c2); // no such snapshot
    fs::create_directories(cb.root() / ".locks" / f);
    write_file(cb.root() / ".locks" / f / "e.lock", "");
  }
  const auto info = scan_cache(cb.root());
  EXPECT_EQ(info.repos.size(), folders.size());
  EXPECT_EQ(info.problems.size(), 3 * folders.size()) << describe(info);
  EXPECT_TRUE(std::is_sorted(info.problems.begin(), info.problems.end(),
                             [](const CacheProblem& a, const CacheProblem& b) { return a.path < b.path; }))
      << describe(info);
}

// ---- filters and sort ----

CachedRepo make_repo(std::string id, RepoType type, std::uint64_t size, util::SystemTime accessed,
                     util::SystemTime modified)
{
  CachedRepo r;
  r.repo_id = std::move(id);
  r.type = type;
  r.size_on_disk = size;
  r.last_accessed = accessed;
  r.last_modified = modified;
  return r;
}

TEST(ScanFilter, ParsesAndMatches)
{
  const auto now = std::chrono::system_clock::now();
  const auto big = make_repo("a/big", RepoType::model, 2'000'000'000, now - 40 * 24h, now - 1h);
  const auto small = make_repo("b/small", RepoType::dataset, 50'000'000, now - 1h, now - 10 * 24h);

  EXPECT_TRUE(matches(parse_repo_filter("size>1GB"), big, now));
  EXPECT_FALSE(matches(parse_repo_filter("size>1GB"), small, now));
  EXPECT_TRUE(matches(parse_repo_filter("size<100M"), small, now));
  EXPECT_TRUE(matches(parse_repo_filter(" size >= 50M "), small, now));
  EXPECT_TRUE(matches(parse_repo_filter("accessed>30d"), big, now)); // not used for 30 days
  EXPECT_FALSE(matches(parse_repo_filter("accessed>30d"), small, now));
  EXPECT_TRUE(matches(parse_repo_filter("modified<7d"), big, now)); // changed within a week
  EXPECT_FALSE(matches(parse_repo_filter("modified<7d"), small, now));
  EXPECT_TRUE(matches(parse_repo_filter("type=model"), big, now));
  EXPECT_FALSE(matches(parse_repo_filter("TYPE=model"), small, now));
  EXPECT_TRUE(matches(parse_repo_filter("type!=model"), small, now));
}

TEST(ScanFilter, InvalidExpressionsAreUsageErrors)
{
  for (const char* bad : {"size", "size>", "size>lots", "colour=red", "type>model", "type=kernel",
                          "accessed>30", "modified<soon", "size~1G", ""}) {
    try {
      (void)parse_repo_filter(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ConfigurationError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage) << bad;
      EXPECT_THAT(e.what(), ::testing::HasSubstr("invalid filter")) << bad;
    }
  }
}

TEST(ScanFilter, SortKeysDirectionsAndErrors)
{
  EXPECT_TRUE(parse_repo_sort("size").descending);
  EXPECT_FALSE(parse_repo_sort("size:asc").descending);
  EXPECT_FALSE(parse_repo_sort("name").descending);
  EXPECT_TRUE(parse_repo_sort("name:desc").descending);
  EXPECT_EQ(parse_repo_sort("accessed").key, RepoSort::Key::accessed);
  EXPECT_EQ(parse_repo_sort("modified:asc").key, RepoSort::Key::modified);
  EXPECT_THROW(parse_repo_sort("colour"), ConfigurationError);
  EXPECT_THROW(parse_repo_sort("size:up"), ConfigurationError);

  const auto now = std::chrono::system_clock::now();
  CacheInfo info;
  info.repos.push_back(make_repo("m/one", RepoType::model, 10, now - 3h, now - 1h));
  info.repos.push_back(make_repo("d/two", RepoType::dataset, 30, now - 1h, now - 2h));
  info.repos.push_back(make_repo("m/three", RepoType::model, 20, now - 2h, now - 3h));
  const auto ids = [](const std::vector<const CachedRepo*>& v) {
    std::vector<std::string> out;
    for (const auto* r : v) {
      out.push_back(r->repo_id);
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(ids(select_repos(info, {}, parse_repo_sort("size"), now)), (V{"d/two", "m/three", "m/one"}));
  EXPECT_EQ(ids(select_repos(info, {}, parse_repo_sort("size:asc"), now)), (V{"m/one", "m/three", "d/two"}));
  EXPECT_EQ(ids(select_repos(info, {}, parse_repo_sort("name"), now)), (V{"d/two", "m/one", "m/three"}));
  EXPECT_EQ(ids(select_repos(info, {}, parse_repo_sort("accessed"), now)), (V{"d/two", "m/three", "m/one"}));
  EXPECT_EQ(ids(select_repos(info, {}, parse_repo_sort("modified"), now)), (V{"m/one", "d/two", "m/three"}));
  EXPECT_EQ(ids(select_repos(info, {parse_repo_filter("type=model"), parse_repo_filter("size>15")},
                             parse_repo_sort("name"), now)),
            (V{"m/three"}));
}

} // namespace
} // namespace modelmgr::cache
