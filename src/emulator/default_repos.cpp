// The repos the emulator serves out of the box. Tests depend on names, paths, sizes and commit structure:
// keep the table in hub_emulator.hpp in sync.

#include "emulator/repo_model.hpp"
#include "formats/writers.hpp"

#include <cstring>

#include <fmt/format.h>

namespace modelmgr::emulator {

namespace {

// A valid safetensors header for one F32 tensor, so format readers can parse the generated files: 8-byte
// little-endian header length, JSON padded with spaces to a multiple of 8, then the tensor bytes (generated).
std::string safetensors_prefix(std::uint64_t rows, std::uint64_t cols, std::uint64_t& total_size)
{
  const std::uint64_t data = rows * cols * 4;
  std::string header =
      fmt::format(R"({{"__metadata__":{{"format":"pt"}},"model.weight":{{"dtype":"F32","shape":[{},{}],)"
                  R"("data_offsets":[0,{}]}}}})",
                  rows, cols, data);
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string prefix(8, '\0');
  std::uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) {
    prefix[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  }
  prefix += header;
  total_size = prefix.size() + data;
  return prefix;
}

FileSpec safetensors(std::string path, std::uint64_t rows, std::uint64_t cols, std::uint64_t seed)
{
  std::uint64_t size = 0;
  std::string prefix = safetensors_prefix(rows, cols, size);
  return FileSpec::generated(std::move(path), size, seed, true, std::move(prefix));
}

std::string model_config(int hidden_size)
{
  return fmt::format(R"({{
  "architectures": ["TinyModel"],
  "model_type": "tiny",
  "hidden_size": {},
  "num_hidden_layers": 2,
  "num_attention_heads": 2,
  "vocab_size": 1000,
  "torch_dtype": "float32"
}}
)",
                     hidden_size);
}

const char* k_tokenizer_json = R"({
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [{"id": 0, "content": "[PAD]", "special": true}],
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[PAD]": 0, "[UNK]": 1, "hello": 2, "world": 3}}
}
)";

std::vector<FileSpec> tiny_model_files(int hidden_size, bool with_readme)
{
  std::vector<FileSpec> files;
  files.push_back(FileSpec::text("config.json", model_config(hidden_size)));
  files.push_back(FileSpec::text("tokenizer.json", k_tokenizer_json));
  if (with_readme) {
    files.push_back(
        FileSpec::text("README.md", "---\nlicense: mit\n---\n# tiny-model\n\nA test model for modelmgr.\n"));
  }
  files.push_back(FileSpec::text("sub/dir/deep.txt", "a file three levels down\n"));
  files.push_back(FileSpec::text("empty.txt", ""));
  files.push_back(FileSpec::text("name with spaces.txt", "spaces in the name\n"));
  files.push_back(FileSpec::text("données/élan.txt", "UTF-8 path\n"));
  files.push_back(safetensors("model.safetensors", 768, 1024, 1));
  files.push_back(FileSpec::generated("weights/big.bin", 300ull * 1024 * 1024, 2));
  return files;
}

RepoSpec tiny_model()
{
  RepoSpec repo;
  repo.id = "test-org/tiny-model";
  repo.renamed_from = "old-org/tiny-model";
  repo.commits.push_back({"", tiny_model_files(32, false), "Initial commit"});
  repo.commits.push_back({"", tiny_model_files(64, true), "Bigger hidden size, add README"});
  auto feature = tiny_model_files(64, true);
  feature.push_back(FileSpec::text("feature.txt", "only on feature/x\n"));
  repo.commits.push_back({"", std::move(feature), "Feature work"});
  repo.commits.push_back({"", tiny_model_files(128, true), "PR: change hidden size"});
  repo.branches = {{"main", "1"}, {"feature/x", "2"}};
  repo.tags = {{"v1.0", "0"}};
  repo.pull_requests = {{1, "3"}};
  return repo;
}

RepoSpec many_files()
{
  RepoSpec repo;
  repo.id = "test-org/many-files";
  CommitSpec commit;
  for (int d = 0; d < 15; ++d) {
    for (int s = 0; s < 10; ++s) {
      for (int f = 0; f < 10; ++f) {
        commit.files.push_back(FileSpec::text(fmt::format("dir{:02}/sub{}/file{}.txt", d, s, f),
                                              fmt::format("file {} {} {}\n", d, s, f)));
      }
    }
  }
  repo.commits.push_back(std::move(commit));
  return repo;
}

RepoSpec small_lfs_repo(std::string id, std::uint64_t seed)
{
  RepoSpec repo;
  repo.id = id;
  repo.commits.push_back({"",
                          {FileSpec::text("config.json", model_config(16)),
                           FileSpec::text("README.md", fmt::format("# {}\n", id)),
                           FileSpec::generated("model.safetensors", 1024 * 1024, seed)},
                          "Initial commit"});
  return repo;
}

