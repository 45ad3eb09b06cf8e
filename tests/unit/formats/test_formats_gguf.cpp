#include "formats/gguf.hpp"
#include "formats/parse_error.hpp"
#include "formats/writers.hpp"
#include "formats_test_util.hpp"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

using namespace modelmgr::formats;
using modelmgr::formats::testing::Bytes;
using ::testing::HasSubstr;

namespace {

// The tiny file of the known-good test: one string kv, one 32x2 Q8_0 tensor.
GgufWriter tiny_writer()
{
  GgufWriter w;
  w.add("general.architecture", "llama");
  w.add_tensor("w", {32, 2}, GgmlType::q8_0);
  return w;
}

// A small llama-like model with every quantization type the brief names.
GgufWriter llama_like(std::uint32_t alignment = 32)
{
  GgufWriter w(alignment);
  w.add("general.architecture", "llama");
  w.add("general.name", "Tiny Llama");
  w.add("general.file_type", std::uint32_t{15}); // Q4_K_M
  w.add("llama.context_length", std::uint32_t{4096});
  w.add("llama.embedding_length", std::uint32_t{512});
  w.add("llama.block_count", std::uint32_t{2});
  w.add("llama.attention.head_count", std::uint32_t{8});
  w.add("llama.attention.head_count_kv", std::uint32_t{2});
  w.add("llama.rope.freq_base", 10000.0f);
  w.add("tokenizer.ggml.model", "llama");
  w.add("tokenizer.ggml.tokens", GgufArray{GgufValueType::string, {"<s>", "</s>", "a", "b"}});
  w.add("tokenizer.ggml.scores", GgufArray{GgufValueType::float32, {0.0f, 0.0f, -1.0f, -2.0f}});
  w.add("tokenizer.ggml.add_bos_token", true);
  w.add("test.nested", GgufArray{GgufValueType::array,
                                 {GgufArray{GgufValueType::int64, {std::int64_t{-1}, std::int64_t{2}}},
                                  GgufArray{GgufValueType::uint8, {std::uint8_t{7}}}}});
  w.add_tensor("blk.0.attn_q.weight", {256, 4}, GgmlType::q4_k);
  w.add_tensor("blk.0.ffn_down.weight", {512, 2}, GgmlType::q6_k);
  w.add_tensor("blk.0.attn_k.weight", {64, 3}, GgmlType::q8_0);
  w.add_tensor("token_embd.weight", {8, 8}, GgmlType::f16);
  w.add_tensor("output_norm.weight", {16}, GgmlType::f32);
  return w;
}

GgufFile parse_bytes(const std::vector<std::byte>& bytes)
{
  const MemoryByteSource src(std::span<const std::byte>(bytes.data(), bytes.size()));
  return parse_gguf(src, "model.gguf");
}

std::string parse_error_of(const std::vector<std::byte>& bytes)
{
  try {
    parse_bytes(bytes);
  } catch (const ParseError& e) {
    return e.what();
  }
  return "no error";
}

} // namespace

TEST(GgufWriter, TinyFileMatchesHandComputedBytes)
{
  const Bytes expected = Bytes{}
                             .hex({0x47, 0x47, 0x55, 0x46}) // "GGUF"
                             .hex({0x03, 0, 0, 0})          // version 3
                             .hex({1, 0, 0, 0, 0, 0, 0, 0}) // tensor_count
                             .hex({1, 0, 0, 0, 0, 0, 0, 0}) // metadata_kv_count
                             .hex({20, 0, 0, 0, 0, 0, 0, 0})
                             .str("general.architecture")
                             .hex({8, 0, 0, 0}) // string
                             .hex({5, 0, 0, 0, 0, 0, 0, 0})
                             .str("llama")
                             .hex({1, 0, 0, 0, 0, 0, 0, 0})
                             .str("w")
                             .hex({2, 0, 0, 0})              // n_dims
                             .hex({32, 0, 0, 0, 0, 0, 0, 0}) // ne[0]
                             .hex({2, 0, 0, 0, 0, 0, 0, 0})  // ne[1]
                             .hex({8, 0, 0, 0})              // Q8_0
                             .hex({0, 0, 0, 0, 0, 0, 0, 0})  // offset
                             .zeros(128 - 110);              // 110 bytes of header padded to 128
  const auto w = tiny_writer();
  EXPECT_EQ(w.header(), expected.get());
  EXPECT_EQ(w.data_offset(), 128u);
  EXPECT_EQ(w.file_size(), 128u + 96u); // 2 blocks x 34 bytes = 68, padded to 96
  const auto file = w.build();
  ASSERT_EQ(file.size(), 224u);

  const auto parsed = parse_bytes(file);
  EXPECT_EQ(parsed.version, 3u);
  EXPECT_EQ(parsed.data_offset, 128u);
  ASSERT_EQ(parsed.tensors.size(), 1u);
  EXPECT_EQ(parsed.tensors[0].n_bytes, 68u);
  EXPECT_EQ(parsed.tensors[0].n_elements, 64u);
  EXPECT_EQ(parsed.tensors[0].file_offset, 128u);
}

