// The Hub protocol as the emulator speaks it: resolve redirects, headers, errors, JSON APIs, Range.

#include "emulator_fixture.hpp"
#include "util/hash.hpp"

#include <nlohmann/json.hpp>
#include <regex>

#include <fmt/format.h>

using namespace modelmgr::emulator;
using namespace modelmgr::emulator::test;
using nlohmann::json;

TEST_F(EmulatorTest, RegularFileRedirectsToResolveCache)
{
  auto file = tiny()->file("config.json");
  auto head = http_head(resolve("config.json"));
  ASSERT_EQ(head.status, 307);
  std::string location = head.header("location");
  EXPECT_TRUE(location.starts_with("/api/resolve-cache/models/test-org/tiny-model/" + tiny()->main().sha +
                                   "/config.json?"))
      << location;
  EXPECT_NE(location.find("etag=%22" + file->git_sha1() + "%22"), std::string::npos);
  EXPECT_EQ(head.header("x-repo-commit"), tiny()->main().sha);
  EXPECT_EQ(head.header("x-powered-by"), "huggingface-moon");
  EXPECT_TRUE(head.has("x-request-id"));
  EXPECT_TRUE(head.has("ratelimit"));
  EXPECT_FALSE(head.has("etag")) << "a redirect carries no content etag";

  // Python follows with the path only (query dropped).
  auto final_head = http_head(url(location.substr(0, location.find('?'))));
  EXPECT_EQ(final_head.status, 200);
  EXPECT_EQ(final_head.header("etag"), "\"" + file->git_sha1() + "\"");
  EXPECT_EQ(final_head.header("content-length"), std::to_string(file->size()));
  EXPECT_EQ(final_head.header("x-repo-commit"), tiny()->main().sha);
  EXPECT_EQ(final_head.header("accept-ranges"), "bytes");

  auto get = http_get(url(location), {"Accept-Encoding: identity"});
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, file->content());
  EXPECT_EQ(get.header("etag"), "\"" + file->git_sha1() + "\"");
  // The redirect only exists on /resolve/: the GET of the resolve URL redirects too.
  EXPECT_EQ(http_get(resolve("config.json")).status, 307);
}

TEST_F(EmulatorTest, LfsFileRedirectsToCdn)
{
  auto file = tiny()->file("model.safetensors");
  auto head = http_head(resolve("model.safetensors"));
  ASSERT_EQ(head.status, 302);
  std::string location = head.header("location");
  EXPECT_TRUE(location.starts_with(hub->cdn_endpoint() + "/")) << location;
  EXPECT_NE(location.find("Signature="), std::string::npos);
  EXPECT_NE(location.find("Expires="), std::string::npos);
  EXPECT_EQ(head.header("x-linked-etag"), "\"" + file->sha256() + "\"");
  EXPECT_EQ(head.header("x-linked-size"), std::to_string(file->size()));
  EXPECT_EQ(head.header("x-repo-commit"), tiny()->main().sha);
  EXPECT_NE(head.header("content-length"), std::to_string(file->size()));
  EXPECT_NE(head.header("etag"), "\"" + file->sha256() + "\"");

  auto get = http_get(location);
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.body.size(), file->size());
  EXPECT_EQ(modelmgr::util::sha256_hex(get.body), file->sha256());
  // Safetensors header is real: 8-byte length then JSON.
  EXPECT_EQ(get.body[8], '{');

  auto cdn_head = http_head(location);
  EXPECT_EQ(cdn_head.status, 200);
  EXPECT_EQ(cdn_head.header("content-length"), std::to_string(file->size()));
  EXPECT_NE(cdn_head.header("etag"), "\"" + file->sha256() + "\"");

  auto c = hub->counters();
  EXPECT_EQ(c.count(RouteKind::head_resolve), 1u);
  EXPECT_EQ(c.count(RouteKind::cdn_get), 1u);
  EXPECT_EQ(c.count(RouteKind::cdn_head), 1u);
  EXPECT_EQ(c.bytes_for("model.safetensors"), file->size());
  EXPECT_EQ(c.gets_for("model.safetensors"), 1u);
}

