#pragma once
// Model sets: make the machine match a configuration file (docs/config.md). The library behind
// `modelmgr sync`, `list`, `verify`, `clean` and `lock`. Results are values; nothing here prints.
// Errors that abort a whole call are thrown as the classes in modelmgr/errors.hpp; per-model failures of
// ensure_all() are reported in the returned values instead.

#include "modelmgr/config.hpp"
#include "modelmgr/errors.hpp"
#include "modelmgr/progress.hpp"
#include "modelmgr/pull.hpp"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr {

enum class ModelStatus { downloaded, cached, failed };
// "downloaded", "cached" or "failed".
const char* to_string(ModelStatus status) noexcept;

// One file of a synced model, as recorded in the manifest.
struct ModelFile {
  std::string path; // inside the repo
  std::uint64_t size = 0;
  std::string etag;                  // blob name: sha256 (LFS) or git blob sha1
  std::string etag_kind;             // "sha256" or "git-sha1"
  std::optional<std::string> sha256; // content sha256: the etag for LFS, computed when hashed otherwise
  std::filesystem::path local_path;  // snapshot file (or the exported file with local_dir)
  bool downloaded = false;           // fetched by this run (dry run: would be fetched)
};

// The load check of one file (verify level `load`): the file's format read by modelmgr's own defensive
// parsers (docs/formats.md). Files modelmgr does not parse (README.md, *.bin, ...) are `unknown` and ok.
struct FileLoadCheck {
  std::string path;   // inside the repo
  std::string format; // "gguf", "safetensors", "safetensors-index", "onnx", "config.json", ..., "unknown"
  bool ok = true;
  std::string error; // the parser's reason when not ok
  std::uint64_t parameter_count = 0;
  std::string summary; // one line, e.g. "GGUF v3 llama, 1.17 M parameters, Q4_K_M, 16 tensors"
};

// The load check of a whole model.
struct LoadResult {
  bool ok = true;
  // Over the weight files (GGUF, safetensors, ONNX); shards listed by a safetensors index are counted once.
  std::uint64_t parameter_count = 0;
  std::vector<FileLoadCheck> files;
  std::string checked_at; // ISO-8601 UTC
};

// What happened to one model.
struct ModelResult {
  std::string id;
  ModelStatus status = ModelStatus::failed;
  std::string reason; // failed: the error message
  std::string hint;   // failed: how to fix it (may be empty)
  ErrorKind error_kind = ErrorKind::internal;
  std::string repo_id;
  std::string repo_type;
  std::string revision;       // as requested
  std::string commit;         // resolved
  std::filesystem::path path; // snapshot dir, or local_dir when set
  std::vector<ModelFile> files;
  std::uint64_t bytes_to_download = 0; // planned (dry run) or downloaded
  VerifyLevel verify = VerifyLevel::size;
  std::string verified_at;        // ISO-8601 UTC; empty when not verified
  std::optional<LoadResult> load; // set when load-checked (verify level `load`, after the hashes passed)
  std::uint64_t http_requests = 0;
};

struct EnsureOptions {
  std::vector<std::string> ids; // empty = every model of the config
  bool dry_run = false;         // resolve and plan only (PullOptions::dry_run)
  // Pull these commits (model id → commit) instead of resolving the revision, and point the spec's
  // branch or tag ref at them (`sync --locked`).
  std::map<std::string, std::string> locked_commits;
  std::optional<std::string> endpoint;
  std::optional<std::string> token;
  std::optional<bool> offline;
  TransferSettings transfer;
  ProgressObserver* observer = nullptr;
  const std::atomic<bool>* cancel = nullptr;
};

struct SyncReport {
  std::vector<ModelResult> models; // in the order asked
  bool ok() const;
  // The failure that decides the exit code (most specific kind wins); nullopt when none failed.
  std::optional<ErrorKind> worst_error() const;
};

// One problem found by an offline check of a model.
struct FileProblem {
  enum class Kind {
    missing_link,
    missing_blob,
    size_mismatch,
    hash_mismatch,
    pin_mismatch,
    unreadable,
    load_failure, // the bytes match the Hub but the file does not parse (verify level `load`)
  };
  Kind kind = Kind::missing_link;
  std::string path; // inside the repo
  std::string etag; // expected blob name (may be empty when unknown)
  std::string message;
};
const char* to_string(FileProblem::Kind kind) noexcept;

enum class CacheState { cached, partial, missing, corrupt };
const char* to_string(CacheState state) noexcept;

// Offline state of one model (`list`, `verify`, `sync --verify-only`).
struct ModelCheck {
  std::string id;
  std::string repo_id;
  std::string revision;
  std::string commit; // empty when no ref or snapshot is cached
  CacheState state = CacheState::missing;
  bool listing_known = false; // the full file list of the commit is cached (trees/<commit>.json)
  std::uint64_t files_expected = 0;
  std::uint64_t files_present = 0;
  std::uint64_t size_on_disk = 0; // distinct blobs of the model's files
  std::filesystem::path path;
  std::vector<FileProblem> problems;
  std::optional<LoadResult> load; // level `load` and every hash fine: the load check's result
  bool ok() const { return state == CacheState::cached && problems.empty(); }
};

