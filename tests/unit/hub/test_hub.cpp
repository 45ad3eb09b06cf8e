// hub/: token discovery, endpoint handling, URL shapes, metadata extraction and error mapping against the
// emulator.

#include "modelmgr/errors.hpp"

#include "emulator/hub_emulator.hpp"
#include "hub/hub_client.hpp"
#include "support/test_util.hpp"
#include "util/env.hpp"

#include <gmock/gmock.h>

namespace modelmgr::hub {
namespace {

using ::testing::HasSubstr;

TEST(Token, LookupOrderAndCleaning)
{
  test::TempDir tmp;
  util::MapEnv env;
  env.set("HF_HOME", tmp.path().string());
  EXPECT_FALSE(find_token(env));
  test::write_file(tmp.path() / "token", "  hf_from_file\r\n");
  EXPECT_EQ(find_token(env), "hf_from_file");
  env.set("HUGGING_FACE_HUB_TOKEN", "hf_legacy");
  EXPECT_EQ(find_token(env), "hf_legacy");
  env.set("HF_TOKEN", " hf_primary\n");
  EXPECT_EQ(find_token(env), "hf_primary");
  env.set("HF_TOKEN", "   ");
  EXPECT_EQ(find_token(env), "hf_legacy");
  util::MapEnv other;
  test::write_file(tmp.path() / "elsewhere", "hf_path_token");
  other.set("HF_TOKEN_PATH", (tmp.path() / "elsewhere").string());
  EXPECT_EQ(find_token(other), "hf_path_token");
}

TEST(Config, FromEnvironment)
{
  util::MapEnv env;
  env.set("HF_ENDPOINT", "http://mirror.local:8080/");
  env.set("HF_TOKEN", "hf_x");
  env.set("HF_HUB_ETAG_TIMEOUT", "2.5");
  env.set("HF_HUB_DOWNLOAD_TIMEOUT", "30");
  auto c = hub_config_from_env(env);
  EXPECT_EQ(c.endpoint, "http://mirror.local:8080");
  EXPECT_EQ(c.token, "hf_x");
  EXPECT_EQ(c.etag_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(c.download_timeout, std::chrono::seconds(30));
  env.set("MODEL_DOWNLOAD_TIMEOUT", "45");
  EXPECT_EQ(hub_config_from_env(env).download_timeout, std::chrono::seconds(45));
  env.set("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1");
  EXPECT_FALSE(hub_config_from_env(env).token);
  env.set("HF_HUB_ETAG_TIMEOUT", "soon");
  EXPECT_THROW(hub_config_from_env(env), ConfigurationError);
  EXPECT_THROW(normalize_endpoint("ftp://x"), ConfigurationError);
}

TEST(Etag, Normalize)
{
  EXPECT_EQ(normalize_etag("\"abc\""), "abc");
  EXPECT_EQ(normalize_etag("W/\"abc\""), "abc");
  EXPECT_EQ(normalize_etag("abc"), "abc");
  EXPECT_TRUE(is_commit_hash(std::string(40, 'a')));
  EXPECT_FALSE(is_commit_hash(std::string(40, 'A')));
  EXPECT_FALSE(is_commit_hash("main"));
}

TEST(Backoff, DoublesCapsAndHonoursRetryAfter)
{
  using ms = std::chrono::milliseconds;
  EXPECT_LE(backoff_delay(1, ms(1000), nullptr), ms(1200));
  EXPECT_GE(backoff_delay(1, ms(1000), nullptr), ms(800));
  EXPECT_GE(backoff_delay(3, ms(1000), nullptr), ms(3200));
  EXPECT_LE(backoff_delay(10, ms(1000), nullptr), ms(9600));
  net::Response r;
  r.headers["retry-after"] = "3";
  EXPECT_EQ(backoff_delay(1, ms(1000), &r), ms(3000));
  r.headers["retry-after"] = "999999";
  EXPECT_EQ(backoff_delay(1, ms(1000), &r), std::chrono::minutes(5));
}

class HubClientTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    emu.start();
    config.endpoint = emu.endpoint();
    config.retry_base = std::chrono::milliseconds(1);
  }
  HubClient client(std::optional<std::string> token = {})
  {
    HubConfig c = config;
    c.token = std::move(token);
    return HubClient(c, http);
  }
  emulator::HubEmulator emu;
  net::Client http;
  HubConfig config;
  RepoId tiny{cache::RepoType::model, "test-org/tiny-model"};
};

TEST_F(HubClientTest, UrlShapes)
{
  auto c = client();
  EXPECT_EQ(c.resolve_url(tiny, "refs/pr/1", "sub/a b.txt"),
            emu.endpoint() + "/test-org/tiny-model/resolve/refs%2Fpr%2F1/sub/a%20b.txt");
  RepoId ds{cache::RepoType::dataset, "o/d"};
  EXPECT_EQ(c.resolve_url(ds, "main", "x"), emu.endpoint() + "/datasets/o/d/resolve/main/x");
  EXPECT_EQ(c.api_url(ds, "/tree/main"), emu.endpoint() + "/api/datasets/o/d/tree/main");
}

TEST_F(HubClientTest, MetadataOfGitAndLfsFiles)
{
  auto c = client();
  auto repo = emu.repo("test-org/tiny-model");
  auto git = c.file_metadata(tiny, "main", "config.json");
  EXPECT_EQ(git.commit, repo->main().sha);
  EXPECT_EQ(git.etag, repo->file("config.json")->git_sha1());
  EXPECT_EQ(git.size, repo->file("config.json")->size());
  auto lfs = c.file_metadata(tiny, "main", "model.safetensors");
  EXPECT_EQ(lfs.etag, repo->file("model.safetensors")->sha256());
  EXPECT_EQ(lfs.size, repo->file("model.safetensors")->size());
  EXPECT_EQ(net::origin_of(lfs.location), emu.cdn_endpoint());
  std::string missing_commit;
  EXPECT_FALSE(c.try_file_metadata(tiny, "main", "nope", missing_commit));
  EXPECT_EQ(missing_commit, repo->main().sha);
}

TEST_F(HubClientTest, TokenGoesOnlyToTheEndpointOrigin)
{
  auto c = client("hf_test_token_with_access");
  auto on_hub = c.headers_for(emu.endpoint() + "/x");
  auto on_cdn = c.headers_for(emu.cdn_endpoint() + "/x");
  auto has_auth = [](const std::vector<std::string>& h) {
    return std::any_of(h.begin(), h.end(),
                       [](const std::string& s) { return s.rfind("Authorization:", 0) == 0; });
  };
  EXPECT_TRUE(has_auth(on_hub));
  EXPECT_FALSE(has_auth(on_cdn));
}

TEST_F(HubClientTest, ErrorsMapToClassesWithHints)
{
  auto anon = client();
  try {
    // Repo info of a gated repo is public on the Hub; its files are not.
    anon.file_metadata({cache::RepoType::model, "test-org/gated-model"}, "main", "config.json");
    ADD_FAILURE() << "expected an error";
  } catch (const ModelManagerError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::auth);
    EXPECT_THAT(e.hint(), HasSubstr("HF_TOKEN"));
  }
  EXPECT_THROW(anon.revision_info(tiny, "no-such-branch"), MissingModelError);
  EXPECT_THROW(anon.revision_info({cache::RepoType::model, "test-org/nope"}, "main"), MissingModelError);
  auto bad = client("hf_invalid");
  try {
    bad.revision_info(tiny, "main");
    ADD_FAILURE() << "expected an error";
  } catch (const ModelManagerError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::auth);
    EXPECT_THAT(std::string(e.what()), ::testing::Not(HasSubstr("hf_invalid")));
  }
}

TEST_F(HubClientTest, TreeListingFollowsPagination)
{
  auto c = client();
  RepoId many{cache::RepoType::model, "test-org/many-files"};
  auto files = c.list_files(many, emu.repo("test-org/many-files")->main().sha);
  EXPECT_EQ(files.size(), 1500u);
  EXPECT_EQ(emu.counters().count(emulator::RouteKind::api_tree), 2u);
}

TEST_F(HubClientTest, TransientApiFailuresAreRetried)
{
  emulator::FaultSpec busy;
  busy.kind = emulator::FaultSpec::Kind::status;
  busy.status = 503;
  busy.route = emulator::FaultSpec::Route::api;
  busy.times = 2;
  emu.add_fault(busy);
  auto c = client();
  EXPECT_EQ(c.revision_info(tiny, "main").sha, emu.repo("test-org/tiny-model")->main().sha);
  EXPECT_EQ(c.requests_sent(), 3u);
}

} // namespace
} // namespace modelmgr::hub