TEST_F(EmulatorTest, CdnRejectsAuthorization)
{
  std::string location = body_url("model.safetensors");
  auto get = http_get(location, {k_token});
  EXPECT_EQ(get.status, 400);
  EXPECT_NE(get.body.find("InvalidArgument"), std::string::npos);
  auto c = hub->counters();
  EXPECT_EQ(c.cdn_authorization_rejected, 1u);
  ASSERT_FALSE(c.log.empty());
  EXPECT_TRUE(c.log.back().cdn);
  EXPECT_TRUE(c.log.back().authorization);
  EXPECT_EQ(c.log.back().status, 400);
  EXPECT_EQ(c.bytes_for("model.safetensors"), 0u);

  // A client that drops the token on the cross-host redirect gets the bytes.
  auto followed = http_follow("GET", resolve("model.safetensors"), {k_token});
  EXPECT_EQ(followed.status, 200);
  EXPECT_EQ(followed.body.size(), tiny()->file("model.safetensors")->size());
}

TEST_F(EmulatorTest, UnknownCdnObjectIs404)
{
  EXPECT_EQ(http_get(hub->cdn_endpoint() + "/repos/aa/bb/" + std::string(64, 'a') + "?Signature=x&Expires=1")
                .status,
            404);
}

TEST_F(EmulatorTest, EmptyFileIsServedDirectly)
{
  auto head = http_head(resolve("empty.txt"));
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "0");
  EXPECT_EQ(head.header("etag"), "\"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\"");
  EXPECT_EQ(head.header("x-repo-commit"), tiny()->main().sha);
  auto get = http_get(resolve("empty.txt"));
  EXPECT_EQ(get.code, CURLE_OK);
  EXPECT_EQ(get.status, 200);
  EXPECT_TRUE(get.body.empty());
}

TEST_F(EmulatorTest, CanonicalRepoIsServedDirectly)
{
  auto repo = hub->repo("gpt2-tiny");
  auto head = http_head(resolve("config.json", "main", "gpt2-tiny"));
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("etag"), "\"" + repo->file("config.json")->git_sha1() + "\"");
  EXPECT_EQ(http_get(resolve("config.json", "main", "gpt2-tiny")).body, repo->file("config.json")->content());
  EXPECT_EQ(http_head(resolve("model.safetensors", "main", "gpt2-tiny")).status, 302);
  auto info = json::parse(http_get(url("/api/models/gpt2-tiny")).body);
  EXPECT_EQ(info["id"], "gpt2-tiny");
  EXPECT_EQ(http_get(url("/api/models/gpt2-tiny/revision/main")).status, 200);
  EXPECT_EQ(http_get(url("/api/models/gpt2-tiny/tree/main")).status, 200);
}

TEST_F(EmulatorTest, RevisionsOfEveryKind)
{
  auto repo = tiny();
  struct Case {
    std::string rev;
    std::string sha;
  };
  std::vector<Case> cases = {
      {"main", repo->main().sha},
      {"v1.0", repo->commits[0].sha},
      {"feature%2Fx", repo->resolve("feature/x")->sha},
      {"refs%2Fpr%2F1", repo->resolve("refs/pr/1")->sha},
      {"refs/pr/1", repo->resolve("refs/pr/1")->sha}, // unencoded, as some clients send it
      {repo->commits[0].sha, repo->commits[0].sha},
      {repo->commits[0].sha.substr(0, 7), repo->commits[0].sha},
  };
  for (const auto& c : cases) {
    auto head = http_head(resolve("config.json", c.rev));
    EXPECT_EQ(head.status, 307) << c.rev;
    EXPECT_EQ(head.header("x-repo-commit"), c.sha) << c.rev;
  }
  // Old main had a different config.json.
  auto old = http_follow("GET", resolve("config.json", "v1.0"));
  EXPECT_EQ(old.body, repo->file("config.json", "v1.0")->content());
  EXPECT_NE(old.body, repo->file("config.json")->content());
  EXPECT_EQ(http_head(resolve("feature.txt", "feature%2Fx")).status, 307);
  EXPECT_EQ(http_head(resolve("feature.txt")).status, 404);
}

