// Load checks in model sets against the hub emulator: `sync` with `verify: load` parses every file after
// the hash check and records the parameter count in the manifest; a file whose bytes match the Hub but do
// not load fails with exit 5 naming the file and the parser's reason, in sync, sync --verify-only and
// verify --load, while plain verify (hashes only) passes.

#include "formats/writers.hpp"
#include "support/hub_fixture.hpp"

#include <nlohmann/json.hpp>
#include <string>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// Parameters of the emulator's default repos (src/emulator/default_repos.cpp).
// Tiny-Chat-GGUF: token_embd 256x1000, 2 blocks of (256 + 256x256 + 2x256x128 + 256x256 + 2x256x512), 256.
constexpr std::uint64_t k_tiny_chat_parameters =
    256'000 + 2 * (256 + 65'536 + 2 * 32'768 + 65'536 + 2 * 131'072) + 256;
// tiny-embed: 1000x64 embeddings and three 64x64 matrices.
constexpr std::uint64_t k_tiny_embed_parameters = 64'000 + 3 * 4'096;

const std::string k_config = R"(verify: load
models:
  - id: chat
    repo_id: test-org/Tiny-Chat-GGUF
    files: [tiny-chat.Q4_K_M.gguf]
  - id: embed
    repo_id: test-org/tiny-embed
)";

// A safetensors file cut short: its header promises more tensor data than the file holds.
std::string truncated_safetensors()
{
  formats::SafetensorsWriter w;
  w.add_tensor("x", formats::SafetensorsDtype::f32, {64, 64});
  const auto bytes = w.build();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size() - 100);
}

class LoadCheckTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    emulator::RepoSpec spec;
    spec.id = "test-org/broken-weights";
    emulator::CommitSpec commit;
    commit.files.push_back(emulator::FileSpec::text("config.json", R"({"model_type": "bert"})"));
    commit.files.push_back(emulator::FileSpec::text("model.safetensors", truncated_safetensors(), true));
    spec.commits.push_back(commit);
    hub->add_repo(spec);
  }
  fs::path write_config(const std::string& text)
  {
    const fs::path p = tmp->path() / "project" / "models.yaml";
    write_file(p, text);
    return p;
  }
};

TEST_F(LoadCheckTest, SyncWithVerifyLoadRecordsTheParameterCountOfRealWeights)
{
  const auto config = write_config(k_config);
  auto r = mm({"sync", "--config", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2713 chat: downloaded and verified (load, 1.17 M parameters)"));
  EXPECT_THAT(r.out, HasSubstr("\u2713 embed: downloaded and verified (load, 76.3 K parameters)"));

  auto manifest = nlohmann::json::parse(read_file(config.parent_path() / "model_manifest.json"));
  ASSERT_EQ(manifest["models"].size(), 2u);
  const auto& chat = manifest["models"][0];
  EXPECT_EQ(chat["id"], "chat");
  EXPECT_EQ(chat["verify"], "load");
  EXPECT_EQ(chat["load"]["ok"], true);
  EXPECT_EQ(chat["load"]["parameter_count"], k_tiny_chat_parameters);
  EXPECT_FALSE(chat["load"]["checked_at"].get<std::string>().empty());
  EXPECT_FALSE(chat["load"].contains("errors"));
  EXPECT_EQ(manifest["models"][1]["load"]["parameter_count"], k_tiny_embed_parameters);

  // Cached: checked again, said so.
  r = mm({"sync", "--config", config.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  const auto& embed = j["models"][1];
  EXPECT_EQ(embed["status"], "cached");
  EXPECT_EQ(embed["load"]["ok"], true);
  EXPECT_EQ(embed["load"]["parameter_count"], k_tiny_embed_parameters);
  std::map<std::string, nlohmann::json> files;
  for (const auto& f : embed["load"]["files"]) {
    files[f["path"]] = f;
  }
  EXPECT_EQ(files["model.safetensors"]["format"], "safetensors");
  EXPECT_EQ(files["model.safetensors"]["parameter_count"], k_tiny_embed_parameters);
  EXPECT_EQ(files["config.json"]["format"], "config.json");
  EXPECT_EQ(files["config.json"]["ok"], true);

  // Offline: the same checks without the network.
  hub->reset_counters();
  r = mm({"sync", "--config", config.string(), "--verify-only"}, {{"HF_ENDPOINT", "http://127.0.0.1:9"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2713 chat: cached and verified (load, 1.17 M parameters)"));
  r = mm({"verify", "--load", "--config", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("loads (76.3 K parameters)"));
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(LoadCheckTest, AFileThatHashesFineButDoesNotLoadFailsWithExitFiveNamingFileAndReason)
{
  const auto config = write_config(R"(verify: load
models:
  - id: broken
    repo_id: test-org/broken-weights
)");
  auto r = mm({"sync", "--config", config.string()});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_THAT(r.out,
              HasSubstr("\u2717 broken: model 'broken' (test-org/broken-weights) failed the load check: "
                        "model.safetensors: does not load: "));
  EXPECT_THAT(r.out, HasSubstr("exceeds the data section"));
  EXPECT_THAT(r.out, Not(HasSubstr("config.json: does not load")));
  auto manifest = nlohmann::json::parse(read_file(config.parent_path() / "model_manifest.json"));
  const auto& m = manifest["models"][0];
  EXPECT_EQ(m["status"], "failed");
  EXPECT_EQ(m["load"]["ok"], false);
  ASSERT_EQ(m["load"]["errors"].size(), 1u);
  EXPECT_THAT(m["load"]["errors"][0].get<std::string>(), HasSubstr("model.safetensors: does not load: "));

  // The hashes are those of the Hub: only the load check sees the problem.
  r = mm({"verify", "--config", config.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = mm({"verify", "--load", "--config", config.string()});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\u2717 broken: corrupt (1 problem)"));
  EXPECT_THAT(r.out, HasSubstr("load failure: model.safetensors: does not load: "));
  r = mm({"sync", "--config", config.string(), "--verify-only"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("model.safetensors: does not load: "));

  // Downloading the Hub's bytes again would not help: --repair leaves the file alone.
  hub->reset_counters();
  r = mm({"verify", "--load", "--repair", "--config", config.string(), "--json"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["models"][0]["load"]["ok"], false);
  EXPECT_EQ(j["models"][0]["problems"][0]["kind"], "load failure");
  EXPECT_EQ(counters().gets_for("model.safetensors"), 0u);
}

} // namespace
} // namespace modelmgr::test
