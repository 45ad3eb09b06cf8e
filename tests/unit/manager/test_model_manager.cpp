// Model sets without a hub: how specs map to pulls, offline checks on a hand-built cache, lock files,
// the exit-code priority of a report, manifest and lock paths.

#include "modelmgr/errors.hpp"
#include "modelmgr/model_manager.hpp"

#include "cache/repo_cache.hpp"
#include "formats/writers.hpp"
#include "manager/config.hpp"
#include "manager/model_set_internal.hpp"
#include "support/test_util.hpp"
#include "util/hash.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fs = std::filesystem;
using namespace modelmgr;
using modelmgr::test::TempDir;
using testing::HasSubstr;

namespace {

const std::string k_commit = "0123456789abcdef0123456789abcdef01234567";

ModelSpec spec(std::vector<std::string> files = {}, std::vector<std::string> exclude = {})
{
  ModelSpec s;
  s.id = "m";
  s.repo_id = "org/model";
  s.files = std::move(files);
  s.exclude = std::move(exclude);
  return s;
}

// A cache holding org/model at k_commit with the given files (git blobs), refs/main pointing there and,
// when `tree`, the listing in trees/<commit>.json.
struct FakeCache {
  TempDir dir;
  fs::path root = dir.path() / "hub";
  cache::RepoCache rc{root, cache::RepoType::model, "org/model"};
  std::vector<cache::TreeFile> listing;

  void add(const std::string& path, const std::string& content)
  {
    const std::string etag = util::git_blob_sha1_hex(content);
    rc.ensure_layout();
    test::write_file(rc.blob_path(etag), content);
    rc.link_snapshot(k_commit, path, etag);
    listing.push_back({path, content.size(), etag, std::nullopt, std::nullopt, std::nullopt});
  }
  void finish(bool tree = true)
  {
    rc.write_ref("main", k_commit);
    if (tree) {
      rc.write_tree_cache(k_commit, listing);
    }
  }
};

} // namespace

TEST(ModelManagerSelection, GlobsBecomeIncludesNamesStayExact)
{
  EXPECT_TRUE(manager::has_glob_chars("*.json"));
  EXPECT_TRUE(manager::has_glob_chars("onnx/"));
  EXPECT_TRUE(manager::has_glob_chars("file[0-9].txt"));
  EXPECT_FALSE(manager::has_glob_chars("config.json"));

  auto exact = manager::selection_of(spec({"config.json", "a/b.txt"}, {"a/*"}));
  EXPECT_EQ(exact.exact, std::vector<std::string>{"config.json"}); // exclude applied to names too
  EXPECT_TRUE(exact.include.empty());

  auto mixed = manager::selection_of(spec({"*.json", "README.md"}, {"onnx/"}));
  EXPECT_TRUE(mixed.exact.empty());
  EXPECT_EQ(mixed.include.size(), 2u);
  EXPECT_TRUE(mixed.selects("README.md"));
  EXPECT_TRUE(mixed.selects("x/tokenizer.json")); // `*` also matches `/`
  EXPECT_FALSE(mixed.selects("onnx/model.json"));
  EXPECT_FALSE(mixed.selects("model.bin"));

  auto all = manager::selection_of(spec({}, {"weights/*"}));
  EXPECT_TRUE(all.selects("config.json"));
  EXPECT_FALSE(all.selects("weights/big.bin"));
}

TEST(ModelManagerSelection, PullOptionsFollowTheSpecAndTheLock)
{
  TempDir dir;
  auto s = spec({"*.json"}, {"onnx/"});
  s.revision = "v1";
  s.local_dir = "out/m";
  EnsureOptions o;
  o.dry_run = true;
  auto p = manager::pull_options(s, dir.path() / "hub", dir.path(), o);
  EXPECT_EQ(p.repo_id, "org/model");
  EXPECT_EQ(p.revision, "v1");
  EXPECT_TRUE(p.files.empty());
  EXPECT_EQ(p.include, std::vector<std::string>{"*.json"});
  EXPECT_EQ(p.exclude, std::vector<std::string>{"onnx/"});
  EXPECT_EQ(*p.cache_dir, dir.path() / "hub");
  EXPECT_EQ(*p.local_dir, dir.path() / "out/m"); // relative to the config's folder
  EXPECT_TRUE(p.dry_run);

  o.locked_commits["m"] = k_commit;
  EXPECT_EQ(manager::pull_options(s, dir.path(), dir.path(), o).revision, k_commit);

  EXPECT_THROW(manager::pull_options(spec({"a.txt"}, {"*.txt"}), dir.path(), dir.path(), {}),
               ConfigurationError);
}

