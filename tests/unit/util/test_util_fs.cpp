#include "support/test_util.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;
using modelmgr::test::TempDir;
using namespace modelmgr::util;

namespace {

std::vector<std::string> names_in(const fs::path& dir)
{
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void put(const fs::path& p, const std::string& content)
{
  std::ofstream out(p, std::ios::binary);
  out << content;
}

struct UmaskGuard {
  explicit UmaskGuard(mode_t mask) : m_old(::umask(mask)) {}
  ~UmaskGuard() { ::umask(m_old); }
  mode_t m_old;
};

mode_t mode_of(const fs::path& p)
{
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

} // namespace

TEST(UtilFs, RandomHexHasRequestedLengthAndAlphabet)
{
  for (std::size_t n : {0u, 1u, 7u, 8u, 33u}) {
    const std::string hex = random_hex(n);
    EXPECT_EQ(hex.size(), n);
    EXPECT_TRUE(
        std::all_of(hex.begin(), hex.end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); }));
  }
  EXPECT_NE(random_hex(16), random_hex(16));
}

TEST(UtilFs, AtomicWriteCreatesAndReplacesWithExactBytes)
{
  TempDir dir;
  const fs::path target = dir / "ref";
  atomic_write_file(target, "abc");
  EXPECT_EQ(read_file(target), "abc");
  atomic_write_file(target, std::string("x\0y", 3));
  EXPECT_EQ(read_file(target), std::string("x\0y", 3));
  atomic_write_file(target, "");
  EXPECT_EQ(read_file(target), "");
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"ref"}); // no temp left behind
}

TEST(UtilFs, AtomicWriteGetsUmaskMode)
{
  TempDir dir;
  UmaskGuard mask(022);
  atomic_write_file(dir / "f", "1");
  EXPECT_EQ(mode_of(dir / "f"), 0644u);
}

TEST(UtilFs, AtomicWriteReplacesASymlinkInsteadOfWritingThroughIt)
{
  TempDir dir;
  put(dir / "outside", "keep");
  fs::create_symlink(dir / "outside", dir / "link");
  atomic_write_file(dir / "link", "new");
  EXPECT_FALSE(fs::is_symlink(dir / "link"));
  EXPECT_EQ(read_file(dir / "link"), "new");
  EXPECT_EQ(read_file(dir / "outside"), "keep");
}

TEST(UtilFs, AtomicWriteFailureNamesThePathAndLeavesNoTemp)
{
  TempDir dir;
  // Missing parent directory.
  try {
    atomic_write_file(dir / "missing" / "f", "x");
    FAIL() << "expected std::system_error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_NE(std::string(e.what()).find((dir / "missing").string()), std::string::npos) << e.what();
  }
  // rename() over a non-empty directory fails after the temp was written: the temp must go.
  fs::create_directories(dir / "occupied" / "child");
  EXPECT_THROW(atomic_write_file(dir / "occupied", "x"), std::system_error);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"occupied"});
}

TEST(UtilFs, TempFileIsNamedBesideTargetAndDeletedUnlessCommitted)
{
  TempDir dir;
  fs::path temp_path;
  {
    TempFile tmp = TempFile::create_beside(dir / "config.json");
    temp_path = tmp.path();
    EXPECT_EQ(temp_path.parent_path(), dir.path());
    EXPECT_TRUE(
        std::regex_match(temp_path.filename().string(), std::regex(R"(\.config\.json\.[0-9a-f]{8}\.tmp)")))
        << temp_path;
    tmp.write("partial");
    EXPECT_TRUE(fs::exists(temp_path));
  }
  EXPECT_FALSE(fs::exists(temp_path));
  EXPECT_TRUE(names_in(dir.path()).empty());
}

TEST(UtilFs, TempFileCommitAndRelease)
{
  TempDir dir;
  {
    TempFile tmp = TempFile::create(dir.path(), "blob.", ".incomplete");
    EXPECT_TRUE(
        std::regex_match(tmp.path().filename().string(), std::regex(R"(blob\.[0-9a-f]{8}\.incomplete)")));
    tmp.write("done");
    tmp.commit(dir / "final");
    EXPECT_EQ(tmp.fd(), -1);
  }
  EXPECT_EQ(read_file(dir / "final"), "done");
  fs::path kept;
  {
    TempFile tmp = TempFile::create(dir.path(), "k.", ".tmp");
    kept = tmp.release();
  }
  EXPECT_TRUE(fs::exists(kept));
  // Moving transfers ownership: only one deletion, by the last owner.
  fs::path moved_path;
  {
    TempFile a = TempFile::create(dir.path(), "m.", ".tmp");
    moved_path = a.path();
    TempFile b = std::move(a);
    EXPECT_TRUE(fs::exists(moved_path));
  }
  EXPECT_FALSE(fs::exists(moved_path));
}

