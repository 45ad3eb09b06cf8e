// The Hub protocol of `modelmgr serve` over a hand-built cache: the handler is called directly with
// requests, and its answers (status, headers, JSON, file ranges) are checked as a client reads them.

#include "cache/repo_cache.hpp"
#include "server/handler.hpp"
#include "support/test_util.hpp"
#include "util/hash.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

namespace modelmgr::server {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

const std::string k_main = std::string(40, 'a');
const std::string k_old = std::string(40, 'b');
const std::string k_pr = "c" + std::string(39, '1');

std::string read_body(const Response& r)
{
  if (!r.file) {
    return r.body;
  }
  std::string out(r.file->length, '\0');
  auto n = ::pread(r.file->file->fd(), out.data(), out.size(), static_cast<off_t>(r.file->offset));
  out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return out;
}

class ServerHandler : public ::testing::Test {
protected:
  void SetUp() override
  {
    root = tmp.path() / "cache";
    fs::create_directories(root);
    rc.emplace(root, cache::RepoType::model, "org/model", util::MapEnv{});
    rc->ensure_layout();
    add(k_main, "config.json", config);
    add(k_main, "sub/dir/deep.txt", "deep\n");
    add(k_main, "model.safetensors", weights, true);
    add(k_old, "config.json", "{\"old\": true}");
    add(k_pr, "config.json", "{\"pr\": 1}");
    rc->write_ref("main", k_main);
    rc->write_ref("v1.0", k_old);
    rc->write_ref("refs/pr/1", k_pr);
    view.emplace(root);
    handler.emplace(*view, options);
  }

  void add(const std::string& commit, const std::string& path, const std::string& content, bool lfs = false)
  {
    std::string etag = lfs ? util::sha256_hex(content) : util::git_blob_sha1_hex(content);
    test::write_file(rc->blob_path(etag), content);
    rc->link_snapshot(commit, path, etag);
  }

  void rebuild(HandlerOptions o)
  {
    options = std::move(o);
    handler.emplace(*view, options);
  }

  Response get(const std::string& target, std::vector<std::pair<std::string, std::string>> headers = {},
               const std::string& method = "GET", std::string body = {})
  {
    Request r;
    r.method = method;
    r.target = target;
    r.headers = std::move(headers);
    r.headers.emplace_back("host", "mirror.test:8080");
    r.body = std::move(body);
    return handler->handle(r);
  }

