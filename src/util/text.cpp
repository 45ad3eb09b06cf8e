#include "util/text.hpp"

#include <cstdint>

namespace modelmgr::util {

namespace {

// Length of the valid UTF-8 sequence starting at s[i] (1 for ASCII), or 0 if the bytes there are not valid
// UTF-8 (overlong forms, surrogates and code points above U+10FFFF are invalid, as in RFC 3629).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept
{
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    return 1;
  }
  std::size_t len = 0;
  std::uint32_t cp = 0;
  std::uint32_t min = 0;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1f;
    min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0f;
    min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < len) {
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (cc & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  // C1 controls: a terminal may take U+009B as CSI.
  if (cp >= 0x80 && cp <= 0x9f) {
    return 0;
  }
  return len;
}

bool is_control(unsigned char c) noexcept
{
  return c < 0x20 || c == 0x7f;
}

} // namespace

std::string escape_for_terminal(std::string_view s)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t len = is_control(c) ? 0 : utf8_sequence_length(s, i);
    if (len == 0) {
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 0xf];
      ++i;
      continue;
    }
    out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

bool has_terminal_controls(std::string_view s) noexcept
{
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t len = is_control(c) ? 0 : utf8_sequence_length(s, i);
    if (len == 0) {
      return true;
    }
    i += len;
  }
  return false;
}

} // namespace modelmgr::util
