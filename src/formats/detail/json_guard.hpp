#pragma once
// Private: a linear pre-scan that bounds JSON nesting before nlohmann::json builds a tree, so a header of
// 100 MiB of '[' is refused in one pass instead of exhausting memory or the stack.

#include <cstdint>
#include <optional>
#include <string_view>

namespace modelmgr::formats::detail {

// Returns the offset of the first bracket that nests deeper than `max_depth`, or nullopt.
inline std::optional<std::uint64_t> find_excess_nesting(std::string_view json,
                                                        std::uint32_t max_depth) noexcept
{
  std::uint32_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        return i;
      }
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

} // namespace modelmgr::formats::detail
