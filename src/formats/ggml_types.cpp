#include "formats/ggml_types.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace modelmgr::formats {
namespace {

constexpr std::uint32_t k_qk_k = 256; // super-block size of the K and IQ quants

// Block sizes and bytes per block from the block_* structs of ggml-common.h (their static_asserts).
constexpr std::array k_types{
    GgmlTypeTraits{GgmlType::f32, "F32", 1, 4},
    GgmlTypeTraits{GgmlType::f16, "F16", 1, 2},
    GgmlTypeTraits{GgmlType::q4_0, "Q4_0", 32, 2 + 16},
    GgmlTypeTraits{GgmlType::q4_1, "Q4_1", 32, 2 + 2 + 16},
    GgmlTypeTraits{GgmlType::q5_0, "Q5_0", 32, 2 + 4 + 16},
    GgmlTypeTraits{GgmlType::q5_1, "Q5_1", 32, 2 + 2 + 4 + 16},
    GgmlTypeTraits{GgmlType::q8_0, "Q8_0", 32, 2 + 32},
    GgmlTypeTraits{GgmlType::q8_1, "Q8_1", 32, 2 + 2 + 32},
    GgmlTypeTraits{GgmlType::q2_k, "Q2_K", k_qk_k, 2 + 2 + k_qk_k / 16 + k_qk_k / 4},                // 84
    GgmlTypeTraits{GgmlType::q3_k, "Q3_K", k_qk_k, 2 + k_qk_k / 8 + k_qk_k / 4 + 12},                // 110
    GgmlTypeTraits{GgmlType::q4_k, "Q4_K", k_qk_k, 2 + 2 + 12 + k_qk_k / 2},                         // 144
    GgmlTypeTraits{GgmlType::q5_k, "Q5_K", k_qk_k, 2 + 2 + 12 + k_qk_k / 8 + k_qk_k / 2},            // 176
    GgmlTypeTraits{GgmlType::q6_k, "Q6_K", k_qk_k, 2 + k_qk_k / 16 + 3 * k_qk_k / 4},                // 210
    GgmlTypeTraits{GgmlType::q8_k, "Q8_K", k_qk_k, 4 + k_qk_k + k_qk_k / 16 * 2},                    // 292
    GgmlTypeTraits{GgmlType::iq2_xxs, "IQ2_XXS", k_qk_k, 2 + k_qk_k / 8 * 2},                        // 66
    GgmlTypeTraits{GgmlType::iq2_xs, "IQ2_XS", k_qk_k, 2 + k_qk_k / 8 * 2 + k_qk_k / 32},            // 74
    GgmlTypeTraits{GgmlType::iq3_xxs, "IQ3_XXS", k_qk_k, 2 + 3 * k_qk_k / 8},                        // 98
    GgmlTypeTraits{GgmlType::iq1_s, "IQ1_S", k_qk_k, 2 + k_qk_k / 8 + k_qk_k / 32 * 2},              // 50
    GgmlTypeTraits{GgmlType::iq4_nl, "IQ4_NL", 32, 2 + 16},                                          // 18
    GgmlTypeTraits{GgmlType::iq3_s, "IQ3_S", k_qk_k, 2 + k_qk_k / 4 + k_qk_k / 32 + k_qk_k / 8 + 4}, // 110
    GgmlTypeTraits{GgmlType::iq2_s, "IQ2_S", k_qk_k, 2 + k_qk_k / 4 + k_qk_k / 32 + k_qk_k / 32},    // 82
    GgmlTypeTraits{GgmlType::iq4_xs, "IQ4_XS", k_qk_k, 2 + 2 + k_qk_k / 64 + k_qk_k / 2},            // 136
    GgmlTypeTraits{GgmlType::i8, "I8", 1, 1},
    GgmlTypeTraits{GgmlType::i16, "I16", 1, 2},
    GgmlTypeTraits{GgmlType::i32, "I32", 1, 4},
    GgmlTypeTraits{GgmlType::i64, "I64", 1, 8},
    GgmlTypeTraits{GgmlType::f64, "F64", 1, 8},
    GgmlTypeTraits{GgmlType::iq1_m, "IQ1_M", k_qk_k, k_qk_k / 8 + k_qk_k / 16 + k_qk_k / 32}, // 56
    GgmlTypeTraits{GgmlType::bf16, "BF16", 1, 2},
    GgmlTypeTraits{GgmlType::tq1_0, "TQ1_0", k_qk_k, (k_qk_k - 4 * k_qk_k / 64) / 5 + k_qk_k / 64 + 2}, // 54
    GgmlTypeTraits{GgmlType::tq2_0, "TQ2_0", k_qk_k, k_qk_k / 4 + 2},                                   // 66
    GgmlTypeTraits{GgmlType::mxfp4, "MXFP4", 32, 1 + 16},                                               // 17
};

static_assert(k_types[8].type_size == 84 && k_types[9].type_size == 110 && k_types[10].type_size == 144 &&
              k_types[11].type_size == 176 && k_types[12].type_size == 210 && k_types[13].type_size == 292);
static_assert(k_types[14].type_size == 66 && k_types[15].type_size == 74 && k_types[16].type_size == 98 &&
              k_types[17].type_size == 50 && k_types[19].type_size == 110 && k_types[20].type_size == 82 &&
              k_types[21].type_size == 136 && k_types[27].type_size == 56 && k_types[29].type_size == 54);

bool iequals(std::string_view a, std::string_view b) noexcept
{
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

} // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t id) noexcept
{
  for (const auto& t : k_types) {
    if (static_cast<std::uint32_t>(t.type) == id) {
      return t;
    }
  }
  return std::nullopt;
}

std::string_view to_string(GgmlType type) noexcept
{
  const auto traits = ggml_type_traits(static_cast<std::uint32_t>(type));
  return traits ? traits->name : std::string_view("unknown");
}

std::optional<GgmlType> ggml_type_from_string(std::string_view name) noexcept
{
  for (const auto& t : k_types) {
    if (iequals(t.name, name)) {
      return t.type;
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> llama_file_type_name(std::uint32_t file_type) noexcept
{
  // llama_ftype in llama.h; 4-6 and 33-35 were removed upstream.
  switch (file_type & ~1024u) {
  case 0: return "F32";
  case 1: return "F16";
  case 2: return "Q4_0";
  case 3: return "Q4_1";
  case 7: return "Q8_0";
  case 8: return "Q5_0";
  case 9: return "Q5_1";
  case 10: return "Q2_K";
  case 11: return "Q3_K_S";
  case 12: return "Q3_K_M";
  case 13: return "Q3_K_L";
  case 14: return "Q4_K_S";
  case 15: return "Q4_K_M";
  case 16: return "Q5_K_S";
  case 17: return "Q5_K_M";
  case 18: return "Q6_K";
  case 19: return "IQ2_XXS";
  case 20: return "IQ2_XS";
  case 21: return "Q2_K_S";
  case 22: return "IQ3_XS";
  case 23: return "IQ3_XXS";
  case 24: return "IQ1_S";
  case 25: return "IQ4_NL";
  case 26: return "IQ3_S";
  case 27: return "IQ3_M";
  case 28: return "IQ2_S";
  case 29: return "IQ2_M";
  case 30: return "IQ4_XS";
  case 31: return "IQ1_M";
  case 32: return "BF16";
  case 36: return "TQ1_0";
  case 37: return "TQ2_0";
  case 38: return "MXFP4_MOE";
  default: return std::nullopt;
  }
}

} // namespace modelmgr::formats
