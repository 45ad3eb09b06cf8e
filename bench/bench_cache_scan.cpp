// cache::scan_cache on a synthetic cache of 1,000 repos / 50,000 snapshot files: 2 revisions per repo
// (main: 30 files, v1.0: 20 files of which 10 share main's blobs, so 40 blobs per repo), nested folders,
// refs, Python-style relative links. Goal: well under 0.5 s (warm page cache), so `cache ls` stays
// interactive on big caches. The "WithLocks" variant adds one lock file per blob in .locks/ as Python
// leaves them, which costs an open + flock + close each.

#include "cache/scan.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <unistd.h>

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

class SyntheticCache {
public:
  explicit SyntheticCache(bool with_locks)
  {
    char tmpl[] = "/tmp/modelmgr-bench-scan-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      std::abort();
    }
    m_root = fs::path(tmpl) / "hub";
    const std::string c1(40, 'a');
    const std::string c2(40, 'b');
    for (int r = 0; r < k_repos; ++r) {
      const std::string folder = fmt::format("models--org{}--model-{}", r % 37, r);
      const fs::path repo = m_root / folder;
      fs::create_directories(repo / "blobs");
      fs::create_directories(repo / "refs");
      touch(repo / "refs" / "main", c1);
      touch(repo / "refs" / "v1.0", c2);
      if (with_locks) {
        fs::create_directories(m_root / ".locks" / folder);
      }
      const int n_blobs = k_main_files + k_v1_files - k_shared;
      for (int b = 0; b < n_blobs; ++b) {
        const std::string etag = fmt::format("{:064x}", r * 1000 + b);
        touch(repo / "blobs" / etag, std::string(static_cast<std::size_t>(b + 1), 'x'));
        if (with_locks) {
          touch(m_root / ".locks" / folder / (etag + ".lock"), "");
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
  ~SyntheticCache() { fs::remove_all(m_root.parent_path()); }
  const fs::path& root() const { return m_root; }

private:
  fs::path m_root;
};

void run(benchmark::State& state, const SyntheticCache& cache)
{
  std::size_t files = 0;
  for (auto _ : state) {
    const auto info = cache::scan_cache(cache.root());
    files = 0;
    for (const auto& repo : info.repos) {
      for (const auto& rev : repo.revisions) {
        files += rev.files.size();
      }
    }
    benchmark::DoNotOptimize(info.size_on_disk);
  }
  state.counters["repos"] = k_repos;
  state.counters["files"] = static_cast<double>(files);
  state.counters["files/s"] =
      benchmark::Counter(static_cast<double>(files), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_ScanCache(benchmark::State& state)
{
  static const SyntheticCache cache(false);
  run(state, cache);
}
BENCHMARK(BM_ScanCache)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ScanCacheWithLocks(benchmark::State& state)
{
  static const SyntheticCache cache(true);
  run(state, cache);
}
BENCHMARK(BM_ScanCacheWithLocks)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