TEST(ModelManagerCheck, CachedModelIsCachedAndHasAPath)
{
  FakeCache fc;
  fc.add("config.json", "{}\n");
  fc.add("sub/tokenizer.json", "tok\n");
  fc.finish();
  auto s = spec();
  EXPECT_TRUE(is_cached(s, fc.root));
  EXPECT_EQ(get_model_path(s, fc.root), fc.rc.snapshot_dir(k_commit));
  auto c = manager::check_spec(s, fc.root, fc.dir.path(), VerifyLevel::sha256);
  EXPECT_EQ(c.state, CacheState::cached);
  EXPECT_EQ(c.files_expected, 2u);
  EXPECT_EQ(c.size_on_disk, 7u);
  EXPECT_TRUE(verify_model(fc.rc.snapshot_dir(k_commit), VerifyLevel::sha256).empty());
}

TEST(ModelManagerCheck, MissingModelThrowsMissingModelError)
{
  TempDir dir;
  EXPECT_FALSE(is_cached(spec(), dir.path()));
  EXPECT_THROW(get_model_path(spec(), dir.path()), MissingModelError);
  EXPECT_EQ(manager::check_spec(spec(), dir.path(), dir.path(), VerifyLevel::size).state,
            CacheState::missing);
}

TEST(ModelManagerCheck, EveryProblemIsReported)
{
  FakeCache fc;
  fc.add("a.txt", "aaaa\n");
  fc.add("b.txt", "bbbb\n");
  fc.add("c.txt", "cccc\n");
  fc.add("d.txt", "dddd\n");
  fc.finish();
  const fs::path snap = fc.rc.snapshot_dir(k_commit);
  fs::remove(snap / "a.txt");                                // missing link
  fs::resize_file(fs::canonical(snap / "b.txt"), 2);         // truncated
  test::write_file(fs::canonical(snap / "c.txt"), "cccC\n"); // same size, other bytes
  auto cheap = manager::check_spec(spec(), fc.root, fc.dir.path(), VerifyLevel::size);
  EXPECT_EQ(cheap.state, CacheState::corrupt);
  EXPECT_EQ(cheap.problems.size(), 2u); // the flipped byte needs a hash
  auto full = manager::check_spec(spec(), fc.root, fc.dir.path(), VerifyLevel::sha256);
  ASSERT_EQ(full.problems.size(), 3u);
  EXPECT_EQ(full.problems[0].kind, FileProblem::Kind::missing_link);
  EXPECT_EQ(full.problems[1].kind, FileProblem::Kind::size_mismatch);
  EXPECT_THAT(full.problems[1].message, HasSubstr("(truncated)"));
  EXPECT_EQ(full.problems[2].kind, FileProblem::Kind::hash_mismatch);
  EXPECT_EQ(full.files_present, 3u);
  EXPECT_FALSE(is_cached(spec(), fc.root));
  // verify_model on the folder sees what the folder holds (the missing link is not knowable there).
  EXPECT_EQ(verify_model(snap, VerifyLevel::sha256).size(), 2u);
}

