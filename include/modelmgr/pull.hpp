#pragma once
// Pulling files of a Hub repo into the Hugging Face cache (or exporting them to a plain folder): the
// library behind `modelmgr pull`. Every file is verified (sha256 for LFS files, git blob sha1 for the
// others) before it appears in the cache. Errors are thrown as the classes in modelmgr/errors.hpp.

#include "modelmgr/progress.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace modelmgr {

struct TransferSettings {
  // 0 = automatic: connections adapt per host to the measured throughput. Setting either fixes the count
  // (one given alone stands for both).
  int connections_per_file = 0; // parallel Range requests for one file
  std::uint64_t chunk_size = 0; // 0 = automatic
  int max_workers = 0;          // connections in flight in total
  std::uint64_t limit_rate = 0; // bytes per second across all connections; 0 = unlimited
  std::chrono::milliseconds lock_timeout{std::chrono::minutes(10)};
};

struct PullOptions {
  std::string repo_id;
  std::string repo_type = "model"; // model | dataset | space
  std::string revision = "main";   // branch (may contain '/'), tag, commit (full or short), refs/pr/N
  std::vector<std::string> files;  // exact paths; empty = the whole snapshot (filtered by include/exclude)
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  // GGUF by quantization (`REPO:QUANT`): pick the GGUF file(s) of this quantization from the snapshot's
  // listing instead of files/include/exclude. Case-insensitive ("q4_k_m"); "" = llama.cpp's default (Q4_K_M,
  // else Q8_0, else the first GGUF). A split model brings all its parts, in order, then the repo's mmproj
  // file if it has one: the result's files[0] is the file to load. An unknown tag is a MissingModelError
  // listing the quantizations the repo has.
  std::optional<std::string> gguf_quant;
  std::optional<std::filesystem::path> cache_dir; // default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/…
  std::optional<std::filesystem::path> local_dir; // also export plain files here
  std::optional<std::string> endpoint;            // default: HF_ENDPOINT or https://huggingface.co
  std::optional<std::string> token;               // default: HF_TOKEN, token file
  std::optional<bool> offline;                    // default: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE
  bool dry_run = false;                           // resolve and plan only
  // How files reach local_dir. false (default): independent files, a reflink (copy-on-write clone) where
  // the filesystem supports it, else a copy. true: hard links to the cache blobs (no space, but editing an
  // exported file in place edits the cache blob, for every project using that cache).
  bool local_dir_hardlink = false;
  TransferSettings transfer;
  ProgressObserver* observer = nullptr;
  const std::atomic<bool>* cancel = nullptr;
};

struct PulledFile {
  std::string path;                 // path inside the repo
  std::filesystem::path local_path; // snapshot path (or the exported file with local_dir)
  std::uint64_t size = 0;
  std::string etag;
  bool downloaded = false; // false: it was already cached
};

struct PullResult {
  std::string repo_id;
  std::string repo_type;
  std::string revision;
  std::string commit;
  std::filesystem::path cache_dir;
  std::filesystem::path root; // snapshots/<commit> (or local_dir)
  std::vector<PulledFile> files;
  std::uint64_t bytes_to_download = 0; // planned (dry run) or downloaded
  std::uint64_t http_requests = 0;
  bool offline = false;
};

// Resolves, downloads what is missing, verifies, links the snapshot and writes the ref. Throws
// ConfigurationError (bad input), MissingModelError, DownloadError (auth, network, disk, interrupted,
// locked) or BadChecksumError.
PullResult pull(const PullOptions& options);

} // namespace modelmgr
