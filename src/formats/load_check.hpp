#pragma once
// Load checks: detect what a file is (by content, then by name) and run every defensive check of its
// reader, so a downloaded model is known to be loadable and not only byte-correct. Never throws on bad
// input: the outcome is a value. Used by `modelmgr inspect`, `verify --load` and the manifest.
//
//   GGUF         every tensor's data range inside the file, no overlaps, offsets aligned to
//                general.alignment (parse_gguf does all of it)
//   safetensors  offsets contiguous and inside the file, dtype size x shape == byte length
//   (parse_safetensors) index        *.safetensors.index.json: every listed shard present and parsing, every
//   tensor in its shard ONNX         the ModelProto parses, initializers are consistent, external-data files
//   exist and fit JSON         config.json / tokenizer.json / tokenizer_config.json / any other *.json parses

#include "formats/byte_source.hpp"
#include "formats/gguf.hpp"
#include "formats/hf_json.hpp"
#include "formats/onnx.hpp"
#include "formats/safetensors.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::formats {

enum class FileFormat {
  unknown, // not a file modelmgr checks (README.md, .gitattributes, *.bin, ...)
  gguf,
  safetensors,
  safetensors_index,
  onnx,
  hf_config,           // config.json
  hf_tokenizer,        // tokenizer.json
  hf_tokenizer_config, // tokenizer_config.json
  json,                // any other *.json
};

// "gguf", "safetensors", "safetensors-index", "onnx", "config.json", "tokenizer.json",
// "tokenizer_config.json", "json", "unknown".
std::string_view to_string(FileFormat format) noexcept;
// True for the formats that hold weights (GGUF, safetensors, ONNX).
bool is_weight_format(FileFormat format) noexcept;

// Detects the format from the first bytes and the file name: the GGUF magic, a safetensors header (u64
// length then '{'), then the name (*.gguf, *.safetensors, *.onnx, *.safetensors.index.json, the HF JSON
// names, *.json). `head` may be shorter than 16 bytes.
FileFormat detect_format(std::span<const std::byte> head, std::string_view file_name) noexcept;
// Reads the first bytes of `path`; unknown when it cannot be read or is not a regular file.
FileFormat detect_format(const std::filesystem::path& path) noexcept;

struct LoadCheck {
  FileFormat format = FileFormat::unknown;
  bool ok = true;    // false: the file would not load; `error` says why
  std::string error; // "<file>: <field>: <detail> (at byte N)" for parse errors
  std::uint64_t parameter_count = 0;
  std::string summary;            // one line: "GGUF v3 llama, 7.24 B parameters, Q4_K_M, 291 tensors"
  std::vector<std::string> notes; // worth saying but not failing (e.g. an index's total_size mismatch)
};

// Everything parsed from one file, for the detailed views of `inspect`; `check` is the verdict.
struct InspectedFile {
  std::filesystem::path path;
  std::uint64_t file_size = 0;
  LoadCheck check;
  std::optional<GgufFile> gguf;
  std::optional<GgufModelInfo> gguf_info;
  std::optional<SafetensorsFile> safetensors;
  std::optional<SafetensorsIndex> index;
  std::optional<ShardCheckResult> shards;
  std::optional<OnnxModel> onnx;
  std::optional<HfModelConfig> config;
  std::optional<HfTokenizer> tokenizer;
  std::optional<HfTokenizerConfig> tokenizer_config;
};

// Detects and parses `path` (a regular file; symlinks followed). Never throws for bad input or I/O errors
// (both become check.ok == false); may throw std::bad_alloc.
InspectedFile inspect_file(const std::filesystem::path& path);
LoadCheck check_loadable(const std::filesystem::path& path);
// The same checks on bytes in memory; `file_name` drives detection and names the file in errors. ONNX
// external data and safetensors shards cannot be checked here and are reported as notes.
LoadCheck check_loadable(const ByteSource& source, std::string_view file_name);

// "7.24 B", "22.7 M", "4.1 K", "12": parameter counts as model cards write them (decimal, 3 digits).
std::string format_parameter_count(std::uint64_t n);

} // namespace modelmgr::formats
