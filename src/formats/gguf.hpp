#pragma once
// GGUF (v2 and v3) header reader: metadata as a value tree, tensor infos with byte sizes, and the model
// facts modelmgr needs (architecture, parameter count, quantization, attention shape for RAM estimates).
// Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md. Only the header is read; tensor data
// is never touched, so parsing a multi-GiB file costs a few small reads.

#include "formats/byte_source.hpp"
#include "formats/ggml_types.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace modelmgr::formats {

// Metadata value types; the numbers are the on-disk ids and the index of GgufValue::Storage.
enum class GgufValueType : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};
std::string_view to_string(GgufValueType type) noexcept;

class GgufValue;

struct GgufArray {
  GgufValueType element_type = GgufValueType::uint8;
  std::vector<GgufValue> items;
  bool operator==(const GgufArray&) const;
};

class GgufValue {
public:
  // Alternative i holds the value of on-disk type i.
  using Storage =
      std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t, float,
                   bool, std::string, GgufArray, std::uint64_t, std::int64_t, double>;

  GgufValue() = default;
  template <class T>
  requires std::is_constructible_v<Storage, T&&> GgufValue(T&& value) : m_data(std::forward<T>(value)) {}
  GgufValue(const char* s) : m_data(std::string(s)) {}

  GgufValueType type() const noexcept { return static_cast<GgufValueType>(m_data.index()); }
  const Storage& data() const noexcept { return m_data; }
  template <class T> const T* get_if() const noexcept { return std::get_if<T>(&m_data); }

  // Any integer type whose value is >= 0 (GGUF writers are not consistent about u32 vs i32 vs u64).
  std::optional<std::uint64_t> as_uint() const noexcept;
  std::optional<std::int64_t> as_int() const noexcept;
  // Any numeric type.
  std::optional<double> as_double() const noexcept;
  const std::string* as_string() const noexcept { return get_if<std::string>(); }
  const GgufArray* as_array() const noexcept { return get_if<GgufArray>(); }

  bool operator==(const GgufValue&) const = default;

private:
  Storage m_data;
};

struct GgufKv {
  std::string key;
  GgufValue value;
  std::uint64_t offset = 0; // byte offset of the key in the file
};

struct GgufTensorInfo {
  std::string name;
  std::vector<std::uint64_t> dims; // ne[0] first (fastest-varying), as on disk
  GgmlType type = GgmlType::f32;
  std::uint64_t offset = 0;      // relative to the data section, as on disk
  std::uint64_t file_offset = 0; // absolute: data_offset + offset
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes = 0; // n_elements / block_size * type_size
};

struct GgufFile {
  std::uint32_t version = 0;
  std::uint64_t alignment = 32;  // general.alignment, default 32
  std::uint64_t data_offset = 0; // absolute start of the tensor data section (aligned)
  std::uint64_t file_size = 0;
  std::vector<GgufKv> metadata;        // in file order; keys are unique
  std::vector<GgufTensorInfo> tensors; // in file order; names are unique

  const GgufValue* find(std::string_view key) const noexcept;
  const GgufTensorInfo* find_tensor(std::string_view name) const noexcept;

  std::map<std::string, std::size_t, std::less<>> key_index; // key -> index into metadata
};

struct GgufParseOptions {
  // Decoded metadata may use at most this much memory (values are bigger in memory than on disk: a 1-byte
  // array element becomes a GgufValue). Real files stay far below: a 256k-token vocabulary needs ~30 MiB.
  std::uint64_t max_metadata_memory = 256ull << 20;
  // Arrays of arrays nest at most this deep (real files use 1 level; the spec allows nesting).
  std::uint32_t max_array_depth = 8;
};

// Parses and validates the header of a GGUF v2/v3 file. `display_name` names the file in errors.
// Throws ParseError for anything malformed: bad magic, version 1 or unknown, big-endian files, counts or
// lengths past the end of the file, bad value types, duplicate keys or tensor names, more than 4 dims,
// unknown ggml types, rows not a multiple of the block size, misaligned or overlapping tensor data, data
// past the end of the file. std::system_error on I/O errors.
GgufFile parse_gguf(const ByteSource& source, std::string display_name, const GgufParseOptions& options = {});
// Same, reading `path` with pread; errors name the file by its file name.
GgufFile parse_gguf_file(const std::filesystem::path& path, const GgufParseOptions& options = {});

struct GgufTypeUsage {
  GgmlType type = GgmlType::f32;
  std::uint64_t tensors = 0;
  std::uint64_t elements = 0;
  std::uint64_t bytes = 0;
};

// What modelmgr wants to know about a GGUF model; fields a file does not state are empty.
struct GgufModelInfo {
  std::string architecture;               // general.architecture, e.g. "llama"
  std::string name;                       // general.name
  std::uint64_t parameter_count = 0;      // sum of tensor element counts
  std::uint64_t tensor_bytes = 0;         // sum of tensor byte sizes (the weights)
  std::optional<std::uint32_t> file_type; // general.file_type (llama_ftype)
  // general.file_type's name ("Q4_K_M"); when absent or unknown, the ggml type holding most bytes ("Q4_K").
  std::string quantization;
  std::vector<GgufTypeUsage> types; // by ggml type, most bytes first

  std::optional<std::uint64_t> context_length;   // <arch>.context_length (trained context)
  std::optional<std::uint64_t> embedding_length; // <arch>.embedding_length
  std::optional<std::uint64_t> block_count;      // <arch>.block_count (layers)
  std::optional<std::uint64_t> head_count;       // <arch>.attention.head_count (max if per layer)
  std::optional<std::uint64_t> head_count_kv;    // <arch>.attention.head_count_kv (max if per layer)
  // Per-layer KV head counts when the file gives head_count_kv as an array (e.g. OpenELM); else empty.
  std::vector<std::uint64_t> head_count_kv_per_layer;
  std::optional<std::uint64_t> key_length;   // <arch>.attention.key_length, else embedding/head_count
  std::optional<std::uint64_t> value_length; // <arch>.attention.value_length, else embedding/head_count
  std::string tokenizer_model;               // tokenizer.ggml.model, e.g. "gpt2", "llama"
  std::optional<std::uint64_t> vocab_size;   // length of tokenizer.ggml.tokens
};

GgufModelInfo describe_gguf(const GgufFile& file);

// Bytes of the K and V caches for `context_length` tokens:
//   sum over layers of context_length * head_count_kv(layer) * (key_length + value_length) *
//   bytes_per_element
// 0 when the file lacks the attention shape (e.g. recurrent models). Saturates at UINT64_MAX.
std::uint64_t estimate_kv_cache_bytes(const GgufModelInfo& info, std::uint64_t context_length,
                                      std::uint64_t bytes_per_element = 2);

struct RamEstimate {
  std::uint64_t weights = 0;
  std::uint64_t kv_cache = 0;
  std::uint64_t overhead = 0; // runtime + compute buffers, see docs/formats.md
  std::uint64_t total() const noexcept;
};

// Weights + KV cache + overhead for running the model with `context_length` tokens (0: the model's trained
// context length, or 4096 when the file does not say). A heuristic for "will it fit", documented in
// docs/formats.md; not a measurement.
RamEstimate estimate_ram(const GgufModelInfo& info, std::uint64_t context_length = 0,
                         std::uint64_t bytes_per_element = 2);
std::uint64_t estimate_ram_bytes(const GgufModelInfo& info, std::uint64_t context_length = 0,
                                 std::uint64_t bytes_per_element = 2);

} // namespace modelmgr::formats