TEST_F(EmulatorTest, SpecialPaths)
{
  auto repo = tiny();
  for (auto [encoded, path] : std::vector<std::pair<std::string, std::string>>{
           {"name%20with%20spaces.txt", "name with spaces.txt"},
           {"donn%C3%A9es/%C3%A9lan.txt", "données/élan.txt"},
           {"sub/dir/deep.txt", "sub/dir/deep.txt"},
       }) {
    auto got = http_follow("GET", resolve(encoded));
    EXPECT_EQ(got.status, 200) << path;
    EXPECT_EQ(got.body, repo->file(path)->content()) << path;
  }
  {
    // '#' must be percent-encoded in a URL path.
    RepoSpec spec;
    spec.id = "test-org/hash-name";
    spec.commits.push_back({"", {FileSpec::text("fix #1.txt", "hash\n")}});
    hub->add_repo(spec);
    auto got = http_follow("GET", resolve("fix%20%231.txt", "main", "test-org/hash-name"));
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.body, "hash\n");
  }
}

TEST_F(EmulatorTest, DatasetRepo)
{
  auto repo = hub->repo("test-org/tiny-dataset", "dataset");
  auto head = http_head(url("/datasets/test-org/tiny-dataset/resolve/main/data/train.csv"));
  EXPECT_EQ(head.status, 307);
  EXPECT_TRUE(head.header("location").starts_with("/api/resolve-cache/datasets/test-org/tiny-dataset/"));
  auto got = http_follow("GET", url("/datasets/test-org/tiny-dataset/resolve/main/data/train.csv"));
  EXPECT_EQ(got.body, repo->file("data/train.csv")->content());
  // The same id as a model does not exist.
  EXPECT_EQ(http_head(url("/test-org/tiny-dataset/resolve/main/data/train.csv")).status, 401);
  auto info = json::parse(http_get(url("/api/datasets/test-org/tiny-dataset")).body);
  EXPECT_EQ(info["sha"], repo->main().sha);
  EXPECT_FALSE(info.contains("modelId"));
}

TEST_F(EmulatorTest, ErrorsCarryHubHeaders)
{
  auto missing_repo = http_head(resolve("config.json", "main", "test-org/nope"));
  EXPECT_EQ(missing_repo.status, 401);
  EXPECT_EQ(missing_repo.header("x-error-code"), "RepoNotFound");
  auto missing_repo_token = http_head(resolve("config.json", "main", "test-org/nope"), {k_token});
  EXPECT_EQ(missing_repo_token.status, 404);
  EXPECT_EQ(missing_repo_token.header("x-error-code"), "RepoNotFound");

  auto rev = http_get(resolve("config.json", "no-such-branch"));
  EXPECT_EQ(rev.status, 404);
  EXPECT_EQ(rev.header("x-error-code"), "RevisionNotFound");
  EXPECT_TRUE(json::parse(rev.body).contains("error"));

  auto entry = http_head(resolve("missing.bin"));
  EXPECT_EQ(entry.status, 404);
  EXPECT_EQ(entry.header("x-error-code"), "EntryNotFound");
  EXPECT_EQ(entry.header("x-error-message"), "Entry not found");
  EXPECT_EQ(entry.header("x-repo-commit"), tiny()->main().sha);

  auto invalid = http_head(resolve("config.json"), {"Authorization: Bearer hf_bogus"});
  EXPECT_EQ(invalid.status, 401);
  EXPECT_EQ(invalid.header("x-error-message"), "Invalid credentials in Authorization header");
  EXPECT_EQ(http_get(url("/api/models/test-org/tiny-model"), {"Authorization: Bearer hf_bogus"}).status, 401);
  EXPECT_EQ(http_get(url("/no/such/page")).status, 404);
}