TEST(ModelManagerCheck, PartialWhenAFileIsMissingAndPinsAreChecked)
{
  FakeCache fc;
  fc.add("a.txt", "aaaa\n");
  fc.add("b.txt", "bbbb\n");
  fc.finish();
  fs::remove(fc.rc.snapshot_dir(k_commit) / "b.txt");
  EXPECT_EQ(manager::check_spec(spec(), fc.root, fc.dir.path(), VerifyLevel::size).state,
            CacheState::partial);
  auto pinned = spec({"a.txt"});
  pinned.sha256["a.txt"] = std::string(64, '0');
  auto c = manager::check_spec(pinned, fc.root, fc.dir.path(), VerifyLevel::sha256);
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_EQ(c.problems[0].kind, FileProblem::Kind::pin_mismatch);
  pinned.sha256["a.txt"] = util::sha256_hex("aaaa\n");
  EXPECT_TRUE(manager::check_spec(pinned, fc.root, fc.dir.path(), VerifyLevel::sha256).ok());
}

TEST(ModelManagerCheck, WithoutTreeListingNamedFilesAreStillKnown)
{
  FakeCache fc;
  fc.add("a.txt", "aaaa\n");
  fc.finish(false);
  auto c = manager::check_spec(spec({"a.txt", "b.txt"}), fc.root, fc.dir.path(), VerifyLevel::sha256);
  EXPECT_EQ(c.state, CacheState::partial);
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_EQ(c.problems[0].path, "b.txt");
}

TEST(ModelManagerReport, WorstErrorFollowsThePriority)
{
  SyncReport r;
  EXPECT_TRUE(r.ok());
  EXPECT_FALSE(r.worst_error());
  ModelResult ok;
  ok.status = ModelStatus::cached;
  ModelResult nf;
  nf.status = ModelStatus::failed;
  nf.error_kind = ErrorKind::not_found;
  ModelResult cs = nf;
  cs.error_kind = ErrorKind::checksum;
  r.models = {ok, nf, cs, nf};
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(*r.worst_error(), ErrorKind::checksum);
  r.models = {ok, nf};
  EXPECT_EQ(*r.worst_error(), ErrorKind::not_found);
}

TEST(ModelManagerLock, RoundTripAndErrors)
{
  TempDir dir;
  LockFile lock;
  lock.models.push_back({"m", "org/model", "model", "main", k_commit});
  write_lock_file(lock, dir / "modelmgr.lock");
  auto j = nlohmann::json::parse(test::read_file(dir / "modelmgr.lock"));
  EXPECT_EQ(j["format"], "modelmgr-lock");
  EXPECT_EQ(j["models"]["m"]["commit"], k_commit);
  auto back = read_lock_file(dir / "modelmgr.lock");
  ASSERT_EQ(back.models.size(), 1u);
  EXPECT_EQ(back.find("m")->commit, k_commit);
  EXPECT_EQ(back.find("x"), nullptr);

  EXPECT_THROW(read_lock_file(dir / "nope.lock"), ConfigurationError);
  test::write_file(dir / "bad.lock", R"({"format":"modelmgr-lock","version":1,"models":{"m":{"repo_id":"a",
    "repo_type":"model","revision":"main","commit":"main"}}})");
  try {
    read_lock_file(dir / "bad.lock");
    FAIL();
  } catch (const ConfigurationError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a commit"));
  }
}

TEST(ModelManagerLock, CheckLockRefusesAStaleLockWithoutNetwork)
{
  TempDir dir;
  test::write_file(dir / "models.yaml", "models:\n  - id: m\n    repo_id: org/model\n");
  auto mm = ModelManager::from_config(dir / "models.yaml");
  EnsureOptions offline;
  offline.offline = true;
  LockFile lock;
  EXPECT_THROW(mm.check_lock(lock, offline), ConfigurationError); // model missing from the lock
  lock.models.push_back({"m", "org/other", "model", "main", k_commit});
  EXPECT_THROW(mm.check_lock(lock, offline), ConfigurationError); // repo changed
  lock.models[0].repo_id = "org/model";
  auto commits = mm.check_lock(lock, offline);
  EXPECT_EQ(commits["m"], k_commit);
}

