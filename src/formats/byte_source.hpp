#pragma once
// Where the readers get bytes from. Parsers only ever ask for a range at an offset, so the same code reads
// a file on disk (pread, no mmap: a file truncated underneath us gives an error, not SIGBUS) or a buffer in
// memory (tests, fuzzing, a header fetched over HTTP with a range request).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace modelmgr::formats {

class ByteSource {
public:
  virtual ~ByteSource() = default;
  virtual std::uint64_t size() const = 0;
  // Fills `out` from `offset`. Throws ParseError if [offset, offset + out.size()) is not inside the source
  // (callers check first; this is the last line of defence), std::system_error on an I/O error.
  virtual void read(std::uint64_t offset, std::span<std::byte> out) const = 0;
};

// Reads a file with pread. The size is taken once at open: a file that shrinks later makes read() throw.
class FileByteSource final : public ByteSource {
public:
  // Throws std::system_error if the file cannot be opened or is not a regular file.
  explicit FileByteSource(const std::filesystem::path& path);
  ~FileByteSource() override;
  FileByteSource(const FileByteSource&) = delete;
  FileByteSource& operator=(const FileByteSource&) = delete;

  std::uint64_t size() const override { return m_size; }
  void read(std::uint64_t offset, std::span<std::byte> out) const override;
  const std::filesystem::path& path() const noexcept { return m_path; }

private:
  std::filesystem::path m_path;
  int m_fd = -1;
  std::uint64_t m_size = 0;
};

// Reads from memory. The view form does not own the bytes: they must outlive the source.
class MemoryByteSource final : public ByteSource {
public:
  explicit MemoryByteSource(std::vector<std::byte> bytes);
  explicit MemoryByteSource(std::span<const std::byte> view);
  // Serves the first `bytes.size()` bytes but reports `apparent_size`: models a large file of which only
  // the header is at hand (reads past the buffer throw ParseError). apparent_size >= bytes.size().
  MemoryByteSource(std::vector<std::byte> bytes, std::uint64_t apparent_size);
  // m_view may point into m_owned: copying would alias the other object's buffer.
  MemoryByteSource(const MemoryByteSource&) = delete;
  MemoryByteSource& operator=(const MemoryByteSource&) = delete;

  std::uint64_t size() const override { return m_size; }
  void read(std::uint64_t offset, std::span<std::byte> out) const override;

private:
  std::vector<std::byte> m_owned;
  std::span<const std::byte> m_view;
  std::uint64_t m_size = 0;
};

} // namespace modelmgr::formats