  test::TempDir tmp;
  fs::path root;
  std::optional<cache::RepoCache> rc;
  std::optional<CacheView> view;
  HandlerOptions options;
  std::optional<Handler> handler;
  std::string config = "{\"hidden_size\": 64}";
  std::string weights = std::string(1000, 'w') + "tail";
};

TEST_F(ServerHandler, RepoInfoWithBlobs)
{
  auto r = get("/api/models/org/model/revision/main?blobs=true");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = Json::parse(r.body);
  EXPECT_EQ(j["id"], "org/model");
  EXPECT_EQ(j["sha"], k_main);
  ASSERT_EQ(j["siblings"].size(), 3u);
  auto& st = j["siblings"][1];
  EXPECT_EQ(st["rfilename"], "model.safetensors");
  EXPECT_EQ(st["size"], weights.size());
  EXPECT_EQ(st["lfs"]["sha256"], util::sha256_hex(weights));
  // The git object id of an LFS file is the sha1 of its pointer, as on the Hub.
  std::string pointer = lfs_pointer_text(util::sha256_hex(weights), weights.size());
  EXPECT_EQ(st["blobId"], util::git_blob_sha1_hex(pointer));
  EXPECT_EQ(st["lfs"]["pointerSize"], pointer.size());
  EXPECT_EQ(j["siblings"][0]["blobId"], util::git_blob_sha1_hex(config));

  auto plain = Json::parse(get("/api/models/org/model").body);
  EXPECT_EQ(plain["sha"], k_main);
  EXPECT_FALSE(plain["siblings"][0].contains("size"));
}

TEST_F(ServerHandler, RevisionsBranchTagCommitShortAndPullRequest)
{
  EXPECT_EQ(Json::parse(get("/api/models/org/model/revision/v1.0").body)["sha"], k_old);
  EXPECT_EQ(Json::parse(get("/api/models/org/model/revision/" + k_old).body)["sha"], k_old);
  EXPECT_EQ(Json::parse(get("/api/models/org/model/revision/" + k_pr.substr(0, 8)).body)["sha"], k_pr);
  EXPECT_EQ(Json::parse(get("/api/models/org/model/revision/refs%2Fpr%2F1").body)["sha"], k_pr);
  EXPECT_EQ(Json::parse(get("/api/models/org/model/revision/refs%2Fheads%2Fmain").body)["sha"], k_main);
  auto r = get("/org/model/resolve/refs%2Fpr%2F1/config.json");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(read_body(r), "{\"pr\": 1}");
  // Raw (unencoded) refs/pr/1 as some clients send it.
  r = get("/org/model/resolve/refs/pr/1/config.json");
  EXPECT_EQ(r.header("X-Repo-Commit"), k_pr);

  r = get("/api/models/org/model/revision/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("X-Error-Code"), "RevisionNotFound");
  // A commit the cache has no snapshot for is unknown here.
  EXPECT_EQ(get("/api/models/org/model/revision/" + std::string(40, 'd')).status, 404);
}

TEST_F(ServerHandler, ResolveHeadersAsClientsReadThem)
{
  auto r = get("/org/model/resolve/main/config.json", {}, "HEAD");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(r.head);
  EXPECT_EQ(r.header("ETag"), "\"" + util::git_blob_sha1_hex(config) + "\"");
  EXPECT_EQ(r.header("X-Repo-Commit"), k_main);
  EXPECT_EQ(r.header("Accept-Ranges"), "bytes");
  EXPECT_FALSE(r.header("X-Linked-Etag"));
  EXPECT_EQ(r.content_length(), config.size());
  EXPECT_NE(serialize_head(r, true).find("Content-Length: " + std::to_string(config.size()) + "\r\n"),
            std::string::npos);

  r = get("/org/model/resolve/main/model.safetensors");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("X-Linked-Etag"), "\"" + util::sha256_hex(weights) + "\"");
  EXPECT_EQ(r.header("X-Linked-Size"), std::to_string(weights.size()));
  EXPECT_EQ(read_body(r), weights);

  r = get("/org/model/resolve/main/sub/dir/deep.txt");
  EXPECT_EQ(read_body(r), "deep\n");
}

TEST_F(ServerHandler, RangesAndConditionalRequests)
{
  auto r = get("/org/model/resolve/main/model.safetensors", {{"range", "bytes=1000-"}});
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(r.header("Content-Range"), "bytes 1000-1003/1004");
  EXPECT_EQ(read_body(r), "tail");

  // hf-hub 0.x and huggingface.js probe the size with a one-byte range.
  r = get("/org/model/resolve/main/model.safetensors", {{"range", "bytes=0-0"}});
  ASSERT_EQ(r.status, 206);
  EXPECT_EQ(r.header("Content-Range"), "bytes 0-0/1004");
  EXPECT_EQ(read_body(r), "w");

  r = get("/org/model/resolve/main/model.safetensors", {{"range", "bytes=5000-"}});
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.header("Content-Range"), "bytes */1004");

  r = get("/org/model/resolve/main/model.safetensors", {{"range", "bytes=0-1,5-6"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_length(), weights.size());

  r = get("/org/model/resolve/main/config.json",
          {{"if-none-match", "\"" + util::git_blob_sha1_hex(config) + "\""}});
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(serialize_head(r, true).find("Content-Length"), std::string::npos);
}

TEST_F(ServerHandler, ErrorCodes)
{
  auto r = get("/org/nothing/resolve/main/config.json");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("X-Error-Code"), "RepoNotFound");
  EXPECT_EQ(Json::parse(r.body)["error"], r.header("X-Error-Message"));

  r = get("/org/model/resolve/main/missing.bin");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("X-Error-Code"), "EntryNotFound");
  EXPECT_EQ(r.header("X-Repo-Commit"), k_main);

  r = get("/datasets/org/model/resolve/main/config.json");
  EXPECT_EQ(r.header("X-Error-Code"), "RepoNotFound");

  EXPECT_EQ(get("/org/model/resolve/main/config.json", {}, "POST").status, 405);
  EXPECT_EQ(get("/nothing-here").status, 404);
}

