// check_loadable(): format detection, the verdict for valid files of every kind, hostile files (overlapping
// tensors, data past EOF, misaligned offsets, huge counts, truncation) as values rather than exceptions, and
// the load benchmark's byte accounting.

#include "modelmgr/errors.hpp"

#include "formats/load_bench.hpp"
#include "formats/load_check.hpp"
#include "formats/writers.hpp"
#include "formats_test_util.hpp"

#include <cstring>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace modelmgr::formats;
using modelmgr::formats::testing::Bytes;
using modelmgr::formats::testing::TempDir;
using modelmgr::formats::testing::to_bytes;
using modelmgr::formats::testing::write_file;
using ::testing::HasSubstr;

namespace {

const std::filesystem::path k_conv2d =
    "/usr/share/libonnx-testdata/data/pytorch-converted/test_Conv2d/model.onnx";

std::vector<std::byte> small_gguf()
{
  GgufWriter w;
  w.add("general.architecture", "llama");
  w.add("general.file_type", std::uint32_t{7}); // Q8_0
  w.add("llama.context_length", std::uint32_t{2048});
  w.add_tensor("token_embd.weight", {64, 4}, GgmlType::q8_0);
  w.add_tensor("output_norm.weight", {64}, GgmlType::f32);
  return w.build();
}

std::vector<std::byte> small_safetensors()
{
  SafetensorsWriter w;
  w.add_tensor("a", SafetensorsDtype::bf16, {4, 4});
  w.add_tensor("b", SafetensorsDtype::f32, {3});
  return w.build();
}

LoadCheck check_bytes(const std::vector<std::byte>& bytes, std::string_view name)
{
  const MemoryByteSource src(std::span<const std::byte>(bytes.data(), bytes.size()));
  return check_loadable(src, name);
}

// Two Q8_0-free F32 tensors of 16 elements (64 bytes each) at the given data-section offsets, followed by
// enough zeros for a data section of `data_bytes`.
std::vector<std::byte> two_tensor_gguf(std::uint64_t offset_a, std::uint64_t offset_b,
                                       std::uint64_t data_bytes)
{
  Bytes b;
  b.str("GGUF").u32(3).u64(2).u64(0);
  b.gguf_str("a").u32(1).u64(16).u32(0).u64(offset_a);
  b.gguf_str("b").u32(1).u64(16).u32(0).u64(offset_b);
  b.zeros((32 - b.size() % 32) % 32 + data_bytes);
  return b.get();
}

} // namespace

TEST(DetectFormat, ByContentThenName)
{
  const auto gguf = small_gguf();
  EXPECT_EQ(detect_format(gguf, "weights.bin"), FileFormat::gguf); // magic wins over the name
  const auto st = small_safetensors();
  EXPECT_EQ(detect_format(st, "model.bin"), FileFormat::safetensors);
  EXPECT_EQ(detect_format({}, "model.onnx"), FileFormat::onnx);
  EXPECT_EQ(detect_format({}, "x.gguf"), FileFormat::gguf);
  EXPECT_EQ(detect_format({}, "model.safetensors.index.json"), FileFormat::safetensors_index);
  EXPECT_EQ(detect_format({}, "sub/config.json"), FileFormat::hf_config);
  EXPECT_EQ(detect_format({}, "tokenizer.json"), FileFormat::hf_tokenizer);
  EXPECT_EQ(detect_format({}, "tokenizer_config.json"), FileFormat::hf_tokenizer_config);
  EXPECT_EQ(detect_format({}, "generation_config.json"), FileFormat::json);
  EXPECT_EQ(detect_format({}, "README.md"), FileFormat::unknown);
  EXPECT_EQ(detect_format(to_bytes("GGU"), "short"), FileFormat::unknown);
}