TEST(GgufParse, RoundTripsMetadataAndTensors)
{
  const auto w = llama_like();
  const auto file = parse_bytes(w.build());
  EXPECT_EQ(file.alignment, 32u);
  EXPECT_EQ(file.data_offset % 32, 0u);
  ASSERT_EQ(file.metadata.size(), 14u);
  EXPECT_EQ(file.metadata[0].key, "general.architecture");
  EXPECT_EQ(file.metadata[0].offset, 24u);
  ASSERT_NE(file.find("llama.rope.freq_base"), nullptr);
  EXPECT_EQ(*file.find("llama.rope.freq_base")->get_if<float>(), 10000.0f);
  EXPECT_EQ(*file.find("tokenizer.ggml.add_bos_token")->get_if<bool>(), true);
  const auto* nested = file.find("test.nested")->as_array();
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->element_type, GgufValueType::array);
  ASSERT_EQ(nested->items.size(), 2u);
  EXPECT_EQ(nested->items[0].as_array()->items[0].as_int(), -1);
  EXPECT_EQ(nested->items[1].as_array()->items[0].as_uint(), 7u);
  EXPECT_EQ(file.find("missing"), nullptr);

  ASSERT_EQ(file.tensors.size(), 5u);
  const std::vector<std::pair<GgmlType, std::uint64_t>> expected{{GgmlType::q4_k, 4 * 144},
                                                                 {GgmlType::q6_k, 4 * 210},
                                                                 {GgmlType::q8_0, 6 * 34},
                                                                 {GgmlType::f16, 128},
                                                                 {GgmlType::f32, 64}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(file.tensors[i].type, expected[i].first) << i;
    EXPECT_EQ(file.tensors[i].n_bytes, expected[i].second) << i;
    EXPECT_EQ(file.tensors[i].offset % 32, 0u) << i;
  }
  EXPECT_EQ(file.find_tensor("blk.0.attn_k.weight")->dims, (std::vector<std::uint64_t>{64, 3}));
}

TEST(GgufParse, VersionTwoIsAccepted)
{
  GgufWriter w(32, 2);
  w.add("general.architecture", "llama");
  EXPECT_EQ(parse_bytes(w.build()).version, 2u);
}

TEST(GgufParse, CustomAlignmentIsHonoured)
{
  const auto file = parse_bytes(llama_like(64).build());
  EXPECT_EQ(file.alignment, 64u);
  EXPECT_EQ(file.data_offset % 64, 0u);
  for (const auto& t : file.tensors) {
    EXPECT_EQ(t.offset % 64, 0u);
  }
}

TEST(GgufDescribe, ReportsModelFacts)
{
  const auto info = describe_gguf(parse_bytes(llama_like().build()));
  EXPECT_EQ(info.architecture, "llama");
  EXPECT_EQ(info.name, "Tiny Llama");
  EXPECT_EQ(info.file_type, 15u);
  EXPECT_EQ(info.quantization, "Q4_K_M");
  EXPECT_EQ(info.parameter_count, 1024u + 1024u + 192u + 64u + 16u);
  EXPECT_EQ(info.tensor_bytes, 576u + 840u + 204u + 128u + 64u);
  ASSERT_EQ(info.types.size(), 5u);
  EXPECT_EQ(info.types[0].type, GgmlType::q6_k); // most bytes first
  EXPECT_EQ(info.context_length, 4096u);
  EXPECT_EQ(info.embedding_length, 512u);
  EXPECT_EQ(info.block_count, 2u);
  EXPECT_EQ(info.head_count, 8u);
  EXPECT_EQ(info.head_count_kv, 2u);
  EXPECT_EQ(info.key_length, 64u); // 512 / 8
  EXPECT_EQ(info.value_length, 64u);
  EXPECT_EQ(info.tokenizer_model, "llama");
  EXPECT_EQ(info.vocab_size, 4u);
}

