#include "formats/parse_error.hpp"
#include "formats/safetensors.hpp"
#include "formats/writers.hpp"
#include "formats_test_util.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace modelmgr::formats;
using modelmgr::formats::testing::Bytes;
using modelmgr::formats::testing::TempDir;
using modelmgr::formats::testing::write_file;
using ::testing::HasSubstr;

namespace {

SafetensorsFile parse_bytes(const std::vector<std::byte>& bytes)
{
  const MemoryByteSource src(std::span<const std::byte>(bytes.data(), bytes.size()));
  return parse_safetensors(src, "model.safetensors");
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

// A header written by hand, then `data_bytes` zero bytes.
std::vector<std::byte> raw_file(std::string_view json, std::size_t data_bytes)
{
  return Bytes{}.u64(json.size()).str(json).zeros(data_bytes).get();
}

SafetensorsWriter mixed_writer()
{
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  w.add_tensor("model.embed_tokens.weight", SafetensorsDtype::bf16, {16, 16});
  w.add_tensor("model.norm.weight", SafetensorsDtype::f32, {8});
  w.add_tensor("lm_head.weight", SafetensorsDtype::f16, {16, 8});
  w.add_tensor("scale", SafetensorsDtype::f64, {});
  w.add_tensor("mask", SafetensorsDtype::boolean, {3});
  w.add_tensor("empty", SafetensorsDtype::i64, {0, 4});
  w.add_tensor("fp8", SafetensorsDtype::f8_e4m3, {5});
  w.add_tensor("fp4", SafetensorsDtype::f4, {6});
  return w;
}

} // namespace

TEST(SafetensorsWriter, TinyFileMatchesHandComputedBytes)
{
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  w.add_tensor("w", SafetensorsDtype::f16, {2}, modelmgr::formats::testing::to_bytes("\x01\x02\x03\x04"));
  // 85 bytes of JSON padded with 3 spaces to 88 = 0x58, so the data starts at 96.
  const auto expected =
      Bytes{}
          .hex({0x58, 0, 0, 0, 0, 0, 0, 0})
          .str(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})")
          .str("   ")
          .hex({1, 2, 3, 4});
  EXPECT_EQ(w.build(), expected.get());
  EXPECT_EQ(w.file_size(), 100u);

  const auto file = parse_bytes(expected.get());
  EXPECT_EQ(file.header_size, 88u);
  EXPECT_EQ(file.data_offset, 96u);
  ASSERT_EQ(file.tensors.size(), 1u);
  EXPECT_EQ(file.tensors[0].name, "w");
  EXPECT_EQ(file.tensors[0].file_offset, 96u);
  EXPECT_EQ(file.metadata.at("format"), "pt");
}