TEST(CheckLoadable, ValidFilesOfEveryKind)
{
  TempDir dir;
  write_file(dir.path() / "model.gguf", small_gguf());
  auto c = check_loadable(dir.path() / "model.gguf");
  EXPECT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.format, FileFormat::gguf);
  EXPECT_EQ(c.parameter_count, 64u * 4 + 64);
  EXPECT_EQ(c.summary, "GGUF v3 llama, 320 parameters, Q8_0, 2 tensors");

  write_file(dir.path() / "model.safetensors", small_safetensors());
  c = check_loadable(dir.path() / "model.safetensors");
  EXPECT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.parameter_count, 19u);
  EXPECT_EQ(c.summary, "safetensors, 19 parameters, BF16+F32, 2 tensors");

  c = check_loadable(k_conv2d);
  EXPECT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.format, FileFormat::onnx);
  EXPECT_EQ(c.parameter_count, 76u);
  EXPECT_THAT(c.summary, HasSubstr("ONNX IR 3, opset 6"));

  modelmgr::formats::testing::write_file(dir.path() / "config.json",
                                         to_bytes(R"({"model_type": "llama", "num_hidden_layers": 2})"));
  c = check_loadable(dir.path() / "config.json");
  EXPECT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.format, FileFormat::hf_config);
  EXPECT_THAT(c.summary, HasSubstr("llama, 2 layers"));

  write_file(dir.path() / "README.md", to_bytes("# hi\n"));
  c = check_loadable(dir.path() / "README.md");
  EXPECT_TRUE(c.ok);
  EXPECT_EQ(c.format, FileFormat::unknown);
}

TEST(CheckLoadable, HostileGgufFilesAreVerdictsNotExceptions)
{
  // Overlapping: a at [0, 64), b at [32, 96).
  auto c = check_bytes(two_tensor_gguf(0, 32, 128), "overlap.gguf");
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.format, FileFormat::gguf);
  EXPECT_THAT(c.error, HasSubstr("overlaps tensor 'a'"));
  // Past EOF: b at [64, 128) but only 100 data bytes.
  c = check_bytes(two_tensor_gguf(0, 64, 100), "eof.gguf");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("exceeds file size"));
  // Misaligned: b at 80 with the default alignment 32.
  c = check_bytes(two_tensor_gguf(0, 80, 160), "misaligned.gguf");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("not a multiple of the alignment 32"));
  // Huge counts.
  c = check_bytes(Bytes{}.str("GGUF").u32(3).u64(~0ull).u64(~0ull).get(), "huge.gguf");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("cannot fit"));
  // Truncated anywhere.
  const auto good = small_gguf();
  for (std::size_t cut = 0; cut < good.size(); cut += 7) {
    const std::vector<std::byte> part(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_FALSE(check_bytes(part, "cut.gguf").ok) << "cut at " << cut;
  }
  // The good one passes the same route.
  EXPECT_TRUE(check_bytes(two_tensor_gguf(0, 64, 128), "ok.gguf").ok);
}

TEST(CheckLoadable, HostileSafetensorsFiles)
{
  const auto raw = [](std::string_view json, std::size_t data) {
    return Bytes{}.u64(json.size()).str(json).zeros(data).get();
  };
  auto c = check_bytes(raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           12),
                       "overlap.safetensors");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("overlaps"));
  c = check_bytes(raw(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "eof.safetensors");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("exceeds the data section"));
  c = check_bytes(raw(R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}})", 16), "size.safetensors");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("F16 x 4 needs 8"));
  c = check_bytes(Bytes{}.u64(~0ull).str("{").get(), "huge.safetensors");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("header length"));
}

TEST(CheckLoadable, BadOnnxAndJson)
{
  auto c = check_bytes(to_bytes("\x08\x07garbage that is not protobuf"), "model.onnx");
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.format, FileFormat::onnx);
  EXPECT_THAT(c.error, HasSubstr("model.onnx"));

  c = check_bytes(to_bytes("{\"model_type\": \"llama\",\n \"x\": }"), "config.json");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("line 2, column 7"));
  c = check_bytes(to_bytes("{\"weight_map\": {\"a\": \"../x.safetensors\"}}"),
                  "model.safetensors.index.json");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("not a plain file name"));
}

TEST(CheckLoadable, ShardedIndexChecksShardsOnDisk)
{
  TempDir dir;
  write_file(dir.path() / "model-00001-of-00002.safetensors", small_safetensors());
  write_file(
      dir.path() / "model.safetensors.index.json",
      to_bytes(
          R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",)"
          R"( "c": "model-00002-of-00002.safetensors"}})"));
  auto c = check_loadable(dir.path() / "model.safetensors.index.json");
  EXPECT_FALSE(c.ok);
  EXPECT_THAT(c.error, HasSubstr("model-00002-of-00002.safetensors: shard listed in the index is missing"));
  SafetensorsWriter w;
  w.add_tensor("c", SafetensorsDtype::f32, {5});
  write_file(dir.path() / "model-00002-of-00002.safetensors", w.build());
  c = check_loadable(dir.path() / "model.safetensors.index.json");
  EXPECT_TRUE(c.ok) << c.error;
  EXPECT_EQ(c.parameter_count, 24u);
}

