// nginx in front of `modelmgr serve` with the shipped config (deploy/nginx/modelmgr-serve.conf, placeholders
// filled): modelmgr pulls through nginx, the bytes match, and nginx's access log shows that nginx itself sent
// every file body (from the internal blob location after serve's X-Accel-Redirect).

#include "support/hub_fixture.hpp"
#include "support/nginx_fixture.hpp"
#include "support/serve_fixture.hpp"

#include <filesystem>
#include <regex>

#include <fmt/format.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;

std::string replace_all(std::string text, const std::string& from, const std::string& to)
{
  for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

class ServeNginxTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    if (auto why = NginxSite::unavailable()) {
      GTEST_SKIP() << *why;
    }
    auto r = mm({"pull", "test-org/tiny-model", "--exclude", "weights/*", "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = mm({"pull", "test-org/tiny-dataset", "--repo-type", "dataset", "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    serve = std::make_unique<ServeProcess>(
        std::vector<std::string>{"--cache-dir", cache.string(), "--accel-redirect", "/_modelmgr_blobs"},
        env());
    const std::string tmpl = read_file(fs::path(MODELMGR_SOURCE_DIR) / "deploy/nginx/modelmgr-serve.conf");
    nginx = std::make_unique<NginxSite>(tmp->path() / "nginx", [&](int port) {
      std::string conf = replace_all(tmpl, "@LISTEN@", fmt::format("127.0.0.1:{}", port));
      conf = replace_all(conf, "@SERVE@", fmt::format("127.0.0.1:{}", serve->port()));
      return replace_all(conf, "@CACHE_DIR@", fs::canonical(cache).string());
    });
  }

  void TearDown() override
  {
    nginx.reset();
    serve.reset();
    HubTest::TearDown();
  }

  std::unique_ptr<ServeProcess> serve;
  std::unique_ptr<NginxSite> nginx;
};

TEST_F(ServeNginxTest, PullThroughNginxWithBodiesSentByNginx)
{
  const fs::path mirror = tmp->path() / "mirror-client";
  for (std::vector<std::string> args :
       {std::vector<std::string>{"test-org/tiny-model", "--exclude", "weights/*"},
        std::vector<std::string>{"test-org/tiny-dataset", "--repo-type", "dataset"}}) {
    args.insert(args.begin(), "pull");
    args.push_back("--quiet");
    auto r = mm(args, {{"HF_ENDPOINT", nginx->origin()}, {"HF_HUB_CACHE", mirror.string()}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const auto& tiny = repo("test-org/tiny-model");
  for (const auto& file : tiny.main().files) {
    if (file->path().starts_with("weights/")) {
      continue;
    }
    EXPECT_EQ(read_file(mirror / "models--test-org--tiny-model/snapshots" / tiny.main().sha / file->path()),
              file->content())
        << file->path();
  }
  const auto& data = repo("test-org/tiny-dataset", "dataset");
  for (const auto& file : data.main().files) {
    EXPECT_EQ(
        read_file(mirror / "datasets--test-org--tiny-dataset/snapshots" / data.main().sha / file->path()),
        file->content())
        << file->path();
  }

  nginx->stop();
  std::uint64_t blob_bytes = 0;
  int blob_gets = 0;
  int api_requests = 0;
  for (const auto& e : nginx->access_log()) {
    if (e.method == "GET" && e.request_uri.find("/resolve/") != std::string::npos && e.status / 100 == 2) {
      // Every file body came from the internal blob location: nginx read the blob and sent it.
      EXPECT_TRUE(e.uri.starts_with("/_modelmgr_blobs/")) << e.request_uri << " served from " << e.uri;
      blob_bytes += e.body_bytes;
      ++blob_gets;
    } else if (e.request_uri.starts_with("/api/")) {
      ++api_requests;
      EXPECT_FALSE(e.uri.starts_with("/_modelmgr_blobs/"));
    }
  }
  std::uint64_t expected = 0;
  for (const auto& f : tiny.main().files) {
    expected += f->path().starts_with("weights/") ? 0 : f->size();
  }
  for (const auto& f : data.main().files) {
    expected += f->size();
  }
  EXPECT_GT(blob_gets, 0);
  EXPECT_GT(api_requests, 0);
  EXPECT_EQ(blob_bytes, expected);
}

TEST_F(ServeNginxTest, HeadersAndRangesThroughNginx)
{
  const auto& tiny = repo("test-org/tiny-model");
  auto model = tiny.file("model.safetensors");
  const std::string url = nginx->origin() + "/test-org/tiny-model/resolve/main/model.safetensors";
  auto head = run_curl({"-I", url});
  EXPECT_EQ(status_of(head.out), 200);
  EXPECT_EQ(header_of(head.out, "X-Linked-Etag"), "\"" + model->sha256() + "\"");
  EXPECT_EQ(header_of(head.out, "X-Linked-Size"), std::to_string(model->size()));
  EXPECT_EQ(header_of(head.out, "X-Repo-Commit"), tiny.main().sha);

  auto body = tmp->path() / "part.bin";
  auto range = run_curl({"-D", "-", "-o", body.string(), "-r", "10-19", url});
  EXPECT_EQ(status_of(range.out), 206);
  EXPECT_EQ(header_of(range.out, "Content-Range"), fmt::format("bytes 10-19/{}", model->size()));
  EXPECT_EQ(header_of(range.out, "ETag"), "\"" + model->sha256() + "\"");
  EXPECT_EQ(header_of(range.out, "X-Linked-Etag"), "\"" + model->sha256() + "\"");
  EXPECT_EQ(header_of(range.out, "X-Repo-Commit"), tiny.main().sha);
  EXPECT_EQ(read_file(body), model->read(10, 10));

  auto git = run_curl(
      {"-D", "-", "-o", "/dev/null", nginx->origin() + "/test-org/tiny-model/resolve/main/config.json"});
  EXPECT_EQ(header_of(git.out, "ETag"), "\"" + tiny.file("config.json")->git_sha1() + "\"");
  EXPECT_EQ(header_of(git.out, "X-Linked-Etag"), "");

  // Errors are serve's, passed through.
  auto missing = run_curl({"-I", nginx->origin() + "/test-org/tiny-model/resolve/main/nope"});
  EXPECT_EQ(status_of(missing.out), 404);
  EXPECT_EQ(header_of(missing.out, "X-Error-Code"), "EntryNotFound");
  // The internal location cannot be asked for directly.
  auto direct = run_curl({"-D", "-", "-o", "/dev/null",
                          nginx->origin() + "/_modelmgr_blobs/" + tiny.main().sha +
                              "/models--test-org--tiny-model/" + model->sha256()});
  EXPECT_EQ(status_of(direct.out), 404);
  // The tree API's next page points back at nginx.
  auto tree =
      run_curl({"-D", "-", "-o", "/dev/null",
                nginx->origin() + "/api/models/test-org/tiny-model/tree/main?recursive=true&limit=2"});
  EXPECT_NE(
      header_of(tree.out, "Link").find("<" + nginx->origin() + "/api/models/test-org/tiny-model/tree/main?"),
      std::string::npos)
      << tree.out;
}

} // namespace
} // namespace modelmgr::test
