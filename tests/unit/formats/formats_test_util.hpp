#pragma once
// Helpers for the format reader tests: byte building and a per-test temporary directory. Kept local
// because the shared tests/support library may not exist yet when this suite builds.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace modelmgr::formats::testing {

inline std::vector<std::byte> to_bytes(std::string_view s)
{
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

// Little-endian byte sequence builder for hand-written expected headers.
class Bytes {
public:
  Bytes& u8(std::uint8_t v) { return raw(&v, 1); }
  Bytes& u32(std::uint32_t v) { return raw(&v, 4); }
  Bytes& u64(std::uint64_t v) { return raw(&v, 8); }
  Bytes& str(std::string_view s) { return raw(s.data(), s.size()); }
  Bytes& gguf_str(std::string_view s) { return u64(s.size()).str(s); }
  Bytes& zeros(std::size_t n)
  {
    m_bytes.insert(m_bytes.end(), n, std::byte{0});
    return *this;
  }
  Bytes& hex(std::initializer_list<unsigned> bytes)
  {
    for (const auto b : bytes) {
      m_bytes.push_back(static_cast<std::byte>(b));
    }
    return *this;
  }
  const std::vector<std::byte>& get() const { return m_bytes; }
  std::size_t size() const { return m_bytes.size(); }

private:
  Bytes& raw(const void* p, std::size_t n)
  {
    const auto* b = static_cast<const std::byte*>(p);
    m_bytes.insert(m_bytes.end(), b, b + n);
    return *this;
  }
  std::vector<std::byte> m_bytes;
};

class TempDir {
public:
  TempDir()
  {
    std::string tmpl = (std::filesystem::temp_directory_path() / "modelmgr-formats-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    }
    m_path = tmpl;
  }
  ~TempDir()
  {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return m_path; }

private:
  std::filesystem::path m_path;
};

inline void write_file(const std::filesystem::path& path, const std::vector<std::byte>& bytes)
{
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

} // namespace modelmgr::formats::testing
