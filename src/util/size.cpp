#include "util/size.hpp"

#include <array>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace modelmgr::util {

namespace {

// 128-bit intermediate so that "16EiB"-scale products are checked without overflow tricks.
__extension__ typedef unsigned __int128 U128;

char lower(char c)
{
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string_view trim(std::string_view s)
{
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Returns the multiplier for a unit (already lower-cased), or 0 if unknown.
U128 unit_multiplier(std::string_view unit)
{
  if (unit.empty() || unit == "b") {
    return 1;
  }
  static constexpr std::string_view prefixes = "kmgtpe";
  const std::size_t index = prefixes.find(unit[0]);
  if (index == std::string_view::npos) {
    return 0;
  }
  std::string_view rest = unit.substr(1);
  const bool binary = !rest.empty() && rest[0] == 'i';
  if (binary) {
    rest.remove_prefix(1);
  }
  if (!rest.empty() && rest != "b") {
    return 0;
  }
  U128 m = 1;
  for (std::size_t i = 0; i <= index; ++i) {
    m *= binary ? 1024 : 1000;
  }
  return m;
}

[[noreturn]] void fail(std::string_view what, std::string_view text, std::string_view why)
{
  throw std::invalid_argument("invalid " + std::string(what) + " '" + std::string(text) +
                              "': " + std::string(why));
}

std::uint64_t parse_size_as(std::string_view what, std::string_view original, std::string_view text)
{
  static constexpr std::string_view examples = " (expected e.g. 1000, 512k, 50M, 1.5GB, 10MiB)";
  std::string_view s = trim(text);
  if (s.empty()) {
    fail(what, original, "empty" + std::string(examples));
  }
  std::size_t pos = 0;
  U128 integer = 0;
  bool any_digit = false;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    integer = integer * 10 + static_cast<unsigned>(s[pos] - '0');
    if (integer > U128(UINT64_MAX)) {
      fail(what, original, "too large");
    }
    any_digit = true;
    ++pos;
  }
  U128 fraction = 0;
  U128 fraction_scale = 1;
  bool has_fraction = false;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      // Digits past the 18th cannot change a result that is rounded down to whole bytes.
      if (fraction_scale < U128(1'000'000'000'000'000'000ULL)) {
        fraction = fraction * 10 + static_cast<unsigned>(s[pos] - '0');
        fraction_scale *= 10;
      }
      has_fraction = has_fraction || s[pos] != '0';
      any_digit = true;
      ++pos;
    }
  }
  if (!any_digit) {
    fail(what, original, "expected a number" + std::string(examples));
  }
  std::string unit;
  for (char c : trim(s.substr(pos))) {
    unit += lower(c);
  }
  const U128 multiplier = unit_multiplier(unit);
  if (multiplier == 0) {
    fail(what, original, "unknown unit '" + std::string(trim(s.substr(pos))) + "'" + std::string(examples));
  }
  if (multiplier == 1 && has_fraction) {
    fail(what, original, "a byte count must be a whole number");
  }
  const U128 value = integer * multiplier + fraction * multiplier / fraction_scale;
  if (value > U128(UINT64_MAX)) {
    fail(what, original, "too large");
  }
  return static_cast<std::uint64_t>(value);
}

} // namespace

std::uint64_t parse_size(std::string_view text)
{
  return parse_size_as("size", text, text);
}

std::uint64_t parse_rate(std::string_view text)
{
  std::string_view s = trim(text);
  if (s.size() >= 2 && s[s.size() - 2] == '/' && lower(s.back()) == 's') {
    s.remove_suffix(2);
  }
  return parse_size_as("rate", text, s);
}

std::string format_size(std::uint64_t bytes)
{
  // Same arithmetic as Python: repeated float division by 1000, then "{:3.1f}" (correctly rounded).
  static constexpr std::array<const char*, 8> units{"", "K", "M", "G", "T", "P", "E", "Z"};
  double num = static_cast<double>(bytes);
  for (const char* unit : units) {
    if (std::fabs(num) < 1000.0) {
      return fmt::format("{:3.1f}{}", num, unit);
    }
    num /= 1000.0;
  }
  return fmt::format("{:.1f}Y", num);
}

std::string format_bytes_iec(std::uint64_t bytes)
{
  if (bytes < 1024) {
    return fmt::format("{} B", bytes);
  }
  static constexpr std::array<const char*, 6> units{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double num = static_cast<double>(bytes) / 1024.0;
  std::size_t i = 0;
  while (num >= 1024.0 && i + 1 < units.size()) {
    num /= 1024.0;
    ++i;
  }
  return fmt::format("{:.1f} {}", num, units[i]);
}

} // namespace modelmgr::util
