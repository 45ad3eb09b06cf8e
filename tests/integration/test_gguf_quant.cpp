// GGUF by quantization from any repo (`REPO:QUANT`): `pull`, `models download` and `start --model` pick the
// file(s) of one quantization from the repo listing (all split parts, plus the mmproj file), against the
// emulator's test-org/Split-Vision-GGUF and test-org/Tiny-Chat-GGUF.

#include "support/hub_fixture.hpp"

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string k_split = "test-org/Split-Vision-GGUF";

class GgufQuantTest : public HubTest {
protected:
  fs::path snapshot(const std::string& repo_id, const std::string& file) const
  {
    const auto& main = repo(repo_id).main();
    std::string folder = "models--" + repo_id;
    folder.replace(folder.find('/'), 1, "--");
    return cache / folder / "snapshots" / main.sha / file;
  }
};

TEST_F(GgufQuantTest, PullFetchesEverySplitPartInOrderThenTheMmproj)
{
  auto r = mm({"pull", k_split + ":q4_k_m"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> names = {
      "Split-Vision-Q4_K_M-00001-of-00003.gguf", "Split-Vision-Q4_K_M-00002-of-00003.gguf",
      "Split-Vision-Q4_K_M-00003-of-00003.gguf", "mmproj-Split-Vision-F16.gguf"};
  std::vector<std::string> expected;
  for (const auto& n : names) {
    expected.push_back(snapshot(k_split, n).string());
    EXPECT_EQ(read_file(snapshot(k_split, n)), repo(k_split).main().find(n)->content()) << n;
  }
  EXPECT_EQ(lines_of(r.out), expected);
  // Nothing of the other quantization, nothing else of the repo.
  EXPECT_FALSE(fs::exists(snapshot(k_split, "Split-Vision-Q8_0.gguf")));
  EXPECT_FALSE(fs::exists(snapshot(k_split, "README.md")));
}

TEST_F(GgufQuantTest, PullSingleFileQuantizationWithoutMmproj)
{
  auto r = mm({"pull", "test-org/Tiny-Chat-GGUF:Q8_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, snapshot("test-org/Tiny-Chat-GGUF", "tiny-chat.Q8_0.gguf").string() + "\n");
  EXPECT_FALSE(fs::exists(snapshot("test-org/Tiny-Chat-GGUF", "tiny-chat.Q4_K_M.gguf")));
}

TEST_F(GgufQuantTest, UnknownTagListsTheQuantizationsTheRepoHasAndDownloadsNothing)
{
  auto r = mm({"pull", k_split + ":Q6_K"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.err, HasSubstr("has no GGUF file of quantization 'Q6_K'"));
  EXPECT_THAT(r.err, HasSubstr("the repo has: Q4_K_M, Q8_0"));
  EXPECT_EQ(counters().body_bytes_total, 0u);
}

TEST_F(GgufQuantTest, FileNamesWithATagAreAUsageError)
{
  auto r = mm({"pull", k_split + ":Q8_0", "README.md"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("REPO:QUANT picks the GGUF files itself"));
}

TEST_F(GgufQuantTest, OfflinePullOfACachedQuantizationMakesNoRequest)
{
  ASSERT_EQ(mm({"pull", k_split + ":Q8_0"}).exit_code, 0);
  hub->reset_counters();
  auto r = mm({"pull", k_split + ":q8_0", "--offline"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(lines_of(r.out), ElementsAre(snapshot(k_split, "Split-Vision-Q8_0.gguf").string(),
                                           snapshot(k_split, "mmproj-Split-Vision-F16.gguf").string()));
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(GgufQuantTest, ModelsDownloadOfARepoWithoutTagTakesLlamaCppsDefault)
{
  auto r = mm({"models", "download", "test-org/Tiny-Chat-GGUF"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, snapshot("test-org/Tiny-Chat-GGUF", "tiny-chat.Q4_K_M.gguf").string() + "\n");

  r = mm({"models", "download", k_split + ":Q8_0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["spec"], k_split + ":Q8_0");
  EXPECT_EQ(j["quantization"], "Q8_0");
  EXPECT_EQ(j["path"], snapshot(k_split, "Split-Vision-Q8_0.gguf").string());
  ASSERT_EQ(j["files"].size(), 2u);
  EXPECT_EQ(j["files"][1]["path"], "mmproj-Split-Vision-F16.gguf");
}

TEST_F(GgufQuantTest, StartServesTheFirstSplitPartWithTheMmprojAndUsesTheCacheAfter)
{
  // No tag and no Q4_K_M-only rule surprises: this repo has Q4_K_M (split), which is the default.
  auto r = mm({"start", "--model", k_split, "--port", "9", "--dry-run"}, {{"PATH", "/usr/bin:/bin"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "llama-server -m " +
                       snapshot(k_split, "Split-Vision-Q4_K_M-00001-of-00003.gguf").string() +
                       " --host 127.0.0.1 --port 9 --mmproj " +
                       snapshot(k_split, "mmproj-Split-Vision-F16.gguf").string() + "\n");
  EXPECT_TRUE(fs::exists(snapshot(k_split, "Split-Vision-Q4_K_M-00003-of-00003.gguf")));

  hub->reset_counters();
  r = mm({"start", "--model", k_split + ":Q4_K_M", "--port", "9", "--dry-run"}, {{"PATH", "/usr/bin:/bin"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("Using cached model: " + k_split + ":Q4_K_M"));
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(GgufQuantTest, CatalogIdsWithoutSlashStillMeanTheCatalog)
{
  // "no-such-id:Q4_K_M" has no '/': a catalog lookup (usage error naming the catalog), never a repo.
  auto r = mm({"models", "download", "no-such-id:Q4_K_M"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(total_requests(), 0u);
}

} // namespace
} // namespace modelmgr::test