TEST(UtilFs, TempFileNameStaysWithinNameMax)
{
  TempDir dir;
  TempFile tmp = TempFile::create_beside(dir / std::string(255, 'n'));
  EXPECT_LE(tmp.path().filename().string().size(), 255u);
}

TEST(UtilFs, ReadFileIfExists)
{
  TempDir dir;
  EXPECT_FALSE(read_file_if_exists(dir / "nope").has_value());
  EXPECT_FALSE(read_file_if_exists(dir / "nope" / "deeper").has_value());
  EXPECT_THROW(read_file(dir / "nope"), std::system_error);
  put(dir / "f", "content");
  EXPECT_EQ(read_file_if_exists(dir / "f"), "content");
}

TEST(UtilFs, FsyncDir)
{
  TempDir dir;
  EXPECT_NO_THROW(fsync_dir(dir.path()));
  EXPECT_THROW(fsync_dir(dir / "missing"), std::system_error);
}

TEST(UtilFs, RelativePathFromForSymlinks)
{
  EXPECT_EQ(relative_path_from("/c/models--a/snapshots/abc", "/c/models--a/blobs/e1").string(),
            "../../blobs/e1");
  EXPECT_EQ(relative_path_from("/c/models--a/snapshots/abc/x/y", "/c/models--a/blobs/e1").string(),
            "../../../../blobs/e1");
  EXPECT_EQ(relative_path_from("/c/r/./snapshots//abc/", "/c/r/blobs/e").string(), "../../blobs/e");
}

TEST(UtilFs, FreeSpaceWalksUpToAnExistingAncestor)
{
  TempDir dir;
  const std::uint64_t here = free_space(dir.path());
  EXPECT_GT(here, 0u);
  const std::uint64_t below = free_space(dir / "not" / "yet" / "there");
  // Same filesystem: equal up to what other processes wrote in between.
  const std::uint64_t diff = here > below ? here - below : below - here;
  EXPECT_LT(diff, 64u << 20);
}

TEST(UtilFs, HardlinkOrCopyLinksAtomicallyAndReplaces)
{
  TempDir dir;
  put(dir / "src", "payload");
  put(dir / "dst", "old");
  EXPECT_EQ(hardlink_or_copy(dir / "src", dir / "dst"), LinkMethod::hardlink);
  EXPECT_EQ(read_file(dir / "dst"), "payload");
  struct stat a {};
  struct stat b {};
  ASSERT_EQ(::stat((dir / "src").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir / "dst").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  // dst already is a link to src: rename() between links of one inode is a no-op, no temp may remain.
  EXPECT_EQ(hardlink_or_copy(dir / "src", dir / "dst"), LinkMethod::hardlink);
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"dst", "src"}));
  EXPECT_THROW(hardlink_or_copy(dir / "missing", dir / "x"), std::system_error);
  EXPECT_FALSE(fs::exists(dir / "x"));
}

TEST(UtilFs, CloneOrCopyNeverSharesTheInode)
{
  TempDir dir;
  std::string big(5 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>(i * 7 + i / 4096);
  }
  put(dir / "src", big);
  put(dir / "dst", "old");
  const LinkMethod m = clone_or_copy(dir / "src", dir / "dst");
  EXPECT_TRUE(m == LinkMethod::reflink || m == LinkMethod::copy);
  EXPECT_EQ(read_file(dir / "dst"), big);
  struct stat a {};
  struct stat b {};
  ASSERT_EQ(::stat((dir / "src").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir / "dst").c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);
  EXPECT_EQ(b.st_nlink, 1u);
  // Editing the clone leaves the source as it was.
  {
    std::ofstream(dir / "dst", std::ios::app) << "appended";
  }
  EXPECT_EQ(read_file(dir / "src"), big);
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"dst", "src"}));
  EXPECT_THROW(clone_or_copy(dir / "missing", dir / "x"), std::system_error);
  EXPECT_FALSE(fs::exists(dir / "x"));
}