struct RepairResult {
  std::string id;
  std::vector<std::string> repaired; // repo paths pulled again
  bool ok = false;
  std::string reason;       // when not ok
  bool interrupted = false; // not ok because the cancel flag stopped it (Ctrl-C)
};

struct CleanResult {
  std::string id;
  std::vector<std::filesystem::path> removed; // snapshots, refs and blobs deleted
  std::vector<std::string> kept;              // why something stayed ("snapshot used by model X")
  std::uint64_t freed = 0;                    // bytes of blobs deleted
};

// One entry of modelmgr.lock.
struct LockedModel {
  std::string id;
  std::string repo_id;
  std::string repo_type;
  std::string revision;
  std::string commit;
};

struct LockFile {
  std::vector<LockedModel> models;
  const LockedModel* find(std::string_view id) const;
};

class ModelManager {
public:
  // Reads and validates the file (throws ConfigurationError / InvalidConfigError).
  static ModelManager from_config(const std::filesystem::path& path);
  explicit ModelManager(ModelSetConfig config);

  const ModelSetConfig& config() const noexcept { return m_config; }
  // The config's cache_dir with `~`/`$VAR` expanded (relative paths are taken from the config's folder),
  // else the default HF cache.
  const std::filesystem::path& cache_dir() const noexcept { return m_cache_dir; }
  // Throws ConfigurationError listing the known ids.
  const ModelSpec& get_model_spec(std::string_view id) const;

  // Pulls and verifies one model at the config's verify level. Throws the library's errors on failure.
  ModelResult ensure_model(std::string_view id, const EnsureOptions& options = {}) const;
  // ensure_model() for every selected model; failures are values. Throws only for unknown ids.
  SyncReport ensure_all(const EnsureOptions& options = {}) const;

  // Offline checks. `level` none/size never hashes; sha256/load re-hash every file; load then parses every
  // file (a file that does not load makes the model corrupt with a load_failure problem).
  ModelCheck check_model(std::string_view id, VerifyLevel level) const;
  std::vector<ModelCheck> check_models(const std::vector<std::string>& ids, VerifyLevel level) const;
  // Deletes the broken blobs and links found by `check`, then pulls exactly those files again. Files that
  // only failed the load check are left alone: their bytes are what the Hub has.
  RepairResult repair_model(const ModelCheck& check, const EnsureOptions& options = {}) const;
  // Removes the models' snapshots and refs and the blobs no remaining snapshot of the repo uses. A
  // snapshot another configured model (not being cleaned) needs is kept.
  std::vector<CleanResult> clean(const std::vector<std::string>& ids) const;

  // model_manifest.json: the config's `manifest`, relative to the config file's folder.
  std::filesystem::path default_manifest_path() const;
  // Writes (atomically) the manifest for `report`, keeping the entries of configured models that
  // `report` does not mention from an existing manifest. Throws DownloadError (disk) on I/O errors.
  void write_manifest(const SyncReport& report, const std::filesystem::path& path) const;

  // modelmgr.lock beside the config file.
  std::filesystem::path default_lock_path() const;
  // Resolves every selected model's revision to a commit (one request per non-commit revision).
  LockFile resolve_lock(const EnsureOptions& options = {}) const;
  // The commits `sync --locked` may use. Throws ConfigurationError (config) when the lock does not
  // cover a model or disagrees with the config, and when a branch moved on the Hub since the lock
  // was written (naming the model, the locked commit and the new one). Offline: no check.
  std::map<std::string, std::string> check_lock(const LockFile& lock, const EnsureOptions& options) const;

private:
  ModelSetConfig m_config;
  std::filesystem::path m_cache_dir;
};

// Reads modelmgr.lock. Throws ConfigurationError when missing or malformed.
LockFile read_lock_file(const std::filesystem::path& path);
// Writes modelmgr.lock atomically. Throws DownloadError (disk).
void write_lock_file(const LockFile& lock, const std::filesystem::path& path);

// Loads the config, ensures every model, writes the manifest; per-model results as values.
SyncReport ensure_models(const std::filesystem::path& config_path);
// True when every file the spec selects is in the cache (offline: refs, snapshots, trees/).
bool is_cached(const ModelSpec& spec, const std::filesystem::path& cache_dir);
// The snapshot folder (or local_dir) of a cached model, offline. Throws MissingModelError.
std::filesystem::path get_model_path(const ModelSpec& spec, const std::filesystem::path& cache_dir);
// Pulls the model (files verified against the Hub's hashes) and returns get_model_path().
std::filesystem::path download_model(const ModelSpec& spec, const std::filesystem::path& cache_dir);
// Offline check of a snapshot folder (or a local_dir exported by modelmgr/huggingface_hub): every file
// against its etag (size always; hash with sha256/load). Returns the problems found (empty = fine).
std::vector<FileProblem> verify_model(const std::filesystem::path& path, VerifyLevel level);

} // namespace modelmgr