TEST(CheckLoadable, UnreadableFileIsAVerdict)
{
  TempDir dir;
  const auto c = check_loadable(dir.path() / "missing.gguf");
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.format, FileFormat::gguf);
  EXPECT_THAT(c.error, HasSubstr("missing.gguf"));
  const auto d = check_loadable(dir.path()); // a folder
  EXPECT_FALSE(d.ok);
}

TEST(FormatParameterCount, ModelCardStyle)
{
  EXPECT_EQ(format_parameter_count(0), "0");
  EXPECT_EQ(format_parameter_count(999), "999");
  EXPECT_EQ(format_parameter_count(1872), "1.87 K");
  EXPECT_EQ(format_parameter_count(22'713'216), "22.7 M");
  EXPECT_EQ(format_parameter_count(109'482'240), "109 M");
  EXPECT_EQ(format_parameter_count(7'241'732'096), "7.24 B");
  EXPECT_EQ(format_parameter_count(999'999'999), "1.00 B");
}

TEST(LoadBench, BothPassesCoverTheWholeFileAndAgree)
{
  TempDir dir;
  GgufWriter w;
  w.add("general.architecture", "llama");
  w.add_tensor("a", {4096, 8}, GgmlType::f32); // 128 KiB
  w.add_tensor("b", {4096, 5}, GgmlType::f16);
  std::vector<std::byte> bytes = w.build();
  for (std::size_t i = 0; i < bytes.size(); i += 4096) {
    bytes[i] = static_cast<std::byte>(i / 4096 + 1); // page sums differ from zero
  }
  // Restore the header bytes the marks overwrote.
  const auto header = w.header();
  std::memcpy(bytes.data(), header.data(), header.size());
  write_file(dir.path() / "m.gguf", bytes);

  LoadBenchOptions options;
  options.read_block = 64 * 1024; // several blocks
  const auto r = bench_load_file(dir.path() / "m.gguf", options);
  EXPECT_EQ(r.format, FileFormat::gguf);
  EXPECT_EQ(r.file_size, bytes.size());
  EXPECT_EQ(r.mmap.bytes, bytes.size());
  EXPECT_EQ(r.read.bytes, bytes.size());
  EXPECT_EQ(r.mmap.pages, (bytes.size() + 4095) / 4096);
  EXPECT_EQ(r.read.pages, r.mmap.pages);
  EXPECT_EQ(r.mmap.checksum, r.read.checksum);
  EXPECT_EQ(r.first_tensor, "a");
  EXPECT_EQ(r.first_tensor_end, w.data_offset() + 4096 * 8 * 4);
  EXPECT_TRUE(r.mmap.first_tensor_seconds);
  EXPECT_TRUE(r.read.first_tensor_seconds);

  // Cancellation stops with an interrupted error.
  options.cancelled = [] { return true; };
  try {
    bench_load_file(dir.path() / "m.gguf", options);
    FAIL() << "expected an error";
  } catch (const modelmgr::ModelManagerError& e) {
    EXPECT_EQ(e.kind(), modelmgr::ErrorKind::interrupted);
  }
}

TEST(LoadBench, EmptyAndNonModelFiles)
{
  TempDir dir;
  write_file(dir.path() / "empty.bin", {});
  auto r = bench_load_file(dir.path() / "empty.bin");
  EXPECT_EQ(r.file_size, 0u);
  EXPECT_EQ(r.mmap.pages, 0u);
  EXPECT_TRUE(r.first_tensor.empty());
  write_file(dir.path() / "data.bin", std::vector<std::byte>(10000, std::byte{1}));
  r = bench_load_file(dir.path() / "data.bin");
  EXPECT_EQ(r.mmap.checksum, 3u); // pages at 0, 4096, 8192
  EXPECT_EQ(r.read.checksum, 3u);
  EXPECT_FALSE(r.mmap.first_tensor_seconds);
}
