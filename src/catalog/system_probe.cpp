// The system probe: plain reads of /proc and /sys (under a configurable root, so tests can fake them),
// statvfs for the disk, and one bounded run of `nvidia-smi`. Every read is allowed to fail: a fact that
// cannot be read stays unknown.

#include "catalog/system_probe.hpp"

#include "util/fs.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace modelmgr::catalog {

namespace fs = std::filesystem;

namespace {

// /proc/cpuinfo of a 256-thread machine is about 1 MiB; nothing we read is larger.
constexpr std::size_t k_max_file_bytes = 8u << 20;

// cgroup v1 reports "no limit" as LONG_MAX rounded down to a page (9223372036854771712 with 4 KiB pages,
// other values with 16/64 KiB pages). Anything this large is no limit.
constexpr std::uint64_t k_unlimited_threshold = 1ull << 62;

// Returns the content of a small system file, or nullopt when it is missing or unreadable.
std::optional<std::string> read_small_file(const fs::path& path)
{
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::nullopt;
  }
  std::string out;
  std::array<char, 1 << 14> buf{};
  while (in && out.size() < k_max_file_bytes) {
    in.read(buf.data(), buf.size());
    out.append(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::uint64_t> parse_u64(std::string_view text)
{
  text = util::trim(text);
  std::uint64_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || text.empty()) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::uint64_t> read_u64_file(const fs::path& path)
{
  auto text = read_small_file(path);
  if (!text) {
    return std::nullopt;
  }
  return parse_u64(*text);
}

std::string read_trimmed(const fs::path& path)
{
  auto text = read_small_file(path);
  return text ? std::string(util::trim(*text)) : std::string();
}

std::vector<std::string_view> split_lines(std::string_view text)
{
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) {
      break;
    }
    text.remove_prefix(nl + 1);
  }
  return lines;
}

std::vector<std::string_view> split_words(std::string_view text)
{
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
      ++i;
    }
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\t') {
      ++j;
    }
    if (j > i) {
      words.push_back(text.substr(i, j - i));
    }
    i = j;
  }
  return words;
}

// "Key:   value" lines (meminfo, cpuinfo, memory.stat use ":" or " " as the separator).
std::pair<std::string_view, std::string_view> split_key(std::string_view line, char sep)
{
  auto pos = line.find(sep);
  if (pos == std::string_view::npos) {
    return {util::trim(line), {}};
  }
  return {util::trim(line.substr(0, pos)), util::trim(line.substr(pos + 1))};
}

// ---- RAM ----

struct MemInfo {
  std::optional<std::uint64_t> total;
  std::optional<std::uint64_t> available;
};

MemInfo read_meminfo(const fs::path& root)
{
  MemInfo info;
  auto text = read_small_file(root / "proc/meminfo");
  if (!text) {
    return info;
  }
  std::optional<std::uint64_t> free;
  for (auto line : split_lines(*text)) {
    auto [key, rest] = split_key(line, ':');
    // "MemTotal:       16303412 kB": the kernel always prints kB (KiB).
    auto words = split_words(rest);
    if (words.empty()) {
      continue;
    }
    auto value = parse_u64(words[0]);
    if (!value) {
      continue;
    }
    const std::uint64_t scale = words.size() > 1 && words[1] == "kB" ? 1024 : 1;
    if (key == "MemTotal") {
      info.total = *value * scale;
    } else if (key == "MemAvailable") {
      info.available = *value * scale;
    } else if (key == "MemFree") {
      free = *value * scale;
    }
  }
  // MemAvailable exists since Linux 3.14; before that MemFree is the conservative answer.
  if (!info.available) {
    info.available = free;
  }
  return info;
}

struct CgroupMemory {
  std::string version;
  std::optional<std::uint64_t> limit;
  std::optional<std::uint64_t> available;
};

