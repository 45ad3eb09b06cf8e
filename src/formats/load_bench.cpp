#include "formats/load_bench.hpp"

#include "modelmgr/errors.hpp"

#include "formats/parse_error.hpp"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

namespace modelmgr::formats {
namespace {

constexpr std::uint64_t k_page = 4096;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point start)
{
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Fd {
public:
  explicit Fd(const std::filesystem::path& path) : m_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC))
  {
    if (m_fd < 0) {
      throw std::system_error(errno, std::generic_category(), fmt::format("cannot open {}", path.string()));
    }
  }
  ~Fd() { ::close(m_fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return m_fd; }

private:
  int m_fd;
};

class Mapping {
public:
  Mapping(int fd, std::uint64_t size, const std::filesystem::path& path) : m_size(size)
  {
    if (size == 0) {
      return;
    }
    void* p = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      throw std::system_error(errno, std::generic_category(), fmt::format("cannot mmap {}", path.string()));
    }
    m_data = static_cast<const unsigned char*>(p);
  }
  ~Mapping()
  {
    if (m_data != nullptr) {
      ::munmap(const_cast<unsigned char*>(m_data), static_cast<std::size_t>(m_size));
    }
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const unsigned char* data() const noexcept { return m_data; }

private:
  const unsigned char* m_data = nullptr;
  std::uint64_t m_size;
};

void check_cancel(const LoadBenchOptions& options)
{
  if (options.cancelled && options.cancelled()) {
    throw ModelManagerError(ErrorKind::interrupted, "bench-load interrupted");
  }
}

// Fraction of the file's pages in the page cache (mincore over a fresh mapping; touches nothing).
double resident_fraction(const std::filesystem::path& path, std::uint64_t size)
{
  if (size == 0) {
    return 0;
  }
  const Fd fd(path);
  const Mapping map(fd.get(), size, path);
  const long sys_page = ::sysconf(_SC_PAGESIZE);
  const std::uint64_t page = sys_page > 0 ? static_cast<std::uint64_t>(sys_page) : k_page;
  std::vector<unsigned char> vec(static_cast<std::size_t>((size + page - 1) / page));
  if (::mincore(const_cast<unsigned char*>(map.data()), static_cast<std::size_t>(size), vec.data()) != 0) {
    return 0;
  }
  std::uint64_t resident = 0;
  for (const auto v : vec) {
    resident += v & 1u;
  }
  return static_cast<double>(resident) / static_cast<double>(vec.size());
}

void prepare(LoadBenchPass& pass, const std::filesystem::path& path, std::uint64_t size,
             const LoadBenchOptions& options)
{
  if (options.drop_cache && size > 0) {
    const Fd fd(path);
    // Dirty pages cannot be dropped: a file written moments ago (a fresh download) is flushed first.
    (void)::fdatasync(fd.get());
    pass.cache_dropped = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED) == 0;
  }
  pass.resident_before = resident_fraction(path, size);
  pass.bytes = size;
}

struct FirstTensor {
  std::string name;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// The tensor whose bytes come first in the file, from the header; nullopt for formats without offsets.
std::optional<FirstTensor> first_tensor(const ByteSource& source, FileFormat format, const std::string& name)
{
  std::optional<FirstTensor> first;
  auto consider = [&](const std::string& tensor, std::uint64_t begin, std::uint64_t bytes) {
    if (bytes > 0 && (!first || begin < first->begin)) {
      first = FirstTensor{tensor, begin, begin + bytes};
    }
  };
  if (format == FileFormat::gguf) {
    for (const auto& t : parse_gguf(source, name).tensors) {
      consider(t.name, t.file_offset, t.n_bytes);
    }
  } else if (format == FileFormat::safetensors) {
    for (const auto& t : parse_safetensors(source, name).tensors) {
      consider(t.name, t.file_offset, t.n_bytes());
    }
  }
  return first;
}

void mmap_pass(LoadBenchFile& r, const LoadBenchOptions& options)
{
  auto& pass = r.mmap;
  prepare(pass, r.path, r.file_size, options);
  const auto start = Clock::now();
  const Fd fd(r.path);
  const Mapping map(fd.get(), r.file_size, r.path);
  const unsigned char* p = map.data();
  const MemoryByteSource view(std::span<const std::byte>(reinterpret_cast<const std::byte*>(p),
                                                         static_cast<std::size_t>(r.file_size)));
  const auto first = first_tensor(view, r.format, r.path.filename().string());
  std::uint64_t sink = 0;
  if (first) {
    for (std::uint64_t off = first->begin - first->begin % k_page; off < first->end; off += k_page) {
      sink += p[off];
    }
    pass.first_tensor_seconds = since(start);
    r.first_tensor = first->name;
    r.first_tensor_end = first->end;
  }
  std::uint64_t sum = 0;
  constexpr std::uint64_t k_check_every = 8ull << 20;
  for (std::uint64_t off = 0; off < r.file_size; off += k_page) {
    sum += p[off];
    ++pass.pages;
    if (off % k_check_every == 0) {
      check_cancel(options);
    }
  }
  pass.seconds = since(start);
  // `sink` is part of the work (the first tensor's pages); fold it in where the compiler cannot drop it.
  pass.checksum = sum;
  if (sink == 1ull << 63) {
    pass.checksum ^= 1;
  }
}

void read_pass(LoadBenchFile& r, const LoadBenchOptions& options)
{
  auto& pass = r.read;
  prepare(pass, r.path, r.file_size, options);
  const std::uint64_t block =
      std::max<std::uint64_t>(k_page, options.read_block - options.read_block % k_page);
  const auto start = Clock::now();
  const Fd fd(r.path);
  std::optional<FirstTensor> first;
  {
    const FileByteSource source(r.path);
    first = first_tensor(source, r.format, r.path.filename().string());
  }
  std::unique_ptr<unsigned char, decltype(&std::free)> buf(
      static_cast<unsigned char*>(std::aligned_alloc(k_page, static_cast<std::size_t>(block))), &std::free);
  if (!buf) {
    throw std::bad_alloc();
  }
  std::uint64_t offset = 0;
  std::uint64_t sum = 0;
  while (offset < r.file_size) {
    check_cancel(options);
    const std::uint64_t want = std::min(block, r.file_size - offset);
    std::uint64_t got = 0;
    while (got < want) {
      const ssize_t n = ::read(fd.get(), buf.get() + got, static_cast<std::size_t>(want - got));
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        throw std::system_error(errno, std::generic_category(),
                                fmt::format("cannot read {}", r.path.string()));
      }
      if (n == 0) {
        throw ParseError(r.path.filename().string(), "read", offset + got,
                         fmt::format("unexpected end of file (size was {})", r.file_size));
      }
      got += static_cast<std::uint64_t>(n);
    }
    for (std::uint64_t i = 0; i < want; i += k_page) {
      sum += buf.get()[i];
      ++pass.pages;
    }
    offset += want;
    if (first && !pass.first_tensor_seconds && offset >= first->end) {
      pass.first_tensor_seconds = since(start);
    }
  }
  pass.seconds = since(start);
  pass.checksum = sum;
}

} // namespace

LoadBenchFile bench_load_file(const std::filesystem::path& path, const LoadBenchOptions& options)
{
  LoadBenchFile r;
  r.path = path;
  {
    const FileByteSource source(path); // also refuses what is not a regular file
    r.file_size = source.size();
  }
  r.format = detect_format(path);
  mmap_pass(r, options);
  read_pass(r, options);
  return r;
}

} // namespace modelmgr::formats
