// `modelmgr pull` against the hub emulator: cache layout byte for byte, revisions, snapshots, request
// counts, local-dir export, errors and exit codes.

#include "support/hub_fixture.hpp"

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>
#include <sys/stat.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using emulator::RouteKind;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_tiny = "models--test-org--tiny-model";

class PullTest : public HubTest {};

std::vector<std::string> lines(const std::string& s)
{
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    auto nl = s.find('\n', start);
    out.push_back(s.substr(start, nl - start));
    if (nl == std::string::npos) {
      break;
    }
    start = nl + 1;
  }
  return out;
}

TEST_F(PullTest, SingleFileLandsInTheCacheLayoutByteForByte)
{
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  auto file = main.find("config.json");
  auto r = mm({"pull", "test-org/tiny-model", "config.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  const fs::path snap = cache / k_tiny / "snapshots" / main.sha / "config.json";
  EXPECT_EQ(r.out, snap.string() + "\n");
  EXPECT_TRUE(fs::is_symlink(snap));
  EXPECT_EQ(fs::read_symlink(snap).string(), "../../blobs/" + file->git_sha1());
  EXPECT_EQ(read_file(cache / k_tiny / "blobs" / file->git_sha1()), file->content());
  // refs/main holds exactly the commit, without a trailing newline (Python reads it without stripping).
  EXPECT_EQ(read_file(cache / k_tiny / "refs" / "main"), main.sha);
  EXPECT_TRUE(fs::exists(cache / ".locks" / k_tiny / (file->git_sha1() + ".lock")));
  // Nothing temporary is left behind.
  for (const auto& p : list_tree(cache / k_tiny / "blobs")) {
    EXPECT_THAT(p, Not(HasSubstr("incomplete")));
  }
}

TEST_F(PullTest, NestedFileSymlinkClimbsOneLevelPerFolder)
{
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  auto file = main.find("sub/dir/deep.txt");
  auto r = mm({"pull", "test-org/tiny-model", "sub/dir/deep.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path snap = cache / k_tiny / "snapshots" / main.sha / "sub/dir/deep.txt";
  EXPECT_EQ(fs::read_symlink(snap).string(), "../../../../blobs/" + file->git_sha1());
  EXPECT_EQ(read_file(snap), file->content());
}

TEST_F(PullTest, LfsFileIsNamedBySha256AndTheTokenNeverReachesTheCdn)
{
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  auto file = main.find("model.safetensors");
  auto r =
      mm({"pull", "test-org/tiny-model", "model.safetensors"}, {{"HF_TOKEN", "hf_test_token_with_access"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path blob = cache / k_tiny / "blobs" / file->sha256();
  ASSERT_TRUE(fs::exists(blob));
  EXPECT_EQ(fs::file_size(blob), file->size());
  EXPECT_EQ(read_file(blob), file->content());
  auto c = counters();
  EXPECT_GE(c.count(RouteKind::cdn_get), 1u);
  EXPECT_EQ(c.cdn_authorization_rejected, 0u);
  bool hub_saw_token = false;
  for (const auto& rec : c.log) {
    if (rec.cdn) {
      EXPECT_FALSE(rec.authorization) << rec.target;
    } else {
      hub_saw_token = hub_saw_token || rec.authorization;
    }
  }
  EXPECT_TRUE(hub_saw_token);
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("hf_test_token_with_access")));
}

TEST_F(PullTest, SnapshotUsesTheTreeListingWithoutPerFileHead)
{
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  auto r = mm({"pull", "test-org/tiny-model", "--exclude", "weights/"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto c = counters();
  EXPECT_EQ(c.count(RouteKind::head_resolve), 0u);
  EXPECT_EQ(c.count(RouteKind::api_tree), 1u);
  EXPECT_EQ(c.count(RouteKind::api_repo_info), 1u);
  std::vector<std::string> expected;
  for (const auto& f : main.files) {
    if (f->path().rfind("weights/", 0) == 0) {
      continue;
    }
    expected.push_back((cache / k_tiny / "snapshots" / main.sha / f->path()).string());
    EXPECT_EQ(read_file(cache / k_tiny / "snapshots" / main.sha / f->path()), f->content()) << f->path();
  }
  std::sort(expected.begin(), expected.end());
  auto got = lines(r.out);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(fs::exists(cache / k_tiny / "snapshots" / main.sha / "weights"));
  // The listing is cached in the Python client's format, so offline runs know the full file list.
  auto tree = nlohmann::json::parse(read_file(cache / k_tiny / "trees" / (main.sha + ".json")));
  EXPECT_EQ(tree["format_version"], 1);
  EXPECT_EQ(tree["files"].size(), main.files.size());
}

TEST_F(PullTest, PinnedCommitRerunMakesZeroRequests)
{
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--revision", main.sha, "--exclude", "weights/*"}).exit_code,
            0);
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "config.json", "--revision", main.sha}).exit_code, 0);
  hub->reset_counters();
  auto r1 = mm({"pull", "test-org/tiny-model", "--revision", main.sha, "--exclude", "weights/*"});
  auto r2 = mm({"pull", "test-org/tiny-model", "config.json", "--revision", main.sha});
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(total_requests(), 0u);
  // A pull by commit writes no ref.
  EXPECT_FALSE(fs::exists(cache / k_tiny / "refs" / main.sha));
}

TEST_F(PullTest, BranchRerunMakesAtMostOneRequestAndNoBodyDownload)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "config.json", "tokenizer.json"}).exit_code, 0);
  hub->reset_counters();
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  EXPECT_LE(total_requests(), 1u);
  hub->reset_counters();
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "config.json", "tokenizer.json"}).exit_code, 0);
  EXPECT_LE(total_requests(), 1u);
  EXPECT_EQ(counters().body_bytes_total, 0u);
}

TEST_F(PullTest, MovedBranchDownloadsOnlyTheChangedFile)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  const auto old_sha = repo("test-org/tiny-model").resolve("main")->sha;
  emulator::CommitSpec next;
  for (const auto& f : repo("test-org/tiny-model").resolve("main")->files) {
    next.files.push_back(f->spec());
  }
  for (auto& f : next.files) {
    if (f.path == "config.json") {
      f.content = "{\"hidden_size\": 128}\n";
    }
  }
  const std::string new_sha = hub->add_commit("test-org/tiny-model", next, "main");
  hub->reset_counters();
  auto r = mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(cache / k_tiny / "refs" / "main"), new_sha);
  EXPECT_EQ(read_file(cache / k_tiny / "snapshots" / new_sha / "config.json"), "{\"hidden_size\": 128}\n");
  // Only config.json's bytes travelled; the other files were linked from existing blobs.
  auto c = counters();
  EXPECT_EQ(c.body_bytes_total, std::string("{\"hidden_size\": 128}\n").size());
  EXPECT_TRUE(fs::exists(cache / k_tiny / "snapshots" / old_sha / "config.json"));
}

TEST_F(PullTest, RevisionsTagBranchWithSlashPullRequestAndShortCommit)
{
  const auto& r0 = repo("test-org/tiny-model");
  struct Case {
    std::string revision;
    std::string ref_file;
  };
  for (const Case& c : {Case{"v1.0", "refs/v1.0"}, Case{"feature/x", "refs/feature/x"},
                        Case{"refs/pr/1", "refs/refs/pr/1"}}) {
    auto r = mm({"pull", "test-org/tiny-model", "config.json", "--revision", c.revision});
    ASSERT_EQ(r.exit_code, 0) << c.revision << ": " << r.err;
    const auto* commit = r0.resolve(c.revision);
    ASSERT_NE(commit, nullptr);
    EXPECT_EQ(read_file(cache / k_tiny / c.ref_file), commit->sha) << c.revision;
    EXPECT_EQ(read_file(cache / k_tiny / "snapshots" / commit->sha / "config.json"),
              commit->find("config.json")->content());
  }
  const auto& old = r0.commits.front();
  auto r = mm({"pull", "test-org/tiny-model", "config.json", "--revision", old.sha.substr(0, 8)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, (cache / k_tiny / "snapshots" / old.sha / "config.json").string() + "\n");
}

TEST_F(PullTest, DatasetEmptyFileAndUnusualNames)
{
  auto r = mm({"pull", "test-org/tiny-dataset", "--repo-type", "dataset"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto& ds = *repo("test-org/tiny-dataset", "dataset").resolve("main");
  EXPECT_EQ(read_file(cache / "datasets--test-org--tiny-dataset" / "snapshots" / ds.sha / "data/train.csv"),
            ds.find("data/train.csv")->content());

  const auto& main = *repo("test-org/tiny-model").resolve("main");
  r = mm({"pull", "test-org/tiny-model", "empty.txt", "name with spaces.txt", "données/élan.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string p : {"empty.txt", "name with spaces.txt", "données/élan.txt"}) {
    EXPECT_EQ(read_file(cache / k_tiny / "snapshots" / main.sha / p), main.find(p)->content()) << p;
  }
  EXPECT_EQ(fs::file_size(cache / k_tiny / "snapshots" / main.sha / "empty.txt"), 0u);
}

TEST_F(PullTest, ThousandsOfFilesPageTheTreeListing)
{
  auto r = mm({"pull", "test-org/many-files", "--json", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["files"].size(), 1500u);
  EXPECT_EQ(counters().count(RouteKind::api_tree), 2u);
  const auto& main = *repo("test-org/many-files").resolve("main");
  EXPECT_EQ(list_tree(cache / "models--test-org--many-files" / "snapshots" / main.sha).size(), 1500u);
}

TEST_F(PullTest, IncludePatternsSelectFolders)
{
  auto r = mm({"pull", "test-org/tiny-model", "--include", "sub/", "--include", "*.md", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  std::vector<std::string> paths;
  for (const auto& f : j["files"]) {
    paths.push_back(f["path"]);
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"README.md", "sub/dir/deep.txt"}));
}

TEST_F(PullTest, LocalDirGetsPlainFilesCopiedFromTheCache)
{
  const fs::path out = tmp->path() / "export";
  auto r =
      mm({"pull", "test-org/tiny-model", "config.json", "sub/dir/deep.txt", "--local-dir", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines(r.out),
            (std::vector<std::string>{(out / "config.json").string(), (out / "sub/dir/deep.txt").string()}));
  EXPECT_FALSE(fs::is_symlink(out / "config.json"));
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  EXPECT_EQ(read_file(out / "config.json"), main.find("config.json")->content());
  struct stat a {};
  struct stat b {};
  ASSERT_EQ(::stat((out / "config.json").c_str(), &a), 0);
  ASSERT_EQ(::stat((cache / k_tiny / "blobs" / main.find("config.json")->git_sha1()).c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino)
      << "an exported file must not share the blob's inode (edits would reach the cache)";
  // Python-compatible metadata: commit, etag, timestamp.
  auto meta = lines(read_file(out / ".cache/huggingface/download/config.json.metadata"));
  ASSERT_GE(meta.size(), 3u);
  EXPECT_EQ(meta[0], main.sha);
  EXPECT_EQ(meta[1], main.find("config.json")->git_sha1());
}

TEST_F(PullTest, RenamedRepoAndCanonicalRepoWork)
{
  auto r = mm({"pull", "old-org/tiny-model", "config.json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = mm({"pull", "gpt2-tiny", "config.json", "model.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(cache / "models--gpt2-tiny" / "refs" / "main"));
}

TEST_F(PullTest, WithoutSymlinksSnapshotsHoldCopies)
{
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  auto r = mm({"pull", "test-org/tiny-model", "config.json"}, {{"HF_HUB_DISABLE_SYMLINKS", "1"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path snap = cache / k_tiny / "snapshots" / main.sha / "config.json";
  EXPECT_FALSE(fs::is_symlink(snap));
  EXPECT_EQ(read_file(snap), main.find("config.json")->content());
}

TEST_F(PullTest, ProgressIsJsonLinesWithJsonAndPlainLinesOffATerminal)
{
  auto j = mm({"--json", "pull", "test-org/tiny-model", "model.safetensors"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  std::vector<std::string> events;
  for (const auto& line : lines(j.err)) {
    auto e = nlohmann::json::parse(line);
    events.push_back(e["event"]);
    EXPECT_EQ(e["path"], "model.safetensors");
  }
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front(), "planned");
  EXPECT_EQ(events.back(), "done");
  EXPECT_NE(std::find(events.begin(), events.end(), "verifying"), events.end());

  auto plain = mm({"pull", "test-org/tiny-model", "tokenizer.json"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_THAT(plain.err, HasSubstr("tokenizer.json: done"));
  EXPECT_THAT(plain.err, Not(HasSubstr("\r"))) << "no terminal control characters off a terminal";

  auto quiet = mm({"pull", "test-org/tiny-model", "README.md"}, {{"HF_HUB_DISABLE_PROGRESS_BARS", "1"}});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");
}

TEST_F(PullTest, TerminalShowsLiveProgressPerFileAndInTotal)
{
  if (!fs::exists("/usr/bin/script")) {
    GTEST_SKIP() << "script(1) from bsdutils is needed to run under a pseudo-terminal";
  }
  emulator::FaultSpec slow;
  slow.kind = emulator::FaultSpec::Kind::throttle;
  slow.path_contains = "model.safetensors";
  slow.times = -1;
  slow.bytes_per_sec = 2'000'000;
  hub->add_fault(slow);
  // script(1) gives the command a pseudo-terminal; its output (stdout and stderr) comes back on stdout.
  const std::string cmd = modelmgr_binary() + " pull test-org/tiny-model model.safetensors";
  Process p({"/usr/bin/script", "-qfec", cmd, "/dev/null"}, env());
  auto r = p.wait();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\033[K")) << "live lines are redrawn in place";
  EXPECT_THAT(r.out, HasSubstr("ETA"));
  EXPECT_THAT(r.out, HasSubstr("% "));
  EXPECT_THAT(r.out, HasSubstr("model.safetensors"));
  EXPECT_THAT(r.out, HasSubstr("[0/1 files]"));
  EXPECT_THAT(r.out, HasSubstr("downloaded 3.1M"));
}

TEST(PullDefaultSet, AllAndAddPullTheDefaultSetAndSingleFilesAndRemindOfOfflineMode)
{
  emulator::HubEmulator::Options options;
  options.demo_repos = true;
  emulator::HubEmulator demo(options);
  demo.start();
  TempDir tmp;
  const std::map<std::string, std::string> env{{"HF_ENDPOINT", demo.endpoint()},
                                               {"HF_HUB_CACHE", (tmp.path() / "hub").string()}};
  auto r =
      run_modelmgr({"pull", "--all", "--add", "test-org/tiny-model", "tokenizer.json", "--json", "-q"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  std::vector<std::string> repos;
  for (const auto& repo : j["repos"]) {
    repos.push_back(repo["repo_id"]);
  }
  EXPECT_EQ(repos, (std::vector<std::string>{
                       "BAAI/bge-m3", "BAAI/bge-reranker-v2-m3", "google/siglip-base-patch16-224",
                       "Qdrant/bm42-all-minilm-l6-v2-attentions", "test-org/tiny-model"}));
  EXPECT_EQ(j["repos"][4]["files"].size(), 1u);
  EXPECT_TRUE(fs::exists(tmp.path() / "hub" / "models--BAAI--bge-m3" / "refs" / "main"));
  auto human = run_modelmgr({"pull", "--all"}, env);
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_THAT(human.err, HasSubstr("HF_HUB_OFFLINE=1"));
  EXPECT_THAT(human.err, HasSubstr("TRANSFORMERS_OFFLINE=1"));
  auto nothing = run_modelmgr({"pull"}, env);
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_THAT(nothing.err, HasSubstr("--all"));
}

// ---- errors ---------------------------------------------------------------------------------------------

TEST_F(PullTest, MissingRepoIsNotFoundWithAHint)
{
  auto r = mm({"pull", "test-org/does-not-exist", "config.json"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("test-org/does-not-exist"));
  EXPECT_THAT(r.err, HasSubstr("HF_TOKEN"));
}

TEST_F(PullTest, MissingFileIsNotFoundAndMarkedNoExist)
{
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  auto r = mm({"pull", "test-org/tiny-model", "nope.bin"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("nope.bin"));
  EXPECT_TRUE(fs::exists(cache / k_tiny / ".no_exist" / main.sha / "nope.bin"));
  EXPECT_FALSE(fs::exists(cache / k_tiny / "snapshots" / main.sha / "nope.bin"));
}

TEST_F(PullTest, UnknownRevisionIsNotFound)
{
  auto r = mm({"pull", "test-org/tiny-model", "--revision", "no-such-branch"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("no-such-branch"));
}

TEST_F(PullTest, GatedRepoNeedsATokenWithAccess)
{
  auto anon = mm({"pull", "test-org/gated-model", "config.json"});
  EXPECT_EQ(anon.exit_code, 4);
  EXPECT_THAT(anon.err, HasSubstr("gated"));
  EXPECT_THAT(anon.err, HasSubstr("HF_TOKEN"));
  auto denied =
      mm({"pull", "test-org/gated-model", "config.json"}, {{"HF_TOKEN", "hf_test_token_without_access"}});
  EXPECT_EQ(denied.exit_code, 4);
  EXPECT_THAT(denied.err, HasSubstr("request access"));
  EXPECT_THAT(denied.err, Not(HasSubstr("hf_test_token_without_access")));
  auto ok = mm({"pull", "test-org/gated-model", "config.json", "model.safetensors"},
               {{"HF_TOKEN", "hf_test_token_with_access"}});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST_F(PullTest, PrivateRepoWithTokenFileAndInvalidToken)
{
  auto anon = mm({"pull", "test-org/private-model", "config.json"});
  EXPECT_EQ(anon.exit_code, 3);
  // The token file under HF_HOME is found like the Python client finds it.
  write_file(tmp->path() / "hf_home" / "token", "hf_test_token_with_access\n");
  auto ok = mm({"pull", "test-org/private-model", "config.json", "model.safetensors"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  auto bad = mm({"pull", "test-org/private-model", "README.md"}, {{"HF_TOKEN", "hf_wrong_secret_value"}});
  EXPECT_EQ(bad.exit_code, 4);
  EXPECT_THAT(bad.err, HasSubstr("token"));
  EXPECT_THAT(bad.out + bad.err, Not(HasSubstr("hf_wrong_secret_value")));
}

TEST_F(PullTest, HostileOrBadArgumentsAreUsageErrors)
{
  EXPECT_EQ(mm({"pull", "test-org/tiny-model", "../../etc/passwd"}).exit_code, 2);
  EXPECT_EQ(mm({"pull", "not a repo!", "x"}).exit_code, 2);
  EXPECT_EQ(mm({"pull"}).exit_code, 2);
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(PullTest, UnreachableEndpointIsANetworkErrorWithAnOfflineHint)
{
  const std::string dead = hub->endpoint();
  hub->stop();
  auto r = mm({"pull", "test-org/tiny-model", "config.json"},
              {{"HF_ENDPOINT", dead}, {"MODELMGR_RETRY_BASE_MS", "1"}});
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_THAT(r.err, HasSubstr("HF_HUB_OFFLINE"));
}

// ---- offline --------------------------------------------------------------------------------------------

TEST_F(PullTest, OfflineUsesTheCacheOnlyAndNamesWhatIsMissing)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  hub->reset_counters();
  const auto& main = *repo("test-org/tiny-model").resolve("main");
  auto r = mm({"pull", "test-org/tiny-model", "config.json"}, {{"HF_HUB_OFFLINE", "1"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, (cache / k_tiny / "snapshots" / main.sha / "config.json").string() + "\n");
  auto snap = mm({"pull", "test-org/tiny-model", "--exclude", "weights/*", "--offline"});
  EXPECT_EQ(snap.exit_code, 0) << snap.err;
  // The snapshot without its excluded file is known to be incomplete when the whole repo is asked for.
  auto whole = mm({"pull", "test-org/tiny-model"}, {{"HF_HUB_OFFLINE", "1"}});
  EXPECT_EQ(whole.exit_code, 3);
  EXPECT_THAT(whole.err, HasSubstr("weights/big.bin"));
  auto missing = mm({"pull", "test-org/tiny-model", "weights/big.bin"}, {{"HF_HUB_OFFLINE", "1"}});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_THAT(missing.err, HasSubstr("weights/big.bin"));
  EXPECT_THAT(missing.err, HasSubstr("modelmgr pull test-org/tiny-model"));
  auto unknown = mm({"pull", "test-org/other", "x"}, {{"TRANSFORMERS_OFFLINE", "1"}});
  EXPECT_EQ(unknown.exit_code, 3);
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(PullTest, JsonOutputIsOneObject)
{
  auto r = mm({"--json", "pull", "test-org/tiny-model", "config.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["repo_id"], "test-org/tiny-model");
  EXPECT_EQ(j["commit"], repo("test-org/tiny-model").resolve("main")->sha);
  EXPECT_EQ(j["files"][0]["downloaded"], true);
  auto err = mm({"--json", "pull", "test-org/tiny-model", "nope"});
  EXPECT_EQ(err.exit_code, 3);
  auto e = nlohmann::json::parse(lines(err.err).back());
  EXPECT_EQ(e["error"]["kind"], "not_found");
}

// `--add REPO FILE` is repeatable: one command, files from two repos, both in the cache and both printed.
TEST_F(PullTest, AddIsRepeatableAcrossRepos)
{
  const auto& tiny = *repo("test-org/tiny-model").resolve("main");
  const auto& embed = *repo("test-org/tiny-embed").resolve("main");
  auto r = mm({"pull", "--add", "test-org/tiny-model", "config.json", "--add", "test-org/tiny-embed",
               "tokenizer.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path a = cache / k_tiny / "snapshots" / tiny.sha / "config.json";
  const fs::path b = cache / "models--test-org--tiny-embed" / "snapshots" / embed.sha / "tokenizer.json";
  EXPECT_EQ(r.out, a.string() + "\n" + b.string() + "\n");
  EXPECT_EQ(read_file(a), tiny.find("config.json")->content());
  EXPECT_EQ(read_file(b), embed.find("tokenizer.json")->content());
  // Each --add takes exactly two values.
  EXPECT_EQ(mm({"pull", "--add", "test-org/tiny-model"}).exit_code, 2);
}

} // namespace
} // namespace modelmgr::test
