#pragma once
// What this machine can run: RAM (honouring cgroup v1/v2 memory limits, as in a container), free disk
// under the cache, CPU features, GPUs. Reads files under a root directory (tests point it at a fake
// /proc + /sys tree) and may run `nvidia-smi`. No printing.
//
// Everything degrades gracefully: a file that is missing or unreadable leaves its facts unknown (0, empty,
// nullopt); probe_system() never throws for the machine's state.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace modelmgr::catalog {

struct GpuInfo {
  std::string name;
  std::uint64_t memory_total_bytes = 0;
  std::optional<std::uint64_t> memory_free_bytes;
  std::string source; // "nvidia-smi" or "/sys/class/drm/cardN"
};

struct SystemInfo {
  std::uint64_t ram_physical_bytes = 0;            // MemTotal; 0 = unknown
  std::optional<std::uint64_t> cgroup_limit_bytes; // tightest memory.max / memory.limit_in_bytes when set
  std::string cgroup_version;                      // "v2", "v1" or "" (no cgroup memory controller seen)
  std::uint64_t ram_total_bytes = 0;               // min(physical, cgroup limit)
  // min(MemAvailable, limit - (usage - inactive page cache)) over the cgroup and its ancestors.
  std::uint64_t ram_available_bytes = 0;
  std::filesystem::path disk_path; // where free space was measured (the cache root)
  bool disk_known = false;         // false: no disk_path given or statvfs failed
  std::uint64_t disk_free_bytes = 0;
  unsigned cpu_threads = 0;              // 0 = unknown
  std::vector<std::string> cpu_features; // subset of, in this order: avx, avx2, avx512f, fma, f16c, neon, sve
  std::vector<GpuInfo> gpus;

  bool ram_known() const noexcept { return ram_total_bytes > 0; }
  bool has_cpu_feature(const std::string& feature) const;
};

struct ProbeOptions {
  std::filesystem::path root = "/"; // prefix for /proc and /sys (test hook: a fake tree)
  std::filesystem::path disk_path;  // measure free space here (nearest existing parent); empty = skip
  bool probe_gpu = true;
  // A bare name is looked up in `search_path`; a name with a "/" is run as it is. Absent or failing = no
  // NVIDIA GPU (never an error).
  std::string nvidia_smi = "nvidia-smi";
  std::optional<std::string> search_path; // PATH-style list for the lookup; nullopt = the process's $PATH
  int nvidia_smi_timeout_ms = 5000;       // killed after this long (a wedged driver can hang it)
};

// Returns what could be learnt about the machine. Never throws for missing or malformed system files;
// std::bad_alloc and the like propagate.
SystemInfo probe_system(const ProbeOptions& options);

// ---- pieces of the probe, exposed for tests ----

// Parses `nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits` output
// (MiB); lines that do not parse are skipped, "[N/A]" memory values become unknown.
std::vector<GpuInfo> parse_nvidia_smi_csv(const std::string& text);

// Returns the full path of `program` found in the PATH-style `search_path` (executable regular files only),
// or nullopt.
std::optional<std::filesystem::path> find_program(const std::string& program, const std::string& search_path);

} // namespace modelmgr::catalog
