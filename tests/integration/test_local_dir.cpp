// `pull --local-dir`: exported files are independent of the cache (a reflink or a copy), so editing one
// never changes a blob other projects read; hard links only with `--local-dir-link hardlink`.

#include "support/hub_fixture.hpp"

#include <fstream>

#include <gmock/gmock.h>
#include <sys/stat.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;

const std::string k_tiny = "models--test-org--tiny-model";

class LocalDirTest : public HubTest {
protected:
  const emulator::RepoFile& config_json() const
  {
    return *repo("test-org/tiny-model").resolve("main")->find("config.json");
  }
  fs::path blob() const { return cache / k_tiny / "blobs" / config_json().git_sha1(); }
};

ino_t inode_of(const fs::path& p)
{
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_ino;
}

TEST_F(LocalDirTest, EditingAnExportedFileLeavesTheCacheIntact)
{
  const fs::path out = tmp->path() / "export";
  auto r = mm({"pull", "test-org/tiny-model", "config.json", "--local-dir", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path exported = out / "config.json";
  EXPECT_EQ(read_file(exported), config_json().content());
  EXPECT_NE(inode_of(exported), inode_of(blob())) << "the exported file shares the blob's inode";

  // A second run over the unchanged export copies nothing: the very same file stays.
  const ino_t before = inode_of(exported);
  r = mm({"pull", "test-org/tiny-model", "config.json", "--local-dir", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(inode_of(exported), before);

  {
    std::ofstream(exported, std::ios::app) << "\n// my local edit\n";
  }
  EXPECT_EQ(read_file(blob()), config_json().content());
  r = mm({"cache", "verify"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, ::testing::HasSubstr(": 0 corrupt"));
  // Python-compatible metadata is still written.
  EXPECT_TRUE(fs::exists(out / ".cache/huggingface/download/config.json.metadata"));
}

TEST_F(LocalDirTest, HardlinkOnlyWhenAskedFor)
{
  const fs::path out = tmp->path() / "export";
  auto r = mm({"pull", "test-org/tiny-model", "config.json", "--local-dir", out.string(), "--local-dir-link",
               "hardlink"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(inode_of(out / "config.json"), inode_of(blob()));
  r = mm({"pull", "test-org/tiny-model", "config.json", "--local-dir", out.string(), "--local-dir-link",
          "symlink"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

} // namespace
} // namespace modelmgr::test