TEST_F(EmulatorTest, PrivateRepo)
{
  std::string u = resolve("config.json", "main", "test-org/private-model");
  auto anon = http_head(u);
  EXPECT_EQ(anon.status, 401);
  EXPECT_EQ(anon.header("x-error-code"), "RepoNotFound");
  auto other_user = http_head(u, {k_token_no_gated});
  EXPECT_EQ(other_user.status, 404);
  EXPECT_EQ(other_user.header("x-error-code"), "RepoNotFound");
  auto owner = http_head(u, {k_token});
  EXPECT_EQ(owner.status, 200) << "regular files of private repos are served directly";
  EXPECT_EQ(owner.header("etag"),
            "\"" + hub->repo("test-org/private-model")->file("config.json")->git_sha1() + "\"");
  EXPECT_EQ(http_get(url("/api/models/test-org/private-model")).status, 401);
  auto info = http_get(url("/api/models/test-org/private-model"), {k_token});
  EXPECT_EQ(info.status, 200);
  EXPECT_EQ(json::parse(info.body)["private"], true);
  // LFS files of private repos still go to the CDN, which needs no token.
  auto lfs = http_follow("GET", resolve("model.safetensors", "main", "test-org/private-model"), {k_token});
  EXPECT_EQ(lfs.status, 200);
}

TEST_F(EmulatorTest, GatedRepo)
{
  std::string u = resolve("config.json", "main", "test-org/gated-model");
  auto anon = http_head(u);
  EXPECT_EQ(anon.status, 401);
  EXPECT_EQ(anon.header("x-error-code"), "GatedRepo");
  EXPECT_EQ(anon.header("x-error-message"), "Access to model test-org/gated-model is restricted. You must "
                                            "have access to it and be authenticated to "
                                            "access it. Please log in.");
  auto no_access = http_head(u, {k_token_no_gated});
  EXPECT_EQ(no_access.status, 403);
  EXPECT_EQ(no_access.header("x-error-code"), "GatedRepo");
  auto ok = http_get(u, {k_token});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, hub->repo("test-org/gated-model")->file("config.json")->content());
  // Metadata of gated repos is public.
  auto info = http_get(url("/api/models/test-org/gated-model"));
  EXPECT_EQ(info.status, 200);
  EXPECT_EQ(json::parse(info.body)["gated"], "manual");
  EXPECT_EQ(json::parse(http_get(url("/api/models/test-org/tiny-model")).body)["gated"], false);
}

TEST_F(EmulatorTest, RenamedRepoRedirects)
{
  auto head = http_head(resolve("config.json", "main", "old-org/tiny-model"));
  EXPECT_EQ(head.status, 307);
  EXPECT_EQ(head.header("location"), "/test-org/tiny-model/resolve/main/config.json");
  EXPECT_FALSE(head.has("etag"));
  auto api = http_get(url("/api/models/old-org/tiny-model/revision/main?blobs=true"));
  EXPECT_EQ(api.status, 307);
  EXPECT_EQ(api.header("location"), "/api/models/test-org/tiny-model/revision/main?blobs=true");
  auto followed = http_follow("GET", resolve("config.json", "main", "old-org/tiny-model"));
  EXPECT_EQ(followed.body, tiny()->file("config.json")->content());
  // Wrong casing redirects to the canonical spelling.
  EXPECT_EQ(http_head(resolve("config.json", "main", "Test-Org/Tiny-Model")).header("location"),
            "/test-org/tiny-model/resolve/main/config.json");
}

