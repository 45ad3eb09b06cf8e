// cache::scan_cache on a synthetic cache of 1,000 repos / 50,000 snapshot files: 2 revisions per repo
// (main: 30 files, v1.0: 20 files of which 10 share main's blobs, so 40 blobs per repo), nested folders,
// refs, Python-style relative links. Goal: under 0.5 s (warm page cache), so `cache ls` stays interactive
// on big caches. The "WithLocks" variant adds one lock file per blob in .locks/ as Python leaves them
// (40,000 lock files), which the scan probes with a non-blocking flock each. "Summary" is the scan of
// `cache ls`/`cache du`: without per-file entries (ScanOptions::list_files = false).
//
// References over the same trees, in the same run (see bench/README.md): `find ROOT -printf ''` (a
// getdents walk, no stat per file: the floor for listing the tree) and `du -s ROOT` (a walk plus one fstatat
// per entry: roughly the syscalls a scan that reads sizes and times cannot avoid). Run with
//   --benchmark_repetitions=9 --benchmark_enable_random_interleaving=true
// so that the scan and the references share the machine's slow and fast phases.
//
// MODELMGR_BENCH_SCAN_DIR=DIR builds the caches under DIR and keeps them for the next run (building them
// takes from 20 s to a few minutes, ~800 MB); without it they go to a temporary folder removed at exit.

#include "cache/scan.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace fs = std::filesystem;
using namespace modelmgr;

namespace {

constexpr int k_repos = 1000;
constexpr int k_main_files = 30;
constexpr int k_v1_files = 20;
constexpr int k_shared = 10;

void touch(const fs::path& p, std::string_view content)
{
  std::ofstream(p, std::ios::binary) << content;
}

void build_cache(const fs::path& root, bool with_locks)
{
  const std::string c1(40, 'a');
  const std::string c2(40, 'b');
  for (int r = 0; r < k_repos; ++r) {
    const std::string folder = fmt::format("models--org{}--model-{}", r % 37, r);
    const fs::path repo = root / folder;
    fs::create_directories(repo / "blobs");
    fs::create_directories(repo / "refs");
    touch(repo / "refs" / "main", c1);
    touch(repo / "refs" / "v1.0", c2);
    if (with_locks) {
      fs::create_directories(root / ".locks" / folder);
    }
    const int n_blobs = k_main_files + k_v1_files - k_shared;
    for (int b = 0; b < n_blobs; ++b) {
      const std::string etag = fmt::format("{:064x}", r * 1000 + b);
      touch(repo / "blobs" / etag, std::string(static_cast<std::size_t>(b + 1), 'x'));
      if (with_locks) {
        touch(root / ".locks" / folder / (etag + ".lock"), "");
      }
    }
    const auto link = [&](const std::string& commit, int i, int blob) {
      // A third of the files sit two folders down, as tokenizer/ and onnx/ subfolders do.
      const bool nested = i % 3 == 0;
      const fs::path dir = repo / "snapshots" / commit / (nested ? "sub/dir" : "");
      fs::create_directories(dir);
      const std::string target = std::string(nested ? "../../../../" : "../../") + "blobs/" +
                                 fmt::format("{:064x}", r * 1000 + blob);
      fs::create_symlink(target, dir / fmt::format("file{}.bin", i));
    };
    for (int i = 0; i < k_main_files; ++i) {
      link(c1, i, i);
    }
    for (int i = 0; i < k_v1_files; ++i) {
      link(c2, i, i < k_shared ? i : k_main_files + i - k_shared);
    }
  }
}

class SyntheticCache {
public:
  explicit SyntheticCache(bool with_locks)
  {
    const char* keep = std::getenv("MODELMGR_BENCH_SCAN_DIR");
    fs::path base;
    if (keep != nullptr && *keep != '\0') {
      base = fs::path(keep) / (with_locks ? "with-locks" : "plain");
      m_keep = true;
    } else {
      char tmpl[] = "/tmp/modelmgr-bench-scan-XXXXXX";
      if (::mkdtemp(tmpl) == nullptr) {
        std::abort();
      }
      base = tmpl;
    }
    m_root = base / "hub";
    const fs::path complete = base / "complete";
    if (m_keep && fs::exists(complete)) {
      return;
    }
    fs::remove_all(m_root);
    build_cache(m_root, with_locks);
    touch(complete, "");
  }
  ~SyntheticCache()
  {
    if (!m_keep) {
      fs::remove_all(m_root.parent_path());
    }
  }
  const fs::path& root() const { return m_root; }

private:
  fs::path m_root;
  bool m_keep = false;
};

const SyntheticCache& plain_cache()
{
  static const SyntheticCache cache(false);
  return cache;
}

const SyntheticCache& locks_cache()
{
  static const SyntheticCache cache(true);
  return cache;
}

void run_scan(benchmark::State& state, const SyntheticCache& cache, const cache::ScanOptions& options = {})
{
  std::size_t files = 0;
  for (auto _ : state) {
    const auto info = cache::scan_cache(cache.root(), options);
    files = 0;
    for (const auto& repo : info.repos) {
      for (const auto& rev : repo.revisions) {
        // (every file of a revision has its own blob here, so nb_files counts files too)
        files += options.list_files ? rev.files.size() : rev.nb_files;
      }
    }
    benchmark::DoNotOptimize(info.size_on_disk);
  }
  if (files != static_cast<std::size_t>(k_repos * (k_main_files + k_v1_files))) {
    state.SkipWithError("the scan did not find every file of the synthetic cache");
  }
  state.counters["repos"] = k_repos;
  state.counters["files"] = static_cast<double>(files);
  state.counters["files/s"] =
      benchmark::Counter(static_cast<double>(files), benchmark::Counter::kIsIterationInvariantRate);
}

// Runs `argv` with stdout/stderr to /dev/null and waits for it.
void run_command(benchmark::State& state, const std::vector<std::string>& args)
{
  std::vector<char*> argv;
  for (const auto& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  for (auto _ : state) {
    pid_t pid = 0;
    int status = 0;
    if (::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0 ||
        ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError(("reference command failed: " + args[0]).c_str());
      break;
    }
  }
  posix_spawn_file_actions_destroy(&actions);
}

void BM_ScanCache(benchmark::State& state)
{
  run_scan(state, plain_cache());
}
BENCHMARK(BM_ScanCache)->Unit(benchmark::kMillisecond)->UseRealTime();

// What `cache ls` scans: no per-file entries (ScanOptions::list_files), same totals and problems.
void BM_ScanCacheSummary(benchmark::State& state)
{
  run_scan(state, plain_cache(), {.list_files = false});
}
BENCHMARK(BM_ScanCacheSummary)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ScanCacheWithLocks(benchmark::State& state)
{
  run_scan(state, locks_cache());
}
BENCHMARK(BM_ScanCacheWithLocks)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RefFind(benchmark::State& state)
{
  run_command(state, {"find", plain_cache().root().string(), "-printf", ""});
}
BENCHMARK(BM_RefFind)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RefDu(benchmark::State& state)
{
  run_command(state, {"du", "-s", plain_cache().root().string()});
}
BENCHMARK(BM_RefDu)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RefDuWithLocks(benchmark::State& state)
{
  run_command(state, {"du", "-s", locks_cache().root().string()});
}
BENCHMARK(BM_RefDuWithLocks)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