TEST(SafetensorsParse, MixedDtypesCountsAndHistogram)
{
  const auto file = parse_bytes(mixed_writer().build());
  ASSERT_EQ(file.tensors.size(), 8u);
  // Sorted by data offset, i.e. the writer's order.
  EXPECT_EQ(file.tensors[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(file.parameter_count(), 256u + 8u + 128u + 1u + 3u + 0u + 5u + 6u);
  const auto* scale = file.find_tensor("scale");
  ASSERT_NE(scale, nullptr);
  EXPECT_TRUE(scale->shape.empty());
  EXPECT_EQ(scale->n_bytes(), 8u);
  EXPECT_EQ(file.find_tensor("fp4")->n_bytes(), 3u);
  EXPECT_EQ(file.find_tensor("empty")->n_bytes(), 0u);
  const auto hist = file.dtype_histogram();
  ASSERT_FALSE(hist.empty());
  EXPECT_EQ(hist[0].dtype, SafetensorsDtype::bf16); // most bytes first
  EXPECT_EQ(hist[0].bytes, 512u);
  EXPECT_EQ(hist[0].tensors, 1u);
}

TEST(SafetensorsParse, EmptyModelIsValid)
{
  EXPECT_TRUE(parse_bytes(SafetensorsWriter{}.build()).tensors.empty());
}

TEST(SafetensorsDtypes, Names)
{
  EXPECT_EQ(to_string(SafetensorsDtype::f8_e5m2), "F8_E5M2");
  EXPECT_EQ(safetensors_dtype_from_string("BOOL"), SafetensorsDtype::boolean);
  EXPECT_FALSE(safetensors_dtype_from_string("bf16").has_value()); // names are case-sensitive
  EXPECT_EQ(bits_per_element(SafetensorsDtype::f6_e2m3), 6u);
}

TEST(SafetensorsErrors, HeaderLength)
{
  EXPECT_THAT(parse_error_of(Bytes{}.u64(0).get()), HasSubstr("header length is 0"));
  EXPECT_THAT(parse_error_of(Bytes{}.u64(200ull << 20).zeros(16).get()),
              HasSubstr("exceeds the limit of 104857600"));
  EXPECT_THAT(parse_error_of(Bytes{}.u64(64).str("{}").get()),
              HasSubstr("header length 64 exceeds the 2 bytes after it"));
  EXPECT_THAT(parse_error_of(Bytes{}.u32(5).get()), HasSubstr("header length: needs 8 bytes"));
}

TEST(SafetensorsErrors, BadJson)
{
  EXPECT_THAT(parse_error_of(raw_file("[1,2]", 0)), HasSubstr("does not start with '{'"));
  EXPECT_THAT(parse_error_of(raw_file(R"({"a": )", 0)), HasSubstr("invalid JSON"));
  EXPECT_THAT(parse_error_of(raw_file(R"({"a": 4111e1111111})", 0)), HasSubstr("number overflow"));
  std::string deep = R"({"__metadata__":)" + std::string(1000, '[') + std::string(1000, ']') + "}";
  EXPECT_THAT(parse_error_of(raw_file(deep, 0)), HasSubstr("JSON nested deeper than 16 (at byte 39)"));
  EXPECT_THAT(parse_error_of(raw_file(R"({"__metadata__":{"a":1}})", 0)),
              HasSubstr("__metadata__ 'a': value must be a string"));
  EXPECT_THAT(
      parse_error_of(raw_file(
          R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          8)),
      HasSubstr("tensor 'a': duplicate key in JSON header (at byte 9)"));
}

TEST(SafetensorsErrors, TensorEntries)
{
  EXPECT_THAT(parse_error_of(raw_file(R"({"t":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", 1)),
              HasSubstr("tensor 't': unknown dtype 'Q4'"));
  EXPECT_THAT(parse_error_of(raw_file(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
              HasSubstr("expected a non-negative integer, got -1"));
  EXPECT_THAT(parse_error_of(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8)),
              HasSubstr("must be an array [begin, end]"));
  EXPECT_THAT(parse_error_of(raw_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[4,0]}})", 8)),
              HasSubstr("end before they begin"));
  EXPECT_THAT(parse_error_of(raw_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
              HasSubstr("data_offsets [0, 8) hold 8 bytes but F32 x 3 needs 12"));
  EXPECT_THAT(parse_error_of(raw_file(
                  R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
              HasSubstr("element count overflows"));
  EXPECT_THAT(parse_error_of(raw_file(R"({"t":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", 2)),
              HasSubstr("do not fill whole bytes"));
}

TEST(SafetensorsErrors, RangesMustTileTheDataSection)
{
  const std::string json = R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  const auto msg = parse_error_of(raw_file(json, 8));
  EXPECT_THAT(
      msg,
      HasSubstr("model.safetensors: tensor 't': data range [0, 16) exceeds the data section of 8 bytes"));
  EXPECT_THAT(msg, HasSubstr("(at byte 9)")); // the key's opening quote
  EXPECT_THAT(parse_error_of(raw_file(json, 20)),
              HasSubstr("bytes [16, 20) of the data section belong to no tensor"));
  EXPECT_THAT(
      parse_error_of(raw_file(
          R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
          6)),
      HasSubstr("tensor 'b': data range [2, 6) overlaps tensor 'a' ending at 4"));
  EXPECT_THAT(
      parse_error_of(raw_file(
          R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})",
          10)),
      HasSubstr("hole in the data section: bytes [4, 6) belong to no tensor"));
}

namespace {

void write_shards(const TempDir& dir)
{
  SafetensorsWriter a;
  a.add_tensor("x", SafetensorsDtype::f16, {4, 4});
  a.add_tensor("y", SafetensorsDtype::f16, {4});
  write_file(dir.path() / "model-00001-of-00002.safetensors", a.build());
  SafetensorsWriter b;
  b.add_tensor("z", SafetensorsDtype::f32, {2});
  write_file(dir.path() / "model-00002-of-00002.safetensors", b.build());
}

constexpr std::string_view k_index = R"({
  "metadata": {"total_size": 48},
  "weight_map": {
    "x": "model-00001-of-00002.safetensors",
    "y": "model-00001-of-00002.safetensors",
    "z": "model-00002-of-00002.safetensors"
  }
})";

} // namespace

