// Shell completion (`modelmgr __complete`, packaging/completions/modelmgr.bash) and the man pages
// (`modelmgr __man DIR`), both read from the CLI's own command table.

#include "support/hub_fixture.hpp"

#include <fstream>
#include <tuple>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

class CompletionTest : public ::testing::Test {
protected:
  std::vector<std::string> complete(std::vector<std::string> words)
  {
    words.insert(words.begin(), "__complete");
    auto r = run_modelmgr(
        words, {{"HF_HUB_CACHE", (tmp / "cache").string()}, {"XDG_CONFIG_HOME", (tmp / "xdg").string()}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return lines_of(r.out);
  }
  TempDir tmp;
};

TEST_F(CompletionTest, SubcommandsButNotTheHiddenOnes)
{
  const auto c = complete({""});
  for (const char* cmd : {"pull", "sync", "cache", "models", "start", "login", "logout", "whoami"}) {
    EXPECT_THAT(c, Contains(cmd));
  }
  EXPECT_THAT(c, Not(Contains("__complete")));
  EXPECT_THAT(c, Not(Contains("__man")));
  EXPECT_THAT(complete({"cache", "l"}), testing::UnorderedElementsAre("locks", "ls"));
}

TEST_F(CompletionTest, OptionsOfTheCommandAndTheGlobalOnes)
{
  EXPECT_THAT(complete({"pull", "--rev"}), testing::ElementsAre("--revision"));
  const auto c = complete({"pull", "-"});
  EXPECT_THAT(c, Contains("--local-dir"));
  EXPECT_THAT(c, Contains("--json")); // global
  EXPECT_THAT(complete({"pull", "--repo-type", ""}), testing::ElementsAre("model", "dataset", "space"));
  EXPECT_THAT(complete({"pull", "--cache-dir", ""}), testing::ElementsAre("__files__"));
}

TEST_F(CompletionTest, CatalogIdsAndCachedRepos)
{
  EXPECT_THAT(complete({"models", "download", "mistral"}), Contains("mistral-7b-instruct-v0.3:Q4_K_M"));
  EXPECT_THAT(complete({"start", "--model", "mis"}), Contains("mistral-7b-instruct-v0.3"));
  fs::create_directories(tmp / "cache" / "models--test-org--tiny-model" / "snapshots");
  fs::create_directories(tmp / "cache" / "datasets--test-org--tiny-dataset");
  EXPECT_THAT(complete({"pull", "test"}), testing::ElementsAre("test-org/tiny-model"));
  EXPECT_THAT(complete({"cache", "rm", ""}), Contains("test-org/tiny-model"));
  // inspect takes catalog ids, cached repos and paths: the file marker comes first, for the scripts.
  const auto inspect = complete({"inspect", "test"});
  ASSERT_FALSE(inspect.empty());
  EXPECT_EQ(inspect.front(), "__files__");
  EXPECT_THAT(inspect, Contains("test-org/tiny-model"));
}

TEST_F(CompletionTest, TheBashScriptCompletesAQuantizationAfterTheColon)
{
  const fs::path script = fs::path(MODELMGR_SOURCE_DIR) / "packaging/completions/modelmgr.bash";
  const std::string bin_dir = fs::path(modelmgr_binary()).parent_path().string();
  // COMP_WORDS as bash splits them (':' is a word break); the script works from COMP_LINE instead.
  const std::string cmd = "source '" + script.string() +
                          "'; COMP_LINE='modelmgr models download mistral-7b-instruct-v0.3:Q8'; "
                          "COMP_POINT=${#COMP_LINE}; COMP_WORDS=(modelmgr models download "
                          "mistral-7b-instruct-v0.3 : Q8); COMP_CWORD=5; _modelmgr; "
                          "printf '%s\\n' \"${COMPREPLY[@]}\"";
  Process p({"/bin/bash", "-c", cmd}, {{"PATH", bin_dir + ":/usr/bin:/bin"},
                                       {"HF_HUB_CACHE", (tmp / "cache").string()},
                                       {"XDG_CONFIG_HOME", (tmp / "xdg").string()}});
  auto r = p.wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Q8_0\n");
}

TEST_F(CompletionTest, TheZshAndFishScriptsParseWhereThoseShellsAreInstalled)
{
  const fs::path dir = fs::path(MODELMGR_SOURCE_DIR) / "packaging/completions";
  bool any = false;
  for (const auto& [shell, check, script] : {std::tuple{"/usr/bin/zsh", "-n", "_modelmgr"},
                                             std::tuple{"/usr/bin/fish", "--no-execute", "modelmgr.fish"}}) {
    if (fs::exists(shell)) {
      any = true;
      Process p({shell, check, (dir / script).string()});
      auto r = p.wait();
      EXPECT_EQ(r.exit_code, 0) << shell << ": " << r.err;
    }
  }
  if (!any) {
    GTEST_SKIP() << "neither zsh nor fish is installed";
  }
}

TEST_F(CompletionTest, ManPagesOnePerCommandWithTheOptionsHelp)
{
  auto r = run_modelmgr({"__man", (tmp / "man").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* page : {"modelmgr.1", "modelmgr-pull.1", "modelmgr-cache-ls.1",
                           "modelmgr-models-download.1", "modelmgr-login.1", "modelmgr-start.1"}) {
    EXPECT_TRUE(fs::exists(tmp / "man" / page)) << page;
  }
  EXPECT_FALSE(fs::exists(tmp / "man" / "modelmgr-__complete.1"));
  const std::string pull = read_file(tmp / "man" / "modelmgr-pull.1");
  EXPECT_THAT(pull, HasSubstr(".TH MODELMGR\\-PULL 1"));
  EXPECT_THAT(pull, HasSubstr("\\fB\\-\\-revision\\fR"));
  EXPECT_THAT(pull, HasSubstr("Branch, tag, commit or refs/pr/N (default: main)"));
  EXPECT_THAT(pull, HasSubstr(".SH GLOBAL OPTIONS"));
  // The build writes the same pages (cmake/Package.cmake runs `__man` whenever the binary changes).
  const fs::path built = fs::path(modelmgr_binary()).parent_path().parent_path() / "man";
  ASSERT_TRUE(fs::exists(built / "modelmgr-pull.1"));
  EXPECT_EQ(read_file(built / "modelmgr-pull.1"), pull);
  // man(1) renders it without warnings, where man-db is installed.
  if (fs::exists("/usr/bin/man")) {
    Process m({"/usr/bin/man", "--warnings", "-l", (tmp / "man" / "modelmgr-pull.1").string()},
              {{"MANWIDTH", "100"}, {"PATH", "/usr/bin:/bin"}});
    auto mr = m.wait();
    EXPECT_EQ(mr.exit_code, 0) << mr.err;
    EXPECT_EQ(mr.err, "");
    EXPECT_THAT(mr.out, HasSubstr("--revision"));
  }
}

} // namespace
} // namespace modelmgr::test