TEST(GgufDescribe, QuantizationFallsBackToDominantType)
{
  GgufWriter w;
  w.add("general.architecture", "llama");
  w.add_tensor("a", {256, 8}, GgmlType::q5_k);
  w.add_tensor("b", {16}, GgmlType::f32);
  EXPECT_EQ(describe_gguf(parse_bytes(w.build())).quantization, "Q5_K");
}

TEST(GgufEstimate, KvCacheFollowsFormula)
{
  GgufModelInfo info;
  info.block_count = 32;
  info.head_count = 32;
  info.head_count_kv = 8;
  info.key_length = 128;
  info.value_length = 128;
  // Llama-3-8B at 8192 tokens, f16: 32 layers x 8192 x 8 heads x 256 x 2 bytes = 1 GiB.
  EXPECT_EQ(estimate_kv_cache_bytes(info, 8192), 1ull << 30);
  EXPECT_EQ(estimate_kv_cache_bytes(info, 8192, 1), 512ull << 20);

  info.head_count_kv_per_layer = {1, 2, 3};
  EXPECT_EQ(estimate_kv_cache_bytes(info, 10, 2), (1u + 2u + 3u) * 256u * 10u * 2u);

  GgufModelInfo no_attention;
  no_attention.block_count = 4;
  EXPECT_EQ(estimate_kv_cache_bytes(no_attention, 4096), 0u);

  info.head_count_kv_per_layer.clear();
  info.block_count = ~0ull;
  EXPECT_EQ(estimate_kv_cache_bytes(info, ~0ull), ~0ull); // saturates
}

TEST(GgufEstimate, RamAddsWeightsKvAndOverhead)
{
  const auto info = describe_gguf(parse_bytes(llama_like().build()));
  const auto ram = estimate_ram(info); // defaults to the trained context, 4096
  EXPECT_EQ(ram.weights, info.tensor_bytes);
  // 2 layers x 4096 x 2 kv heads x (64 + 64) x 2 bytes
  EXPECT_EQ(ram.kv_cache, 2u * 4096u * 2u * 128u * 2u);
  EXPECT_EQ(ram.overhead, (64ull << 20) + 512u * 4u * 4u + 512u * 512u * 32u);
  EXPECT_EQ(ram.total(), ram.weights + ram.kv_cache + ram.overhead);
  EXPECT_EQ(estimate_ram_bytes(info, 1024), info.tensor_bytes + 2u * 1024u * 2u * 128u * 2u + ram.overhead);
}

TEST(GgmlTypes, NamesAndBlockSizes)
{
  EXPECT_EQ(to_string(GgmlType::iq2_xxs), "IQ2_XXS");
  EXPECT_EQ(ggml_type_from_string("q4_k"), GgmlType::q4_k);
  EXPECT_EQ(ggml_type_traits(12)->type_size, 144u);
  EXPECT_EQ(ggml_type_traits(12)->block_size, 256u);
  EXPECT_EQ(ggml_type_traits(30)->name, "BF16");
  EXPECT_FALSE(ggml_type_traits(4).has_value()); // Q4_2, removed
  EXPECT_FALSE(ggml_type_traits(1000).has_value());
  EXPECT_EQ(llama_file_type_name(15), "Q4_K_M");
  EXPECT_EQ(llama_file_type_name(1024 + 7), "Q8_0");
  EXPECT_FALSE(llama_file_type_name(5).has_value());
}

// --- Rejections: each names the file, the field and an offset. ---

TEST(GgufErrors, BadMagic)
{
  auto bytes = tiny_writer().build();
  bytes[0] = std::byte{'X'};
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("model.gguf: magic: not a GGUF file"));
}

TEST(GgufErrors, VersionOneIsRejectedWithAClearMessage)
{
  auto bytes = tiny_writer().build();
  bytes[4] = std::byte{1};
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("GGUF version 1 is not supported"));
}