TEST(SafetensorsIndex, ParsesAndChecksShards)
{
  TempDir dir;
  write_shards(dir);
  write_file(dir.path() / "model.safetensors.index.json", modelmgr::formats::testing::to_bytes(k_index));
  const auto index = parse_safetensors_index_file(dir.path() / "model.safetensors.index.json");
  EXPECT_EQ(index.total_size, 48u);
  EXPECT_EQ(index.weight_map.size(), 3u);
  EXPECT_EQ(index.shards(), (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                      "model-00002-of-00002.safetensors"}));
  const auto result = check_sharded_model(index, dir.path());
  EXPECT_TRUE(result.ok()) << ::testing::PrintToString(result.problems);
  EXPECT_TRUE(result.notes.empty()) << ::testing::PrintToString(result.notes);
  EXPECT_EQ(result.parameter_count, 22u);
  EXPECT_EQ(result.tensor_bytes, 48u);
}

TEST(SafetensorsIndex, ReportsEveryProblem)
{
  TempDir dir;
  write_shards(dir);
  // A corrupt second shard, a missing third, a tensor absent from the first, an unlisted tensor ("y").
  write_file(dir.path() / "model-00002-of-00002.safetensors", Bytes{}.u64(1000).str("{}").get());
  const auto index = parse_safetensors_index(R"({"metadata":{"total_size":1},"weight_map":{
    "x": "model-00001-of-00002.safetensors", "w": "model-00001-of-00002.safetensors",
    "z": "model-00002-of-00002.safetensors", "v": "model-00003.safetensors"}})",
                                             "model.safetensors.index.json");
  const auto result = check_sharded_model(index, dir.path());
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(
      result.problems,
      ::testing::UnorderedElementsAre(
          HasSubstr("model-00001-of-00002.safetensors: tensor 'w' listed in the index is not in the shard"),
          HasSubstr("model-00002-of-00002.safetensors: header length: header length 1000 exceeds"),
          HasSubstr("model-00003.safetensors: shard listed in the index is missing")));
  EXPECT_THAT(result.notes,
              ::testing::ElementsAre(HasSubstr("model-00001-of-00002.safetensors: 1 tensor(s) not listed")));
}

TEST(SafetensorsIndex, TotalSizeMismatchIsANote)
{
  TempDir dir;
  write_shards(dir);
  std::string text(k_index);
  text.replace(text.find("48"), 2, "50");
  const auto result = check_sharded_model(parse_safetensors_index(text, "index.json"), dir.path());
  EXPECT_TRUE(result.ok());
  EXPECT_THAT(result.notes, ::testing::ElementsAre(HasSubstr("total_size is 50 but the shards hold 48")));
}

TEST(SafetensorsIndex, RejectsUnsafeOrMalformedIndexes)
{
  auto error_of = [](std::string_view text) {
    try {
      parse_safetensors_index(text, "index.json");
    } catch (const ParseError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error_of(R"({"weight_map":{"x":"../../etc/passwd"}})"), HasSubstr("is not a plain file name"));
  EXPECT_THAT(error_of(R"({"weight_map":{"x":"sub/dir.safetensors"}})"),
              HasSubstr("is not a plain file name"));
  EXPECT_THAT(error_of(R"({"weight_map":{"x":".."}})"), HasSubstr("is not a plain file name"));
  EXPECT_THAT(error_of(R"({"weight_map":{"x":1}})"), HasSubstr("shard name is not a string"));
  EXPECT_THAT(error_of(R"({"metadata":{}})"), HasSubstr("weight_map: missing"));
  EXPECT_THAT(error_of(R"({"metadata":{"total_size":-5},"weight_map":{}})"),
              HasSubstr("metadata.total_size"));
  EXPECT_THAT(error_of("[" + std::string(100, '[')), HasSubstr("nested deeper"));
  EXPECT_THAT(error_of("{"), HasSubstr("invalid JSON"));
  EXPECT_THAT(error_of(R"({"metadata":{"total_size":1e999},"weight_map":{}})"), HasSubstr("number overflow"));
  EXPECT_EQ(parse_safetensors_index(R"({"metadata":{"total_size":1.4e10},"weight_map":{}})", "i").total_size,
            14000000000u);
}
