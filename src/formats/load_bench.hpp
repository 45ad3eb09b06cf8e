#pragma once
// The load benchmark behind `modelmgr bench-load`: how fast the weights of a file reach memory when mapped
// (as llama.cpp and safetensors load them) compared with a plain sequential read() of the same bytes.
// Measures only; the CLI renders.
//
// Per file, two passes, mmap first, then read:
//   mmap  open, mmap the whole file, parse the header from the mapping, touch every 4 KiB page of the first
//         tensor (time to first tensor), then one byte of every 4 KiB page of the file (total time).
//   read  open, parse the header with pread, then read() the file from the start in 8 MiB blocks, summing
//         one byte per 4 KiB page; time to first tensor = when the bytes up to its end have been read.
// Before each pass the file's pages are dropped from the page cache with posix_fadvise(DONTNEED), so
// neither pass profits from the other (unless drop_cache is off); the file is fdatasync'ed first so that
// dirty pages can go too. DONTNEED is advice: pages mapped by another process stay, and tmpfs keeps
// everything; `resident_before` (mincore) says
// how much of the file was still cached when each pass started. Both passes sum the same bytes, so their
// checksums must agree.

#include "formats/load_check.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace modelmgr::formats {

struct LoadBenchOptions {
  std::uint64_t read_block = 8ull << 20;
  bool drop_cache = true;
  // Polled between blocks; returning true stops the benchmark with an `interrupted` ModelManagerError.
  std::function<bool()> cancelled;
};

struct LoadBenchPass {
  std::uint64_t bytes = 0; // bytes covered: the file size
  std::uint64_t pages = 0; // 4 KiB pages touched
  double seconds = 0;      // whole pass, including open and header parse
  std::optional<double> first_tensor_seconds;
  double resident_before = 0; // fraction (0..1) of the file's pages in the page cache at the start
  bool cache_dropped = false; // posix_fadvise(DONTNEED) was issued before the pass
  std::uint64_t checksum = 0; // sum of the byte at every 4 KiB page offset
  double gb_per_s() const noexcept { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0; }
};

struct LoadBenchFile {
  std::filesystem::path path;
  FileFormat format = FileFormat::unknown;
  std::uint64_t file_size = 0;
  std::string first_tensor;           // name; empty when the format has no tensor offsets (ONNX) or none
  std::uint64_t first_tensor_end = 0; // file offset just past the first tensor's bytes
  LoadBenchPass mmap;
  LoadBenchPass read;
  // mmap throughput over read throughput (> 1: mapping was faster).
  double ratio() const noexcept { return read.gb_per_s() > 0 ? mmap.gb_per_s() / read.gb_per_s() : 0; }
};

// Throws ParseError when the header does not parse, std::system_error on I/O errors, ModelManagerError
// (interrupted) when cancelled.
LoadBenchFile bench_load_file(const std::filesystem::path& path, const LoadBenchOptions& options = {});

} // namespace modelmgr::formats
