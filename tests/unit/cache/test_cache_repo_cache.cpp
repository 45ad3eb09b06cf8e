// The cache layout byte for byte: what Python, hf CLI, transformers and llama.cpp will read.

#include "cache/repo_cache.hpp"
#include "support/test_util.hpp"
#include "util/fs.hpp"

#include <fstream>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using modelmgr::test::TempDir;
using namespace modelmgr::cache;
using modelmgr::util::MapEnv;
using modelmgr::util::read_file;

namespace {

const std::string k_commit = "0123456789abcdef0123456789abcdef01234567";
const std::string k_commit2 = "89abcdef0123456789abcdef0123456789abcdef";
const std::string k_etag = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string k_etag2 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";

void put(const fs::path& p, const std::string& content)
{
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << content;
}

ino_t inode_of(const fs::path& p)
{
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::vector<std::string> entries(const fs::path& dir)
{
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out.push_back(e.path().lexically_relative(dir).generic_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class RepoCacheTest : public ::testing::Test {
protected:
  TempDir m_dir;
  MapEnv m_env;
  RepoCache m_cache{m_dir.path(), RepoType::model, "org/name", m_env};

  // Puts a blob in place the way the transfer layer does: a temp file, then commit_blob().
  void add_blob(const std::string& etag, const std::string& content)
  {
    m_cache.ensure_layout();
    const fs::path temp = m_cache.incomplete_path(etag);
    put(temp, content);
    m_cache.commit_blob(open_rw(temp), temp, etag);
  }
  static int open_rw(const fs::path& p)
  {
    const int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_GE(fd, 0) << p;
    return fd;
  }
};

} // namespace

TEST_F(RepoCacheTest, PathsMatchThePythonLayout)
{
  const fs::path root = m_dir.path();
  const fs::path repo = root / "models--org--name";
  EXPECT_EQ(m_cache.folder_name(), "models--org--name");
  EXPECT_EQ(m_cache.repo_dir(), repo);
  EXPECT_EQ(m_cache.blob_path(k_etag), repo / "blobs" / k_etag);
  EXPECT_EQ(m_cache.incomplete_path(k_etag), repo / "blobs" / (k_etag + ".modelmgr.incomplete"));
  EXPECT_EQ(m_cache.resume_state_path(k_etag), repo / "blobs" / (k_etag + ".modelmgr.state.incomplete"));
  EXPECT_EQ(m_cache.snapshot_dir(k_commit), repo / "snapshots" / k_commit);
  EXPECT_EQ(m_cache.snapshot_file(k_commit, "a/b/x.bin"),
            repo / "snapshots" / k_commit / "a" / "b" / "x.bin");
  EXPECT_EQ(m_cache.ref_path("main"), repo / "refs" / "main");
  EXPECT_EQ(m_cache.ref_path("refs/pr/1"), repo / "refs" / "refs" / "pr" / "1");
  EXPECT_EQ(m_cache.no_exist_path(k_commit, "x/y.json"), repo / ".no_exist" / k_commit / "x" / "y.json");
  EXPECT_EQ(m_cache.lock_path(k_etag), root / ".locks" / "models--org--name" / (k_etag + ".lock"));
  EXPECT_EQ(m_cache.tree_cache_path(k_commit), repo / "trees" / (k_commit + ".json"));

  RepoCache dataset(root, RepoType::dataset, "squad", m_env);
  EXPECT_EQ(dataset.repo_dir(), root / "datasets--squad");
}

TEST_F(RepoCacheTest, RejectsHostileInputsBeforeTouchingDisk)
{
  EXPECT_THROW(RepoCache(m_dir.path(), RepoType::model, "../evil", m_env), std::invalid_argument);
  EXPECT_THROW(RepoCache(m_dir.path(), RepoType::model, "a/b/c", m_env), std::invalid_argument);
  for (const char* etag : {"", "../x", "a/b", ".hidden", "x\ny", "a b"}) {
    EXPECT_THROW(m_cache.blob_path(etag), std::invalid_argument) << etag;
    EXPECT_THROW(m_cache.lock_path(etag), std::invalid_argument) << etag;
  }
  for (const char* commit : {"main", "../../../../etc", "0123456789ABCDEF0123456789abcdef01234567"}) {
    EXPECT_THROW(m_cache.snapshot_dir(commit), std::invalid_argument) << commit;
    EXPECT_THROW(m_cache.tree_cache_path(commit), std::invalid_argument) << commit;
  }
  for (const char* path : {"../../blobs/x", "/etc/passwd", "a/../../b", "a\\..\\b", "", "a//b", "./x"}) {
    EXPECT_THROW(m_cache.snapshot_file(k_commit, path), std::invalid_argument) << path;
    EXPECT_THROW(m_cache.no_exist_path(k_commit, path), std::invalid_argument) << path;
  }
  for (const char* revision : {"../../x", "/abs", "", "a/../b"}) {
    EXPECT_THROW(m_cache.ref_path(revision), std::invalid_argument) << revision;
    EXPECT_THROW(m_cache.write_ref(revision, k_commit), std::invalid_argument) << revision;
    EXPECT_FALSE(m_cache.resolve_offline(revision).has_value()) << revision;
  }
  EXPECT_FALSE(fs::exists(m_cache.repo_dir()));
}

TEST_F(RepoCacheTest, EnsureLayoutCreatesFoldersAndNoCachedirTag)
{
  m_cache.ensure_layout();
  EXPECT_TRUE(fs::is_directory(m_cache.blobs_dir()));
  EXPECT_TRUE(fs::is_directory(m_cache.snapshots_dir()));
  EXPECT_TRUE(fs::is_directory(m_cache.refs_dir()));
  // huggingface_hub < 1.9 reports any file in the cache root as a broken repo on every scan.
  EXPECT_EQ(entries(m_dir.path()),
            (std::vector<std::string>{"models--org--name", "models--org--name/blobs",
                                      "models--org--name/refs", "models--org--name/snapshots"}));
  // One Python >= 1.9 wrote is left alone.
  put(m_dir / "CACHEDIR.TAG", "custom");
  m_cache.ensure_layout();
  EXPECT_EQ(read_file(m_dir / "CACHEDIR.TAG"), "custom");
}

TEST_F(RepoCacheTest, RefsAreExactly40HexWithoutNewline)
{
  EXPECT_TRUE(m_cache.write_ref("main", k_commit));
  EXPECT_EQ(read_file(m_cache.ref_path("main")), k_commit);
  EXPECT_EQ(m_cache.read_ref("main"), k_commit);
  EXPECT_TRUE(m_cache.write_ref("refs/pr/1", k_commit2));
  EXPECT_EQ(read_file(m_cache.repo_dir() / "refs" / "refs" / "pr" / "1"), k_commit2);
  EXPECT_EQ(m_cache.read_ref("refs/pr/1"), k_commit2);
  EXPECT_FALSE(m_cache.read_ref("v1.0").has_value());
  EXPECT_EQ(entries(m_cache.refs_dir()), (std::vector<std::string>{"main", "refs", "refs/pr", "refs/pr/1"}));
}

TEST_F(RepoCacheTest, WriteRefOnlyWhenChanged)
{
  ASSERT_TRUE(m_cache.write_ref("main", k_commit));
  const ino_t before = inode_of(m_cache.ref_path("main"));
  EXPECT_FALSE(m_cache.write_ref("main", k_commit));
  EXPECT_EQ(inode_of(m_cache.ref_path("main")), before); // untouched, not rewritten
  EXPECT_TRUE(m_cache.write_ref("main", k_commit2));
  EXPECT_EQ(read_file(m_cache.ref_path("main")), k_commit2);
}

TEST_F(RepoCacheTest, ReadRefTrimsButWriteRefRepairsANewline)
{
  put(m_cache.ref_path("main"), k_commit + "\n");
  EXPECT_EQ(m_cache.read_ref("main"), k_commit);
  // Python reads refs unstripped: "<sha>\n" breaks it offline, so the same commit is rewritten cleanly.
  EXPECT_TRUE(m_cache.write_ref("main", k_commit));
  EXPECT_EQ(read_file(m_cache.ref_path("main")), k_commit);
  put(m_cache.ref_path("junk"), "not a commit");
  EXPECT_FALSE(m_cache.read_ref("junk").has_value());
}

TEST_F(RepoCacheTest, CommitRevisionGetsNoRef)
{
  EXPECT_FALSE(m_cache.write_ref(k_commit, k_commit));
  EXPECT_FALSE(fs::exists(m_cache.ref_path(k_commit)));
  EXPECT_THROW(m_cache.write_ref("main", "abc"), std::invalid_argument);
}

TEST_F(RepoCacheTest, WriteRefInReadOnlyCacheWhenUnchanged)
{
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root ignores directory permissions";
  }
  ASSERT_TRUE(m_cache.write_ref("main", k_commit));
  fs::permissions(m_cache.refs_dir(), fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_NO_THROW(EXPECT_FALSE(m_cache.write_ref("main", k_commit)));
  EXPECT_THROW(m_cache.write_ref("main", k_commit2), std::system_error);
  fs::permissions(m_cache.refs_dir(), fs::perms::owner_all);
  EXPECT_EQ(entries(m_cache.refs_dir()), std::vector<std::string>{"main"});
}

TEST_F(RepoCacheTest, ResolveOffline)
{
  EXPECT_EQ(m_cache.resolve_offline(k_commit2), k_commit2); // a commit is itself, even without a ref
  EXPECT_FALSE(m_cache.resolve_offline("main").has_value());
  m_cache.write_ref("main", k_commit);
  EXPECT_EQ(m_cache.resolve_offline("main"), k_commit);
}

TEST_F(RepoCacheTest, CommitBlobAppliesUmaskModeAndRenames)
{
  m_cache.ensure_layout();
  const fs::path temp = m_cache.incomplete_path(k_etag);
  put(temp, "hello");
  fs::permissions(temp, fs::perms::owner_read | fs::perms::owner_write); // as mkstemp leaves it
  const mode_t old_mask = ::umask(022);
  const fs::path blob = m_cache.commit_blob(open_rw(temp), temp, k_etag);
  ::umask(old_mask);
  EXPECT_EQ(blob, m_cache.blob_path(k_etag));
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(read_file(blob), "hello");
  struct stat st {};
  ASSERT_EQ(::stat(blob.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_TRUE(m_cache.has_blob(k_etag));
  EXPECT_TRUE(m_cache.has_blob(k_etag, 5));
  EXPECT_FALSE(m_cache.has_blob(k_etag, 6));
  EXPECT_FALSE(m_cache.has_blob(k_etag2));
  EXPECT_EQ(entries(m_cache.blobs_dir()), std::vector<std::string>{k_etag});
  // A descriptor that cannot be synced (here a pipe: EINVAL) fails the commit, naming the temp file, and
  // nothing appears under the blob name.
  put(m_cache.incomplete_path(k_etag2), "x");
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  try {
    m_cache.commit_blob(pipe_fds[0], m_cache.incomplete_path(k_etag2), k_etag2);
    ADD_FAILURE() << "commit_blob accepted an fsync failure";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("fsync '" + m_cache.incomplete_path(k_etag2).string() + "'"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(m_cache.blob_path(k_etag2)));
  EXPECT_TRUE(fs::exists(m_cache.incomplete_path(k_etag2)));
}

TEST_F(RepoCacheTest, LockPathIsThePythonClientsLayout)
{
  // <cache>/.locks/<repo folder>/<etag>.lock, as huggingface_hub's file_download.py builds it.
  EXPECT_EQ(lock_path(m_dir.path(), "models--org--name", k_etag),
            m_dir.path() / ".locks" / "models--org--name" / (k_etag + ".lock"));
  EXPECT_EQ(m_cache.lock_path(k_etag), lock_path(m_dir.path(), m_cache.folder_name(), k_etag));
  EXPECT_EQ(lock_dir(m_dir.path(), "datasets--squad"), m_dir.path() / ".locks" / "datasets--squad");
  EXPECT_THROW(lock_path(m_dir.path(), "models--org--name", "../x"), std::invalid_argument);
}

TEST_F(RepoCacheTest, TempBlobIsNeverOpenedThroughASymlink)
{
  m_cache.ensure_layout();
  const fs::path outside = m_dir / "outside.txt";
  put(outside, "precious");
  const fs::path temp = m_cache.incomplete_path(k_etag);
  fs::create_symlink(outside, temp);
  try {
    (void)m_cache.open_incomplete(k_etag);
    ADD_FAILURE() << "opened the temp file through a symlink";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find(temp.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(outside), "precious");
  // Not a regular file (a FIFO) is refused too.
  fs::remove(temp);
  ASSERT_EQ(::mkfifo(temp.c_str(), 0600), 0);
  EXPECT_THROW((void)m_cache.open_incomplete(k_etag), std::system_error);
  fs::remove(temp);
  const int fd = m_cache.open_incomplete(k_etag);
  EXPECT_GE(fd, 0);
  ::close(fd);
  EXPECT_TRUE(fs::is_regular_file(temp));
}

TEST_F(RepoCacheTest, PythonIncompleteFileIsAdoptedOrRemoved)
{
  m_cache.ensure_layout();
  const fs::path foreign = m_cache.blobs_dir() / (k_etag + ".incomplete");
  EXPECT_FALSE(m_cache.adopt_foreign_incomplete(k_etag, 10).has_value());
  // A prefix: renamed to our temp name, its length is what to resume from.
  put(foreign, "abcd");
  EXPECT_EQ(m_cache.adopt_foreign_incomplete(k_etag, 10), std::optional<std::uint64_t>(4));
  EXPECT_FALSE(fs::exists(foreign));
  EXPECT_EQ(read_file(m_cache.incomplete_path(k_etag)), "abcd");
  // Larger than the file can be: discarded.
  put(foreign, "0123456789ab");
  EXPECT_FALSE(m_cache.adopt_foreign_incomplete(k_etag, 10).has_value());
  EXPECT_FALSE(fs::exists(foreign));
  EXPECT_EQ(read_file(m_cache.incomplete_path(k_etag)), "abcd");
  // Our own download with resume state knows more: the stray file goes.
  put(m_cache.resume_state_path(k_etag), "{}");
  put(foreign, "ab");
  EXPECT_FALSE(m_cache.adopt_foreign_incomplete(k_etag, 10).has_value());
  EXPECT_FALSE(fs::exists(foreign));
  // A symlink there is removed as a link; its target stays.
  fs::remove(m_cache.resume_state_path(k_etag));
  put(m_dir / "target", "keep");
  fs::create_symlink(m_dir / "target", foreign);
  EXPECT_FALSE(m_cache.adopt_foreign_incomplete(k_etag, 10).has_value());
  EXPECT_FALSE(fs::is_symlink(foreign));
  EXPECT_EQ(read_file(m_dir / "target"), "keep");
}

TEST_F(RepoCacheTest, SnapshotLinksAreRelativeSymlinks)
{
  add_blob(k_etag, "weights");
  add_blob(k_etag2, "{}");
  EXPECT_EQ(m_cache.link_snapshot(k_commit, "config.json", k_etag2), LinkKind::symlink);
  EXPECT_EQ(m_cache.link_snapshot(k_commit, "a/b/x.bin", k_etag), LinkKind::symlink);
  const fs::path snap = m_cache.snapshot_dir(k_commit);
  EXPECT_EQ(fs::read_symlink(snap / "config.json").string(), "../../blobs/" + k_etag2);
  EXPECT_EQ(fs::read_symlink(snap / "a" / "b" / "x.bin").string(), "../../../../blobs/" + k_etag);
  EXPECT_EQ(read_file(snap / "a" / "b" / "x.bin"), "weights");
  EXPECT_TRUE(m_cache.has_snapshot_file(k_commit, "config.json"));
  EXPECT_EQ(m_cache.snapshot_files(k_commit), (std::vector<std::string>{"a/b/x.bin", "config.json"}));
  // No temp names left next to the links.
  EXPECT_EQ(entries(snap), (std::vector<std::string>{"a", "a/b", "a/b/x.bin", "config.json"}));
}

TEST_F(RepoCacheTest, RelinkIsIdempotentAndRetargetsAtomically)
{
  add_blob(k_etag, "v1");
  add_blob(k_etag2, "v2");
  m_cache.link_snapshot(k_commit, "f.bin", k_etag);
  const fs::path link = m_cache.snapshot_file(k_commit, "f.bin");
  const ino_t before = inode_of(link);
  EXPECT_EQ(m_cache.link_snapshot(k_commit, "f.bin", k_etag), LinkKind::symlink);
  EXPECT_EQ(inode_of(link), before); // already right: untouched
  EXPECT_EQ(m_cache.link_snapshot(k_commit, "f.bin", k_etag2), LinkKind::symlink);
  EXPECT_EQ(fs::read_symlink(link).string(), "../../blobs/" + k_etag2);
  EXPECT_EQ(read_file(link), "v2");
}

TEST_F(RepoCacheTest, LinkRequiresTheBlob)
{
  m_cache.ensure_layout();
  EXPECT_THROW(m_cache.link_snapshot(k_commit, "x", k_etag), std::system_error);
  EXPECT_FALSE(fs::exists(m_cache.snapshot_dir(k_commit) / "x"));
  EXPECT_FALSE(fs::is_symlink(m_cache.snapshot_dir(k_commit) / "x"));
}

TEST_F(RepoCacheTest, DisabledSymlinksCopy)
{
  MapEnv env({{"HF_HUB_DISABLE_SYMLINKS", "1"}});
  RepoCache cache(m_dir.path(), RepoType::model, "org/name", env);
  add_blob(k_etag, "payload");
  EXPECT_EQ(cache.link_snapshot(k_commit, "sub/w.bin", k_etag), LinkKind::copy);
  const fs::path file = cache.snapshot_file(k_commit, "sub/w.bin");
  EXPECT_FALSE(fs::is_symlink(file));
  EXPECT_EQ(read_file(file), "payload");
  EXPECT_NE(inode_of(file), inode_of(cache.blob_path(k_etag)));
  EXPECT_TRUE(cache.has_blob(k_etag)); // the blob stays
  EXPECT_TRUE(cache.has_snapshot_file(k_commit, "sub/w.bin"));
}

TEST_F(RepoCacheTest, HasSnapshotFileOnlyForResolvableFiles)
{
  m_cache.ensure_layout();
  const fs::path snap = m_cache.snapshot_dir(k_commit);
  fs::create_directories(snap / "dir");
  fs::create_symlink("../../blobs/" + k_etag, snap / "dangling");
  EXPECT_FALSE(m_cache.has_snapshot_file(k_commit, "dangling"));
  EXPECT_FALSE(m_cache.has_snapshot_file(k_commit, "dir"));
  EXPECT_FALSE(m_cache.has_snapshot_file(k_commit, "missing"));
  EXPECT_TRUE(m_cache.snapshot_files(k_commit2).empty());
  // Our leftover temp names (crash between symlink and rename) are not repo files.
  put(snap / ".w.bin.0123abcd.tmp", "");
  EXPECT_EQ(m_cache.snapshot_files(k_commit), std::vector<std::string>{"dangling"});
}

TEST_F(RepoCacheTest, NoExistMarkers)
{
  EXPECT_FALSE(m_cache.is_marked_no_exist(k_commit, "sub/missing.json"));
  m_cache.mark_no_exist(k_commit, "sub/missing.json");
  EXPECT_TRUE(m_cache.is_marked_no_exist(k_commit, "sub/missing.json"));
  const fs::path marker = m_cache.repo_dir() / ".no_exist" / k_commit / "sub" / "missing.json";
  EXPECT_EQ(read_file(marker), "");
  m_cache.mark_no_exist(k_commit, "sub/missing.json"); // idempotent
  EXPECT_FALSE(m_cache.is_marked_no_exist(k_commit2, "sub/missing.json"));
}

TEST_F(RepoCacheTest, TreeCacheIsWrittenInPythonFormat)
{
  std::vector<TreeFile> files{{"model.bin", 7, "b1", "s256", 7, std::nullopt},
                              {"config.json", 2, "c1", std::nullopt, std::nullopt, std::nullopt}};
  m_cache.write_tree_cache(k_commit, files);
  EXPECT_EQ(
      read_file(m_cache.repo_dir() / "trees" / (k_commit + ".json")),
      "{\n \"format_version\": 1,\n \"files\": {\n  \"config.json\": {\n   \"size\": 2,\n   \"blob_id\": "
      "\"c1\"\n"
      "  },\n  \"model.bin\": {\n   \"size\": 7,\n   \"blob_id\": \"b1\",\n   \"lfs_sha256\": \"s256\",\n"
      "   \"lfs_size\": 7\n  }\n }\n}");
  auto back = m_cache.read_tree_cache(k_commit);
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].path, "config.json");
  EXPECT_EQ((*back)[1].etag(), "s256");
  EXPECT_FALSE(m_cache.read_tree_cache(k_commit2).has_value());
  put(m_cache.tree_cache_path(k_commit2), "{\"format_version\": 99, \"files\": {}}");
  EXPECT_FALSE(m_cache.read_tree_cache(k_commit2).has_value());
  EXPECT_EQ(entries(m_cache.trees_dir()),
            (std::vector<std::string>{k_commit + ".json", k_commit2 + ".json"}));
}

TEST_F(RepoCacheTest, CopiesShareConfiguration)
{
  RepoCache copy = m_cache;
  EXPECT_EQ(copy.repo_dir(), m_cache.repo_dir());
  RepoCache other(m_dir.path(), RepoType::space, "x/y", m_env);
  other = m_cache;
  EXPECT_EQ(other.folder_name(), "models--org--name");
}