TEST_F(ServerHandler, FileListedButNotCachedIsEntryNotFoundWithAnExplanation)
{
  cache::TreeFile listed{"weights/big.bin", 123,          std::string(40, 'e'),
                         std::nullopt,      std::nullopt, std::nullopt};
  cache::TreeFile cfg{"config.json", config.size(), util::git_blob_sha1_hex(config),
                      std::nullopt,  std::nullopt,  std::nullopt};
  rc->write_tree_cache(k_main, {cfg, listed});
  auto j = Json::parse(get("/api/models/org/model/revision/main?blobs=true").body);
  ASSERT_EQ(j["siblings"].size(), 4u);
  EXPECT_EQ(j["siblings"][3]["rfilename"], "weights/big.bin");
  EXPECT_EQ(j["siblings"][3]["size"], 123);
  auto r = get("/org/model/resolve/main/weights/big.bin");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("X-Error-Code"), "EntryNotFound");
  EXPECT_NE(r.header("X-Error-Message")->find("not in this mirror's cache"), std::string_view::npos);
}

TEST_F(ServerHandler, TreeListingPaginatesWithAbsoluteLink)
{
  HandlerOptions o;
  o.tree_page = 2;
  rebuild(o);
  auto r = get("/api/models/org/model/tree/main?recursive=true");
  ASSERT_EQ(r.status, 200);
  // config.json, model.safetensors, sub, sub/dir, sub/dir/deep.txt: 5 entries in pages of 2.
  auto page = Json::parse(r.body);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]["path"], "config.json");
  EXPECT_EQ(page[1]["lfs"]["oid"], util::sha256_hex(weights));
  auto link = std::string(*r.header("Link"));
  EXPECT_EQ(link,
            "<http://mirror.test:8080/api/models/org/model/tree/main?recursive=true&cursor=2>; rel=\"next\"");
  std::vector<std::string> paths;
  std::string next = "/api/models/org/model/tree/main?recursive=true";
  for (int i = 0; i < 10 && !next.empty(); ++i) {
    auto resp = get(next);
    for (auto& e : Json::parse(resp.body)) {
      paths.push_back(e["path"]);
    }
    next.clear();
    if (auto l = resp.header("Link")) {
      auto start = l->find("mirror.test:8080") + 16;
      next = std::string(l->substr(start, l->find('>') - start));
    }
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"config.json", "model.safetensors", "sub", "sub/dir",
                                             "sub/dir/deep.txt"}));

  auto sub = Json::parse(get("/api/models/org/model/tree/main/sub").body);
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_EQ(sub[0]["type"], "directory");
  EXPECT_EQ(sub[0]["path"], "sub/dir");
  r = get("/api/models/org/model/tree/main/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("X-Error-Code"), "EntryNotFound");
  EXPECT_EQ(get("/api/models/org/model/tree/main/%2e%2e").status, 400);
}

TEST_F(ServerHandler, PathsInfoFormAndJson)
{
  auto r =
      get("/api/models/org/model/paths-info/main", {{"content-type", "application/x-www-form-urlencoded"}},
          "POST", "paths=config.json&paths=sub&paths=missing&paths=..%2Fx&expand=False");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = Json::parse(r.body);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["path"], "config.json");
  EXPECT_EQ(j[0]["oid"], util::git_blob_sha1_hex(config));
  EXPECT_EQ(j[1]["type"], "directory");

  r = get("/api/models/org/model/paths-info/main", {{"content-type", "application/json"}}, "POST",
          R"({"paths": ["model.safetensors"], "expand": true})");
  j = Json::parse(r.body);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["lastCommit"]["id"], k_main);
  EXPECT_EQ(get("/api/models/org/model/paths-info/main", {{"content-type", "application/json"}}, "POST", "{")
                .status,
            400);
}

TEST_F(ServerHandler, RefsListBranchesAndPullRequests)
{
  auto j = Json::parse(get("/api/models/org/model/refs").body);
  ASSERT_EQ(j["branches"].size(), 2u);
  EXPECT_EQ(j["branches"][0]["name"], "main");
  EXPECT_EQ(j["branches"][0]["ref"], "refs/heads/main");
  EXPECT_EQ(j["branches"][0]["targetCommit"], k_main);
  ASSERT_EQ(j["pullRequests"].size(), 1u);
  EXPECT_EQ(j["pullRequests"][0]["name"], "refs/pr/1");
  EXPECT_EQ(j["pullRequests"][0]["targetCommit"], k_pr);
}

