#pragma once
// Deleting from a Hugging Face cache: `cache rm` (huggingface_hub's delete_revisions semantics,
// hub-protocol.md §8.2) and `cache prune` (detached revisions, orphan blobs, old temp files, unheld lock
// files, then least-recently-used repos down to a size budget).
//
// Two steps, so the CLI can show what will happen before anything is touched:
//   plan_*()       reads a CacheInfo (and stats temp files) and returns a DeletePlan; never writes;
//   execute_plan() deletes in the order repos → snapshots → refs → blobs → temp files → lock files, so a
//                  ref never points at a missing snapshot.
//
// Concurrent downloads: a downloader (Python, hf-hub 1.x, modelmgr) holds `.locks/<folder>/<etag>.lock`
// while it writes `blobs/<etag>*.incomplete` and links the blob. execute_plan() takes that lock with a
// try (or, with ExecuteOptions::lock_timeout, a bounded wait) before unlinking a blob or a temp file; a
// lock still held means "in use": the entry is skipped and reported, never deleted. A lock whose holder
// died is free (flock locks die with their process), whatever holder info its file still carries. A whole
// repo is removed with one remove_all only when none of its lock files is held (after the same wait);
// otherwise its snapshots, refs and blobs are deleted one by one with the same per-blob rule.
// `.locks/` and `.no_exist/` are left alone by rm (prune removes lock files nobody holds).

#include "cache/paths.hpp"
#include "cache/scan.hpp"
#include "util/lock.hpp"
#include "util/time.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::cache {

// What `cache rm` was asked to delete: a repo, optionally one revision of it.
struct DeleteTarget {
  RepoType type = RepoType::model;
  std::string repo_id;
  std::optional<std::string> revision; // ref name ("main", "refs/pr/1") or a full/short commit

  // Returns "model/org/name" or "model/org/name@rev".
  std::string describe() const;
};

// Returns the target for "org/name" or "org/name@revision" (split at the first '@': repo ids cannot contain
// one, revisions such as "refs/pr/1" may contain '/'). Throws ConfigurationError (usage) for an invalid repo
// id or an empty revision.
DeleteTarget parse_delete_target(std::string_view text, RepoType type);

struct BlobDeletion {
  std::filesystem::path path;
  std::string etag; // file name under blobs/
  std::uint64_t size = 0;
};

// Everything to delete in one repo.
struct RepoDeletion {
  std::string display_id; // "model/org/name"
  std::string folder;     // "models--org--name"
  std::filesystem::path path;
  std::filesystem::path cache_root;
  std::filesystem::path lock_dir;   // lock_dir(cache_root, folder): <cache>/.locks/<folder>
  bool whole_repo = false;          // every revision selected: the folder goes
  std::vector<std::string> commits; // the revisions deleted, sorted
  std::vector<std::string> reasons; // why (prune: "detached", "least recently used"), parallel to commits
  std::vector<std::filesystem::path> snapshots; // snapshots/<commit>
  std::vector<std::filesystem::path> refs;      // ref files pointing at deleted commits
  std::vector<BlobDeletion> blobs;              // blobs no remaining revision references (+ orphans)
  std::uint64_t freed = 0;                      // bytes of distinct blobs given back
};

struct TempDeletion {
  std::filesystem::path path;
  std::uint64_t size = 0;
  std::optional<std::filesystem::path> lock; // the download lock guarding a `*.incomplete` file
};

struct DeletePlan {
  std::vector<RepoDeletion> repos;
  std::vector<TempDeletion> temp_files;          // prune only
  std::vector<std::filesystem::path> lock_files; // prune only: removed when unheld at execution time

  // Returns the bytes the plan gives back if nothing is in use.
  std::uint64_t freed() const;
  bool empty() const;
};

// Returns the plan for deleting `targets` from `info` with delete_revisions semantics: all revisions of a
// repo selected (or the repo named without a revision) → the repo folder; otherwise the snapshots, the
// refs pointing at them and the blobs no remaining revision references. A revision is a ref name of the
// repo or a unique prefix (≥ 4 hex digits) of a cached commit. Throws MissingModelError naming an unknown
// repo or revision and listing what the cache holds; ConfigurationError (usage) for an ambiguous prefix.
DeletePlan plan_delete(const CacheInfo& info, const std::vector<DeleteTarget>& targets);

// A revision something needs: prune never deletes it as detached. A model-set config's pins also keep the
// repo from --keep-under eviction; a catalog entry's pin (keep_repo = false) only keeps the revision it
// names, which has no ref when it is a commit.
struct Pin {
  RepoType type = RepoType::model;
  std::string repo_id;
  std::string revision = "main"; // ref name, full or short commit
  bool keep_repo = true;
};

struct PruneOptions {
  // Temp files (`*.incomplete`, `.*.tmp`) younger than this are left alone: a download may own them.
  std::chrono::seconds temp_older_than{std::chrono::hours(24)};
  // Evict least-recently-used repos (by last access) until the repos' total size is at most this.
  std::optional<std::uint64_t> keep_under;
  std::vector<Pin> pins;
  util::SystemTime now = std::chrono::system_clock::now();
};

// Returns the prune plan: detached revisions (no ref points at them) that no pin names, orphan blobs, temp
// files older than the limit, lock files nobody holds (as scanned), then with keep_under whole unpinned
// repos, least recently accessed first, until the remaining repos fit. A pin matching nothing in the
// cache is ignored. Never writes.
DeletePlan plan_prune(const CacheInfo& info, const PruneOptions& options);

// How execute_plan() treats download locks held by someone else.
struct ExecuteOptions {
  // How long to wait for each held lock; 0 = do not wait (the entry is skipped as in use at once).
  std::chrono::milliseconds lock_timeout{0};
  // Called while waiting for `lock` (first on the first failed attempt, then about once a second, as
  // util::FileLock::lock_for does) with what the lock file says about its holder. The library never
  // prints: the CLI reports the wait.
  std::function<void(const std::filesystem::path& lock, const std::optional<util::LockHolder>& holder,
                     std::chrono::milliseconds waited)>
      on_wait;
  // Set (e.g. by SIGINT) → stop waiting: the entry being waited for and every later held lock are
  // reported as in use.
  const std::atomic<bool>* cancel = nullptr;
};

struct SkippedEntry {
  std::filesystem::path path;
  std::string reason; // "in use: lock held by pid 12 on host since ...", or the system error
};

struct DeleteReport {
  std::uint64_t freed = 0;                    // bytes actually given back
  std::vector<std::filesystem::path> deleted; // in deletion order
  std::vector<SkippedEntry> in_use;           // skipped because a download holds the lock
  std::vector<SkippedEntry> errors;           // could not be deleted (missing paths are not errors)
  bool timed_out = false;                     // a lock was waited for (lock_timeout > 0) in vain
};

// Deletes what `plan` lists (see the header comment for order and locking). With a lock_timeout, a held
// lock is waited for (each lock at most that long) before its entry is skipped as in use. Refs removed
// from a subfolder (refs/pr/1) take the subfolder with them once it is empty. Never throws for a single
// entry: failures are collected in the report.
DeleteReport execute_plan(const DeletePlan& plan, const ExecuteOptions& options = {});

} // namespace modelmgr::cache