TEST_F(EmulatorTest, RepoInfo)
{
  auto repo = tiny();
  auto info = json::parse(http_get(url("/api/models/test-org/tiny-model")).body);
  EXPECT_EQ(info["id"], "test-org/tiny-model");
  EXPECT_EQ(info["sha"], repo->main().sha);
  EXPECT_EQ(info["private"], false);
  EXPECT_EQ(info["siblings"].size(), repo->main().files.size());
  EXPECT_FALSE(info["siblings"][0].contains("size"));

  auto at_tag = json::parse(http_get(url("/api/models/test-org/tiny-model/revision/v1.0?blobs=true")).body);
  EXPECT_EQ(at_tag["sha"], repo->commits[0].sha);
  bool saw_lfs = false;
  for (const auto& s : at_tag["siblings"]) {
    auto file = repo->file(s["rfilename"].get<std::string>(), "v1.0");
    ASSERT_TRUE(file);
    EXPECT_EQ(s["size"], file->size());
    EXPECT_EQ(s["blobId"], file->blob_id());
    if (file->is_lfs()) {
      saw_lfs = true;
      EXPECT_EQ(s["lfs"]["sha256"], file->sha256());
      EXPECT_EQ(s["lfs"]["size"], file->size());
      EXPECT_EQ(s["lfs"]["pointerSize"], file->lfs_pointer().size());
    } else {
      EXPECT_FALSE(s.contains("lfs"));
    }
  }
  EXPECT_TRUE(saw_lfs);
  auto pr = json::parse(http_get(url("/api/models/test-org/tiny-model/revision/refs%2Fpr%2F1")).body);
  EXPECT_EQ(pr["sha"], repo->resolve("refs/pr/1")->sha);
  auto bad = http_get(url("/api/models/test-org/tiny-model/revision/nope"));
  EXPECT_EQ(bad.status, 404);
  EXPECT_EQ(bad.header("x-error-code"), "RevisionNotFound");
}