RepoSpec tiny_dataset()
{
  RepoSpec repo;
  repo.id = "test-org/tiny-dataset";
  repo.type = "dataset";
  std::string train = "id,text,label\n";
  for (int i = 0; i < 50; ++i) {
    train += fmt::format("{},sample text {},{}\n", i, i, i % 2);
  }
  repo.commits.push_back(
      {"",
       {FileSpec::text("README.md", "---\nlicense: cc0-1.0\n---\n# tiny-dataset\n"),
        FileSpec::text("data/train.csv", train), FileSpec::text("data/test.csv", "id,text,label\n0,test,1\n"),
        FileSpec::generated("data/train.parquet", 2 * 1024 * 1024, 20)},
       "Initial commit"});
  return repo;
}

RepoSpec gpt2_tiny()
{
  RepoSpec repo;
  repo.id = "gpt2-tiny";
  repo.commits.push_back({"",
                          {FileSpec::text("config.json", model_config(8)),
                           FileSpec::text("vocab.json", R"({"hello": 0, "world": 1})"
                                                        "\n"),
                           FileSpec::text("merges.txt", "#version: 0.2\nh e\nw o\n"),
                           FileSpec::generated("model.safetensors", 1024 * 1024, 30)},
                          "Initial commit"});
  return repo;
}

RepoSpec demo_repo(std::string id, std::string model_type, std::string weights_name, std::uint64_t rows,
                   std::uint64_t seed)
{
  RepoSpec repo;
  repo.id = id;
  CommitSpec commit;
  commit.title = "Upload model";
  commit.files.push_back(FileSpec::text("config.json", fmt::format(R"({{
  "_name_or_path": "{}",
  "model_type": "{}",
  "hidden_size": 384,
  "num_hidden_layers": 6,
  "num_attention_heads": 12,
  "max_position_embeddings": 512,
  "torch_dtype": "float32"
}}
)",
                                                                   id, model_type)));
  commit.files.push_back(FileSpec::text("tokenizer.json", k_tokenizer_json));
  commit.files.push_back(
      FileSpec::text("tokenizer_config.json",
                     R"({"do_lower_case": true, "model_max_length": 512, "tokenizer_class": "BertTokenizer"})"
                     "\n"));
  commit.files.push_back(FileSpec::text(
      "README.md", fmt::format("---\nlicense: apache-2.0\nlibrary_name: sentence-transformers\n---\n# {}\n\n"
                               "Demo copy served by the modelmgr hub emulator (random weights).\n",
                               id)));
  if (weights_name.ends_with(".safetensors")) {
    commit.files.push_back(safetensors(weights_name, rows, 384, seed));
  } else {
    commit.files.push_back(FileSpec::generated(weights_name, rows * 384 * 4, seed));
  }
  repo.commits.push_back(std::move(commit));
  return repo;
}

