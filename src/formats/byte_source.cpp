#include "formats/byte_source.hpp"

#include "formats/parse_error.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::formats {

FileByteSource::FileByteSource(const std::filesystem::path& path) : m_path(path)
{
  m_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (m_fd < 0) {
    throw std::system_error(errno, std::generic_category(), fmt::format("cannot open {}", path.string()));
  }
  struct stat st {};
  if (::fstat(m_fd, &st) != 0) {
    const int err = errno;
    ::close(m_fd);
    throw std::system_error(err, std::generic_category(), fmt::format("cannot stat {}", path.string()));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(m_fd);
    throw std::system_error(EINVAL, std::generic_category(),
                            fmt::format("{} is not a regular file", path.string()));
  }
  m_size = static_cast<std::uint64_t>(st.st_size);
}

FileByteSource::~FileByteSource()
{
  if (m_fd >= 0) {
    ::close(m_fd);
  }
}

void FileByteSource::read(std::uint64_t offset, std::span<std::byte> out) const
{
  if (offset > m_size || out.size() > m_size - offset) {
    throw ParseError(m_path.filename().string(), "read", offset,
                     fmt::format("{} bytes requested past file size {}", out.size(), m_size));
  }
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(m_fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::system_error(errno, std::generic_category(), fmt::format("cannot read {}", m_path.string()));
    }
    if (n == 0) {
      // The file shrank after we took its size (e.g. a download restarted over it).
      throw ParseError(m_path.filename().string(), "read", offset + done,
                       fmt::format("unexpected end of file (size was {} at open)", m_size));
    }
    done += static_cast<std::size_t>(n);
  }
}

MemoryByteSource::MemoryByteSource(std::vector<std::byte> bytes)
    : m_owned(std::move(bytes)), m_view(m_owned), m_size(m_owned.size())
{
}

MemoryByteSource::MemoryByteSource(std::span<const std::byte> view) : m_view(view), m_size(view.size()) {}

MemoryByteSource::MemoryByteSource(std::vector<std::byte> bytes, std::uint64_t apparent_size)
    : m_owned(std::move(bytes)), m_view(m_owned),
      m_size(std::max<std::uint64_t>(apparent_size, m_owned.size()))
{
}

void MemoryByteSource::read(std::uint64_t offset, std::span<std::byte> out) const
{
  if (offset > m_size || out.size() > m_size - offset) {
    throw ParseError("<memory>", "read", offset,
                     fmt::format("{} bytes requested past size {}", out.size(), m_size));
  }
  if (offset > m_view.size() || out.size() > m_view.size() - offset) {
    throw ParseError(
        "<memory>", "read", offset,
        fmt::format("{} bytes requested past the {} bytes held in memory", out.size(), m_view.size()));
  }
  if (!out.empty()) {
    std::memcpy(out.data(), m_view.data() + offset, out.size());
  }
}

} // namespace modelmgr::formats
