#pragma once
// The download engine: fetches blobs into the HF cache. For each file it takes the Python-compatible lock,
// downloads into `blobs/<etag>.modelmgr.incomplete` (large files as parallel Range requests written at
// their offsets), hashes the contiguous prefix while bytes arrive, persists resume state beside the temp
// file, retries transient failures with back-off and Range resume, and renames into `blobs/<etag>` only
// after size and hash match the Hub's etag. Many files run at once.
//
// What to request when, from which host and on how many connections is decided by the Scheduler
// (scheduler.hpp, pure and unit-tested); the engine runs one worker thread per request in flight (blocking
// libcurl transfers through net::Client), creating threads as the scheduler's targets grow, and one
// supervising thread (the caller's) that samples every request's bytes for the scheduler. The `done` event of
// a large file carries in its message the connection count its host ended with and the peak ("10
// connections to https://cdn.example (peak 16)"), shown by `--json` progress.
//
// Resume state (`blobs/<etag>.modelmgr.state.incomplete`, written atomically): the byte ranges on disk, in
// the format of resume_state.hpp. A state that does not match the file (etag, size, temp file shorter than
// claimed, malformed) is discarded and the download restarts.

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
  // Both 0 (the default): adaptive, per host (start with a few connections, add more while the throughput
  // rises, at most 64 per host and 64 requests in flight in total). Either set: fixed counts, no adaptation;
  // one given alone stands for both.
  int connections_per_file = 0; // --connections: requests in flight for one file
  int max_connections = 0;      // --max-workers: requests in flight in total
  std::uint64_t chunk_size =
      0; // --chunk-size: every file cut at this size; 0 = pieces sized by the scheduler
  // Fixed mode without --chunk-size: files at least this big use several connections (size/connections,
  // within 16–64 MiB).
  std::uint64_t parallel_threshold = 64ull << 20;
  std::uint64_t rate_limit = 0; // --limit-rate, bytes per second in total; 0 = none
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

} // namespace modelmgr::transfer