TEST_F(EmulatorTest, TreeListing)
{
  auto repo = tiny();
  auto top = http_get(url("/api/models/test-org/tiny-model/tree/main?recursive=false&expand=false"));
  ASSERT_EQ(top.status, 200);
  std::map<std::string, json> by_path;
  for (const auto& e : json::parse(top.body)) {
    by_path[e["path"]] = e;
  }
  EXPECT_EQ(by_path.at("sub")["type"], "directory");
  EXPECT_EQ(by_path.at("weights")["type"], "directory");
  EXPECT_FALSE(by_path.contains("sub/dir/deep.txt"));
  EXPECT_EQ(by_path.at("config.json")["oid"], repo->file("config.json")->git_sha1());
  EXPECT_EQ(by_path.at("model.safetensors")["lfs"]["oid"], repo->file("model.safetensors")->sha256());
  EXPECT_EQ(by_path.at("model.safetensors")["size"], repo->file("model.safetensors")->size());
  EXPECT_FALSE(top.has("link"));

  auto sub = json::parse(http_get(url("/api/models/test-org/tiny-model/tree/main/sub")).body);
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_EQ(sub[0]["path"], "sub/dir");
  // Python encodes the path as one segment.
  auto deep = json::parse(http_get(url("/api/models/test-org/tiny-model/tree/main/sub%2Fdir")).body);
  ASSERT_EQ(deep.size(), 1u);
  EXPECT_EQ(deep[0]["path"], "sub/dir/deep.txt");

  auto all = json::parse(
      http_get(url("/api/models/test-org/tiny-model/tree/" + repo->main().sha + "?recursive=true")).body);
  std::size_t files = 0;
  for (const auto& e : all) {
    files += e["type"] == "file";
  }
  EXPECT_EQ(files, repo->main().files.size());
  auto missing = http_get(url("/api/models/test-org/tiny-model/tree/main/nope"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(http_get(url("/api/models/test-org/tiny-model/tree/nope")).header("x-error-code"),
            "RevisionNotFound");
}

TEST_F(EmulatorTest, TreePaginationFollowsLinkHeader)
{
  std::string next = url("/api/models/test-org/many-files/tree/main?recursive=true&expand=false");
  std::set<std::string> files;
  std::size_t entries = 0;
  int pages = 0;
  std::regex link_re(R"re(<([^>]+)>;\s*rel="next")re");
  while (!next.empty()) {
    auto page = http_get(next);
    ASSERT_EQ(page.status, 200);
    auto items = json::parse(page.body);
    EXPECT_LE(items.size(), 1000u);
    for (const auto& e : items) {
      ++entries;
      if (e["type"] == "file") {
        files.insert(e["path"].get<std::string>());
      }
    }
    ++pages;
    next.clear();
    std::smatch m;
    std::string link = page.header("link");
    if (std::regex_search(link, m, link_re)) {
      next = m[1];
      EXPECT_TRUE(next.starts_with(hub->endpoint() + "/api/models/test-org/many-files/tree/main?")) << next;
    }
  }
  EXPECT_EQ(files.size(), 1500u);
  EXPECT_EQ(entries, 1500u + 15 + 150); // files + dirNN + dirNN/subN
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(hub->counters().count(RouteKind::api_tree), 2u);
}

TEST_F(EmulatorTest, PathsInfo)
{
  auto repo = tiny();
  HttpRequest form{"POST",
                   url("/api/models/test-org/tiny-model/paths-info/main"),
                   {"Content-Type: application/x-www-form-urlencoded"},
                   "paths=config.json&paths=model.safetensors&paths=sub&paths=nope&paths=name+with+spaces."
                   "txt&expand=False"};
  auto r = http(form);
  ASSERT_EQ(r.status, 200);
  auto items = json::parse(r.body);
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0]["path"], "config.json");
  EXPECT_EQ(items[0]["oid"], repo->file("config.json")->git_sha1());
  EXPECT_EQ(items[1]["lfs"]["oid"], repo->file("model.safetensors")->sha256());
  EXPECT_EQ(items[2]["type"], "directory");
  EXPECT_EQ(items[3]["path"], "name with spaces.txt");

  HttpRequest as_json{"POST",
                      url("/api/models/test-org/tiny-model/paths-info/v1.0"),
                      {"Content-Type: application/json"},
                      R"({"paths":["config.json"],"expand":true})"};
  auto j = json::parse(http(as_json).body);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["oid"], repo->file("config.json", "v1.0")->git_sha1());
  EXPECT_EQ(j[0]["lastCommit"]["id"], repo->commits[0].sha);
  EXPECT_EQ(hub->counters().count(RouteKind::api_paths_info), 2u);
}

TEST_F(EmulatorTest, Refs)
{
  auto repo = tiny();
  auto refs = json::parse(http_get(url("/api/models/test-org/tiny-model/refs")).body);
  std::map<std::string, std::string> branches;
  for (const auto& b : refs["branches"]) {
    branches[b["name"]] = b["targetCommit"];
    EXPECT_EQ(b["ref"], "refs/heads/" + b["name"].get<std::string>());
  }
  EXPECT_EQ(branches.at("main"), repo->main().sha);
  EXPECT_EQ(branches.at("feature/x"), repo->resolve("feature/x")->sha);
  EXPECT_EQ(refs["tags"][0]["name"], "v1.0");
  EXPECT_EQ(refs["tags"][0]["targetCommit"], repo->commits[0].sha);
  EXPECT_EQ(refs["pullRequests"][0]["ref"], "refs/pr/1");
  EXPECT_EQ(hub->counters().count(RouteKind::api_refs), 1u);
}

TEST_F(EmulatorTest, MovingABranchChangesResolution)
{
  auto repo = tiny();
  hub->set_branch("test-org/tiny-model", "main", repo->commits[0].sha);
  EXPECT_EQ(http_head(resolve("config.json")).header("x-repo-commit"), repo->commits[0].sha);
  EXPECT_EQ(json::parse(http_get(url("/api/models/test-org/tiny-model")).body)["sha"], repo->commits[0].sha);
}

