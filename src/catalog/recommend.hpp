#pragma once
// Choosing a catalog variant for a machine: does it fit (RAM with headroom, disk unless cached, GPU
// memory when a GPU is there), which is the best that fits, and why the larger ones do not. Pure
// functions over the catalog and a SystemInfo (plus ram_from_gguf(), which reads a file's header).
//
// The rules (docs/recommend.md):
// - RAM needed: the estimate from the cached file's own GGUF header (weights + KV cache for the context
//   + overhead) when there is one, else the catalog's min_ram_bytes, else the download size.
// - Headroom: max(1 GiB, 10% of the usable RAM) stays free for the OS, the server's own allocations and
//   other programs, and absorbs the error of the estimate.
// - In RAM: needed + headroom <= available RAM (MemAvailable, and below the cgroup limit in a container).
// - On a GPU: needed <= the GPU's free memory (its total when the driver does not say), on the GPU with the
//   most; llama.cpp offloads weights and KV cache there, so the same figure is used.
// - Disk: the download size + 10% margin <= free disk under the cache, unless the variant is cached.
// Unknown RAM or disk (the probe could not read them) is not held against a variant.

#include "catalog/catalog.hpp"
#include "catalog/system_probe.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace modelmgr::catalog {

struct FitInput {
  const Entry* entry = nullptr;
  const Variant* variant = nullptr;
  bool cached = false;                          // already complete in the cache: needs no disk
  std::optional<std::uint64_t> ram_from_header; // computed from the cached file's own header (GGUF)
};

struct Fit {
  bool fits = false;                   // (ram_ok || gpu_ok) && disk_ok
  std::uint64_t ram_needed_bytes = 0;  // from the header when known, else the catalog's min_ram_bytes
  std::string ram_source;              // "header", "catalog" or "download size" (catalog gives no RAM)
  std::uint64_t headroom_bytes = 0;    // kept free in RAM on top of ram_needed_bytes
  bool ram_ok = false;                 // needed + headroom <= available (true when RAM is unknown)
  bool gpu_ok = false;                 // needed <= free memory of the best GPU
  std::optional<std::size_t> gpu;      // index into SystemInfo::gpus of the GPU judged (the one with most)
  bool disk_ok = false;                // cached, or download + 10% <= free disk (true when disk is unknown)
  std::uint64_t disk_needed_bytes = 0; // 0 when cached
  std::string where;                   // when it fits: "RAM" or "GPU memory (NAME)" (RAM preferred when both)
  std::string reason; // why not, e.g. "needs 9.1 GiB RAM + 1.0 GiB headroom, 6.2 GiB available"
};

// Returns max(1 GiB, 10% of the usable RAM).
std::uint64_t ram_headroom_bytes(const SystemInfo& system) noexcept;

// Returns whether `input` (entry and variant set) fits `system`, with reasons. Throws
// std::invalid_argument when entry or variant is null.
Fit check_fit(const FitInput& input, const SystemInfo& system);

struct Recommendation {
  std::optional<FitInput> best; // empty: nothing fits
  std::optional<Fit> best_fit;  // set with `best`
  // Candidates of the use case that do not fit and are larger than `best` (all that do not fit when
  // nothing does), smallest first: the nearest miss leads.
  std::vector<std::pair<FitInput, Fit>> rejected;
  std::size_t considered = 0; // candidates of the use case
  std::string summary;        // describe_system(system)
};

// Picks, among the candidates whose entry lists `use_case` (case-insensitive; "" = all), the largest
// download that fits (a larger quantization or model is the better one), preferring the entry's default
// variant on equal sizes, then the candidates' order.
Recommendation recommend(const std::vector<FitInput>& candidates, const SystemInfo& system,
                         const std::string& use_case);

// "15.5 GiB RAM (12.0 GiB available, cgroup limit 8.0 GiB), 50.0 GiB free disk, 8 threads, AVX2, GPU: none"
std::string describe_system(const SystemInfo& system);

// Returns the RAM a GGUF file needs with `context_length` tokens (0: the file's trained context), from its
// own header (formats::estimate_ram_bytes), or nullopt when the file is missing, not GGUF or malformed.
std::optional<std::uint64_t> ram_from_gguf(const std::filesystem::path& path, std::uint64_t context_length);

} // namespace modelmgr::catalog
