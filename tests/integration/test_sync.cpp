// `modelmgr sync`, `list` and `lock` against the hub emulator: per-model report and exit codes, the
// manifest, dry runs, --verify-only, --locked, and `modelmgr` without a subcommand.

#include "support/hub_fixture.hpp"

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using emulator::RouteKind;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_tiny = "models--test-org--tiny-model";

// Small specs only: `weights/` holds the 300 MiB file.
const std::string k_config = R"(verify: sha256
models:
  - id: tiny
    repo_id: test-org/tiny-model
    exclude: ["weights/*"]
  - id: tiny-v1
    repo_id: test-org/tiny-model
    revision: v1.0
    files: [config.json, tokenizer.json]
)";

class SyncTest : public HubTest {
protected:
  fs::path write_config(const std::string& text = k_config, const std::string& name = "models.yaml")
  {
    const fs::path p = tmp->path() / "project" / name;
    write_file(p, text);
    return p;
  }
  std::string main_sha() const { return repo("test-org/tiny-model").main().sha; }
};

TEST_F(SyncTest, SyncDownloadsVerifiesReportsAndWritesTheManifest)
{
  const auto config = write_config();
  auto r = mm({"sync", "--config", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2713 tiny: downloaded and verified"));
  EXPECT_THAT(r.out, HasSubstr("\u2713 tiny-v1: downloaded and verified"));
  const auto& tiny = repo("test-org/tiny-model");
  const std::string v1 = tiny.resolve("v1.0")->sha;
  const fs::path snap = cache / k_tiny / "snapshots" / main_sha();
  EXPECT_THAT(r.out, HasSubstr("tiny\t" + snap.string() + "\n"));
  EXPECT_EQ(read_file(snap / "config.json"), tiny.main().find("config.json")->content());
  EXPECT_FALSE(fs::exists(snap / "weights"));
  EXPECT_EQ(read_file(cache / k_tiny / "snapshots" / v1 / "config.json"),
            tiny.resolve("v1.0")->find("config.json")->content());

  // The manifest sits beside the config and records every file with its hashes.
  auto manifest = nlohmann::json::parse(read_file(config.parent_path() / "model_manifest.json"));
  EXPECT_EQ(manifest["format"], "modelmgr-manifest");
  EXPECT_EQ(manifest["version"], 1);
  ASSERT_EQ(manifest["models"].size(), 2u);
  const auto& m = manifest["models"][0];
  EXPECT_EQ(m["id"], "tiny");
  EXPECT_EQ(m["repo_id"], "test-org/tiny-model");
  EXPECT_EQ(m["repo_type"], "model");
  EXPECT_EQ(m["revision"], "main");
  EXPECT_EQ(m["commit"], main_sha());
  EXPECT_EQ(m["verify"], "sha256");
  EXPECT_EQ(m["path"], snap.string());
  EXPECT_FALSE(m["verified_at"].get<std::string>().empty());
  std::map<std::string, nlohmann::json> files;
  for (const auto& f : m["files"]) {
    files[f["path"]] = f;
  }
  ASSERT_TRUE(files.count("config.json"));
  auto cfg = tiny.main().find("config.json");
  EXPECT_EQ(files["config.json"]["etag"], cfg->git_sha1());
  EXPECT_EQ(files["config.json"]["etag_kind"], "git-sha1");
  EXPECT_EQ(files["config.json"]["sha256"], cfg->sha256()); // computed while verifying
  EXPECT_EQ(files["config.json"]["size"], cfg->size());
  auto st = tiny.main().find("model.safetensors");
  EXPECT_EQ(files["model.safetensors"]["etag"], st->sha256());
  EXPECT_EQ(files["model.safetensors"]["sha256"], st->sha256());
  EXPECT_EQ(files["model.safetensors"]["etag_kind"], "sha256");
  EXPECT_EQ(files["model.safetensors"]["local_path"], (snap / "model.safetensors").string());
  EXPECT_FALSE(files.count("weights/big.bin"));
  EXPECT_EQ(manifest["models"][1]["commit"], v1);

  // Second run: everything is cached; a branch costs one revision request, the listing is cached.
  hub->reset_counters();
  r = mm({"sync", "--config", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2713 tiny: cached"));
  EXPECT_THAT(r.out, HasSubstr("\u2713 tiny-v1: cached"));
  EXPECT_EQ(counters().count(RouteKind::cdn_get), 0u);
  EXPECT_EQ(counters().count(RouteKind::api_tree), 0u);
}

TEST_F(SyncTest, FailedModelIsReportedOthersStillSyncAndExitCodeIsTheError)
{
  const auto config = write_config(R"(models:
  - id: ghost
    repo_id: test-org/does-not-exist
  - id: tiny
    repo_id: test-org/tiny-model
    files: [config.json]
)");
  auto r = mm({"sync", "--config", config.string(), "--manifest", (tmp->path() / "out/m.json").string()});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2717 ghost: "));
  EXPECT_THAT(r.out, HasSubstr("\u2713 tiny: downloaded and verified"));
  // --manifest overrides the location; the failure is recorded too.
  auto manifest = nlohmann::json::parse(read_file(tmp->path() / "out/m.json"));
  EXPECT_EQ(manifest["models"][0]["status"], "failed");
  EXPECT_EQ(manifest["models"][1]["status"], "downloaded");
  EXPECT_FALSE(fs::exists(config.parent_path() / "model_manifest.json"));
}

TEST_F(SyncTest, SelectedModelOnlyAndUnknownIdIsAUsageError)
{
  const auto config = write_config();
  auto r = mm({"sync", "--config", config.string(), "--model", "tiny-v1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("tiny:")));
  EXPECT_FALSE(fs::exists(cache / k_tiny / "snapshots" / main_sha()));
  r = mm({"sync", "--config", config.string(), "--model", "nope"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nope"));
}

TEST_F(SyncTest, DryRunShowsBytesAndRoomButDownloadsNothing)
{
  const auto config = write_config();
  auto r = mm({"sync", "--config", config.string(), "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("[dry-run] tiny: would download"));
  EXPECT_THAT(r.out, HasSubstr("enough room"));
  EXPECT_EQ(counters().count(RouteKind::cdn_get), 0u);
  EXPECT_FALSE(fs::exists(cache / k_tiny / "snapshots"));
  EXPECT_FALSE(fs::exists(config.parent_path() / "model_manifest.json"));
  r = mm({"sync", "--config", config.string(), "--dry-run"}, {{"MODELMGR_TEST_FREE_SPACE", "10"}});
  EXPECT_THAT(r.out, HasSubstr("NOT enough room"));
  EXPECT_THAT(r.out, HasSubstr("  download    3.0 MiB  model.safetensors\n"));
}

TEST_F(SyncTest, VerifyOnlyDownloadsNothingAndFailsWhenMissing)
{
  const auto config = write_config();
  auto r = mm({"sync", "--config", config.string(), "--verify-only"});
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\u2717 tiny: missing"));
  EXPECT_EQ(total_requests(), 0u);
  ASSERT_EQ(mm({"sync", "--config", config.string()}).exit_code, 0);
  hub->reset_counters();
  r = mm({"sync", "--config", config.string(), "--verify-only"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\u2713 tiny: cached and verified"));
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(SyncTest, ListShowsCachedPartialMissingAndCorrupt)
{
  const auto config = write_config();
  auto list = [&] {
    auto r = mm({"list", "--config", config.string(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, nlohmann::json> by_id;
    const auto parsed = nlohmann::json::parse(r.out); // kept alive: the loop below borrows from it
    for (const auto& m : parsed["models"]) {
      by_id[m["id"].get<std::string>()] = m;
    }
    return by_id;
  };
  auto before = list();
  EXPECT_EQ(before["tiny"]["status"], "missing");
  EXPECT_TRUE(before["tiny"]["commit"].is_null());
  ASSERT_EQ(mm({"sync", "--config", config.string()}).exit_code, 0);
  auto after = list();
  EXPECT_EQ(after["tiny"]["status"], "cached");
  EXPECT_EQ(after["tiny"]["commit"], main_sha());
  EXPECT_EQ(after["tiny"]["revision"], "main");
  EXPECT_GT(after["tiny"]["size_on_disk"].get<std::uint64_t>(), 3'000'000u);
  EXPECT_EQ(after["tiny-v1"]["status"], "cached");

  const fs::path snap = cache / k_tiny / "snapshots" / main_sha();
  fs::remove(snap / "README.md");
  EXPECT_EQ(list()["tiny"]["status"], "partial");
  // A truncated blob is cheap to see (a size mismatch).
  fs::resize_file(fs::canonical(snap / "model.safetensors"), 100);
  EXPECT_EQ(list()["tiny"]["status"], "corrupt");

  auto human = mm({"list", "--config", config.string()});
  EXPECT_THAT(human.out, HasSubstr("tiny-v1"));
  EXPECT_THAT(human.out, HasSubstr("corrupt"));
}

TEST_F(SyncTest, LockRecordsCommitsAndLockedSyncPullsThem)
{
  const auto config = write_config();
  auto r = mm({"lock", "--config", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lock = nlohmann::json::parse(read_file(config.parent_path() / "modelmgr.lock"));
  EXPECT_EQ(lock["format"], "modelmgr-lock");
  EXPECT_EQ(lock["version"], 1);
  EXPECT_EQ(lock["models"]["tiny"]["commit"], main_sha());
  EXPECT_EQ(lock["models"]["tiny"]["revision"], "main");
  EXPECT_EQ(lock["models"]["tiny-v1"]["commit"], repo("test-org/tiny-model").resolve("v1.0")->sha);

  hub->reset_counters();
  r = mm({"sync", "--config", config.string(), "--locked"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto c = counters();
  // One revision request per branch/tag to check it did not move; the pulls themselves resolve nothing
  // (they use the locked commits) and the named files of tiny-v1 need one HEAD each.
  EXPECT_EQ(c.count(RouteKind::api_repo_info), 2u);
  EXPECT_EQ(read_file(cache / k_tiny / "refs" / "main"), main_sha());
  EXPECT_EQ(read_file(cache / k_tiny / "refs" / "v1.0"),
            lock["models"]["tiny-v1"]["commit"].get<std::string>());
}

TEST_F(SyncTest, LockedSyncRefusesWhenTheBranchMoved)
{
  const auto config = write_config();
  ASSERT_EQ(mm({"lock", "--config", config.string()}).exit_code, 0);
  const std::string old = main_sha();
  emulator::CommitSpec next;
  next.files.push_back(emulator::FileSpec::text("config.json", "{\"hidden_size\": 256}\n"));
  const std::string moved = hub->add_commit("test-org/tiny-model", next, "main");
  hub->reset_counters();
  auto r = mm({"sync", "--config", config.string(), "--locked"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("'tiny'"));
  EXPECT_THAT(r.err, HasSubstr(old));
  EXPECT_THAT(r.err, HasSubstr(moved));
  EXPECT_THAT(r.err, HasSubstr("modelmgr lock"));
  EXPECT_EQ(counters().count(RouteKind::cdn_get) + counters().count(RouteKind::api_tree), 0u);
  // Without --locked the new commit is simply pulled.
  r = mm({"sync", "--config", config.string(), "--model", "tiny"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(cache / k_tiny / "refs" / "main"), moved);
}

TEST_F(SyncTest, LockedSyncWithoutLockFileIsAConfigError)
{
  const auto config = write_config();
  auto r = mm({"sync", "--config", config.string(), "--locked"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("modelmgr lock"));
}

TEST_F(SyncTest, NoSubcommandRunsSyncWhenADefaultConfigExists)
{
  const auto config = write_config(R"(models:
  - id: tiny
    repo_id: test-org/tiny-model
    files: [config.json]
)",
                                   "modelmgr.yaml");
  const std::string cmd = "cd '" + config.parent_path().string() + "' && exec '" + modelmgr_binary() + "'";
  Process p({"/bin/sh", "-c", cmd}, env());
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2713 tiny: downloaded and verified"));
  EXPECT_TRUE(fs::exists(config.parent_path() / "model_manifest.json"));

  // Elsewhere (no config): help, usage exit code.
  const std::string elsewhere = "cd '" + tmp->path().string() + "' && exec '" + modelmgr_binary() + "'";
  Process q({"/bin/sh", "-c", elsewhere}, env());
  auto h = q.wait();
  EXPECT_EQ(h.exit_code, 2);
  EXPECT_THAT(h.out, HasSubstr("sync"));
}

TEST_F(SyncTest, CiMinimalModelsNoteGoesToStderr)
{
  write_config("models:\n  - id: tiny\n    repo_id: test-org/tiny-model\n    files: [config.json]\n",
               "modelmgr.yaml");
  write_config("models:\n  - id: tiny\n    repo_id: test-org/tiny-model\n    files: [README.md]\n",
               "modelmgr.minimal.yaml");
  const std::string cmd =
      "cd '" + (tmp->path() / "project").string() + "' && exec '" + modelmgr_binary() + "' sync";
  auto e = env({{"CI_MINIMAL_MODELS", "1"}});
  Process p({"/bin/sh", "-c", cmd}, e);
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("modelmgr.minimal.yaml"));
  EXPECT_TRUE(fs::exists(cache / k_tiny / "snapshots" / main_sha() / "README.md"));
  EXPECT_FALSE(fs::exists(cache / k_tiny / "snapshots" / main_sha() / "config.json"));
}

} // namespace
} // namespace modelmgr::test