// The directories to look at for the cgroup `cgroup_path` ("/a/b") under `base`, deepest first, ending with
// `base` itself. A limit on any ancestor applies to the process too. A path with ".." (a process outside
// its cgroup namespace's root) cannot be mapped: only `base` is used.
std::vector<fs::path> cgroup_levels(const fs::path& base, std::string_view cgroup_path)
{
  std::vector<std::string_view> parts;
  bool escaped = false;
  std::size_t i = 0;
  while (i <= cgroup_path.size()) {
    auto j = cgroup_path.find('/', i);
    if (j == std::string_view::npos) {
      j = cgroup_path.size();
    }
    auto part = cgroup_path.substr(i, j - i);
    if (part == "..") {
      escaped = true;
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::vector<fs::path> levels;
  if (!escaped) {
    for (std::size_t n = parts.size(); n > 0; --n) {
      fs::path dir = base;
      for (std::size_t k = 0; k < n; ++k) {
        dir /= std::string(parts[k]);
      }
      levels.push_back(dir);
    }
  }
  levels.push_back(base);
  return levels;
}

// Page cache the kernel can drop before the cgroup hits its limit: what `docker stats` subtracts too.
std::uint64_t inactive_file_bytes(const fs::path& stat_file, std::string_view key)
{
  auto text = read_small_file(stat_file);
  if (!text) {
    return 0;
  }
  for (auto line : split_lines(*text)) {
    auto [k, v] = split_key(line, ' ');
    if (k == key) {
      return parse_u64(v).value_or(0);
    }
  }
  return 0;
}

struct CgroupFiles {
  const char* limit;
  const char* usage;
  const char* inactive_key; // in memory.stat
};

// Walks `levels` and combines the limits: the tightest limit, and the least headroom below a limit.
// Returns false when no level has the limit file (no such controller here).
bool read_cgroup_levels(const std::vector<fs::path>& levels, const CgroupFiles& files, CgroupMemory& out)
{
  bool seen = false;
  for (const auto& dir : levels) {
    auto text = read_small_file(dir / files.limit);
    if (!text) {
      continue;
    }
    seen = true;
    auto trimmed = util::trim(*text);
    if (trimmed == "max") {
      continue;
    }
    auto limit = parse_u64(trimmed);
    if (!limit || *limit >= k_unlimited_threshold) {
      continue;
    }
    std::uint64_t available = *limit;
    if (auto usage = read_u64_file(dir / files.usage)) {
      std::uint64_t inactive = inactive_file_bytes(dir / "memory.stat", files.inactive_key);
      std::uint64_t used = *usage > inactive ? *usage - inactive : 0;
      available = used >= *limit ? 0 : *limit - used;
    }
    out.limit = out.limit ? std::min(*out.limit, *limit) : *limit;
    out.available = out.available ? std::min(*out.available, available) : available;
  }
  return seen;
}

CgroupMemory read_cgroup_memory(const fs::path& root)
{
  // /proc/self/cgroup: "hierarchy-ID:controller-list:path"; v2 is "0::/path", v1 lists "memory".
  std::optional<std::string> v2_path;
  std::optional<std::string> v1_path;
  if (auto text = read_small_file(root / "proc/self/cgroup")) {
    for (auto line : split_lines(*text)) {
      auto c1 = line.find(':');
      auto c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
      if (c2 == std::string_view::npos) {
        continue;
      }
      auto id = line.substr(0, c1);
      auto controllers = line.substr(c1 + 1, c2 - c1 - 1);
      auto path = line.substr(c2 + 1);
      if (id == "0" && controllers.empty()) {
        v2_path = std::string(path);
        continue;
      }
      std::size_t i = 0;
      while (i <= controllers.size()) {
        auto j = controllers.find(',', i);
        if (j == std::string_view::npos) {
          j = controllers.size();
        }
        if (controllers.substr(i, j - i) == "memory") {
          v1_path = std::string(path);
        }
        i = j + 1;
      }
    }
  }

  const fs::path v2_base = root / "sys/fs/cgroup";
  const fs::path v1_base = root / "sys/fs/cgroup/memory";
  CgroupMemory mem;
  // Hybrid hierarchies have both; the memory controller lives in v1 then, and v2's files are absent.
  if (read_cgroup_levels(cgroup_levels(v2_base, v2_path.value_or("/")),
                         {"memory.max", "memory.current", "inactive_file"}, mem)) {
    mem.version = "v2";
    return mem;
  }
  if (read_cgroup_levels(cgroup_levels(v1_base, v1_path.value_or("/")),
                         {"memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"}, mem)) {
    mem.version = "v1";
  }
  return mem;
}

// ---- CPU ----

void read_cpuinfo(const fs::path& root, SystemInfo& info)
{
  auto text = read_small_file(root / "proc/cpuinfo");
  if (!text) {
    return;
  }
  unsigned processors = 0;
  std::set<std::string_view> flags;
  bool have_flags = false;
  for (auto line : split_lines(*text)) {
    auto [key, value] = split_key(line, ':');
    if (key == "processor") {
      ++processors;
    } else if (!have_flags && (key == "flags" || key == "Features")) {
      // x86: "flags"; arm64: "Features". Every core lists the same set: the first line is enough.
      have_flags = true;
      for (auto w : split_words(value)) {
        flags.insert(w);
      }
    }
  }
  info.cpu_threads = processors;
  const std::pair<const char*, const char*> known[] = {
      {"avx", "avx"},   {"avx2", "avx2"},  {"avx512f", "avx512f"}, {"fma", "fma"},
      {"f16c", "f16c"}, {"asimd", "neon"}, {"sve", "sve"},
  };
  for (const auto& [flag, feature] : known) {
    if (flags.count(flag) != 0) {
      info.cpu_features.emplace_back(feature);
    }
  }
}

// ---- running nvidia-smi ----

struct Fd {
  int fd = -1;
  ~Fd()
  {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

// Runs `program` with `args` (no shell), stdin and stderr on /dev/null, and returns its stdout if it exits
// with status 0 within `timeout_ms`; otherwise kills it and returns nullopt.
std::optional<std::string> run_capture(const fs::path& program, const std::vector<std::string>& args,
                                       int timeout_ms)
{
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return std::nullopt;
  }
  Fd read_end{fds[0]};
  Fd write_end{fds[1]};

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.fd, 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  // The CLI ignores SIGPIPE; an ignored signal stays ignored across exec, so give the child the default.
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> argv_storage;
  argv_storage.push_back(program.string());
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return std::nullopt;
  }
  ::close(write_end.fd);
  write_end.fd = -1;

  std::string out;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      timed_out = true;
      break;
    }
    if (n == 0) {
      continue; // the deadline check above ends the loop
    }
    std::array<char, 4096> buf{};
    ssize_t got = ::read(read_end.fd, buf.data(), buf.size());
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        continue;
      }
      break;
    }
    if (got == 0) {
      break; // EOF: the child closed stdout (normally by exiting)
    }
    if (out.size() < (1u << 20)) {
      out.append(buf.data(), static_cast<std::size_t>(got));
    }
  }
  if (timed_out) {
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return std::nullopt;
    }
  }
  if (timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return std::nullopt;
  }
  return out;
}

