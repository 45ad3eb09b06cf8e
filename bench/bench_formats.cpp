// Header parsing cost of the format readers on a realistic model: a Llama-2-7B-shaped Q4_K_M GGUF (291
// tensors, 32000-token vocabulary) in a 4 GiB sparse file, and a 291-tensor safetensors file. Goal: a GGUF
// header in < 10 ms, so `verify` can afford to parse every model file it checks.

#include "formats/gguf.hpp"
#include "formats/safetensors.hpp"
#include "formats/writers.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <benchmark/benchmark.h>
#include <unistd.h>

using namespace modelmgr::formats;

namespace {

constexpr std::uint64_t k_file_size = 4ull << 30;

GgufWriter llama_7b_q4_k_m()
{
  constexpr std::uint64_t n_embd = 4096;
  constexpr std::uint64_t n_ff = 11008;
  constexpr std::uint64_t n_vocab = 32000;
  constexpr std::uint64_t n_layer = 32;
  GgufWriter w;
  w.add("general.architecture", "llama");
  w.add("general.name", "LLaMA v2 7B (synthetic)");
  w.add("general.file_type", std::uint32_t{15});
  w.add("llama.context_length", std::uint32_t{4096});
  w.add("llama.embedding_length", std::uint32_t{n_embd});
  w.add("llama.feed_forward_length", std::uint32_t{n_ff});
  w.add("llama.block_count", std::uint32_t{n_layer});
  w.add("llama.attention.head_count", std::uint32_t{32});
  w.add("llama.attention.head_count_kv", std::uint32_t{32});
  w.add("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add("tokenizer.ggml.model", "llama");
  GgufArray tokens{GgufValueType::string, {}};
  GgufArray scores{GgufValueType::float32, {}};
  GgufArray types{GgufValueType::int32, {}};
  for (std::uint64_t i = 0; i < n_vocab; ++i) {
    tokens.items.emplace_back("tok" + std::to_string(i));
    scores.items.emplace_back(-static_cast<float>(i));
    types.items.emplace_back(std::int32_t{1});
  }
  w.add("tokenizer.ggml.tokens", std::move(tokens));
  w.add("tokenizer.ggml.scores", std::move(scores));
  w.add("tokenizer.ggml.token_type", std::move(types));
  w.add_tensor("token_embd.weight", {n_embd, n_vocab}, GgmlType::q4_k);
  for (std::uint64_t l = 0; l < n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    w.add_tensor(p + "attn_q.weight", {n_embd, n_embd}, GgmlType::q4_k);
    w.add_tensor(p + "attn_k.weight", {n_embd, n_embd}, GgmlType::q4_k);
    w.add_tensor(p + "attn_v.weight", {n_embd, n_embd}, GgmlType::q4_k);
    w.add_tensor(p + "attn_output.weight", {n_embd, n_embd}, GgmlType::q4_k);
    w.add_tensor(p + "ffn_gate.weight", {n_embd, n_ff}, GgmlType::q4_k);
    w.add_tensor(p + "ffn_up.weight", {n_embd, n_ff}, GgmlType::q4_k);
    w.add_tensor(p + "ffn_down.weight", {n_ff, n_embd}, GgmlType::q6_k);
    w.add_tensor(p + "attn_norm.weight", {n_embd}, GgmlType::f32);
    w.add_tensor(p + "ffn_norm.weight", {n_embd}, GgmlType::f32);
  }
  w.add_tensor("output_norm.weight", {n_embd}, GgmlType::f32);
  w.add_tensor("output.weight", {n_embd, n_vocab}, GgmlType::q6_k);
  return w;
}

class SparseModel {
public:
  SparseModel()
  {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bench-formats-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::abort();
    }
    m_dir = tmpl;
    const auto w = llama_7b_q4_k_m();
    const auto header = w.header();
    m_header_bytes = header.size();
    m_gguf = m_dir / "llama-7b.Q4_K_M.gguf";
    {
      std::ofstream out(m_gguf, std::ios::binary);
      out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
    }
    // Sparse: the data section is a hole, so the file costs a few hundred KiB of disk.
    if (::truncate(m_gguf.c_str(), static_cast<off_t>(std::max(k_file_size, w.file_size()))) != 0) {
      std::abort();
    }
  }
  ~SparseModel() { std::filesystem::remove_all(m_dir); }
  const std::filesystem::path& gguf() const { return m_gguf; }
  std::uint64_t header_bytes() const { return m_header_bytes; }

private:
  std::filesystem::path m_dir;
  std::filesystem::path m_gguf;
  std::uint64_t m_header_bytes = 0;
};

const SparseModel& model()
{
  static const SparseModel m;
  return m;
}

void BM_GgufParseHeader4GiB(benchmark::State& state)
{
  const auto& m = model();
  for (auto _ : state) {
    auto file = parse_gguf_file(m.gguf());
    benchmark::DoNotOptimize(file);
  }
  const auto info = describe_gguf(parse_gguf_file(m.gguf()));
  state.counters["header_KiB"] = static_cast<double>(m.header_bytes()) / 1024.0;
  state.counters["tensors"] = 291;
  state.counters["params_B"] = static_cast<double>(info.parameter_count) / 1e9;
  state.counters["weights_GiB"] = static_cast<double>(info.tensor_bytes) / (1ull << 30);
}
BENCHMARK(BM_GgufParseHeader4GiB)->Unit(benchmark::kMillisecond);

void BM_GgufDescribeAndEstimate(benchmark::State& state)
{
  const auto file = parse_gguf_file(model().gguf());
  for (auto _ : state) {
    const auto info = describe_gguf(file);
    benchmark::DoNotOptimize(estimate_ram_bytes(info, 4096));
  }
}
BENCHMARK(BM_GgufDescribeAndEstimate)->Unit(benchmark::kMicrosecond);

void BM_SafetensorsParseHeader(benchmark::State& state)
{
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  for (int l = 0; l < 32; ++l) {
    for (const char* t : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                          "input_layernorm", "post_attention_layernorm"}) {
      w.add_tensor("model.layers." + std::to_string(l) + "." + t + ".weight", SafetensorsDtype::bf16, {4, 4});
    }
  }
  const auto bytes = w.build();
  const MemoryByteSource src(std::span<const std::byte>(bytes.data(), bytes.size()));
  for (auto _ : state) {
    auto file = parse_safetensors(src, "model.safetensors");
    benchmark::DoNotOptimize(file);
  }
}
BENCHMARK(BM_SafetensorsParseHeader)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
