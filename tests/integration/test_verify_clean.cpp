// `modelmgr verify [--repair]` and `modelmgr clean` against the hub emulator: every kind of damage found
// in one offline run, repair fetching only the broken files, clean never removing a blob still linked.

#include "support/hub_fixture.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using emulator::RouteKind;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_tiny = "models--test-org--tiny-model";

const std::string k_config = R"(verify: size
models:
  - id: tiny
    repo_id: test-org/tiny-model
    exclude: ["weights/*"]
  - id: tiny-v1
    repo_id: test-org/tiny-model
    revision: v1.0
    exclude: ["weights/*"]
)";

class VerifyCleanTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    config = tmp->path() / "project" / "models.yaml";
    write_file(config, k_config);
  }
  fs::path snap(const std::string& revision = "main") const
  {
    return cache / k_tiny / "snapshots" / repo("test-org/tiny-model").resolve(revision)->sha;
  }
  fs::path config;
};

void flip_byte(const fs::path& file, std::streamoff offset)
{
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0xFF);
  f.seekp(offset);
  f.write(&c, 1);
}

TEST_F(VerifyCleanTest, VerifyReportsEveryProblemAtOnceOfflineAndRepairFetchesOnlyThoseFiles)
{
  ASSERT_EQ(mm({"sync", "--config", config.string(), "--model", "tiny"}).exit_code, 0);
  auto ok = mm({"verify", "tiny", "--config", config.string()});
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("\u2713 tiny:"));

  fs::resize_file(fs::canonical(snap() / "model.safetensors"), 1000); // truncated LFS blob
  flip_byte(fs::canonical(snap() / "config.json"), 3);                // flipped byte in a git blob
  fs::remove(snap() / "tokenizer.json");                              // missing snapshot link
  hub->reset_counters();
  auto r = mm({"verify", "tiny", "--config", config.string()}, {{"HF_ENDPOINT", "http://127.0.0.1:9"}});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2717 tiny: corrupt (3 problems)"));
  EXPECT_THAT(r.out, HasSubstr("model.safetensors: 1000 bytes, expected"));
  EXPECT_THAT(r.out, HasSubstr("(truncated)"));
  EXPECT_THAT(r.out, HasSubstr("config.json: content hash"));
  EXPECT_THAT(r.out, HasSubstr("tokenizer.json: missing from the snapshot"));
  EXPECT_EQ(total_requests(), 0u);

  auto j = mm({"verify", "tiny", "--config", config.string(), "--json"});
  auto parsed = nlohmann::json::parse(j.out);
  EXPECT_EQ(parsed["models"][0]["problems"].size(), 3u);

  r = mm({"verify", "tiny", "--config", config.string(), "--repair"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2713 tiny: repaired 3 files"));
  auto c = counters();
  EXPECT_EQ(c.gets_for("model.safetensors"), 1u);
  EXPECT_GE(c.gets_for("config.json"), 1u);
  EXPECT_EQ(c.gets_for("tokenizer.json"), 0u); // its blob is intact: only relinked
  EXPECT_EQ(c.gets_for("README.md"), 0u);
  EXPECT_EQ(c.gets_for("sub/dir/deep.txt"), 0u);
  EXPECT_EQ(mm({"verify", "--config", config.string(), "tiny"}).exit_code, 0);
  const auto& main = repo("test-org/tiny-model").main();
  EXPECT_EQ(read_file(snap() / "config.json"), main.find("config.json")->content());
}

TEST_F(VerifyCleanTest, VerifyFindsADanglingLinkAndAMissingModel)
{
  ASSERT_EQ(mm({"sync", "--config", config.string(), "--model", "tiny"}).exit_code, 0);
  fs::remove(fs::canonical(snap() / "README.md"));
  auto r = mm({"verify", "--config", config.string()});
  EXPECT_EQ(r.exit_code, 3) << r.out; // nothing corrupt, but a blob and a whole model are missing
  EXPECT_THAT(r.out, HasSubstr("README.md: the snapshot link points at a missing blob"));
  EXPECT_THAT(r.out, HasSubstr("\u2717 tiny-v1: missing"));
}

TEST_F(VerifyCleanTest, CleanKeepsBlobsAnotherRevisionStillLinks)
{
  ASSERT_EQ(mm({"sync", "--config", config.string()}).exit_code, 0);
  const auto& tiny = repo("test-org/tiny-model");
  const auto shared = tiny.main().find("model.safetensors")->sha256();
  ASSERT_EQ(shared, tiny.resolve("v1.0")->find("model.safetensors")->sha256());
  const auto main_only = tiny.main().find("config.json")->git_sha1();
  const auto readme = tiny.main().find("README.md")->git_sha1();
  const fs::path blobs = cache / k_tiny / "blobs";
  const auto readme_size = fs::file_size(blobs / readme);
  const auto config_size = fs::file_size(blobs / main_only);

  auto r = mm({"clean", "--config", config.string(), "--model", "tiny"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(fs::exists(snap("main")));
  EXPECT_FALSE(fs::exists(cache / k_tiny / "refs" / "main"));
  EXPECT_FALSE(fs::exists(blobs / main_only));
  EXPECT_FALSE(fs::exists(blobs / readme));
  EXPECT_TRUE(fs::exists(blobs / shared));
  EXPECT_THAT(r.out, HasSubstr("(" + std::to_string(readme_size + config_size) + " bytes)"));
  // The other revision is intact.
  auto v = mm({"verify", "tiny-v1", "--config", config.string()});
  EXPECT_EQ(v.exit_code, 0) << v.out;
  auto list = nlohmann::json::parse(mm({"list", "--config", config.string(), "--json"}).out);
  EXPECT_EQ(list["models"][0]["status"], "missing");
  EXPECT_EQ(list["models"][1]["status"], "cached");
}

TEST_F(VerifyCleanTest, CleanKeepsASnapshotAnotherModelUses)
{
  write_file(config, k_config + R"(  - id: tiny-again
    repo_id: test-org/tiny-model
    files: [config.json]
)");
  ASSERT_EQ(mm({"sync", "--config", config.string(), "--model", "tiny"}).exit_code, 0);
  auto r = mm({"clean", "--config", config.string(), "--model", "tiny"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("also used by model 'tiny-again'"));
  EXPECT_TRUE(fs::exists(snap("main") / "config.json"));
  r = mm({"clean", "--config", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(snap("main")));
  EXPECT_TRUE(fs::is_empty(cache / k_tiny / "blobs"));
}

} // namespace
} // namespace modelmgr::test