std::vector<GpuInfo> probe_nvidia(const ProbeOptions& options)
{
  std::optional<fs::path> program;
  if (options.nvidia_smi.find('/') != std::string::npos) {
    program = fs::path(options.nvidia_smi);
  } else {
    std::string search;
    if (options.search_path) {
      search = *options.search_path;
    } else if (const char* env_path = std::getenv("PATH")) {
      search = env_path;
    }
    program = find_program(options.nvidia_smi, search);
  }
  if (!program) {
    return {};
  }
  auto out =
      run_capture(*program, {"--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"},
                  options.nvidia_smi_timeout_ms);
  if (!out) {
    return {};
  }
  return parse_nvidia_smi_csv(*out);
}

std::string vendor_name(std::string_view vendor_id)
{
  if (vendor_id == "0x1002") {
    return "AMD";
  }
  if (vendor_id == "0x10de") {
    return "NVIDIA";
  }
  if (vendor_id == "0x8086") {
    return "Intel";
  }
  return "GPU vendor " + std::string(vendor_id.empty() ? "unknown" : vendor_id);
}

// amdgpu exposes VRAM size and use under /sys/class/drm/cardN/device/; other drivers do not (NVIDIA's
// proprietary driver is covered by nvidia-smi).
std::vector<GpuInfo> probe_drm(const fs::path& root)
{
  std::map<unsigned, fs::path> cards; // ordered by card number
  std::error_code ec;
  fs::directory_iterator it(root / "sys/class/drm", ec);
  if (ec) {
    return {};
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) {
      break;
    }
    const std::string name = it->path().filename().string();
    // card0, card1 ...; card0-DP-1 and renderD128 are connectors and render nodes.
    if (name.size() <= 4 || name.compare(0, 4, "card") != 0) {
      continue;
    }
    auto number = parse_u64(std::string_view(name).substr(4));
    if (!number || *number > 1'000'000) {
      continue;
    }
    cards.emplace(static_cast<unsigned>(*number), it->path());
  }
  std::vector<GpuInfo> gpus;
  for (const auto& [number, dir] : cards) {
    const fs::path device = dir / "device";
    auto total = read_u64_file(device / "mem_info_vram_total");
    if (!total || *total == 0) {
      continue;
    }
    GpuInfo gpu;
    gpu.memory_total_bytes = *total;
    if (auto used = read_u64_file(device / "mem_info_vram_used")) {
      gpu.memory_free_bytes = *used >= *total ? 0 : *total - *used;
    }
    gpu.name = read_trimmed(device / "product_name");
    if (gpu.name.empty()) {
      gpu.name = vendor_name(read_trimmed(device / "vendor")) + " GPU";
      if (auto id = read_trimmed(device / "device"); !id.empty()) {
        gpu.name += " " + id;
      }
    }
    gpu.source = "/sys/class/drm/card" + std::to_string(number);
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

} // namespace