TEST(GgufErrors, BigEndianAndUnknownVersions)
{
  auto bytes = tiny_writer().build();
  bytes[4] = std::byte{0};
  bytes[7] = std::byte{3};
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("big-endian"));
  bytes[7] = std::byte{0};
  bytes[4] = std::byte{9};
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("unsupported GGUF version 9"));
}

TEST(GgufErrors, TruncatedHeader)
{
  auto bytes = tiny_writer().build();
  bytes.resize(60); // inside the value's string length
  EXPECT_THAT(parse_error_of(bytes),
              HasSubstr("model.gguf: metadata 0 'general.architecture': string value: needs 8 "
                        "bytes but the file ends after 4 (at byte 56)"));
  bytes.resize(50); // inside the key
  EXPECT_THAT(parse_error_of(bytes),
              HasSubstr("metadata 0: key: string length 20 exceeds the 18 bytes left"));
}

TEST(GgufErrors, HugeCountsFailWithoutAllocating)
{
  auto bytes = tiny_writer().build();
  std::uint64_t huge = 1ull << 60;
  std::memcpy(bytes.data() + 8, &huge, 8);
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("tensor_count: 1152921504606846976 tensor infos cannot fit"));
  bytes = tiny_writer().build();
  std::memcpy(bytes.data() + 16, &huge, 8);
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("metadata_kv_count"));
}

TEST(GgufErrors, HugeStringLength)
{
  auto bytes = tiny_writer().build();
  const std::uint64_t huge = 1ull << 60;
  std::memcpy(bytes.data() + 24 + 8 + 20 + 4, &huge, 8); // the value string's length
  const auto msg = parse_error_of(bytes);
  EXPECT_THAT(
      msg, HasSubstr("metadata 0 'general.architecture': string value: string length 1152921504606846976"));
  EXPECT_THAT(msg, HasSubstr("(at byte 56)"));
}

TEST(GgufErrors, HugeArrayCount)
{
  const auto bytes = Bytes{}
                         .str("GGUF")
                         .u32(3)
                         .u64(0)
                         .u64(1)
                         .gguf_str("k")
                         .u32(9) // array
                         .u32(0) // of uint8
                         .u64(1ull << 60)
                         .zeros(64)
                         .get();
  EXPECT_THAT(parse_error_of(bytes),
              HasSubstr("array length: 1152921504606846976 elements of type uint8 cannot fit"));
}

TEST(GgufErrors, NestingDepthIsBounded)
{
  Bytes b;
  b.str("GGUF").u32(3).u64(0).u64(1).gguf_str("deep").u32(9);
  for (int i = 0; i < 20; ++i) {
    b.u32(9).u64(1); // an array of one array of ...
  }
  b.u32(0).u64(0);
  EXPECT_THAT(parse_error_of(b.get()), HasSubstr("arrays nested deeper than 8"));
}

TEST(GgufErrors, InvalidValueTypeAndBool)
{
  auto bytes = Bytes{}.str("GGUF").u32(3).u64(0).u64(1).gguf_str("k").u32(13).u32(0).get();
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("value type: invalid value type 13"));
  bytes = Bytes{}.str("GGUF").u32(3).u64(0).u64(1).gguf_str("k").u32(7).u8(2).get();
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("bool must be 0 or 1"));
}

TEST(GgufErrors, DuplicateKeyAndTensorName)
{
  auto bytes =
      Bytes{}.str("GGUF").u32(3).u64(0).u64(2).gguf_str("k").u32(4).u32(1).gguf_str("k").u32(4).u32(2).get();
  EXPECT_THAT(parse_error_of(bytes), HasSubstr("metadata 1 'k': key: duplicate key"));

  GgufWriter w;
  w.add_tensor("t", {32}, GgmlType::f32);
  w.add_tensor("t", {32}, GgmlType::f32);
  EXPECT_THAT(parse_error_of(w.build()), HasSubstr("tensor 1 't': name: duplicate tensor name"));
}

TEST(GgufErrors, BadAlignmentKey)
{
  GgufWriter w;
  w.add("general.alignment", std::uint64_t{32});
  EXPECT_THAT(parse_error_of(w.build()), HasSubstr("general.alignment: must be a uint32, not uint64"));
  GgufWriter w2;
  w2.add("general.alignment", std::uint32_t{48});
  EXPECT_THAT(parse_error_of(w2.build()), HasSubstr("48 is not a power of two"));
}