TEST(UtilFs, CommitFdReportsAFailedSyncAndRenamesNothing)
{
  TempDir dir;
  put(dir / "temp", "data");
  // fsync() of a pipe fails (EINVAL): the commit must stop there, before the rename.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[1]);
  try {
    commit_fd(fds[0], dir / "temp", dir / "final");
    ADD_FAILURE() << "commit_fd ignored the fsync failure";
  } catch (const std::system_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("fsync '" + (dir / "temp").string() + "'", 0), 0u) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "final"));
  EXPECT_TRUE(fs::exists(dir / "temp"));
  // The descriptor was closed anyway.
  EXPECT_EQ(::fcntl(fds[0], F_GETFD), -1);
  // A real file commits: written through the same descriptor, renamed, readable.
  const int fd = ::open((dir / "temp").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  commit_fd(fd, dir / "temp", dir / "final");
  EXPECT_EQ(read_file(dir / "final"), "data");
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"final"}));
}

TEST(UtilFs, CopyFileAtomic)
{
  TempDir dir;
  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>(i * 7 + 3);
  }
  put(dir / "src", big);
  copy_file_atomic(dir / "src", dir / "dst");
  EXPECT_EQ(read_file(dir / "dst"), big);
  struct stat a {};
  struct stat b {};
  ASSERT_EQ(::stat((dir / "src").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir / "dst").c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"dst", "src"}));
}

TEST(UtilFs, DefaultFileModeFollowsUmask)
{
  TempDir dir;
  {
    UmaskGuard mask(022);
    EXPECT_EQ(default_file_mode(dir.path()), 0644u);
  }
  {
    UmaskGuard mask(002);
    EXPECT_EQ(default_file_mode(dir.path()), 0664u);
  }
  EXPECT_TRUE(names_in(dir.path()).empty());
}

// ---- untrusted paths ----

TEST(UtilFs, SafeRelativePathAcceptsOrdinaryHubNames)
{
  const std::vector<std::string> ok{"config.json",
                                    "a/b/c.bin",
                                    ".gitattributes",
                                    "..foo",
                                    "foo..",
                                    "a/.hidden/x",
                                    "...",
                                    "sub/caf\xc3\xa9 \xf0\x9f\x98\x80.txt",
                                    "with space/and:colon",
                                    std::string(255, 'x')};
  for (const auto& name : ok) {
    EXPECT_FALSE(relative_path_error(name).has_value()) << name << ": " << *relative_path_error(name);
    EXPECT_EQ(safe_relative_path(name).generic_string(), name);
  }
  EXPECT_EQ(safe_relative_path("a/b/c.bin"), fs::path("a") / "b" / "c.bin");
}

TEST(UtilFs, SafeRelativePathRejectsHostileNames)
{
  const std::vector<std::pair<std::string, std::string>> bad{
      {"", "is empty"},
      {"/etc/passwd", "is absolute"},
      {"//server/share", "is absolute"},
      {"..", "has a '..' segment"},
      {"../x", "has a '..' segment"},
      {"a/../../x", "has a '..' segment"},
      {"a/..", "has a '..' segment"},
      {".", "has a '.' segment"},
      {"./a", "has a '.' segment"},
      {"a/./b", "has a '.' segment"},
      {"a\\..\\..\\x", "contains a backslash"},
      {"..\\x", "contains a backslash"},
      {"C:x", "starts with a drive letter"},
      {"c:/windows", "starts with a drive letter"},
      {"a//b", "has an empty segment"},
      {"a/", "ends with '/'"},
      {std::string("a\0b", 3), "contains a NUL byte"},
      {"a/" + std::string(256, 'y'), "has a segment longer than 255 bytes"},
  };
  for (const auto& [name, reason] : bad) {
    auto error = relative_path_error(name);
    ASSERT_TRUE(error.has_value()) << name;
    EXPECT_EQ(*error, reason) << name;
    EXPECT_THROW(safe_relative_path(name), std::invalid_argument) << name;
  }
}

TEST(UtilFs, SafeRelativePathErrorEscapesControlCharacters)
{
  try {
    safe_relative_path("../\x1b[31mred\n");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "unsafe file path '../\\x1b[31mred\\x0a': has a '..' segment");
  }
}