TEST(ModelManagerPaths, ManifestLockAndCacheDirComeFromTheConfig)
{
  TempDir dir;
  test::write_file(
      dir / "cfg/models.yaml",
      "cache_dir: $MODELMGR_TEST_CACHE_ROOT/hub\nmanifest: out/manifest.json\nmodels:\n  - id: m\n"
      "    repo_id: org/model\n");
  ::setenv("MODELMGR_TEST_CACHE_ROOT", dir.path().c_str(), 1);
  auto mm = ModelManager::from_config(dir / "cfg/models.yaml");
  ::unsetenv("MODELMGR_TEST_CACHE_ROOT");
  EXPECT_EQ(mm.cache_dir(), dir.path() / "hub");
  EXPECT_EQ(mm.default_manifest_path(), dir.path() / "cfg/out/manifest.json");
  EXPECT_EQ(mm.default_lock_path(), dir.path() / "cfg/modelmgr.lock");
  EXPECT_EQ(mm.get_model_spec("m").repo_id, "org/model");
  EXPECT_THROW(mm.get_model_spec("nope"), ConfigurationError);

  // An offline ensure of a model that is not cached fails as a value, with its kind.
  EnsureOptions o;
  o.offline = true;
  auto report = mm.ensure_all(o);
  ASSERT_EQ(report.models.size(), 1u);
  EXPECT_EQ(report.models[0].status, ModelStatus::failed);
  EXPECT_EQ(report.models[0].error_kind, ErrorKind::not_found);
  mm.write_manifest(report, mm.default_manifest_path());
  auto j = nlohmann::json::parse(test::read_file(mm.default_manifest_path()));
  EXPECT_EQ(j["models"][0]["status"], "failed");
  EXPECT_EQ(j["cache_dir"], (dir.path() / "hub").string());
}

namespace {

std::string safetensors_bytes(const std::string& tensor, std::uint64_t rows, std::uint64_t cols)
{
  formats::SafetensorsWriter w;
  w.add_tensor(tensor, formats::SafetensorsDtype::f16, {rows, cols});
  const auto bytes = w.build();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

} // namespace

TEST(ModelManagerLoadCheck, ShardsListedByAnIndexAreCountedOnceAndFailuresNameTheFile)
{
  TempDir dir;
  const fs::path d = dir / "snap";
  test::write_file(d / "sub/model-00001-of-00002.safetensors", safetensors_bytes("a", 10, 20));
  test::write_file(d / "sub/model-00002-of-00002.safetensors", safetensors_bytes("b", 5, 6));
  test::write_file(d / "sub/model.safetensors.index.json",
                   R"({"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                       "b": "model-00002-of-00002.safetensors"}})");
  test::write_file(d / "extra.safetensors", safetensors_bytes("c", 3, 3));
  test::write_file(d / "README.md", "# not checked\n");
  std::vector<std::pair<std::string, fs::path>> files;
  for (const std::string p : {"sub/model-00001-of-00002.safetensors", "sub/model-00002-of-00002.safetensors",
                              "sub/model.safetensors.index.json", "extra.safetensors", "README.md"}) {
    files.emplace_back(p, d / p);
  }
  auto load = manager::load_check_files(files);
  EXPECT_TRUE(load.ok);
  EXPECT_EQ(load.parameter_count, 200u + 30u + 9u); // the shards through the index, once
  ASSERT_EQ(load.files.size(), 5u);
  EXPECT_EQ(load.files[2].format, "safetensors-index");
  EXPECT_EQ(load.files[2].parameter_count, 230u);
  EXPECT_EQ(load.files[4].format, "unknown");
  EXPECT_TRUE(load.files[4].ok);
  EXPECT_FALSE(load.checked_at.empty());

  // A shard cut short: the shard and the index that lists it both fail, each named.
  const std::string shard = safetensors_bytes("b", 5, 6);
  test::write_file(d / "sub/model-00002-of-00002.safetensors", shard.substr(0, shard.size() - 4));
  load = manager::load_check_files(files);
  EXPECT_FALSE(load.ok);
  EXPECT_FALSE(load.files[1].ok);
  EXPECT_THAT(manager::load_failure_message(load.files[1]),
              HasSubstr("sub/model-00002-of-00002.safetensors: does not load: tensor 'b'"));
  EXPECT_FALSE(load.files[2].ok);
  EXPECT_TRUE(load.files[0].ok);
}