TEST_F(EmulatorTest, IfNoneMatchGives304)
{
  auto file = tiny()->file("config.json");
  std::string location = body_url("config.json");
  auto r = http_head(location, {"If-None-Match: \"" + file->git_sha1() + "\""});
  EXPECT_EQ(r.status, 304);
}

TEST_F(EmulatorTest, RangesAtOddBoundaries)
{
  auto big = tiny()->file("weights/big.bin");
  std::string cdn = body_url("weights/big.bin");
  const std::uint64_t size = big->size();
  struct Case {
    std::string header;
    std::uint64_t first;
    std::uint64_t last;
  };
  const std::uint64_t mib = 1 << 20;
  std::vector<Case> cases = {
      {"bytes=0-0", 0, 0},
      {"bytes=1-1", 1, 1},
      {"bytes=7-8", 7, 8},
      {"bytes=" + std::to_string(mib - 1) + "-" + std::to_string(mib + 1), mib - 1, mib + 1},
      {"bytes=" + std::to_string(3 * mib - 5) + "-" + std::to_string(5 * mib + 3), 3 * mib - 5, 5 * mib + 3},
      {"bytes=" + std::to_string(size - 1) + "-", size - 1, size - 1},
      {"bytes=-10", size - 10, size - 1},
      {"bytes=" + std::to_string(size - 3) + "-" + std::to_string(size + 100), size - 3, size - 1},
  };
  for (const auto& c : cases) {
    auto r = http_get(cdn, {"Range: " + c.header});
    ASSERT_EQ(r.status, 206) << c.header;
    EXPECT_EQ(r.header("content-range"), fmt::format("bytes {}-{}/{}", c.first, c.last, size)) << c.header;
    EXPECT_EQ(r.header("content-length"), std::to_string(c.last - c.first + 1));
    EXPECT_EQ(r.body, big->read(c.first, c.last - c.first + 1)) << c.header;
  }
  auto beyond = http_get(cdn, {"Range: bytes=" + std::to_string(size) + "-"});
  EXPECT_EQ(beyond.status, 416);
  EXPECT_EQ(beyond.header("content-range"), "bytes */" + std::to_string(size));
  // Several ranges: answered with the whole body, which a server may always do.
  auto multi = http_get(body_url("config.json"), {"Range: bytes=0-1,3-4"});
  EXPECT_EQ(multi.status, 200);
  EXPECT_EQ(multi.body, tiny()->file("config.json")->content());

  // Range on the resolve-cache and on a direct 200.
  auto text = tiny()->file("config.json");
  auto cached = http_get(body_url("config.json"), {"Range: bytes=3-"});
  EXPECT_EQ(cached.status, 206);
  EXPECT_EQ(cached.body, text->content().substr(3));
  auto direct = http_get(resolve("config.json", "main", "gpt2-tiny"), {"Range: bytes=0-4"});
  EXPECT_EQ(direct.status, 206);
  EXPECT_EQ(direct.body, hub->repo("gpt2-tiny")->file("config.json")->content().substr(0, 5));
  // HEAD with a range describes the part.
  auto head = http_head(cdn, {"Range: bytes=10-19"});
  EXPECT_EQ(head.status, 206);
  EXPECT_EQ(head.header("content-length"), "10");
}

TEST_F(EmulatorTest, WholeBigFileStreamsCorrectly)
{
  auto big = tiny()->file("weights/big.bin");
  auto start = std::chrono::steady_clock::now();
  auto r = http_get(body_url("weights/big.bin"));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body.size(), big->size());
  EXPECT_EQ(modelmgr::util::sha256_hex(r.body), big->sha256());
  RecordProperty("MiB_per_s", std::to_string(300.0 / seconds));
  EXPECT_EQ(hub->counters().bytes_for("weights/big.bin"), big->size());
}
