// `modelmgr serve` end to end: a cache filled by `modelmgr pull` from the hub emulator is served on port 0,
// then pulled again through it (HF_ENDPOINT = serve) into a second cache, and compared byte for byte; the
// headers clients read are checked with curl; path traversal over the wire; aria2c; client tokens.

#include "cache/paths.hpp"
#include "support/hub_fixture.hpp"
#include "support/serve_fixture.hpp"

#include <csignal>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class ServeTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    mirror_cache = tmp->path() / "mirror-client";
  }

  // Pulls into the first cache (from the emulator); asserts success.
  void fill(std::vector<std::string> args)
  {
    args.insert(args.begin(), "pull");
    args.push_back("--quiet");
    auto r = mm(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // Pulls through `serve` into the second cache.
  ProcessResult pull_from(const ServeProcess& serve, std::vector<std::string> args,
                          std::map<std::string, std::string> extra = {})
  {
    args.insert(args.begin(), "pull");
    args.push_back("--quiet");
    extra["HF_ENDPOINT"] = serve.endpoint();
    extra["HF_HUB_CACHE"] = mirror_cache.string();
    return mm(args, extra);
  }

  std::unique_ptr<ServeProcess> serve(std::vector<std::string> args = {})
  {
    args.insert(args.begin(), {"--cache-dir", cache.string()});
    return std::make_unique<ServeProcess>(args, env());
  }

  // Every file of every snapshot of `folder`, read through the links, in both caches.
  void expect_same_snapshots(const std::string& folder)
  {
    auto a = cache / folder / "snapshots";
    auto b = mirror_cache / folder / "snapshots";
    std::vector<std::string> files_a, files_b;
    for (auto& e : fs::recursive_directory_iterator(a)) {
      if (fs::is_regular_file(e.path())) {
        files_a.push_back(fs::relative(e.path(), a).string());
      }
    }
    for (auto& e : fs::recursive_directory_iterator(b)) {
      if (fs::is_regular_file(e.path())) {
        files_b.push_back(fs::relative(e.path(), b).string());
      }
    }
    std::sort(files_a.begin(), files_a.end());
    std::sort(files_b.begin(), files_b.end());
    ASSERT_EQ(files_a, files_b) << folder;
    ASSERT_FALSE(files_a.empty());
    for (const auto& f : files_a) {
      ASSERT_EQ(read_file(a / f), read_file(b / f)) << f;
    }
  }

  fs::path mirror_cache;
};

TEST_F(ServeTest, PullThroughServeGivesTheSameSnapshotsByteForByte)
{
  fill({"test-org/tiny-model", "--exclude", "weights/*"});
  fill({"test-org/tiny-dataset", "--repo-type", "dataset"});
  fill({"test-org/many-files"}); // 1,500 files: the tree API pages through Link
  fill({"gpt2-tiny"});           // a canonical id without namespace
  auto s = serve();
  hub->reset_counters();

  auto r = pull_from(*s, {"test-org/tiny-model", "--exclude", "weights/*"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = pull_from(*s, {"test-org/tiny-dataset", "--repo-type", "dataset"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = pull_from(*s, {"test-org/many-files"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = pull_from(*s, {"gpt2-tiny"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  expect_same_snapshots("models--test-org--tiny-model");
  expect_same_snapshots("datasets--test-org--tiny-dataset");
  expect_same_snapshots("models--test-org--many-files");
  expect_same_snapshots("models--gpt2-tiny");
  EXPECT_EQ(read_file(mirror_cache / "models--test-org--tiny-model/refs/main"),
            read_file(cache / "models--test-org--tiny-model/refs/main"));
  // Served from the cache alone: the emulator saw none of it.
  EXPECT_EQ(total_requests(), 0u);
  // The recursive listing of 1,665 entries came in pages linked by an absolute next URL.
  auto page = run_curl({"-D", "-", "-o", "/dev/null",
                        s->endpoint() + "/api/models/test-org/many-files/tree/main?recursive=true"});
  EXPECT_EQ(header_of(page.out, "Link"),
            "<" + s->endpoint() +
                "/api/models/test-org/many-files/tree/main?recursive=true&cursor=1000>; rel=\"next\"");
}

TEST_F(ServeTest, TagsCommitsAndPullRequestRevisions)
{
  const auto& tiny = repo("test-org/tiny-model");
  fill({"test-org/tiny-model", "config.json", "--revision", "v1.0"});
  fill({"test-org/tiny-model", "config.json", "--revision", "refs/pr/1"});
  fill({"test-org/tiny-model", "config.json"});
  auto s = serve();
  for (const std::string& rev : std::vector<std::string>{"v1.0", "refs/pr/1", "main", tiny.commits[0].sha}) {
    auto r = pull_from(*s, {"test-org/tiny-model", "config.json", "--revision", rev});
    ASSERT_EQ(r.exit_code, 0) << rev << ": " << r.err;
  }
  auto folder = mirror_cache / "models--test-org--tiny-model";
  EXPECT_EQ(read_file(folder / "refs/refs/pr/1"), tiny.pull_requests.at(1));
  EXPECT_EQ(read_file(folder / "snapshots" / tiny.pull_requests.at(1) / "config.json"),
            tiny.file("config.json", "refs/pr/1")->content());
  EXPECT_EQ(read_file(folder / "snapshots" / tiny.commits[0].sha / "config.json"),
            tiny.file("config.json", "v1.0")->content());

  // A revision the cache never saw is the Hub's RevisionNotFound.
  auto r = pull_from(*s, {"test-org/tiny-model", "config.json", "--revision", "feature/x"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("feature/x"), std::string::npos) << r.err;
}

TEST_F(ServeTest, CurlSeesTheHeadersClientsRead)
{
  fill({"test-org/tiny-model", "--exclude", "weights/*"});
  auto s = serve();
  const auto& tiny = repo("test-org/tiny-model");
  auto model = tiny.file("model.safetensors");
  const std::string url = s->endpoint() + "/test-org/tiny-model/resolve/main/model.safetensors";

  auto head = run_curl({"-I", url});
  ASSERT_EQ(head.exit_code, 0) << head.err;
  EXPECT_EQ(status_of(head.out), 200);
  EXPECT_EQ(header_of(head.out, "ETag"), "\"" + model->sha256() + "\"");
  EXPECT_EQ(header_of(head.out, "X-Linked-Etag"), "\"" + model->sha256() + "\"");
  EXPECT_EQ(header_of(head.out, "X-Linked-Size"), std::to_string(model->size()));
  EXPECT_EQ(header_of(head.out, "Content-Length"), std::to_string(model->size()));
  EXPECT_EQ(header_of(head.out, "X-Repo-Commit"), tiny.main().sha);
  EXPECT_EQ(header_of(head.out, "Accept-Ranges"), "bytes");

  auto git = run_curl({"-I", s->endpoint() + "/test-org/tiny-model/resolve/main/config.json"});
  EXPECT_EQ(header_of(git.out, "ETag"), "\"" + tiny.file("config.json")->git_sha1() + "\"");
  EXPECT_EQ(header_of(git.out, "X-Linked-Etag"), "");

  auto body_file = tmp->path() / "range.bin";
  auto range = run_curl({"-D", "-", "-o", body_file.string(), "-r", "100-199", url});
  EXPECT_EQ(status_of(range.out), 206);
  EXPECT_EQ(header_of(range.out, "Content-Range"), fmt::format("bytes 100-199/{}", model->size()));
  EXPECT_EQ(read_file(body_file), model->read(100, 100));

  auto full = run_curl({"-o", body_file.string(), url});
  ASSERT_EQ(full.exit_code, 0) << full.err;
  EXPECT_EQ(read_file(body_file), model->content());

  auto beyond = run_curl({"-D", "-", "-o", "/dev/null", "-r", fmt::format("{}-", model->size()), url});
  EXPECT_EQ(status_of(beyond.out), 416);
  EXPECT_EQ(header_of(beyond.out, "Content-Range"), fmt::format("bytes */{}", model->size()));

  auto missing = run_curl({"-I", s->endpoint() + "/test-org/tiny-model/resolve/main/nope.bin"});
  EXPECT_EQ(status_of(missing.out), 404);
  EXPECT_EQ(header_of(missing.out, "X-Error-Code"), "EntryNotFound");
  EXPECT_EQ(header_of(missing.out, "X-Repo-Commit"), tiny.main().sha);
  auto no_rev = run_curl({"-I", s->endpoint() + "/test-org/tiny-model/resolve/nope/config.json"});
  EXPECT_EQ(header_of(no_rev.out, "X-Error-Code"), "RevisionNotFound");
  auto no_repo = run_curl({"-I", s->endpoint() + "/test-org/none/resolve/main/config.json"});
  EXPECT_EQ(header_of(no_repo.out, "X-Error-Code"), "RepoNotFound");

  auto info = run_curl({s->endpoint() + "/api/models/test-org/tiny-model/revision/main?blobs=true"});
  auto j = Json::parse(info.out);
  EXPECT_EQ(j["sha"], tiny.main().sha);
  bool found = false;
  for (auto& sib : j["siblings"]) {
    if (sib["rfilename"] == "model.safetensors") {
      found = true;
      EXPECT_EQ(sib["lfs"]["sha256"], model->sha256());
      EXPECT_EQ(sib["blobId"], model->blob_id()); // the pointer's git sha1, as the Hub reports it
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ServeTest, TraversalOverTheWireNeverLeavesTheCache)
{
  fill({"test-org/tiny-model", "config.json"});
  write_file(tmp->path() / "secret.txt", "TOP-SECRET-BYTES");
  auto snap = cache / "models--test-org--tiny-model/snapshots" / repo("test-org/tiny-model").main().sha;
  fs::create_symlink(tmp->path() / "secret.txt", snap / "abs-link.txt");
  fs::create_symlink("../../../../secret.txt", snap / "climbing-link.txt");
  auto s = serve();
  const std::string base = s->endpoint() + "/test-org/tiny-model/resolve/main/";
  for (std::string tail : {"../../../secret.txt", "%2e%2e/%2e%2e/%2e%2e/secret.txt",
                           "..%2F..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd", "a%5C..%5C..%5Csecret.txt",
                           "config.json%00", "abs-link.txt", "climbing-link.txt"}) {
    auto r = run_curl({"--path-as-is", "-D", "-", base + tail});
    int status = status_of(r.out);
    EXPECT_TRUE(status == 400 || status == 404) << tail << " -> " << status;
    EXPECT_EQ(r.out.find("TOP-SECRET-BYTES"), std::string::npos) << tail;
  }
  // The server is still fine afterwards.
  auto ok = run_curl({"-D", "-", "-o", "/dev/null", base + "config.json"});
  EXPECT_EQ(status_of(ok.out), 200);
}

TEST_F(ServeTest, Aria2cDownloadsWithParallelRanges)
{
  if (std::system("test -x /usr/bin/aria2c") != 0) {
    GTEST_SKIP() << "aria2c is not installed (Debian package aria2)";
  }
  fill({"test-org/tiny-model", "model.safetensors"});
  auto s = serve();
  auto out = tmp->path() / "aria";
  Process p({"/usr/bin/aria2c", "-q", "-x", "4", "-s", "4", "-k", "1M", "-d", out.string(), "-o", "m.bin",
             s->endpoint() + "/test-org/tiny-model/resolve/main/model.safetensors"});
  auto r = p.wait(std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(out / "m.bin"), repo("test-org/tiny-model").file("model.safetensors")->content());
}

TEST_F(ServeTest, ManyClientsAtOnceGetIdenticalBodies)
{
  fill({"test-org/tiny-model", "model.safetensors"});
  auto s = serve({"--threads", "2"});
  const std::string expected = repo("test-org/tiny-model").file("model.safetensors")->content();
  std::vector<std::future<ProcessResult>> clients;
  for (int i = 0; i < 16; ++i) {
    auto file = tmp->path() / fmt::format("c{}.bin", i);
    clients.push_back(std::async(std::launch::async, [&, file] {
      return run_curl(
          {"-o", file.string(), s->endpoint() + "/test-org/tiny-model/resolve/main/model.safetensors"});
    }));
  }
  for (int i = 0; i < 16; ++i) {
    auto r = clients[static_cast<std::size_t>(i)].get();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_file(tmp->path() / fmt::format("c{}.bin", i)), expected) << i;
  }
}

TEST_F(ServeTest, ClientTokensRestrictAccessAndNeverAppearInOutput)
{
  fill({"test-org/tiny-model", "config.json"});
  const std::string token = "hf_mirror_client_token_123";
  write_file(tmp->path() / "tokens", "# mirror clients\n" + token + "\n");
  auto s = serve({"--token-file", (tmp->path() / "tokens").string(), "--access-log"});
  auto denied = pull_from(*s, {"test-org/tiny-model", "config.json"});
  EXPECT_NE(denied.exit_code, 0);
  auto wrong = pull_from(*s, {"test-org/tiny-model", "config.json"}, {{"HF_TOKEN", "hf_wrong"}});
  EXPECT_NE(wrong.exit_code, 0);
  auto allowed = pull_from(*s, {"test-org/tiny-model", "config.json"}, {{"HF_TOKEN", token}});
  ASSERT_EQ(allowed.exit_code, 0) << allowed.err;
  auto out = s->stop();
  EXPECT_EQ(out.out.find(token), std::string::npos);
  EXPECT_EQ(out.err.find(token), std::string::npos);
  EXPECT_NE(out.err.find("resolve"), std::string::npos) << "the access log is empty";
}

TEST_F(ServeTest, OversizedRequestHeadersAreRefusedAndTheServerGoesOn)
{
  fill({"test-org/tiny-model", "config.json"});
  auto s = serve();
  const std::string url = s->endpoint() + "/test-org/tiny-model/resolve/main/config.json";
  auto big = run_curl({"-D", "-", "-o", "/dev/null", "-H", "X-Filler: " + std::string(20000, 'x'), url});
  EXPECT_EQ(status_of(big.out), 431) << big.out << big.err;
  auto ok = run_curl({"-D", "-", "-o", "/dev/null", url});
  EXPECT_EQ(status_of(ok.out), 200);
}

TEST_F(ServeTest, JsonOutputNamesTheEndpointForScripts)
{
  fill({"test-org/tiny-model", "config.json"});
  Process p({modelmgr_binary(), "serve", "--json", "--port", "0", "--cache-dir", cache.string()}, env());
  ASSERT_TRUE(p.wait_for_output("}\n", std::chrono::seconds(30)));
  auto j = Json::parse(p.output_so_far().out);
  const std::string endpoint = j["endpoint"];
  EXPECT_EQ(endpoint, fmt::format("http://127.0.0.1:{}", j["port"].get<int>()));
  EXPECT_EQ(j["cache_dir"], cache.string());
  auto r =
      run_curl({"-D", "-", "-o", "/dev/null", endpoint + "/test-org/tiny-model/resolve/main/config.json"});
  EXPECT_EQ(status_of(r.out), 200);
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait().exit_code, 0);
}

TEST_F(ServeTest, RefusesAMissingCacheFolderWithAHint)
{
  auto r = run_modelmgr({"serve", "--port", "0", "--cache-dir", (tmp->path() / "nowhere").string()}, env());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("nowhere"), std::string::npos);
  EXPECT_NE(r.err.find("hint"), std::string::npos);
}

} // namespace
} // namespace modelmgr::test

namespace modelmgr::test {
namespace {

// The demo is a cache served by the real `serve`: the stand-in default model set is written once into
// --cache-dir, `pull --all` gets it through HF_ENDPOINT, and no emulator endpoint exists.
TEST(ServeDemo, DemoCacheServesTheDefaultModelSet)
{
  TempDir tmp;
  const auto hub = tmp.path() / "demo-hub";
  const auto client = tmp.path() / "client";
  std::map<std::string, std::string> env{{"HF_HOME", (tmp.path() / "hf_home").string()}};
  {
    ServeProcess serve({"--demo", "--cache-dir", hub.string()}, env);
    auto e = env;
    e["HF_ENDPOINT"] = serve.endpoint();
    e["HF_HUB_CACHE"] = client.string();
    auto r = run_modelmgr({"pull", "--all", "--quiet"}, e);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto admin = run_curl({"-D", "-", "-o", "/dev/null", serve.endpoint() + "/_emulator/counters"});
    EXPECT_EQ(status_of(admin.out), 404);
    auto out = serve.stop();
    EXPECT_NE(out.err.find("files written"), std::string::npos) << out.err;
  }
  std::size_t checked = 0;
  for (const auto& spec : emulator::demo_repo_specs()) {
    const auto folder = client / cache::repo_folder_name(cache::RepoType::model, spec.id);
    const std::string commit = emulator::derived_commit_sha(spec.id, spec.commits.size() - 1);
    EXPECT_EQ(read_file(folder / "refs/main"), commit) << spec.id;
    for (const auto& file_spec : spec.commits.back().files) {
      emulator::RepoFile file(file_spec);
      EXPECT_EQ(read_file(folder / "snapshots" / commit / file.path()), file.content())
          << spec.id << " " << file.path();
      ++checked;
    }
  }
  EXPECT_GE(checked, 16u);
  // A second start finds the demo cache complete and writes nothing.
  ServeProcess again({"--demo", "--cache-dir", hub.string()}, env);
  auto out = again.stop();
  EXPECT_NE(out.err.find("already complete"), std::string::npos) << out.err;
}

} // namespace
} // namespace modelmgr::test
