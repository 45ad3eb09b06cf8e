#include "cache/local_dir.hpp"
#include "support/test_util.hpp"
#include "util/fs.hpp"

#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

namespace fs = std::filesystem;
using modelmgr::test::TempDir;
using namespace modelmgr::cache;
using modelmgr::util::LinkMethod;
using modelmgr::util::read_file;

namespace {

const std::string k_commit = "11c5a3d5811f50298f278a704980280950aedb10";
const std::string k_etag = "a16a55fda99d2f2e7b69cce5cf93ff4ad3049930";

void put(const fs::path& p, const std::string& content)
{
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << content;
}

void set_mtime(const fs::path& p, double unix_seconds)
{
  struct timeval times[2];
  for (auto& t : times) {
    t.tv_sec = static_cast<time_t>(unix_seconds);
    t.tv_usec = static_cast<suseconds_t>((unix_seconds - static_cast<double>(t.tv_sec)) * 1e6);
  }
  ASSERT_EQ(::utimes(p.c_str(), times), 0);
}

ino_t inode_of(const fs::path& p)
{
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

} // namespace

TEST(CacheLocalDir, MetadataFolderMatchesPython)
{
  TempDir dir;
  ensure_local_dir_metadata(dir.path());
  const fs::path meta = dir / ".cache" / "huggingface";
  EXPECT_EQ(local_dir_metadata_root(dir.path()), meta);
  EXPECT_EQ(read_file(meta / ".gitignore"), "*");
  EXPECT_EQ(read_file(meta / "CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This file is a cache directory tag created by huggingface_hub.\n"
            "# For information about cache directory tags, see:\n"
            "#\thttps://bford.info/cachedir/\n");
  put(meta / ".gitignore", "mine\n");
  ensure_local_dir_metadata(dir.path());
  EXPECT_EQ(read_file(meta / ".gitignore"), "mine\n");
}

TEST(CacheLocalDir, Paths)
{
  const fs::path d = "/ld";
  EXPECT_EQ(local_file_path(d, "a/b.bin"), fs::path("/ld/a/b.bin"));
  EXPECT_EQ(local_metadata_path(d, "a/b.bin"), fs::path("/ld/.cache/huggingface/download/a/b.bin.metadata"));
  EXPECT_EQ(local_lock_path(d, "a/b.bin"), fs::path("/ld/.cache/huggingface/download/a/b.bin.lock"));
  EXPECT_EQ(local_tree_cache_path(d, k_commit),
            fs::path("/ld/.cache/huggingface/trees/" + k_commit + ".json"));
  for (const char* bad : {"../x", "/etc/passwd", "a/../../x", ".cache/huggingface/download/x.metadata",
                          ".cache/huggingface/.gitignore"}) {
    EXPECT_THROW(local_file_path(d, bad), std::invalid_argument) << bad;
  }
  EXPECT_NO_THROW(local_file_path(d, ".cache/other/x"));
  EXPECT_THROW(local_metadata_path(d, "../x"), std::invalid_argument);
  EXPECT_THROW(local_tree_cache_path(d, "main"), std::invalid_argument);
}

TEST(CacheLocalDir, MetadataTextFormat)
{
  EXPECT_EQ(format_local_metadata(k_commit, k_etag, 1712656091.123),
            k_commit + "\n" + k_etag + "\n1712656091.123\n");
  EXPECT_EQ(format_local_metadata(k_commit, k_etag, 1712656091.0),
            k_commit + "\n" + k_etag + "\n1712656091.0\n");
  auto parsed = parse_local_metadata(k_commit + "\n" + k_etag + "\n1712656091.123\n");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->commit, k_commit);
  EXPECT_EQ(parsed->etag, k_etag);
  EXPECT_DOUBLE_EQ(parsed->timestamp, 1712656091.123);
  EXPECT_TRUE(parse_local_metadata(" " + k_commit + " \r\n" + k_etag + "\n 17 \n").has_value());
  for (const std::string bad : {"", "a\nb\n", "a\nb\nnot-a-number\n", "a\nb\n\n", "a\nb\n1.5x\n"}) {
    EXPECT_FALSE(parse_local_metadata(bad).has_value()) << bad;
  }
}

TEST(CacheLocalDir, WriteAndReadMetadata)
{
  TempDir dir;
  put(dir / "sub" / "file.txt", "x");
  set_mtime(dir / "sub" / "file.txt", 1'700'000'000.0);
  write_local_metadata(dir.path(), "sub/file.txt", k_commit, k_etag,
                       std::chrono::system_clock::from_time_t(1'700'000'100));
  const fs::path meta = dir / ".cache" / "huggingface" / "download" / "sub" / "file.txt.metadata";
  EXPECT_EQ(read_file(meta), k_commit + "\n" + k_etag + "\n1700000100.0\n");
  EXPECT_TRUE(fs::exists(dir / ".cache" / "huggingface" / ".gitignore"));
  auto md = read_local_metadata(dir.path(), "sub/file.txt");
  ASSERT_TRUE(md.has_value());
  EXPECT_EQ(md->commit, k_commit);
  EXPECT_EQ(md->etag, k_etag);
  EXPECT_DOUBLE_EQ(md->timestamp, 1'700'000'100.0);
}

TEST(CacheLocalDir, MetadataIsTrustedOnlyIfFileNotModifiedAfter)
{
  TempDir dir;
  put(dir / "f.bin", "x");
  write_local_metadata(dir.path(), "f.bin", k_commit, k_etag,
                       std::chrono::system_clock::from_time_t(1'700'000'000));
  set_mtime(dir / "f.bin", 1'700'000'001.0); // within the 1 s slack
  EXPECT_TRUE(read_local_metadata(dir.path(), "f.bin").has_value());
  set_mtime(dir / "f.bin", 1'700'000'001.5); // edited after the download
  EXPECT_FALSE(read_local_metadata(dir.path(), "f.bin").has_value());
  fs::remove(dir / "f.bin");
  EXPECT_FALSE(read_local_metadata(dir.path(), "f.bin").has_value());
}

TEST(CacheLocalDir, CorruptMetadataIsDeleted)
{
  TempDir dir;
  put(dir / "f.bin", "x");
  const fs::path meta = local_metadata_path(dir.path(), "f.bin");
  put(meta, "only one line");
  EXPECT_FALSE(read_local_metadata(dir.path(), "f.bin").has_value());
  EXPECT_FALSE(fs::exists(meta));
  EXPECT_FALSE(read_local_metadata(dir.path(), "never-written.bin").has_value());
}

TEST(CacheLocalDir, ExportFileHardlinksOrCopiesAtomically)
{
  TempDir dir;
  const fs::path blob = dir / "cache" / "blob";
  put(blob, "weights");
  const fs::path local = dir / "out";
  // Only on request: a hard link (the exported file is the blob).
  EXPECT_EQ(export_file(blob, local, "a/b/w.bin", ExportMode::hardlink), LinkMethod::hardlink);
  EXPECT_EQ(read_file(local / "a" / "b" / "w.bin"), "weights");
  EXPECT_EQ(inode_of(local / "a" / "b" / "w.bin"), inode_of(blob));
  EXPECT_FALSE(fs::is_symlink(local / "a" / "b" / "w.bin"));

  // By default an independent file (reflink or copy), replacing what was there.
  put(local / "c.bin", "old");
  EXPECT_NE(export_file(blob, local, "c.bin"), LinkMethod::hardlink);
  EXPECT_EQ(read_file(local / "c.bin"), "weights");
  EXPECT_NE(inode_of(local / "c.bin"), inode_of(blob));
  // Writing to it leaves the blob alone.
  {
    std::ofstream(local / "c.bin", std::ios::app) << "edited";
  }
  EXPECT_EQ(read_file(blob), "weights");

  EXPECT_THROW(export_file(blob, local, "../escape.bin"), std::invalid_argument);
  EXPECT_THROW(export_file(blob, local, ".cache/huggingface/download/c.bin.metadata"), std::invalid_argument);
  EXPECT_FALSE(fs::exists(dir / "escape.bin"));
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(local)) {
    names.push_back(e.path().lexically_relative(local).generic_string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "a/b", "a/b/w.bin", "c.bin"}));
}

TEST(CacheLocalDir, TreeCache)
{
  TempDir dir;
  std::vector<TreeFile> files{{"x.json", 1, "b", std::nullopt, std::nullopt, std::nullopt}};
  write_local_tree_cache(dir.path(), k_commit, files);
  EXPECT_EQ(read_file(dir / ".cache" / "huggingface" / "trees" / (k_commit + ".json")),
            tree_cache_json(files));
  auto back = read_local_tree_cache(dir.path(), k_commit);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, files);
}
