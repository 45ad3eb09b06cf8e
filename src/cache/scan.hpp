#pragma once
// Read-only inspection of a Hugging Face cache directory (any client's: Python, JS, hf-hub, llama.cpp,
// modelmgr), in the spirit of huggingface_hub's scan_cache_dir() (hub-protocol.md §8.1), with two
// differences:
//   * nothing aborts a repo: every anomaly becomes a CacheProblem and the rest of the repo is still
//     reported (Python drops the whole repo on the first corrupt revision);
//   * blobs/ is listed too, so orphan blobs, leftover temp files and stale locks are found.
// No network, no printing, no writes (stale locks are probed with a non-blocking flock, never removed).

#include "cache/paths.hpp"
#include "util/time.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::cache {

enum class ProblemKind {
  broken_symlink,   // snapshot entry whose target does not exist
  missing_snapshot, // ref naming a commit without snapshots/<commit>/
  bad_ref,          // ref file whose content is not a 40-hex commit, or unreadable
  orphan_blob,      // blobs/<x> referenced by no snapshot entry
  temp_file,        // blobs/*.incomplete, .<name>.<8hex>.tmp, refs/<name>.<8hex>.tmp
  stale_lock,       // .locks/<folder>/*.lock (or hf-hub 0.x blobs/*.lock) that nobody holds
  not_a_directory,  // a file where a folder belongs (cache root entry, snapshots/<x>, refs)
  bad_folder_name,  // cache root folder that is not `<type>s--<id>` with a known type
  bad_layout,       // repo without snapshots/
  io_error,         // something could not be read
};

// Returns "broken_symlink", "missing_snapshot", ... (stable: used in JSON output).
std::string_view to_string(ProblemKind kind) noexcept;

struct CacheProblem {
  ProblemKind kind;
  std::filesystem::path path;
  std::string repo;       // repo folder name, empty for cache-level problems
  std::string message;    // what is wrong, for people
  std::uint64_t size = 0; // bytes the entry occupies (orphan blobs, temp files), else 0
};

struct CachedFile {
  std::string path;                // repo-relative, "/"-separated
  std::filesystem::path file_path; // the entry under snapshots/<commit>/
  std::filesystem::path blob_path; // what it resolves to (itself in symlink-less caches)
  std::uint64_t size = 0;          // apparent size of the blob
  util::SystemTime last_accessed{};
  util::SystemTime last_modified{};
};

struct CachedRevision {
  std::string commit; // the snapshot folder name
  std::filesystem::path path;
  std::vector<std::string> refs;  // sorted
  std::vector<CachedFile> files;  // sorted by path
  std::uint64_t size_on_disk = 0; // distinct blobs of this revision
  std::size_t nb_files = 0;       // distinct blobs of this revision
  util::SystemTime last_modified{};
};

struct CachedRepo {
  std::string repo_id;
  RepoType type = RepoType::model;
  std::string folder; // "models--org--name"
  std::filesystem::path path;
  std::uint64_t size_on_disk = 0; // distinct blobs across revisions, counted once
  std::size_t nb_files = 0;       // distinct blobs across revisions
  util::SystemTime last_accessed{};
  util::SystemTime last_modified{};
  std::map<std::string, std::string> refs; // "main" / "refs/pr/1" → commit (trimmed content)
  std::vector<CachedRevision> revisions;   // sorted by commit

  // Returns "model/org/name", the ID column of `hf cache ls`.
  std::string display_id() const;
};

struct CacheInfo {
  std::filesystem::path root;
  bool exists = false;
  std::vector<CachedRepo> repos; // sorted by folder name
  std::vector<CacheProblem> problems;
  std::uint64_t size_on_disk = 0; // sum of the repo sizes

  std::size_t revision_count() const;
};

struct ScanOptions {
  // Probe every lock file (.locks/**/*.lock, blobs/*.lock) with a non-blocking flock and report those
  // nobody holds as stale_lock. Costs three system calls per lock file (a cache keeps one per blob it
  // ever downloaded); callers that ignore locks (sizes, `cache du`) turn it off.
  bool check_locks = true;
  // Fill CachedRevision::files. Without them sizes, counts, times and problems are the same, and the scan
  // allocates a fraction of the memory (two paths per file): what `cache ls` and `cache du` show.
  bool list_files = true;
};

// Scans the cache at `root`. A missing root gives an empty result (exists = false). Throws
// std::system_error only when `root` exists but cannot be listed; everything below is reported as
// problems. Read-only and safe to run while other processes download into the cache. Cost: about one
// system call per cached file and per blob (bench/bench_cache_scan.cpp: 1,000 repos / 50,000 files in
// ~0.25 s on a 2-core VM, about what `find` takes to list the same tree; bench/README.md).
CacheInfo scan_cache(const std::filesystem::path& root, const ScanOptions& options = {});

// ---- selection (`cache ls --filter/--sort`) ----

struct RepoFilter {
  enum class Field { size, accessed, modified, type };
  enum class Op { lt, le, gt, ge, eq, ne };
  Field field = Field::size;
  Op op = Op::gt;
  std::uint64_t bytes = 0;         // size
  std::chrono::seconds age{0};     // accessed/modified: compared with now - time ("older than")
  RepoType type = RepoType::model; // type (only = and !=)
};

// Returns the filter for "size>1GB", "size<=100M", "accessed>30d" (not accessed for 30 days),
// "modified<7d" (modified within 7 days), "type=model", "type!=dataset". Throws ConfigurationError
// (kind usage) naming the expression and what is wrong.
RepoFilter parse_repo_filter(std::string_view expr);
// Returns true if `repo` satisfies `filter`, ages measured at `now`.
bool matches(const RepoFilter& filter, const CachedRepo& repo, util::SystemTime now);

struct RepoSort {
  enum class Key { name, size, accessed, modified };
  Key key = Key::name;
  bool descending = false;
};
// Returns the order for "size", "accessed", "modified", "name", each optionally ":asc"/":desc". Without a
// direction, size and times sort descending (largest / most recent first), name ascending. Throws
// ConfigurationError (kind usage).
RepoSort parse_repo_sort(std::string_view spec);

// Returns the repos of `info` that satisfy every filter, in `sort` order (ties broken by ID): pointers into
// `info.repos` (no copies: with per-file lists a large cache's repos are tens of MB).
std::vector<const CachedRepo*> select_repos(const CacheInfo& info, const std::vector<RepoFilter>& filters,
                                            const RepoSort& sort, util::SystemTime now);

} // namespace modelmgr::cache
