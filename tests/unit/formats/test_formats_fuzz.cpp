// Bounded random-mutation fuzzing of both readers: every mutated input must either parse or throw
// ParseError. A crash, a hang (the ctest timeout) or an allocation larger than k_max_allocation fails.
// Fixed seeds make any failure reproducible; the iteration number is in the failure message.

#include "formats/gguf.hpp"
#include "formats/load_check.hpp"
#include "formats/onnx.hpp"
#include "formats/parse_error.hpp"
#include "formats/safetensors.hpp"
#include "formats/writers.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

using namespace modelmgr::formats;

namespace {

// While armed, any single allocation above this limit fails the test: the readers must bound every
// allocation by the bytes actually present, and the inputs here are a few KiB.
constexpr std::size_t k_max_allocation = 16u << 20;
std::atomic<bool> g_armed{false};
std::atomic<std::size_t> g_largest_refused{0};

} // namespace

#if defined(__SANITIZE_ADDRESS__)
#define MODELMGR_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MODELMGR_FUZZ_ASAN 1
#endif
#endif

#ifdef MODELMGR_FUZZ_ASAN
// Under ASan its allocator owns operator new (replacing it mixes allocators). ASan enforces the same limit
// instead: a larger allocation aborts the run with a report and a stack, which fails the test just as well.
extern "C" const char* __asan_default_options()
{
  return "max_allocation_size_mb=16";
}
#else
// GCC cannot see that the replaced operator new below is malloc-based and warns on the free() in delete.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Replacing the global allocation functions is the portable way to observe every allocation the readers
// make (including those inside std::vector and nlohmann::json). Array and nothrow forms forward here.
void* operator new(std::size_t size)
{
  if (g_armed.load(std::memory_order_relaxed) && size > k_max_allocation) {
    g_largest_refused.store(size, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept
{
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept
{
  std::free(p);
}
#endif

namespace {

std::vector<std::byte> gguf_seed()
{
  GgufWriter w(64);
  w.add("general.architecture", "llama");
  w.add("general.name", "fuzz");
  w.add("general.file_type", std::uint32_t{15});
  w.add("llama.context_length", std::uint64_t{2048});
  w.add("llama.attention.head_count", std::int32_t{4});
  w.add("llama.attention.head_count_kv",
        GgufArray{GgufValueType::uint16, {std::uint16_t{1}, std::uint16_t{2}}});
  w.add("f", 1.5);
  w.add("b", false);
  w.add("i8", std::int8_t{-3});
  w.add("tokens", GgufArray{GgufValueType::string, {"a", "bb", "ccc"}});
  w.add("nested", GgufArray{GgufValueType::array, {GgufArray{GgufValueType::int16, {std::int16_t{1}}}}});
  w.add_tensor("q4k", {256, 2}, GgmlType::q4_k);
  w.add_tensor("q6k", {256}, GgmlType::q6_k);
  w.add_tensor("q8", {32, 2}, GgmlType::q8_0);
  w.add_tensor("f16", {4, 4}, GgmlType::f16);
  w.add_tensor("f32", {8}, GgmlType::f32);
  return w.build();
}

std::vector<std::byte> safetensors_seed()
{
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  w.add_tensor("a", SafetensorsDtype::bf16, {4, 4});
  w.add_tensor("b", SafetensorsDtype::f32, {3});
  w.add_tensor("c", SafetensorsDtype::u8, {0});
  w.add_tensor("d", SafetensorsDtype::f8_e5m2, {7});
  return w.build();
}

// Each mutation is one of the ways real corruption and hostile files differ from valid ones.
void mutate(std::vector<std::byte>& bytes, std::mt19937_64& rng)
{
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % (n == 0 ? 1 : n)); };
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds; ++r) {
    switch (rng() % 7) {
    case 0: // bit flip
      if (!bytes.empty()) {
        bytes[pick(bytes.size())] ^= static_cast<std::byte>(1u << (rng() % 8));
      }
      break;
    case 1: // random byte
      if (!bytes.empty()) {
        bytes[pick(bytes.size())] = static_cast<std::byte>(rng());
      }
      break;
    case 2: // truncation
      bytes.resize(pick(bytes.size() + 1));
      break;
    case 3: // a huge or boundary length field, 8-byte aligned where the formats keep most counts
    case 4: {
      static constexpr std::uint64_t k_values[] = {
          1ull << 60, ~0ull, 1ull << 32, 1ull << 63, 0x7fffffffffffffffull, 0, 1, 65, 0xffffffffull};
      const std::uint64_t v = k_values[pick(std::size(k_values))];
      if (bytes.size() >= 8) {
        std::size_t at = pick(bytes.size() - 7);
        if (rng() % 2 == 0) {
          at &= ~std::size_t{7};
        }
        std::memcpy(bytes.data() + at, &v, 8);
      }
      break;
    }
    case 5: // extra bytes (holes, trailing data)
      bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(pick(bytes.size() + 1)), pick(64) + 1,
                   static_cast<std::byte>(rng()));
      break;
    case 6: // removed bytes
      if (!bytes.empty()) {
        const std::size_t at = pick(bytes.size());
        bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                    bytes.begin() + static_cast<std::ptrdiff_t>(std::min(bytes.size(), at + 1 + pick(16))));
      }
      break;
    }
  }
}