bool SystemInfo::has_cpu_feature(const std::string& feature) const
{
  return std::find(cpu_features.begin(), cpu_features.end(), feature) != cpu_features.end();
}

std::vector<GpuInfo> parse_nvidia_smi_csv(const std::string& text)
{
  constexpr std::uint64_t mib = 1024 * 1024;
  std::vector<GpuInfo> gpus;
  for (auto line : split_lines(text)) {
    // "NVIDIA GeForce RTX 3090, 24576, 23872": the name may contain spaces but not commas.
    auto c2 = line.rfind(',');
    if (c2 == std::string_view::npos) {
      continue;
    }
    auto c1 = line.rfind(',', c2 == 0 ? 0 : c2 - 1);
    if (c1 == std::string_view::npos || c1 == c2) {
      continue;
    }
    GpuInfo gpu;
    gpu.name = std::string(util::trim(line.substr(0, c1)));
    auto total = parse_u64(line.substr(c1 + 1, c2 - c1 - 1));
    auto free = parse_u64(line.substr(c2 + 1));
    if (gpu.name.empty() || !total) {
      continue;
    }
    gpu.memory_total_bytes = *total * mib;
    if (free) {
      gpu.memory_free_bytes = *free * mib;
    }
    gpu.source = "nvidia-smi";
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

std::optional<fs::path> find_program(const std::string& program, const std::string& search_path)
{
  if (program.empty()) {
    return std::nullopt;
  }
  std::string_view rest = search_path;
  while (true) {
    auto colon = rest.find(':');
    auto dir = rest.substr(0, colon);
    // An empty PATH entry means the current directory (POSIX); we do not run programs from there.
    if (!dir.empty()) {
      fs::path candidate = fs::path(std::string(dir)) / program;
      std::error_code ec;
      if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) {
        return candidate;
      }
    }
    if (colon == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(colon + 1);
  }
  return std::nullopt;
}

SystemInfo probe_system(const ProbeOptions& options)
{
  SystemInfo info;
  const fs::path& root = options.root;

  const MemInfo mem = read_meminfo(root);
  const CgroupMemory cg = read_cgroup_memory(root);
  info.ram_physical_bytes = mem.total.value_or(0);
  info.cgroup_version = cg.version;
  info.cgroup_limit_bytes = cg.limit;
  info.ram_total_bytes = info.ram_physical_bytes;
  if (cg.limit) {
    info.ram_total_bytes = info.ram_total_bytes == 0 ? *cg.limit : std::min(info.ram_total_bytes, *cg.limit);
  }
  if (mem.available && cg.available) {
    info.ram_available_bytes = std::min(*mem.available, *cg.available);
  } else {
    info.ram_available_bytes = mem.available ? *mem.available : cg.available.value_or(0);
  }
  info.ram_available_bytes = std::min(info.ram_available_bytes, info.ram_total_bytes);

  if (!options.disk_path.empty()) {
    info.disk_path = options.disk_path;
    try {
      info.disk_free_bytes = util::free_space(options.disk_path);
      info.disk_known = true;
    } catch (const std::system_error&) {
      info.disk_known = false;
    }
  }

  read_cpuinfo(root, info);
  std::error_code ec;
  if (fs::equivalent(root, "/", ec)) {
    // The real machine: taskset/cpusets can allow fewer CPUs than /proc/cpuinfo lists.
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof(set), &set) == 0) {
      auto allowed = static_cast<unsigned>(CPU_COUNT(&set));
      if (allowed > 0 && (info.cpu_threads == 0 || allowed < info.cpu_threads)) {
        info.cpu_threads = allowed;
      }
    }
    if (info.cpu_threads == 0) {
      info.cpu_threads = std::thread::hardware_concurrency();
    }
  }

  if (options.probe_gpu) {
    info.gpus = probe_nvidia(options);
    auto drm = probe_drm(root);
    info.gpus.insert(info.gpus.end(), drm.begin(), drm.end());
  }
  return info;
}

} // namespace modelmgr::catalog
