#pragma once
// Private: a bounds-checked, buffered little-endian cursor over a ByteSource. Every read is checked against
// the source size before any byte is touched or any memory is reserved, and failures carry the file name,
// the field being read and its byte offset.

#include "formats/byte_source.hpp"
#include "formats/parse_error.hpp"

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace modelmgr::formats::detail {

// Both formats are little-endian on disk; every platform modelmgr targets is too. Supporting a big-endian
// host would mean byte-swapping here and nowhere else.
static_assert(std::endian::native == std::endian::little, "format readers assume a little-endian host");

class Reader {
public:
  Reader(const ByteSource& source, std::string file_name)
      : m_source(source), m_file(std::move(file_name)), m_size(source.size())
  {
  }

  std::uint64_t pos() const noexcept { return m_pos; }
  std::uint64_t size() const noexcept { return m_size; }
  std::uint64_t remaining() const noexcept { return m_size - m_pos; }
  const std::string& file() const noexcept { return m_file; }

  // What is being parsed (e.g. "tensor 12 'blk.0.attn_q.weight'"); prefixed to field names in errors.
  void set_context(std::string context) { m_context = std::move(context); }
  const std::string& context() const noexcept { return m_context; }

  [[noreturn]] void fail(std::string_view field, std::uint64_t offset, std::string detail) const
  {
    std::string where = m_context;
    if (!field.empty()) {
      if (!where.empty()) {
        where += ": ";
      }
      where += field;
    }
    throw ParseError(m_file, where.empty() ? std::string("header") : where, offset, std::move(detail));
  }

  // Fails unless `n` more bytes are available at the current position.
  void require(std::uint64_t n, std::string_view field) const
  {
    if (n > remaining()) {
      fail(field, m_pos,
           "needs " + std::to_string(n) + " bytes but the file ends after " + std::to_string(remaining()));
    }
  }

  void seek(std::uint64_t pos)
  {
    if (pos > m_size) {
      fail("seek", m_pos, "position " + std::to_string(pos) + " is past the end of the file");
    }
    m_pos = pos;
  }

  void read_bytes(void* out, std::uint64_t n, std::string_view field)
  {
    require(n, field);
    auto* dst = static_cast<std::byte*>(out);
    if (n > k_window) {
      m_source.read(m_pos, std::span<std::byte>(dst, static_cast<std::size_t>(n)));
      m_pos += n;
      return;
    }
    if (m_pos < m_buf_start || m_pos + n > m_buf_start + m_buf.size()) {
      fill();
    }
    std::memcpy(dst, m_buf.data() + (m_pos - m_buf_start), static_cast<std::size_t>(n));
    m_pos += n;
  }

  template <class T> T read(std::string_view field)
  {
    static_assert(std::is_arithmetic_v<T>);
    T value;
    read_bytes(&value, sizeof(T), field);
    return value;
  }

  // Reads `n` bytes as a string; `n` has been checked against the remaining bytes before allocating.
  std::string read_string_bytes(std::uint64_t n, std::string_view field)
  {
    require(n, field);
    std::string s(static_cast<std::size_t>(n), '\0');
    read_bytes(s.data(), n, field);
    return s;
  }

private:
  static constexpr std::uint64_t k_window = 64 * 1024;

  void fill()
  {
    const std::uint64_t len = std::min(k_window, m_size - m_pos);
    m_buf.resize(static_cast<std::size_t>(len));
    m_source.read(m_pos, std::span<std::byte>(m_buf.data(), m_buf.size()));
    m_buf_start = m_pos;
  }

  const ByteSource& m_source;
  std::string m_file;
  std::string m_context;
  std::uint64_t m_size;
  std::uint64_t m_pos = 0;
  std::vector<std::byte> m_buf;
  std::uint64_t m_buf_start = 0;
};

// Overflow-checked arithmetic: returns false instead of wrapping.
inline bool checked_add(std::uint64_t a, std::uint64_t b, std::uint64_t& out) noexcept
{
  return !__builtin_add_overflow(a, b, &out);
}
inline bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) noexcept
{
  return !__builtin_mul_overflow(a, b, &out);
}

} // namespace modelmgr::formats::detail
