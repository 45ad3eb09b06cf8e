#pragma once
// safetensors header reader and sharded-model index checker.
// Format: https://github.com/huggingface/safetensors (README "Format"): an 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the data section, which the tensors must cover exactly: no holes, no overlaps, no trailing bytes.

#include "formats/byte_source.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::formats {

enum class SafetensorsDtype {
  boolean,
  u8,
  i8,
  f8_e5m2,
  f8_e4m3,
  f8_e8m0,
  i16,
  u16,
  f16,
  bf16,
  i32,
  u32,
  f32,
  c64,
  f64,
  i64,
  u64,
  f4,      // 4-bit float (e2m1), two per byte
  f6_e2m3, // 6-bit floats, four per three bytes
  f6_e3m2,
};

// On-disk name: "BF16", "F8_E4M3", "BOOL".
std::string_view to_string(SafetensorsDtype dtype) noexcept;
std::optional<SafetensorsDtype> safetensors_dtype_from_string(std::string_view name) noexcept;
std::uint32_t bits_per_element(SafetensorsDtype dtype) noexcept;

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::f32;
  std::vector<std::uint64_t> shape; // empty: a scalar (1 element)
  std::uint64_t begin = 0;          // data_offsets, relative to the data section
  std::uint64_t end = 0;
  std::uint64_t file_offset = 0; // absolute: data_offset + begin
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes() const noexcept { return end - begin; }
};

struct SafetensorsDtypeUsage {
  SafetensorsDtype dtype = SafetensorsDtype::f32;
  std::uint64_t tensors = 0;
  std::uint64_t elements = 0;
  std::uint64_t bytes = 0;
};

struct SafetensorsFile {
  std::uint64_t header_size = 0; // N, the JSON length
  std::uint64_t data_offset = 0; // 8 + N
  std::uint64_t file_size = 0;
  std::map<std::string, std::string> metadata; // "__metadata__"
  std::vector<SafetensorsTensor> tensors;      // by data offset

  const SafetensorsTensor* find_tensor(std::string_view name) const noexcept;
  std::uint64_t parameter_count() const noexcept;
  std::vector<SafetensorsDtypeUsage> dtype_histogram() const; // most bytes first
};

struct SafetensorsParseOptions {
  // The reference implementation refuses headers over 100 MB; real ones are well under 10 MiB.
  std::uint64_t max_header_size = 100ull << 20;
  // JSON nesting allowed in the header (a valid header nests 3 deep).
  std::uint32_t max_json_depth = 16;
};

// Parses and validates a safetensors header against the source size. Throws ParseError (file, field and
// byte offset in the message) for: header length 0 or past the limit or the file, JSON that is invalid,
// not an object or nested too deep, duplicate keys, unknown dtypes, data_offsets inconsistent with
// dtype x shape, ranges outside the data section, overlaps, holes, uncovered trailing bytes.
// std::system_error on I/O errors.
SafetensorsFile parse_safetensors(const ByteSource& source, std::string display_name,
                                  const SafetensorsParseOptions& options = {});
SafetensorsFile parse_safetensors_file(const std::filesystem::path& path,
                                       const SafetensorsParseOptions& options = {});

// model.safetensors.index.json
struct SafetensorsIndex {
  std::optional<std::uint64_t> total_size;       // metadata.total_size: sum of all tensors' bytes
  std::map<std::string, std::string> weight_map; // tensor name -> shard file name
  std::vector<std::string> shards() const;       // distinct shard names, sorted
};

// Parses an index. Shard names must be plain file names (no '/', '\\', "." or ".."): an index must not point
// outside its snapshot directory. Throws ParseError.
SafetensorsIndex parse_safetensors_index(std::string_view json, std::string display_name);
SafetensorsIndex parse_safetensors_index_file(const std::filesystem::path& path);

struct ShardCheckResult {
  // Every problem found, one line each, naming the shard and tensor; empty means consistent.
  std::vector<std::string> problems;
  // Oddities loaders tolerate: tensors in a shard the index does not list, a total_size that differs from
  // the sum of the shards' tensor bytes.
  std::vector<std::string> notes;
  std::uint64_t parameter_count = 0; // over the tensors the index lists
  std::uint64_t tensor_bytes = 0;
  bool ok() const noexcept { return problems.empty(); }
};

// Checks that every shard the index lists exists in `directory`, parses, and holds the tensors mapped to
// it. Collects all problems instead of stopping at the first; does not throw for problems in the files.
ShardCheckResult check_sharded_model(const SafetensorsIndex& index, const std::filesystem::path& directory,
                                     const SafetensorsParseOptions& options = {});

} // namespace modelmgr::formats
