// `modelmgr models list|download` against the hub emulator, with a user catalog (XDG_CONFIG_HOME in the
// test's temp dir) whose entries point at the emulator's catalog-like repos test-org/Tiny-Chat-GGUF and
// test-org/tiny-embed: the table and --json, --use-case, --fits (faked machine), the cached column after a
// download, download output and verification, --refresh with and without drift, unknown ids.

#include "support/hub_fixture.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using emulator::RouteKind;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_chat_repo = "test-org/Tiny-Chat-GGUF";
const std::string k_embed_repo = "test-org/tiny-embed";

class ModelsTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    write_user_catalog();
  }

  std::uint64_t hub_size(const std::string& repo_id, const std::string& path) const
  {
    return repo(repo_id).main().find(path)->size();
  }

  // The user catalog: both emulator repos (use case "test" too, so --use-case test selects only them) and
  // an entry no machine can run. `q4_delta` is added to the Q4_K_M size (drift tests).
  void write_user_catalog(std::int64_t q4_delta = 0)
  {
    const auto q4 = hub_size(k_chat_repo, "tiny-chat.Q4_K_M.gguf");
    const auto q8 = hub_size(k_chat_repo, "tiny-chat.Q8_0.gguf");
    const auto st = hub_size(k_embed_repo, "model.safetensors");
    const std::uint64_t mib = 1024 * 1024;
    const std::string text = fmt::format(R"(# test user catalog
[[model]]
id = "tiny-chat"
name = "Tiny Chat"
hf_repo = "{}"
format = "gguf"
use_cases = ["chat", "test"]
context_length = 2048
license = "mit"
description = "emulator GGUF"

[[model.variant]]
quantization = "Q4_K_M"
file = "tiny-chat.Q4_K_M.gguf"
size_bytes = {}
min_ram_bytes = {}
default = true

[[model.variant]]
quantization = "Q8_0"
file = "tiny-chat.Q8_0.gguf"
size_bytes = {}
min_ram_bytes = {}

[[model]]
id = "tiny-embed"
hf_repo = "{}"
format = "safetensors"
use_cases = ["embedding", "test"]
files = ["config.json", "tokenizer.json"]
context_length = 512
license = "mit"
description = "emulator safetensors"

[[model.variant]]
quantization = "F32"
file = "model.safetensors"
size_bytes = {}
min_ram_bytes = {}
)",
                                         k_chat_repo, q4 + q4_delta, q4 + 600 * mib, q8, q8 + 600 * mib,
                                         k_embed_repo, st, st + 520 * mib);
    write_file(user_catalog(), text);
  }

  fs::path user_catalog() const { return tmp->path() / "xdg" / "modelmgr" / "catalog.toml"; }

  // A catalog entry "tiny-pinned" (use case "pinned"): one variant of the chat repo, pinned to `sha`.
  static std::string pinned_entry(const std::string& sha, const std::string& quantization,
                                  const std::string& file, std::uint64_t size)
  {
    return fmt::format("[[model]]\nid = \"tiny-pinned\"\nhf_repo = \"{}\"\nrevision = \"{}\"\n"
                       "format = \"gguf\"\nuse_cases = [\"pinned\"]\n[[model.variant]]\n"
                       "quantization = \"{}\"\nfile = \"{}\"\nsize_bytes = {}\nmin_ram_bytes = {}\n",
                       k_chat_repo, sha, quantization, file, size, size + 1024);
  }

  // A machine with 4 GiB RAM (3 GiB available), no cgroup limit, no GPU.
  fs::path fake_machine() const
  {
    const fs::path root = tmp->path() / "sysroot";
    write_file(root / "proc" / "meminfo", "MemTotal:        4194304 kB\nMemFree:         1048576 kB\n"
                                          "MemAvailable:    3145728 kB\n");
    write_file(root / "proc" / "cpuinfo", "processor\t: 0\nflags\t\t: fpu sse2 avx avx2\n\n");
    return root;
  }

  ProcessResult models(std::vector<std::string> args, std::map<std::string, std::string> extra = {}) const
  {
    args.insert(args.begin(), "models");
    extra.emplace("XDG_CONFIG_HOME", (tmp->path() / "xdg").string());
    extra.emplace("HOME", (tmp->path() / "home").string());
    extra.emplace("MODELMGR_TEST_SYSROOT", fake_machine().string());
    extra.emplace("PATH", "/usr/bin:/bin"); // no nvidia-smi from a developer's machine
    return mm(args, extra);
  }

  std::map<std::string, nlohmann::json> list_json(const std::vector<std::string>& extra_args = {}) const
  {
    std::vector<std::string> args{"list", "--json"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    const auto r = models(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    std::map<std::string, nlohmann::json> by_spec;
    const auto j = nlohmann::json::parse(r.out); // a local: ranging over a temporary's member dangles
    for (const auto& m : j["models"]) {
      by_spec[m["spec"].get<std::string>()] = m;
    }
    return by_spec;
  }

  fs::path repo_dir(const std::string& repo_id) const
  {
    std::string folder = "models--" + repo_id;
    folder.replace(folder.find('/'), 1, "--");
    return cache / folder;
  }

  fs::path snapshot_file(const std::string& repo_id, const std::string& path) const
  {
    return repo_dir(repo_id) / "snapshots" / repo(repo_id).main().sha / path;
  }
};

TEST_F(ModelsTest, ListShowsOneRowPerVariantWithSizesRamFitsAndCached)
{
  // One more entry whose size is only a rounded figure (size_exact = false).
  const fs::path rounded = tmp->path() / "rounded.toml";
  write_file(rounded, "[[model]]\nid = \"rounded\"\nhf_repo = \"org/rounded\"\nformat = \"gguf\"\n"
                      "use_cases = [\"chat\"]\n[[model.variant]]\nquantization = \"Q4_K_M\"\n"
                      "file = \"rounded.Q4_K_M.gguf\"\nsize_bytes = 813000000\nsize_exact = false\n"
                      "min_ram_bytes = 1349870912\n");
  const auto r = models({"list", "--catalog", rounded.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("ID"));
  EXPECT_THAT(r.out, HasSubstr("QUANT"));
  EXPECT_THAT(r.out, HasSubstr("CACHED"));
  // The user's entries and the built-in ones, one row per variant.
  EXPECT_THAT(r.out, ::testing::ContainsRegex("tiny-chat +Q4_K_M +[0-9.]+ KiB +[0-9.]+ MiB +yes +no\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("tiny-chat +Q8_0 "));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("tiny-embed +F32 "));
  // An approximate catalog size (size_exact = false) is marked, an exact one is not.
  EXPECT_THAT(r.out, ::testing::ContainsRegex("rounded +Q4_K_M +~775.3 MiB"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("siglip-base-patch16-224 +F32 +775.0 MiB"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("mistral-7b-instruct-v0.3 +Q5_K_M +4.8 GiB"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("llama-3.1-8b-instruct +Q8_0 +8.0 GiB"));
  EXPECT_THAT(r.err, HasSubstr("~ = the Hub page's rounded size"));
  EXPECT_THAT(models({"list"}).err, Not(HasSubstr("~ = "))); // every built-in size is exact
  EXPECT_THAT(r.out, ::testing::ContainsRegex("mistral-7b-instruct-v0.3 +Q8_0 .* no +no\n")); // 9 GB on 4 GB
  EXPECT_THAT(r.err, HasSubstr("This machine: "));
  EXPECT_EQ(total_requests(), 0u); // listing is offline
}

TEST_F(ModelsTest, ListJsonCarriesEveryFact)
{
  auto m = list_json();
  ASSERT_TRUE(m.count("tiny-chat:Q4_K_M"));
  const auto& q4 = m["tiny-chat:Q4_K_M"];
  EXPECT_EQ(q4["id"], "tiny-chat");
  EXPECT_EQ(q4["quantization"], "Q4_K_M");
  EXPECT_EQ(q4["hf_repo"], k_chat_repo);
  EXPECT_EQ(q4["format"], "gguf");
  EXPECT_EQ(q4["file"], "tiny-chat.Q4_K_M.gguf");
  EXPECT_EQ(q4["default"], true);
  EXPECT_EQ(q4["size_bytes"], hub_size(k_chat_repo, "tiny-chat.Q4_K_M.gguf"));
  EXPECT_EQ(q4["ram_source"], "catalog");
  EXPECT_EQ(q4["ram_needed_bytes"], q4["min_ram_bytes"]);
  EXPECT_EQ(q4["fits"], true);
  EXPECT_EQ(q4["cached"], false);
  EXPECT_TRUE(q4["path"].is_null());
  EXPECT_EQ(q4["origin"], user_catalog().string());
  ASSERT_TRUE(m.count("llama-3.1-8b-instruct:Q8_0"));
  EXPECT_EQ(m["llama-3.1-8b-instruct:Q8_0"]["fits"], false);
  EXPECT_THAT(m["llama-3.1-8b-instruct:Q8_0"]["fit_reason"].get<std::string>(), HasSubstr("RAM"));
  EXPECT_EQ(m["llama-3.1-8b-instruct:Q8_0"]["origin"], "built-in");
}

TEST_F(ModelsTest, UseCaseAndFitsFilter)
{
  const auto embedding = list_json({"--use-case", "EMBEDDING"});
  ASSERT_FALSE(embedding.empty());
  EXPECT_TRUE(embedding.count("tiny-embed:F32"));
  EXPECT_TRUE(embedding.count("bge-m3:F32"));
  for (const auto& [spec, m] : embedding) {
    EXPECT_THAT(m["use_cases"].get<std::vector<std::string>>(), ::testing::Contains("embedding")) << spec;
  }
  const auto fitting = list_json({"--fits"});
  EXPECT_TRUE(fitting.count("tiny-chat:Q8_0"));
  EXPECT_TRUE(fitting.count("all-minilm-l6-v2:F32"));
  EXPECT_FALSE(fitting.count("gemma-2-2b-it:Q4_K_M")); // 2.9 GiB + 1 GiB headroom > 3 GiB available
  for (const auto& [spec, m] : fitting) {
    EXPECT_EQ(m["fits"], true) << spec;
  }
  EXPECT_FALSE(fitting.count("mistral-7b-instruct-v0.3:Q4_K_M"));

  const auto r = models({"list", "--use-case", "poetry"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("no catalog entry has the use case 'poetry'"));
  EXPECT_THAT(r.err, HasSubstr("embedding"));
}

TEST_F(ModelsTest, DownloadVerifiesPrintsThePathAndFlipsTheCachedColumn)
{
  auto r = models({"download", "tiny-chat:q8_0"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const fs::path q8 = snapshot_file(k_chat_repo, "tiny-chat.Q8_0.gguf");
  EXPECT_EQ(r.out, q8.string() + "\n"); // only the chosen quantization, no README
  EXPECT_EQ(read_file(q8), repo(k_chat_repo).main().find("tiny-chat.Q8_0.gguf")->content());
  EXPECT_FALSE(fs::exists(snapshot_file(k_chat_repo, "tiny-chat.Q4_K_M.gguf")));
  EXPECT_FALSE(fs::exists(snapshot_file(k_chat_repo, "README.md")));
  {
    const auto c = counters();
    EXPECT_EQ(c.gets_for("tiny-chat.Q4_K_M.gguf"), 0u);
    EXPECT_EQ(c.bytes_for("tiny-chat.Q8_0.gguf"), hub_size(k_chat_repo, "tiny-chat.Q8_0.gguf"));
  }

  auto m = list_json();
  EXPECT_EQ(m["tiny-chat:Q8_0"]["cached"], true);
  EXPECT_EQ(m["tiny-chat:Q8_0"]["path"], q8.string());
  EXPECT_EQ(m["tiny-chat:Q8_0"]["ram_source"], "header"); // read from the cached file's own GGUF header
  EXPECT_EQ(m["tiny-chat:Q4_K_M"]["cached"], false);
  const auto text = models({"list", "--use-case", "test"});
  EXPECT_THAT(text.out, ::testing::ContainsRegex("tiny-chat +Q8_0 .* yes +yes\n"));
  EXPECT_THAT(text.out, ::testing::ContainsRegex("tiny-chat +Q4_K_M .* yes +no\n"));

  // Again: nothing to download, same output.
  hub->reset_counters();
  r = models({"download", "tiny-chat:Q8_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, q8.string() + "\n");
  EXPECT_EQ(counters().count(RouteKind::cdn_get), 0u);
}

TEST_F(ModelsTest, DownloadTakesTheDefaultVariantAndTheExtraFiles)
{
  auto r = models({"download", "tiny-chat", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, snapshot_file(k_chat_repo, "tiny-chat.Q4_K_M.gguf").string() + "\n");

  r = models({"download", "tiny-embed", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["spec"], "tiny-embed:F32");
  EXPECT_EQ(j["path"], snapshot_file(k_embed_repo, "model.safetensors").string());
  EXPECT_EQ(j["commit"], repo(k_embed_repo).main().sha);
  std::vector<std::string> files;
  for (const auto& f : j["files"]) {
    files.push_back(f["path"]);
  }
  EXPECT_THAT(files, ::testing::UnorderedElementsAre("model.safetensors", "config.json", "tokenizer.json"));
  EXPECT_EQ(read_file(snapshot_file(k_embed_repo, "tokenizer.json")),
            repo(k_embed_repo).main().find("tokenizer.json")->content());
  EXPECT_EQ(list_json()["tiny-embed:F32"]["cached"], true);
}

TEST_F(ModelsTest, DownloadRefusesCorruptBytes)
{
  hub->add_fault({.kind = emulator::FaultSpec::Kind::flip_byte,
                  .path_contains = "tiny-chat.Q4_K_M.gguf",
                  .times = -1,
                  .after_bytes = 1000});
  const auto r = models({"download", "tiny-chat:Q4_K_M", "-q"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_FALSE(fs::exists(snapshot_file(k_chat_repo, "tiny-chat.Q4_K_M.gguf")));
  EXPECT_EQ(list_json()["tiny-chat:Q4_K_M"]["cached"], false);
}

TEST_F(ModelsTest, UnknownIdOrQuantizationSuggests)
{
  auto r = models({"download", "tiny-chta"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown model 'tiny-chta'"));
  EXPECT_THAT(r.err, HasSubstr("did you mean 'tiny-chat'"));
  EXPECT_THAT(r.err, HasSubstr("modelmgr models list"));
  r = models({"download", "tiny-chat:Q6_K"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("has no quantization 'Q6_K'; it has: Q4_K_M, Q8_0"));
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(ModelsTest, RefreshReportsNoDriftWhenTheCatalogIsRight)
{
  const auto r = models({"list", "--refresh", "--use-case", "test"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok    tiny-chat:Q4_K_M tiny-chat.Q4_K_M.gguf: "));
  EXPECT_THAT(r.out, HasSubstr("ok    tiny-chat:Q8_0 tiny-chat.Q8_0.gguf: "));
  EXPECT_THAT(r.out, HasSubstr("ok    tiny-embed:F32 model.safetensors: "));
  EXPECT_THAT(r.out, HasSubstr("3 files checked, 0 drifted\n"));
  const auto c = counters();
  EXPECT_EQ(c.count(RouteKind::api_tree), 2u); // one listing per repo
  EXPECT_EQ(c.count(RouteKind::cdn_get), 0u);  // sizes only, no bytes
}

TEST_F(ModelsTest, RefreshReportsDriftPerFile)
{
  write_user_catalog(+1);
  const auto size = hub_size(k_chat_repo, "tiny-chat.Q4_K_M.gguf");
  auto r = models({"list", "--refresh", "--use-case", "test"});
  EXPECT_EQ(r.exit_code, 9) << r.out << r.err;
  EXPECT_THAT(r.out,
              HasSubstr(fmt::format("DRIFT tiny-chat:Q4_K_M tiny-chat.Q4_K_M.gguf: catalog {} bytes, Hub {} "
                                    "bytes (-1 bytes)",
                                    size + 1, size)));
  EXPECT_THAT(r.out, HasSubstr("ok    tiny-chat:Q8_0"));
  EXPECT_THAT(r.out, HasSubstr("3 files checked, 1 drifted\n"));
  EXPECT_THAT(r.err, HasSubstr("docs/catalog.md"));

  r = models({"list", "--refresh", "--use-case", "test", "--json"});
  EXPECT_EQ(r.exit_code, 9);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["drifted"], 1);
  EXPECT_EQ(j["exit_code"], 9);
  bool seen = false;
  for (const auto& c : j["checks"]) {
    if (c["path"] == "tiny-chat.Q4_K_M.gguf") {
      seen = true;
      EXPECT_EQ(c["catalog_size"], size + 1);
      EXPECT_EQ(c["hub_size"], size);
      EXPECT_EQ(c["drift"], true);
      EXPECT_EQ(c["commit"], repo(k_chat_repo).main().sha);
    }
  }
  EXPECT_TRUE(seen);
}

TEST_F(ModelsTest, RefreshReportsAFileMissingOnTheHubAndUnlistableRepos)
{
  const fs::path extra = tmp->path() / "project-catalog.toml";
  write_file(extra, R"([[model]]
id = "tiny-chat"
hf_repo = "test-org/Tiny-Chat-GGUF"
format = "gguf"
use_cases = ["test"]
[[model.variant]]
quantization = "Q2_K"
file = "tiny-chat.Q2_K.gguf"
size_bytes = 5
min_ram_bytes = 5
[[model]]
id = "gone"
hf_repo = "test-org/does-not-exist"
format = "gguf"
use_cases = ["test"]
[[model.variant]]
quantization = "Q4_0"
file = "gone.gguf"
size_bytes = 5
min_ram_bytes = 5
)");
  const auto r = models({"list", "--refresh", "--use-case", "test", "--catalog", extra.string()});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err; // a repo could not be listed: not found wins over drift
  EXPECT_THAT(r.out, HasSubstr("DRIFT tiny-chat:Q2_K tiny-chat.Q2_K.gguf: not on the Hub"));
  EXPECT_THAT(r.out, HasSubstr("error gone: cannot list test-org/does-not-exist"));
}

TEST_F(ModelsTest, AnEntryPinnedToACommitKeepsItsFilesAndSizesWhenMainMoves)
{
  // The built-in entries are pinned to commits; this one is pinned to the emulator repo's current commit.
  const std::string pinned_sha = repo(k_chat_repo).main().sha;
  const auto old_size = hub_size(k_chat_repo, "tiny-chat.Q4_K_M.gguf");
  const std::string old_bytes = repo(k_chat_repo).main().find("tiny-chat.Q4_K_M.gguf")->content();
  const fs::path extra = tmp->path() / "pinned.toml";
  write_file(extra, pinned_entry(pinned_sha, "Q4_K_M", "tiny-chat.Q4_K_M.gguf", old_size));
  // While main is the pinned commit there is nothing newer.
  auto r = models({"list", "--refresh", "--use-case", "pinned", "--catalog", extra.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("newer")));
  // The publisher re-uploads the file on main, one byte longer.
  emulator::CommitSpec next;
  for (const auto& f : repo(k_chat_repo).main().files) {
    next.files.push_back(f->spec());
    if (f->path() == "tiny-chat.Q4_K_M.gguf") {
      next.files.back() = emulator::FileSpec::text(f->path(), old_bytes + "x", true);
    }
  }
  const std::string moved = hub->add_commit(k_chat_repo, next, "main");
  ASSERT_NE(moved, pinned_sha);
  hub->reset_counters();

  // --refresh compares the pinned commit's listing: no drift, although main's file has another size; the
  // newer upload is a note that says how to move to it.
  r = models({"list", "--refresh", "--use-case", "pinned", "--catalog", extra.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok    tiny-pinned:Q4_K_M tiny-chat.Q4_K_M.gguf: "));
  EXPECT_THAT(r.out,
              HasSubstr(fmt::format("newer tiny-pinned:Q4_K_M tiny-chat.Q4_K_M.gguf: main ({}) has another "
                                    "upload, {} bytes; to move to it, set revision = \"{}\"",
                                    moved.substr(0, 7), old_size + 1, moved)));
  EXPECT_THAT(r.out, HasSubstr("1 file checked, 0 drifted, 1 changed on main since the pinned revision\n"));
  r = models({"list", "--refresh", "--json", "--use-case", "pinned", "--catalog", extra.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto refreshed = nlohmann::json::parse(r.out);
  EXPECT_EQ(refreshed["newer_on_main"], 1);
  EXPECT_EQ(refreshed["checks"][0]["newer_on_main"]["commit"], moved);
  EXPECT_EQ(refreshed["checks"][0]["newer_on_main"]["hub_size"], old_size + 1);
  // ...while the unpinned entry (revision main) reports the re-upload.
  r = models({"list", "--refresh", "--use-case", "test", "--catalog", extra.string()});
  EXPECT_EQ(r.exit_code, 9) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("DRIFT tiny-chat:Q4_K_M"));

  // The download fetches the pinned commit's bytes into its snapshot, and the cached column follows it.
  r = models({"download", "tiny-pinned", "-q", "--catalog", extra.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const fs::path file = repo_dir(k_chat_repo) / "snapshots" / pinned_sha / "tiny-chat.Q4_K_M.gguf";
  EXPECT_EQ(r.out, file.string() + "\n");
  EXPECT_EQ(read_file(file), old_bytes);
  r = models({"list", "--json", "--use-case", "pinned", "--catalog", extra.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["models"].size(), 1u);
  EXPECT_EQ(j["models"][0]["cached"], true);
  EXPECT_EQ(j["models"][0]["path"], file.string());
}

TEST_F(ModelsTest, CachePruneKeepsACatalogModelDownloadedAtItsPinnedCommit)
{
  // A user catalog entry pinned to the current commit: its download writes no ref (detached).
  const std::string sha = repo(k_chat_repo).main().sha;
  const auto size = hub_size(k_chat_repo, "tiny-chat.Q8_0.gguf");
  write_file(user_catalog(),
             read_file(user_catalog()) + "\n" + pinned_entry(sha, "Q8_0", "tiny-chat.Q8_0.gguf", size));
  ASSERT_EQ(models({"download", "tiny-pinned", "-q"}).exit_code, 0);
  const fs::path file = snapshot_file(k_chat_repo, "tiny-chat.Q8_0.gguf");
  ASSERT_TRUE(fs::exists(file));
  ASSERT_FALSE(fs::exists(repo_dir(k_chat_repo) / "refs" / "main"));

  const std::map<std::string, std::string> env{{"XDG_CONFIG_HOME", (tmp->path() / "xdg").string()},
                                               {"HOME", (tmp->path() / "home").string()}};
  auto r = mm({"cache", "prune", "--dry-run"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("detached")));
  r = mm({"cache", "prune", "-y"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ(list_json()["tiny-pinned:Q8_0"]["cached"], true);

  // Without the catalog entry the same revision is detached, and prune removes it.
  r = mm({"cache", "prune", "-y"}, {{"XDG_CONFIG_HOME", (tmp->path() / "empty-xdg").string()},
                                    {"HOME", (tmp->path() / "home").string()}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("detached"));
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(ModelsTest, CatalogOptionOverridesAndInvalidCatalogsAreNamed)
{
  write_file(user_catalog(),
             "[[model]]\nid = \"x\"\nhf_repo = \"org/x\"\nformat = \"gguf\"\n[[model.variant]]\n"
             "quantization = \"Q4_0\"\nfile = \"x.gguf\"\nsize_bytes = -3\nmin_ram_bytes = 1\n");
  const auto r = models({"list"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr(user_catalog().string() + ":8:"));
  EXPECT_THAT(r.err, HasSubstr("size_bytes: must be greater than 0"));
  EXPECT_THAT(r.err, HasSubstr("docs/catalog.md"));
}

TEST_F(ModelsTest, InspectAndBenchLoadTakeACatalogIdOnceItIsCached)
{
  auto std_env = std::map<std::string, std::string>{{"XDG_CONFIG_HOME", (tmp->path() / "xdg").string()}};
  auto missing = mm({"inspect", "tiny-chat:Q8_0"}, std_env);
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_NE(missing.err.find("modelmgr models download tiny-chat:Q8_0"), std::string::npos) << missing.err;
  ASSERT_EQ(models({"download", "tiny-chat:Q8_0"}).exit_code, 0);
  auto r = mm({"inspect", "tiny-chat:q8_0", "--json"}, std_env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ok"], true);
  // Tiny-Chat-GGUF (src/emulator/default_repos.cpp): 256x1000 embeddings, 2 blocks, output norm.
  EXPECT_EQ(j["parameter_count"], 256'000 + 2 * (256 + 65'536 + 2 * 32'768 + 65'536 + 2 * 131'072) + 256);
  ASSERT_EQ(j["files"].size(), 1u);
  EXPECT_EQ(j["files"][0]["format"], "gguf");
  auto b = mm({"bench-load", "tiny-chat:Q8_0", "--json"}, std_env);
  EXPECT_EQ(b.exit_code, 0) << b.err;
  auto unknown = mm({"inspect", "tiny-chat:Q3_K_S"}, std_env);
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("Q8_0"), std::string::npos) << unknown.err;
}

} // namespace
} // namespace modelmgr::test