std::string to_string(const std::vector<std::byte>& bytes)
{
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// A small but real GGUF v3 file of a llama-like model (2 blocks, 256 wide, 1000 tokens) whose weights are of
// `type`: what catalog entries point at, small enough for fast tests.
std::string tiny_chat_gguf(formats::GgmlType type, std::uint32_t file_type)
{
  using formats::GgmlType;
  formats::GgufWriter w;
  w.add("general.architecture", "llama");
  w.add("general.name", "Tiny Chat");
  w.add("general.file_type", file_type);
  w.add("llama.context_length", std::uint32_t{2048});
  w.add("llama.embedding_length", std::uint32_t{256});
  w.add("llama.block_count", std::uint32_t{2});
  w.add("llama.feed_forward_length", std::uint32_t{512});
  w.add("llama.attention.head_count", std::uint32_t{4});
  w.add("llama.attention.head_count_kv", std::uint32_t{2});
  w.add("tokenizer.ggml.model", "llama");
  formats::GgufArray tokens{formats::GgufValueType::string, {}};
  for (int i = 0; i < 16; ++i) {
    tokens.items.push_back(fmt::format("tok{}", i));
  }
  w.add("tokenizer.ggml.tokens", tokens);
  w.add_tensor("token_embd.weight", {256, 1000}, type);
  for (int b = 0; b < 2; ++b) {
    w.add_tensor(fmt::format("blk.{}.attn_norm.weight", b), {256}, GgmlType::f32);
    w.add_tensor(fmt::format("blk.{}.attn_q.weight", b), {256, 256}, type);
    w.add_tensor(fmt::format("blk.{}.attn_k.weight", b), {256, 128}, type);
    w.add_tensor(fmt::format("blk.{}.attn_v.weight", b), {256, 128}, type);
    w.add_tensor(fmt::format("blk.{}.attn_output.weight", b), {256, 256}, type);
    w.add_tensor(fmt::format("blk.{}.ffn_up.weight", b), {256, 512}, type);
    w.add_tensor(fmt::format("blk.{}.ffn_down.weight", b), {512, 256}, type);
  }
  w.add_tensor("output_norm.weight", {256}, GgmlType::f32);
  return to_string(w.build());
}

RepoSpec tiny_chat_gguf_repo()
{
  static const std::string q4 = tiny_chat_gguf(formats::GgmlType::q4_k, 15); // LLAMA_FTYPE_MOSTLY_Q4_K_M
  static const std::string q8 = tiny_chat_gguf(formats::GgmlType::q8_0, 7);  // LLAMA_FTYPE_MOSTLY_Q8_0
  RepoSpec repo;
  repo.id = "test-org/Tiny-Chat-GGUF";
  repo.commits.push_back(
      {"",
       {FileSpec::text("README.md", "---\nlicense: mit\n---\n# Tiny Chat GGUF\n\nTest quantizations.\n"),
        FileSpec::text("tiny-chat.Q4_K_M.gguf", q4, true), FileSpec::text("tiny-chat.Q8_0.gguf", q8, true)},
       "Add quantizations"});
  return repo;
}

// GGUF pulls by quantization (`REPO:QUANT`): a Q4_K_M split in three parts (part 1 a real GGUF, the others
// generated), a single-file Q8_0 and a vision projector.
RepoSpec split_vision_gguf_repo()
{
  static const std::string q4 = tiny_chat_gguf(formats::GgmlType::q4_k, 15);
  static const std::string q8 = tiny_chat_gguf(formats::GgmlType::q8_0, 7);
  static const std::string f16 = tiny_chat_gguf(formats::GgmlType::f16, 1);
  RepoSpec repo;
  repo.id = "test-org/Split-Vision-GGUF";
  repo.commits.push_back({"",
                          {FileSpec::text("README.md", "---\nlicense: mit\n---\n# Split Vision GGUF\n"),
                           FileSpec::text("Split-Vision-Q4_K_M-00001-of-00003.gguf", q4, true),
                           FileSpec::generated("Split-Vision-Q4_K_M-00002-of-00003.gguf", 200 * 1024, 40),
                           FileSpec::generated("Split-Vision-Q4_K_M-00003-of-00003.gguf", 100 * 1024, 41),
                           FileSpec::text("Split-Vision-Q8_0.gguf", q8, true),
                           FileSpec::text("mmproj-Split-Vision-F16.gguf", f16, true)},
                          "Add quantizations"});
  return repo;
}

// A small sentence-embedding model in safetensors (F32), as catalog entries of that format expect.
RepoSpec tiny_embed_repo()
{
  static const std::string weights = [] {
    formats::SafetensorsWriter w;
    w.add_metadata("format", "pt");
    w.add_tensor("embeddings.word_embeddings.weight", formats::SafetensorsDtype::f32, {1000, 64});
    w.add_tensor("encoder.layer.0.attention.self.query.weight", formats::SafetensorsDtype::f32, {64, 64});
    w.add_tensor("encoder.layer.0.attention.self.key.weight", formats::SafetensorsDtype::f32, {64, 64});
    w.add_tensor("encoder.layer.0.attention.self.value.weight", formats::SafetensorsDtype::f32, {64, 64});
    return to_string(w.build());
  }();
  RepoSpec repo;
  repo.id = "test-org/tiny-embed";
  repo.commits.push_back(
      {"",
       {FileSpec::text("config.json", model_config(64)), FileSpec::text("tokenizer.json", k_tokenizer_json),
        FileSpec::text("model.safetensors", weights, true)},
       "Upload model"});
  return repo;
}

} // namespace

std::vector<RepoSpec> default_repo_specs()
{
  std::vector<RepoSpec> repos;
  repos.push_back(tiny_model());
  repos.push_back(many_files());
  auto private_repo = small_lfs_repo("test-org/private-model", 10);
  private_repo.private_repo = true;
  repos.push_back(std::move(private_repo));
  auto gated = small_lfs_repo("test-org/gated-model", 11);
  gated.gated = "manual";
  repos.push_back(std::move(gated));
  repos.push_back(tiny_dataset());
  repos.push_back(gpt2_tiny());
  repos.push_back(tiny_chat_gguf_repo());
  repos.push_back(tiny_embed_repo());
  repos.push_back(split_vision_gguf_repo());
  return repos;
}

std::vector<RepoSpec> demo_repo_specs()
{
  std::vector<RepoSpec> repos;
  repos.push_back(demo_repo("BAAI/bge-m3", "xlm-roberta", "model.safetensors", 4096, 100));
  repos.push_back(demo_repo("BAAI/bge-reranker-v2-m3", "xlm-roberta", "model.safetensors", 3072, 101));
  repos.push_back(demo_repo("google/siglip-base-patch16-224", "siglip", "model.safetensors", 2048, 102));
  repos.push_back(demo_repo("Qdrant/bm42-all-minilm-l6-v2-attentions", "bert", "model.onnx", 1536, 103));
  return repos;
}

RepoSpec big_file_repo_spec(std::uint64_t size)
{
  RepoSpec repo;
  repo.id = "bench/big";
  repo.commits.push_back({"", {FileSpec::generated("big.bin", size, 4242)}, "Big file"});
  return repo;
}

} // namespace modelmgr::emulator