TEST_F(ServerHandler, TraversalAttemptsNeverReadOutsideTheCache)
{
  test::write_file(tmp.path() / "secret.txt", "TOP-SECRET-BYTES");
  for (std::string target :
       {"/org/model/resolve/main/../../secret.txt", "/org/model/resolve/main/%2e%2e/%2e%2e/secret.txt",
        "/org/model/resolve/main/..%2F..%2Fsecret.txt", "/org/model/resolve/main//etc/passwd",
        "/org/model/resolve/main/%2Fetc%2Fpasswd", "/org/model/resolve/main/a%5C..%5Csecret.txt",
        "/org/model/resolve/main/config.json%00.txt", "/org/model/resolve/main/sub/../config.json"}) {
    auto r = get(target);
    EXPECT_TRUE(r.status == 400 || r.status == 404) << target << " -> " << r.status;
    EXPECT_FALSE(r.file) << target;
    EXPECT_EQ(r.body.find("TOP-SECRET-BYTES"), std::string::npos) << target;
  }
}

TEST_F(ServerHandler, SymlinksPointingOutsideTheCacheAreNotServed)
{
  test::write_file(tmp.path() / "secret.txt", "secret");
  auto snap = rc->snapshot_dir(k_main);
  // An absolute link, a relative link climbing out of the cache, and a link into another repo.
  fs::create_symlink(tmp.path() / "secret.txt", snap / "abs.txt");
  fs::create_symlink("../../../../secret.txt", snap / "climb.txt");
  fs::create_symlink("../../../models--other--repo/blobs/" + std::string(40, 'f'), snap / "other.txt");
  // A blob that is itself a link to outside, named like a real etag.
  std::string etag = std::string(40, '9');
  fs::create_symlink(tmp.path() / "secret.txt", rc->blob_path(etag));
  fs::create_symlink("../../blobs/" + etag, snap / "linked-blob.txt");
  // A snapshot folder that is a link to a folder outside.
  fs::create_directories(tmp.path() / "outside");
  test::write_file(tmp.path() / "outside" / "x.txt", "secret");
  fs::create_directory_symlink(tmp.path() / "outside", snap / "outdir");
  for (const char* name : {"abs.txt", "climb.txt", "other.txt", "linked-blob.txt", "outdir/x.txt"}) {
    auto r = get(std::string("/org/model/resolve/main/") + name);
    EXPECT_EQ(r.status, 404) << name;
    EXPECT_FALSE(r.file) << name;
  }
  // None of them appears in listings either.
  auto j = Json::parse(get("/api/models/org/model/tree/main?recursive=true").body);
  for (auto& e : j) {
    EXPECT_EQ(std::string(e["path"]).find("abs"), std::string::npos);
    EXPECT_NE(e["path"], "outdir");
  }
  EXPECT_EQ(j.size(), 5u);
}

TEST_F(ServerHandler, RepoFolderThatIsASymlinkIsNotServed)
{
  fs::create_directory_symlink(root / "models--org--model", root / "models--org--alias");
  EXPECT_EQ(get("/org/alias/resolve/main/config.json").status, 404);
}

TEST_F(ServerHandler, CopiedSnapshotFilesGetTheirGitSha1)
{
  auto snap = rc->snapshot_dir(k_main);
  test::write_file(snap / "copied.txt", "copy\n");
  auto r = get("/org/model/resolve/main/copied.txt", {}, "HEAD");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("ETag"), "\"" + util::git_blob_sha1_hex("copy\n") + "\"");
}

TEST_F(ServerHandler, ClientTokensGateEveryRoute)
{
  HandlerOptions o;
  o.client_token_hashes = {util::sha256_hex("hf_client_secret")};
  rebuild(o);
  auto r = get("/org/model/resolve/main/config.json");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("X-Error-Code"), "RepoNotFound");
  r = get("/api/models/org/model", {{"authorization", "Bearer wrong"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("X-Error-Message"), "Invalid credentials in Authorization header");
  EXPECT_EQ(r.body.find("hf_client_secret"), std::string::npos);
  r = get("/org/model/resolve/main/config.json", {{"authorization", "Bearer hf_client_secret"}});
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerHandler, AccelRedirectHandsBlobGetsToNginx)
{
  HandlerOptions o;
  o.accel_redirect_prefix = "/_modelmgr_blobs";
  rebuild(o);
  auto r = get("/org/model/resolve/main/model.safetensors");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("X-Accel-Redirect"),
            "/_modelmgr_blobs/" + k_main + "/models--org--model/" + util::sha256_hex(weights));
  EXPECT_EQ(r.content_length(), 0u);
  // HEAD is answered here, with the real size.
  r = get("/org/model/resolve/main/model.safetensors", {}, "HEAD");
  EXPECT_FALSE(r.header("X-Accel-Redirect"));
  EXPECT_EQ(r.content_length(), weights.size());
}

} // namespace
} // namespace modelmgr::server
