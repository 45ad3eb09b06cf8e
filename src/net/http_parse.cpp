#include "net/http_parse.hpp"

#include <charconv>

namespace modelmgr::net {

namespace {

std::string_view trim_ows(std::string_view s) noexcept
{
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Digits only: std::from_chars alone would accept nothing more than digits for unsigned types, but be
// explicit so that a future change of type cannot let a '-' in.
std::optional<std::uint64_t> digits_to_uint(std::string_view s) noexcept
{
  if (s.empty() || s.size() > 20) {
    return std::nullopt;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
  }
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt; // overflow
  }
  return v;
}

char ascii_lower(char c) noexcept
{
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept
{
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) {
      return false;
    }
  }
  return true;
}

// Whether a rel parameter value (unquoted, maybe a space-separated list) contains "next".
bool rel_has_next(std::string_view rel) noexcept
{
  std::size_t start = 0;
  while (start <= rel.size()) {
    std::size_t end = rel.find(' ', start);
    if (end == std::string_view::npos) {
      end = rel.size();
    }
    if (iequals(rel.substr(start, end - start), "next")) {
      return true;
    }
    start = end + 1;
  }
  return false;
}

} // namespace

std::optional<std::uint64_t> parse_uint(std::string_view value) noexcept
{
  return digits_to_uint(trim_ows(value));
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_content_range(std::string_view v) noexcept
{
  v = trim_ows(v);
  if (v.size() < 6 || !iequals(v.substr(0, 6), "bytes ")) {
    return std::nullopt;
  }
  v.remove_prefix(6);
  v = trim_ows(v);
  const auto dash = v.find('-');
  const auto slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return std::nullopt;
  }
  auto a = digits_to_uint(v.substr(0, dash));
  auto b = digits_to_uint(v.substr(dash + 1, slash - dash - 1));
  if (!a || !b || *b < *a) {
    return std::nullopt;
  }
  const std::string_view total = v.substr(slash + 1);
  if (total != "*") {
    auto t = digits_to_uint(total);
    if (!t || *t <= *b) {
      return std::nullopt;
    }
  }
  return std::make_pair(*a, *b);
}

std::optional<std::string> parse_link_next(std::string_view v)
{
  std::size_t i = 0;
  while (i < v.size()) {
    // One link-value: OWS "<" URI-Reference ">" *( OWS ";" OWS link-param ), then "," or the end.
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
      ++i;
    }
    if (i >= v.size()) {
      break;
    }
    if (v[i] != '<') {
      return std::nullopt;
    }
    const auto close = v.find('>', i + 1);
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view target = v.substr(i + 1, close - i - 1);
    i = close + 1;
    bool next = false;
    // Parameters up to the ',' that ends this link-value (a ',' inside a quoted string does not end it).
    while (i < v.size() && v[i] != ',') {
      while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) {
        ++i;
      }
      if (i >= v.size() || v[i] == ',') {
        break;
      }
      if (v[i] != ';') {
        return std::nullopt;
      }
      ++i;
      while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) {
        ++i;
      }
      const std::size_t name_start = i;
      while (i < v.size() && v[i] != '=' && v[i] != ';' && v[i] != ',' && v[i] != ' ' && v[i] != '\t') {
        ++i;
      }
      const std::string_view name = v.substr(name_start, i - name_start);
      while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) {
        ++i;
      }
      std::string value;
      if (i < v.size() && v[i] == '=') {
        ++i;
        while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) {
          ++i;
        }
        if (i < v.size() && v[i] == '"') {
          ++i;
          bool closed = false;
          while (i < v.size()) {
            if (v[i] == '\\' && i + 1 < v.size()) {
              value.push_back(v[i + 1]);
              i += 2;
            } else if (v[i] == '"') {
              ++i;
              closed = true;
              break;
            } else {
              value.push_back(v[i++]);
            }
          }
          if (!closed) {
            return std::nullopt;
          }
        } else {
          const std::size_t value_start = i;
          while (i < v.size() && v[i] != ';' && v[i] != ',' && v[i] != ' ' && v[i] != '\t') {
            ++i;
          }
          value = std::string(v.substr(value_start, i - value_start));
        }
      }
      if (iequals(name, "rel") && rel_has_next(value)) {
        next = true;
      }
    }
    if (next) {
      return std::string(target);
    }
  }
  return std::nullopt;
}

} // namespace modelmgr::net
