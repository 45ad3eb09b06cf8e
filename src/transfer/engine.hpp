#pragma once
// The download engine: fetches blobs into the HF cache. For each file it takes the Python-compatible lock,
// downloads into `blobs/<etag>.modelmgr.incomplete` (large files as parallel Range requests written at
// their offsets), hashes the contiguous prefix while bytes arrive, persists resume state beside the temp
// file, retries transient failures with back-off and Range resume, and renames into `blobs/<etag>` only
// after size and hash match the Hub's etag. Many files run at once under one connection budget.
//
// Resume state (`blobs/<etag>.modelmgr.state.incomplete`), JSON, written atomically:
//   {"format": "modelmgr-resume", "version": 1, "etag": "...", "size": N, "chunk_size": C,
//    "chunks": [[start, end, written], ...]}
// `written` counts the bytes at the start of the chunk that are on disk. A state that does not match the
// file (etag, size, chunk layout, temp file shorter than claimed) is discarded and the download restarts.

#include "modelmgr/errors.hpp"
#include "modelmgr/progress.hpp"

#include "cache/repo_cache.hpp"
#include "hub/hub_client.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace modelmgr::transfer {

struct TransferOptions {
  int connections_per_file = 8;                   // --connections
  std::uint64_t chunk_size = 0;                   // --chunk-size; 0 = size/connections within 16–64 MiB
  std::uint64_t parallel_threshold = 64ull << 20; // files at least this big use several connections
  int max_connections = 8;                        // --max-workers: connections in flight in total
  std::uint64_t rate_limit = 0;                   // --limit-rate, bytes per second in total; 0 = none
  std::chrono::milliseconds lock_timeout{std::chrono::minutes(10)}; // --lock-timeout
  bool check_free_space = true;
  // Replaces the measured free space (test hook: MODELMGR_TEST_FREE_SPACE).
  std::optional<std::uint64_t> free_space_override;
};

struct FileJob {
  hub::RepoId repo;
  std::string repo_path; // for messages and progress
  std::string etag;      // names the blob; sha256 (LFS) or git sha1
  std::uint64_t size = 0;
  std::string url; // where to GET the bytes (resolve URL at the commit, or a known location)
};

struct FileOutcome {
  bool ok = false;
  bool downloaded = false;         // false when the blob was already there
  std::uint64_t bytes_fetched = 0; // body bytes received for this file (all attempts)
  std::exception_ptr error;        // set when !ok
};

class Engine {
public:
  Engine(hub::HubClient& hub, std::filesystem::path cache_root, TransferOptions options,
         ProgressObserver* observer = nullptr);

  // Downloads every job's blob (skipping those present). Never throws for a single file's failure: see the
  // outcomes (same order as `jobs`). Throws DownloadError(disk) when the free-space preflight fails and
  // DownloadError(interrupted) when cancelled.
  std::vector<FileOutcome> run(const std::vector<FileJob>& jobs);

  // Bytes the plan still needs on disk (sizes of missing blobs minus resumable bytes already present).
  std::uint64_t bytes_needed(const std::vector<FileJob>& jobs) const;

private:
  hub::HubClient& m_hub;
  std::filesystem::path m_cache_root;
  TransferOptions m_options;
  ProgressObserver* m_observer;
};

// Chunk layout used for a file of `size` bytes.
std::vector<std::pair<std::uint64_t, std::uint64_t>> plan_chunks(std::uint64_t size,
                                                                 const TransferOptions& o);

} // namespace modelmgr::transfer