template <class Parse>
void fuzz(const std::vector<std::byte>& seed, std::uint64_t seed_value, int iterations, Parse parse)
{
  std::mt19937_64 rng(seed_value);
  int parsed = 0;
  int rejected = 0;
  for (int i = 0; i < iterations; ++i) {
    std::vector<std::byte> input = seed;
    mutate(input, rng);
    const MemoryByteSource src(std::span<const std::byte>(input.data(), input.size()));
    g_armed = true;
    try {
      parse(src);
      ++parsed;
    } catch (const ParseError&) {
      ++rejected;
    } catch (const std::bad_alloc&) {
      g_armed = false;
      ADD_FAILURE() << "iteration " << i << ": allocation of " << g_largest_refused.load() << " bytes";
    } catch (const std::exception& e) {
      g_armed = false;
      ADD_FAILURE() << "iteration " << i << ": unexpected exception: " << e.what();
    }
    g_armed = false;
  }
  // Both outcomes must occur, or the mutations are not exercising the reader.
  EXPECT_GT(parsed, iterations / 100);
  EXPECT_GT(rejected, iterations / 2);
  std::printf("[ fuzz     ] %d parsed, %d rejected\n", parsed, rejected);
}

} // namespace

#ifndef MODELMGR_FUZZ_ASAN
TEST(FormatsFuzz, AllocationGuardRefusesHugeAllocations)
{
  g_armed = true;
  EXPECT_THROW(std::vector<char>(k_max_allocation + 1), std::bad_alloc);
  g_armed = false;
  EXPECT_NO_THROW(std::vector<char>(k_max_allocation + 1));
}
#endif

TEST(FormatsFuzz, GgufMutations)
{
  fuzz(gguf_seed(), 0x6767756620u, 20000, [](const ByteSource& src) {
    const auto file = parse_gguf(src, "fuzz.gguf");
    const auto info = describe_gguf(file);
    (void)estimate_ram(info);
  });
}

TEST(FormatsFuzz, SafetensorsMutations)
{
  fuzz(safetensors_seed(), 0x5afe7e50u, 20000, [](const ByteSource& src) {
    const auto file = parse_safetensors(src, "fuzz.safetensors");
    (void)file.dtype_histogram();
  });
}

TEST(FormatsFuzz, SafetensorsIndexMutations)
{
  const std::string index =
      R"({"metadata":{"total_size":48},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})";
  std::vector<std::byte> seed(index.size());
  std::memcpy(seed.data(), index.data(), index.size());
  fuzz(seed, 0x1de7u, 5000, [](const ByteSource& src) {
    std::string text(static_cast<std::size_t>(src.size()), '\0');
    src.read(0, std::as_writable_bytes(std::span<char>(text)));
    (void)parse_safetensors_index(text, "index.json");
  });
}

namespace {

std::vector<std::byte> file_bytes(const std::filesystem::path& path)
{
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  if (s.empty()) {
    throw std::runtime_error(path.string() +
                             " is missing or empty: install libonnx-testdata (scripts/deps.sh)");
  }
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

} // namespace

TEST(FormatsFuzz, OnnxMutations)
{
  // A PyTorch export with initializers (7.5 KiB): mutations hit weights, shapes, types and the graph.
  const auto seed =
      file_bytes("/usr/share/libonnx-testdata/data/pytorch-operator/test_operator_conv/model.onnx");
  fuzz(seed, 0x0a7e, 3000, [](const ByteSource& src) { (void)parse_onnx(src, "fuzz.onnx"); });
}

TEST(FormatsFuzz, CheckLoadableNeverThrows)
{
  // check_loadable() turns every outcome into a value: any exception (other than the allocation guard's)
  // is a failure. Seeds of every kind, under names that route them to each reader.
  struct Seed {
    std::vector<std::byte> bytes;
    const char* name;
  };
  const std::string config =
      R"({"model_type":"llama","architectures":["LlamaForCausalLM"],"hidden_size":64})";
  const std::string tokenizer = R"({"added_tokens":[{"id":0}],"model":{"type":"BPE","vocab":{"a":0,"b":1}}})";
  std::vector<Seed> seeds = {
      {gguf_seed(), "model.gguf"},
      {safetensors_seed(), "model.safetensors"},
      {file_bytes("/usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d/model.onnx"), "model.onnx"},
      {std::vector<std::byte>(reinterpret_cast<const std::byte*>(config.data()),
                              reinterpret_cast<const std::byte*>(config.data() + config.size())),
       "config.json"},
      {std::vector<std::byte>(reinterpret_cast<const std::byte*>(tokenizer.data()),
                              reinterpret_cast<const std::byte*>(tokenizer.data() + tokenizer.size())),
       "tokenizer.json"},
  };
  std::mt19937_64 rng(0xc4ec);
  int ok = 0;
  int failed = 0;
  for (int i = 0; i < 5000; ++i) {
    const auto& seed = seeds[static_cast<std::size_t>(i) % seeds.size()];
    std::vector<std::byte> input = seed.bytes;
    mutate(input, rng);
    const MemoryByteSource src(std::span<const std::byte>(input.data(), input.size()));
    g_armed = true;
    try {
      const auto c = check_loadable(src, seed.name);
      g_armed = false;
      (c.ok ? ok : failed) += 1;
      if (!c.ok && c.error.empty()) {
        ADD_FAILURE() << "iteration " << i << ": a failed check without an error message";
      }
    } catch (const std::bad_alloc&) {
      g_armed = false;
      ADD_FAILURE() << "iteration " << i << ": allocation of " << g_largest_refused.load() << " bytes";
    } catch (const std::exception& e) {
      g_armed = false;
      ADD_FAILURE() << "iteration " << i << " (" << seed.name << "): exception: " << e.what();
    }
    g_armed = false;
  }
  EXPECT_GT(ok, 50);
  EXPECT_GT(failed, 2500);
  std::printf("[ fuzz     ] %d loadable, %d not\n", ok, failed);
}
