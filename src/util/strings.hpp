#pragma once
// Small string helpers shared by the layers.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace modelmgr::util {

// `s` without leading and trailing ASCII white space (space, \t, \n, \r, \v, \f).
constexpr std::string_view trim(std::string_view s) noexcept
{
  constexpr std::string_view space = " \t\n\r\v\f";
  const auto b = s.find_first_not_of(space);
  if (b == std::string_view::npos) {
    return {};
  }
  return s.substr(b, s.find_last_not_of(space) - b + 1);
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), for "did you mean" hints.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` within edit distance 2, if any (the first one wins a tie).
std::optional<std::string_view> closest_match(std::string_view word,
                                              std::span<const std::string_view> candidates);

// ASCII lower case.
std::string to_lower(std::string_view s);

// "file:line:column: where: message", leaving out a line or column of 0 and an empty `where` (the shape of
// configuration and catalog problems).
std::string format_located(std::string_view file, int line, int column, std::string_view where,
                           std::string_view message);

} // namespace modelmgr::util
