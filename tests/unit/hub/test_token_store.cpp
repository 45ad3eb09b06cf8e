// hub/token_store: the token files the hf CLI shares (token, stored_tokens), their format and modes, logout,
// and whoami-v2 against the emulator.

#include "modelmgr/errors.hpp"

#include "emulator/hub_emulator.hpp"
#include "hub/token_store.hpp"
#include "net/http.hpp"
#include "support/test_util.hpp"
#include "util/env.hpp"

#include <gmock/gmock.h>
#include <sys/stat.h>

namespace modelmgr::hub {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

unsigned mode_of(const fs::path& p)
{
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

TEST(TokenStore, PathsFollowHfHomeAndHfTokenPath)
{
  util::MapEnv env;
  env.set("HF_HOME", "/h");
  EXPECT_EQ(token_path(env), fs::path("/h/token"));
  EXPECT_EQ(stored_tokens_path(env), fs::path("/h/stored_tokens"));
  env.set("HOME", "/home/u");
  env.set("HF_TOKEN_PATH", "~/secrets/hf");
  EXPECT_EQ(token_path(env), fs::path("/home/u/secrets/hf"));
  // huggingface_hub keeps stored_tokens beside the token file.
  EXPECT_EQ(stored_tokens_path(env), fs::path("/home/u/secrets/stored_tokens"));
}

TEST(TokenStore, StoredTokensIniRoundTripsInConfigparsersLayout)
{
  const std::map<std::string, std::string> tokens{{"work", "hf_bbb"}, {"personal", "hf_aaa"}};
  const std::string text = format_stored_tokens(tokens);
  EXPECT_EQ(text, "[personal]\nhf_token = hf_aaa\n\n[work]\nhf_token = hf_bbb\n\n");
  EXPECT_EQ(parse_stored_tokens(text), tokens);
  // What Python may also write or a user may edit: key case, ':' separators, comments, CRLF.
  auto parsed = parse_stored_tokens("# c\r\n[a]\r\nHF_TOKEN: hf_x \r\n[no-token]\nother = 1\n");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, (std::map<std::string, std::string>{{"a", "hf_x"}}));
  EXPECT_FALSE(parse_stored_tokens("hf_token = outside a section\n"));
  EXPECT_FALSE(parse_stored_tokens("[broken\n"));
}

TEST(TokenStore, SaveLoginWritesBothFilesOwnerOnlyAndKeepsOtherStoredTokens)
{
  test::TempDir tmp;
  util::MapEnv env;
  env.set("HF_HOME", (tmp.path() / "hf").string());
  fs::create_directories(tmp.path() / "hf");
  test::write_file(tmp.path() / "hf" / "stored_tokens", "[old]\nhf_token = hf_old\n\n");
  const auto saved = save_login(env, "hf_new_secret", "new");
  EXPECT_EQ(test::read_file(saved.token_file), "hf_new_secret");
  EXPECT_EQ(test::read_file(saved.stored_tokens_file),
            "[new]\nhf_token = hf_new_secret\n\n[old]\nhf_token = hf_old\n\n");
  EXPECT_EQ(mode_of(saved.token_file), 0600u);
  EXPECT_EQ(mode_of(saved.stored_tokens_file), 0600u);
  // find_token reads what login wrote.
  EXPECT_EQ(find_token(env), "hf_new_secret");
  // No temporary file is left beside them.
  for (const auto& p : test::list_tree(tmp.path() / "hf")) {
    EXPECT_THAT(p, Not(HasSubstr(".tmp")));
  }
}

TEST(TokenStore, AMissingFolderIsCreatedOwnerOnly)
{
  test::TempDir tmp;
  util::MapEnv env;
  env.set("HF_TOKEN_PATH", (tmp.path() / "new" / "token").string());
  save_login(env, "hf_t", "n");
  EXPECT_EQ(mode_of(tmp.path() / "new"), 0700u);
  EXPECT_EQ(mode_of(tmp.path() / "new" / "token"), 0600u);
}

TEST(TokenStore, LogoutByNameRemovesTheActiveFileOnlyWhenItIsThatToken)
{
  test::TempDir tmp;
  util::MapEnv env;
  env.set("HF_HOME", tmp.path().string());
  save_login(env, "hf_a", "a");
  save_login(env, "hf_b", "b"); // active: b
  auto r = logout(env, std::string("a"));
  EXPECT_TRUE(r.name_found);
  EXPECT_TRUE(fs::exists(token_path(env)));
  EXPECT_EQ(test::read_file(stored_tokens_path(env)), "[b]\nhf_token = hf_b\n\n");
  r = logout(env, std::string("b"));
  EXPECT_FALSE(fs::exists(token_path(env)));
  EXPECT_FALSE(logout(env, std::string("zzz")).name_found);
  // Without a name: everything goes.
  save_login(env, "hf_c", "c");
  r = logout(env, std::nullopt);
  EXPECT_TRUE(r.was_logged_in);
  EXPECT_EQ(r.removed.size(), 2u);
  EXPECT_FALSE(fs::exists(token_path(env)));
  EXPECT_FALSE(fs::exists(stored_tokens_path(env)));
  EXPECT_FALSE(logout(env, std::nullopt).was_logged_in);
}

TEST(Whoami, ValidTokenGivesTheUserAndABadOneIsAnAuthErrorWithoutTheToken)
{
  emulator::HubEmulator emu;
  emu.start();
  net::Client http;
  HubConfig config;
  config.endpoint = emu.endpoint();
  config.retry_base = std::chrono::milliseconds(1);
  config.token = "hf_test_token_with_access";
  HubClient good(config, http);
  const UserInfo u = whoami(good);
  EXPECT_EQ(u.name, "test-user");
  EXPECT_EQ(u.token_name, "test");
  EXPECT_EQ(u.role, "read");

  config.token = "hf_wrong_secret_value";
  HubClient bad(config, http);
  try {
    whoami(bad);
    FAIL() << "expected DownloadError";
  } catch (const DownloadError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::auth);
    EXPECT_THAT(e.what(), HasSubstr("refused the token"));
    EXPECT_THAT(std::string(e.what()) + e.hint(), Not(HasSubstr("hf_wrong_secret_value")));
  }
}

} // namespace
} // namespace modelmgr::hub
