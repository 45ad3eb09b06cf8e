// `modelmgr inspect` and `modelmgr bench-load` run as a user would: on files the format writers produce, on
// a real ONNX model from libonnx-testdata, on a damaged file, and on a repo pulled from the hub emulator.
// Assertions are on the facts printed and the JSON, never on speed.

#include "formats/writers.hpp"
#include "support/hub_fixture.hpp"

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using formats::GgmlType;
using formats::GgufArray;
using formats::GgufValueType;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path k_onnx_conv2d = "/usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d/model.onnx";

class InspectTest : public HubTest {
protected:
  static void write_bytes(const fs::path& path, const std::vector<std::byte>& bytes)
  {
    write_file(path, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }

  fs::path write_gguf()
  {
    formats::GgufWriter w;
    w.add("general.architecture", "llama");
    w.add("general.name", "Inspect Me");
    w.add("general.file_type", std::uint32_t{15}); // Q4_K_M
    w.add("llama.context_length", std::uint32_t{4096});
    w.add("llama.embedding_length", std::uint32_t{256});
    w.add("llama.block_count", std::uint32_t{1});
    w.add("llama.attention.head_count", std::uint32_t{4});
    w.add("tokenizer.ggml.model", "llama");
    GgufArray tokens{GgufValueType::string, {}};
    for (int i = 0; i < 20; ++i) {
      tokens.items.emplace_back("tok" + std::to_string(i));
    }
    w.add("tokenizer.ggml.tokens", tokens);
    w.add_tensor("token_embd.weight", {256, 20}, GgmlType::q4_k);
    w.add_tensor("blk.0.ffn_down.weight", {256, 4}, GgmlType::q6_k);
    w.add_tensor("output_norm.weight", {256}, GgmlType::f32);
    const fs::path p = tmp->path() / "models" / "tiny.gguf";
    write_bytes(p, w.build());
    return p;
  }

  fs::path write_safetensors()
  {
    formats::SafetensorsWriter w;
    w.add_metadata("format", "pt");
    w.add_tensor("embed.weight", formats::SafetensorsDtype::bf16, {100, 16});
    w.add_tensor("norm.weight", formats::SafetensorsDtype::f32, {16});
    const fs::path p = tmp->path() / "models" / "model.safetensors";
    write_bytes(p, w.build());
    return p;
  }

  nlohmann::json run_json(const std::vector<std::string>& args, int expected_exit = 0)
  {
    auto r = mm(args);
    EXPECT_EQ(r.exit_code, expected_exit) << r.out << r.err;
    try {
      return nlohmann::json::parse(r.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not JSON: " << e.what() << "\n" << r.out << r.err;
      return {};
    }
  }
};

TEST_F(InspectTest, GgufFactsMetadataAndJson)
{
  const auto path = write_gguf();
  auto r = mm({"inspect", path.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("tiny.gguf  (gguf,"));
  EXPECT_THAT(r.out, HasSubstr("architecture     llama"));
  EXPECT_THAT(r.out, HasSubstr("file type        Q4_K_M"));
  EXPECT_THAT(r.out, HasSubstr("context length   4096"));
  EXPECT_THAT(r.out, HasSubstr("tokenizer        llama (20 tokens)"));
  EXPECT_THAT(r.out, HasSubstr("Q4_K x1"));
  EXPECT_THAT(r.out, HasSubstr("Q6_K x1"));
  EXPECT_THAT(r.out, HasSubstr("parameters       6.40 K")); // 5120 + 1024 + 256
  EXPECT_THAT(r.out, HasSubstr("general.name = \"Inspect Me\""));
  EXPECT_THAT(r.out, HasSubstr("tokenizer.ggml.tokens = [string x 20] [\"tok0\""));
  EXPECT_THAT(r.out, HasSubstr("... 12 more]"));
  EXPECT_THAT(r.out, HasSubstr("load check       ok"));

  r = mm({"inspect", path.string(), "--all-metadata"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"tok19\"]"));
  EXPECT_THAT(r.out, Not(HasSubstr("more]")));
  EXPECT_THAT(r.out, HasSubstr("blk.0.ffn_down.weight  Q6_K  [256, 4]"));

  const auto j = run_json({"inspect", path.string(), "--json"});
  EXPECT_EQ(j["parameter_count"], 6400);
  EXPECT_EQ(j["ok"], true);
  ASSERT_EQ(j["files"].size(), 1u);
  const auto& f = j["files"][0];
  EXPECT_EQ(f["format"], "gguf");
  EXPECT_EQ(f["size"], fs::file_size(path));
  EXPECT_EQ(f["details"]["quantization"], "Q4_K_M");
  EXPECT_EQ(f["details"]["context_length"], 4096);
  EXPECT_EQ(f["details"]["tensor_count"], 3);
  EXPECT_EQ(f["details"]["metadata"]["tokenizer.ggml.tokens"]["length"], 20);
  EXPECT_EQ(f["details"]["metadata"]["general.architecture"], "llama");
}

TEST_F(InspectTest, SafetensorsOnnxAndFolder)
{
  const auto st = write_safetensors();
  auto r = mm({"inspect", st.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("dtypes           BF16 x1"));
  EXPECT_THAT(r.out, HasSubstr("embed.weight  BF16  [100, 16]"));
  EXPECT_THAT(r.out, HasSubstr("metadata         format = pt"));
  auto j = run_json({"inspect", st.string(), "--json"});
  EXPECT_EQ(j["parameter_count"], 1616);

  r = mm({"inspect", k_onnx_conv2d.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("IR version       3"));
  EXPECT_THAT(r.out, HasSubstr("opsets           ai.onnx 6"));
  EXPECT_THAT(r.out, HasSubstr("producer         pytorch 0.3"));
  EXPECT_THAT(r.out, HasSubstr("input            0: float [2, 3, 7, 5]"));
  EXPECT_THAT(r.out, HasSubstr("nodes            1: Conv 1"));
  j = run_json({"inspect", k_onnx_conv2d.string(), "--json"});
  EXPECT_EQ(j["parameter_count"], 76);
  EXPECT_EQ(j["files"][0]["details"]["opset"], 6);
  EXPECT_EQ(j["files"][0]["details"]["inputs"][0]["shape"], nlohmann::json({2, 3, 7, 5}));

  // A folder: every inspectable file below it, totals over the weight files.
  write_gguf();
  fs::copy_file(k_onnx_conv2d, tmp->path() / "models" / "conv.onnx");
  write_file(tmp->path() / "models" / "config.json", R"({"model_type": "llama", "num_hidden_layers": 1})");
  write_file(tmp->path() / "models" / "notes.txt", "not inspected");
  j = run_json({"inspect", (tmp->path() / "models").string(), "--json"});
  EXPECT_EQ(j["files"].size(), 4u) << j.dump(1);
  EXPECT_EQ(j["weight_files"], 3);
  EXPECT_EQ(j["parameter_count"], 1616 + 76 + 6400);
  r = mm({"inspect", (tmp->path() / "models").string()});
  EXPECT_THAT(r.out, HasSubstr("4 files, 3 with weights"));
  EXPECT_THAT(r.out, HasSubstr("all load"));
}

TEST_F(InspectTest, DamagedFileFailsWithChecksumExitCode)
{
  const auto path = write_gguf();
  fs::resize_file(path, fs::file_size(path) - 100);
  auto r = mm({"inspect", path.string()});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err; // ErrorKind::checksum
  EXPECT_THAT(r.out, HasSubstr("load check       FAILED: tiny.gguf: tensor"));
  EXPECT_THAT(r.err, HasSubstr("exceeds file size"));
  EXPECT_THAT(r.err, HasSubstr("hint:"));

  const auto j = run_json({"inspect", path.string(), "--json"}, 5);
  EXPECT_EQ(j["ok"], false);
  EXPECT_THAT(j["files"][0]["error"].get<std::string>(), HasSubstr("tiny.gguf"));

  write_file(tmp->path() / "garbage.onnx", "not protobuf\n");
  r = mm({"inspect", (tmp->path() / "garbage.onnx").string()});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_THAT(r.err, HasSubstr("garbage.onnx: model: not a valid ONNX protobuf message"));

  write_file(tmp->path() / "README.md", "# hi\n");
  r = mm({"inspect", (tmp->path() / "README.md").string()});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("not a file modelmgr can inspect"));
}

TEST_F(InspectTest, RepoFromTheCacheOffline)
{
  auto r = mm({"inspect", "test-org/tiny-model"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err; // not_found: nothing cached yet
  EXPECT_THAT(r.err, HasSubstr("modelmgr pull"));

  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  const auto before = total_requests();
  auto j = run_json({"inspect", "test-org/tiny-model", "--json"});
  EXPECT_EQ(total_requests(), before); // offline
  EXPECT_EQ(j["repo_id"], "test-org/tiny-model");
  EXPECT_EQ(j["parameter_count"], 768 * 1024);
  std::set<std::string> names;
  for (const auto& f : j["files"]) {
    names.insert(f["name"].get<std::string>());
    EXPECT_EQ(f["ok"], true) << f.dump();
  }
  EXPECT_EQ(names, (std::set<std::string>{"config.json", "model.safetensors", "tokenizer.json"}));

  r = mm({"inspect", "test-org/tiny-model"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("test-org/tiny-model @ "));
  EXPECT_THAT(r.out, HasSubstr("model.safetensors  (safetensors,"));
  EXPECT_THAT(r.out, HasSubstr("tokenizer: WordPiece, 4 tokens, 1 added"));

  j = run_json({"inspect", "test-org/tiny-model/model.safetensors", "--json"});
  ASSERT_EQ(j["files"].size(), 1u);
  EXPECT_EQ(j["parameter_count"], 768 * 1024);

  r = mm({"inspect", "test-org/tiny-model/missing.gguf"});
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(InspectTest, BenchLoadReportsBothPassesOverTheWholeFile)
{
  const auto path = write_safetensors();
  const auto size = fs::file_size(path);
  auto j = run_json({"bench-load", path.string(), "--json"});
  EXPECT_EQ(j["cache_drop"], "fadvise_dontneed");
  EXPECT_EQ(j["order"], nlohmann::json({"mmap", "read"}));
  ASSERT_EQ(j["files"].size(), 1u);
  const auto& f = j["files"][0];
  EXPECT_EQ(f["size"], size);
  EXPECT_EQ(f["format"], "safetensors");
  EXPECT_EQ(f["first_tensor"], "embed.weight");
  for (const char* pass : {"mmap", "read"}) {
    EXPECT_EQ(f[pass]["bytes"], size) << pass;
    for (const char* key : {"seconds", "gb_per_s", "first_tensor_seconds", "resident_before", "pages"}) {
      EXPECT_TRUE(f[pass].contains(key)) << pass << "." << key;
    }
  }
  EXPECT_EQ(f["mmap"]["checksum"], f["read"]["checksum"]);
  EXPECT_TRUE(f.contains("mmap_to_read_ratio"));
  EXPECT_EQ(j["total"]["bytes"], size);

  auto r = mm({"bench-load", path.string(), "--keep-cache"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("mmap/read throughput"));
  EXPECT_THAT(r.out, HasSubstr("page cache is kept"));

  // A cached repo: its weight files only.
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  j = run_json({"bench-load", "test-org/tiny-model", "--json"});
  ASSERT_EQ(j["files"].size(), 1u);
  EXPECT_EQ(j["files"][0]["name"], "model.safetensors");
  EXPECT_EQ(j["files"][0]["read"]["bytes"], j["files"][0]["size"]);
}

} // namespace
} // namespace modelmgr::test
