#pragma once
// ggml tensor types as they appear in GGUF tensor infos, and llama.cpp's `general.file_type` values.
// Numbers follow ggml/include/ggml.h and llama.h upstream; removed ids (4, 5, 31-33, 36-38) are unknown.

#include <cstdint>
#include <optional>
#include <string_view>

namespace modelmgr::formats {

enum class GgmlType : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq2_xxs = 16,
  iq2_xs = 17,
  iq3_xxs = 18,
  iq1_s = 19,
  iq4_nl = 20,
  iq3_s = 21,
  iq2_s = 22,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  iq1_m = 29,
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
  mxfp4 = 39,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;    // upper case, as llama.cpp prints it: "Q4_K"
  std::uint32_t block_size; // elements per block
  std::uint32_t type_size;  // bytes per block
};

// Traits of a known type id, or nullopt for an id this build does not know (newer or removed).
std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t id) noexcept;
// "Q4_K"; "unknown" for ids ggml_type_traits() rejects.
std::string_view to_string(GgmlType type) noexcept;
// Parses "Q4_K" / "q4_k".
std::optional<GgmlType> ggml_type_from_string(std::string_view name) noexcept;

// Name of a llama.cpp `general.file_type` (llama_ftype) value without the "MOSTLY_" prefix: 15 -> "Q4_K_M",
// 0 -> "F32"; nullopt for unknown values. The "guessed" flag (1024) is ignored.
std::optional<std::string_view> llama_file_type_name(std::uint32_t file_type) noexcept;

} // namespace modelmgr::formats
