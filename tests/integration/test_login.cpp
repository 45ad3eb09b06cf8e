// `modelmgr login` / `logout` / `whoami` against the emulator's whoami-v2: the token lands where the hf CLI
// keeps it (owner-only), a bad token writes nothing, the prompt does not echo, the token is never printed,
// and pulls use the saved token.

#include "support/hub_fixture.hpp"

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>
#include <sys/stat.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_good = "hf_test_token_with_access";

class LoginTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    home = tmp->path() / "hf-home";
  }

  std::map<std::string, std::string> login_env(std::map<std::string, std::string> extra = {}) const
  {
    extra.emplace("HF_HOME", home.string());
    return env(std::move(extra));
  }

  // Runs modelmgr with `input` on its standard input (through a file and the shell's redirection).
  ProcessResult with_stdin(const std::vector<std::string>& args, const std::string& input,
                           std::map<std::string, std::string> extra = {}) const
  {
    const fs::path in = tmp->path() / "stdin.txt";
    write_file(in, input);
    std::string cmd = "exec '" + modelmgr_binary() + "'";
    for (const auto& a : args) {
      cmd += " '" + a + "'";
    }
    cmd += " < '" + in.string() + "'";
    Process p({"/bin/sh", "-c", cmd}, login_env(std::move(extra)));
    return p.wait();
  }

  static unsigned mode_of(const fs::path& p)
  {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 0777;
  }

  fs::path home;
};

TEST_F(LoginTest, TokenFromStdinIsCheckedThenSavedWhereHfKeepsItOwnerOnlyAndNeverPrinted)
{
  auto r = with_stdin({"login", "--token", "-"}, k_good + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Logged in as test-user"));
  EXPECT_THAT(r.out + r.err, Not(HasSubstr(k_good)));
  EXPECT_EQ(read_file(home / "token"), k_good);
  EXPECT_EQ(read_file(home / "stored_tokens"), "[test]\nhf_token = " + k_good + "\n\n");
  EXPECT_EQ(mode_of(home / "token"), 0600u);
  EXPECT_EQ(mode_of(home / "stored_tokens"), 0600u);
  EXPECT_EQ(counters().count(emulator::RouteKind::other), 1u); // the whoami-v2 call
}

TEST_F(LoginTest, ABadTokenExitsWithAuthAndKeepsTheSavedOne)
{
  ASSERT_EQ(with_stdin({"login", "--token", "-"}, k_good + "\n").exit_code, 0);
  auto r = with_stdin({"login", "--token", "-"}, "hf_not_a_valid_token\n");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_THAT(r.err, HasSubstr("refused the token"));
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("hf_not_a_valid_token")));
  EXPECT_EQ(read_file(home / "token"), k_good);
}

TEST_F(LoginTest, ThePromptDoesNotEchoTheToken)
{
  PtyProcess p({modelmgr_binary(), "login"}, login_env());
  ASSERT_TRUE(p.wait_for("input is not shown")) << p.output();
  p.write(k_good + "\r");
  ASSERT_TRUE(p.wait_for("Logged in as test-user")) << p.output();
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, Not(HasSubstr(k_good)));
  EXPECT_EQ(read_file(home / "token"), k_good);
}

TEST_F(LoginTest, WithoutATerminalOrTokenItNamesTheStdinWay)
{
  auto r = mm({"login"}, {{"HF_HOME", home.string()}});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--token -"));
  EXPECT_FALSE(fs::exists(home / "token"));
}

TEST_F(LoginTest, WhoamiPrefersHfTokenOverTheFileAndLogoutEndsTheLogin)
{
  auto r = mm({"whoami"}, login_env());
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not logged in"));

  ASSERT_EQ(with_stdin({"login", "--token", "-"}, k_good + "\n").exit_code, 0);
  r = mm({"whoami", "--json"}, login_env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["name"], "test-user");
  EXPECT_EQ(j["token_source"], (home / "token").string());
  EXPECT_THAT(r.out + r.err, Not(HasSubstr(k_good)));

  // HF_TOKEN comes first (and here it is a bad one).
  r = mm({"whoami"}, login_env({{"HF_TOKEN", "hf_env_bad_token"}}));
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("hf_env_bad_token")));

  r = mm({"logout"}, login_env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(home / "token"));
  EXPECT_FALSE(fs::exists(home / "stored_tokens"));
  EXPECT_EQ(mm({"whoami"}, login_env()).exit_code, 4);
}

TEST_F(LoginTest, PullsUseTheSavedToken)
{
  auto r = mm({"pull", "test-org/private-model", "config.json"}, login_env());
  EXPECT_NE(r.exit_code, 0);
  ASSERT_EQ(with_stdin({"login", "--token", "-"}, k_good + "\n").exit_code, 0);
  r = mm({"pull", "test-org/private-model", "config.json"}, login_env());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

} // namespace
} // namespace modelmgr::test