namespace {

// One tensor info written by hand so each field can be corrupted.
std::vector<std::byte> one_tensor(std::uint32_t n_dims, std::vector<std::uint64_t> dims, std::uint32_t type,
                                  std::uint64_t offset, std::size_t data_bytes,
                                  std::string name = "blk.0.attn_q.weight")
{
  Bytes b;
  b.str("GGUF").u32(3).u64(1).u64(0).gguf_str(name).u32(n_dims);
  for (const auto d : dims) {
    b.u64(d);
  }
  b.u32(type).u64(offset);
  b.zeros((32 - b.size() % 32) % 32 + data_bytes);
  return b.get();
}

} // namespace

TEST(GgufErrors, TensorInfoFields)
{
  EXPECT_THAT(parse_error_of(one_tensor(5, {1, 1, 1, 1, 1}, 0, 0, 4)), HasSubstr("5 dimensions (at most 4)"));
  EXPECT_THAT(parse_error_of(one_tensor(1, {32}, 4, 0, 64)), HasSubstr("type: unknown ggml type 4"));
  EXPECT_THAT(parse_error_of(one_tensor(1, {100}, 12, 0, 1024)),
              HasSubstr("row length 100 is not a multiple of the Q4_K block size 256"));
  EXPECT_THAT(parse_error_of(one_tensor(2, {1ull << 40, 1ull << 40}, 0, 0, 4)),
              HasSubstr("element count overflows"));
  EXPECT_THAT(parse_error_of(one_tensor(1, {8}, 0, 16, 64)),
              HasSubstr("data offset 16 is not a multiple of the alignment 32"));
  EXPECT_THAT(parse_error_of(one_tensor(1, {8}, 0, 0, 64, std::string(65, 'n'))),
              HasSubstr("exceeds the limit of 64"));
}

TEST(GgufErrors, DataRangePastEndOfFileNamesTheTensor)
{
  const auto bytes = one_tensor(2, {4096, 4096}, 1, 0, 64);
  const auto msg = parse_error_of(bytes);
  EXPECT_THAT(
      msg,
      HasSubstr(
          "model.gguf: tensor 0 'blk.0.attn_q.weight': data range [96, 33554528) exceeds file size 160"));
  EXPECT_THAT(msg, HasSubstr("(at byte 24)"));
}

TEST(GgufErrors, OverlappingTensors)
{
  Bytes b;
  b.str("GGUF").u32(3).u64(2).u64(0);
  b.gguf_str("a").u32(1).u64(16).u32(0).u64(0);  // [0, 64)
  b.gguf_str("b").u32(1).u64(16).u32(0).u64(32); // [32, 96): overlaps a
  b.zeros((32 - b.size() % 32) % 32 + 96);
  EXPECT_THAT(parse_error_of(b.get()), HasSubstr("tensor 1 'b': data range"));
  EXPECT_THAT(parse_error_of(b.get()), HasSubstr("overlaps tensor 'a'"));
}

TEST(GgufFileSource, ParsesSparseFileFromDisk)
{
  modelmgr::formats::testing::TempDir dir;
  const auto path = dir.path() / "big.gguf";
  GgufWriter w;
  w.add("general.architecture", "llama");
  w.add_tensor("token_embd.weight", {4096, 65536}, GgmlType::q8_0); // 272 MiB of data, never written
  modelmgr::formats::testing::write_file(path, w.header());
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(w.file_size())), 0);
  const auto file = parse_gguf_file(path);
  EXPECT_EQ(file.file_size, w.file_size());
  EXPECT_EQ(file.tensors[0].n_bytes, 4096ull * 65536 / 32 * 34);

  // The same header without the data: the error names the file by its file name.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(w.data_offset())), 0);
  try {
    parse_gguf_file(path);
    FAIL() << "expected a ParseError";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.file(), "big.gguf");
    EXPECT_EQ(e.field(), "tensor 0 'token_embd.weight'");
    EXPECT_THAT(e.detail(), HasSubstr("exceeds file size"));
  }
  EXPECT_THROW(parse_gguf_file(dir.path() / "missing.gguf"), std::system_error);
}
