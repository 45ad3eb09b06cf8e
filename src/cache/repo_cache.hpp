#pragma once
// One repo inside a Hugging Face cache directory, laid out exactly as huggingface_hub does (see
// hub-protocol.md §4):
//   <cache>/CACHEDIR.TAG                                (written by Python >= 1.9, never by us)
//   <cache>/.locks/<folder>/<etag>.lock
//   <cache>/<folder>/blobs/<etag>                       (+ <etag>.modelmgr[.state].incomplete while
//   downloading) <cache>/<folder>/refs/<revision>                    40-hex commit, no trailing newline
//   <cache>/<folder>/snapshots/<commit>/<path>          relative symlink ../../blobs/<etag> (+1 ../ per dir)
//   <cache>/<folder>/.no_exist/<commit>/<path>          empty marker
//   <cache>/<folder>/trees/<commit>.json                tree listing cache (Python >= 1.22)
// Nothing unverified appears under a final name: blobs are renamed into place by commit_blob(), links
// and refs are created at temp names and renamed over.
//
// Inputs that come from the Hub (file paths, etags, revisions) are validated before they touch the disk:
// invalid ones throw std::invalid_argument. I/O failures throw std::system_error naming the path.

#include "cache/paths.hpp"
#include "cache/tree.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::cache {

// How a snapshot entry points at its blob.
enum class LinkKind { symlink, copy };

class RepoCache {
public:
  // Refers to `repo_id` of `type` in the cache at `cache_root` (nothing is created). Reads
  // HF_HUB_DISABLE_SYMLINKS from `env`. Throws std::invalid_argument for an invalid repo id.
  RepoCache(std::filesystem::path cache_root, RepoType type, std::string repo_id,
            const util::Env& env = util::Env::process());
  RepoCache(const RepoCache& other);
  RepoCache& operator=(const RepoCache& other);

  // ---- paths (pure, no I/O) ----
  const std::filesystem::path& cache_root() const noexcept { return m_root; }
  RepoType type() const noexcept { return m_type; }
  const std::string& repo_id() const noexcept { return m_repo_id; }
  // Returns "models--org--name" etc.
  const std::string& folder_name() const noexcept { return m_folder; }
  std::filesystem::path repo_dir() const { return m_root / m_folder; }
  std::filesystem::path blobs_dir() const { return repo_dir() / "blobs"; }
  std::filesystem::path snapshots_dir() const { return repo_dir() / "snapshots"; }
  std::filesystem::path refs_dir() const { return repo_dir() / "refs"; }
  std::filesystem::path no_exist_dir() const { return repo_dir() / ".no_exist"; }
  std::filesystem::path trees_dir() const { return repo_dir() / "trees"; }
  // Returns blobs/<etag>. Throws std::invalid_argument for an etag that is not a plain file name.
  std::filesystem::path blob_path(std::string_view etag) const;
  // Returns blobs/<etag>.modelmgr.incomplete (matched by Python's `*/blobs/*.incomplete` prune glob).
  std::filesystem::path incomplete_path(std::string_view etag) const;
  // Returns blobs/<etag>.modelmgr.state.incomplete (resume state; same glob).
  std::filesystem::path resume_state_path(std::string_view etag) const;
  // Returns snapshots/<commit>. Throws std::invalid_argument unless `commit` is 40 lower-case hex.
  std::filesystem::path snapshot_dir(std::string_view commit) const;
  // Returns snapshots/<commit>/<repo_path>. Throws std::invalid_argument for an unsafe path or bad commit.
  std::filesystem::path snapshot_file(std::string_view commit, std::string_view repo_path) const;
  // Returns refs/<revision> (nested for "/": "refs/pr/1" → refs/refs/pr/1). Throws std::invalid_argument.
  std::filesystem::path ref_path(std::string_view revision) const;
  // Returns .no_exist/<commit>/<repo_path>. Throws std::invalid_argument.
  std::filesystem::path no_exist_path(std::string_view commit, std::string_view repo_path) const;
  // Returns <cache>/.locks/<folder>/<etag>.lock (the Python client's lock path). Throws
  // std::invalid_argument.
  std::filesystem::path lock_path(std::string_view etag) const;
  // Returns trees/<commit>.json. Throws std::invalid_argument.
  std::filesystem::path tree_cache_path(std::string_view commit) const;

  // ---- layout ----
  // Creates blobs/, snapshots/, refs/ (an empty refs/ keeps huggingface.js's scanner happy). No
  // CACHEDIR.TAG in the cache root: huggingface_hub < 1.9 reports it as a broken repo on every scan.
  // Throws std::system_error.
  void ensure_layout() const;

  // ---- refs ----
  // Returns the commit refs/<revision> points at (whitespace trimmed, as hf-hub and `hf cache verify` do),
  // or nullopt if the ref is missing or does not hold a commit hash. Throws std::system_error on I/O errors.
  std::optional<std::string> read_ref(std::string_view revision) const;
  // Points refs/<revision> at `commit`: exactly 40 hex, no newline, atomically, and only if the bytes
  // differ (so read-only caches keep working). A revision that is itself a commit hash gets no ref (as in
  // Python). Returns true if the file was written. Throws std::invalid_argument / std::system_error.
  bool write_ref(std::string_view revision, std::string_view commit) const;
  // Returns the commit for `revision` without network: a 40-hex revision is itself, else read_ref().
  std::optional<std::string> resolve_offline(std::string_view revision) const;

  // ---- blobs ----
  // Returns true if blobs/<etag> is a regular file (of `expected_size` bytes when given).
  bool has_blob(std::string_view etag, std::optional<std::uint64_t> expected_size = std::nullopt) const;
  // Opens (creating it if missing) incomplete_path(etag) for reading and writing, never through a symlink
  // (O_NOFOLLOW) and only if it is a regular file: in a group-shared cache a link planted there would make
  // a download overwrite its target. Returns the descriptor. Throws std::system_error naming the path
  // (ELOOP: "it is a symbolic link").
  int open_incomplete(std::string_view etag) const;
  // Takes over a download the Python client (huggingface_hub 0.x) left as blobs/<etag>.incomplete: renames
  // it to incomplete_path(etag) and returns its length, the prefix to resume from (the final hash check
  // vouches for those bytes). The stray file is removed instead (nullopt) when it is larger than
  // `expected_size`, not a regular file, or when our own temp file has resume state. Call it holding the
  // blob's lock. Returns nullopt when there is no such file. Throws std::system_error.
  std::optional<std::uint64_t> adopt_foreign_incomplete(std::string_view etag,
                                                        std::uint64_t expected_size) const;
  // Moves the verified file `temp_path`, written through `fd`, to blobs/<etag>: chmod to the directory's
  // default file mode (0666 & ~umask, as Python does), then util::commit_fd (fsync of `fd`, checked close,
  // rename, fsync of blobs/ or `dir_sync`). `fd` is closed in every case. Returns the blob path. Throws
  // std::system_error; `temp_path` is left in place on failure. `mode`: that default mode, when the caller
  // already learned it (default_blob_mode), to spare a probe file per blob.
  std::filesystem::path commit_blob(int fd, const std::filesystem::path& temp_path, std::string_view etag,
                                    util::DirSyncBatch* dir_sync = nullptr,
                                    std::optional<mode_t> mode = std::nullopt) const;
  // The mode a new blob gets (util::default_file_mode of blobs/, which it creates). Throws std::system_error.
  mode_t default_blob_mode() const;

  // ---- snapshots ----
  // Makes snapshots/<commit>/<repo_path> point at blobs/<etag>: a relative symlink created at a temp name
  // and renamed over, or an atomic copy when HF_HUB_DISABLE_SYMLINKS is true or symlinks fail here.
  // An entry already linking to the blob is left untouched. Returns what was used. Throws
  // std::system_error (ENOENT if the blob does not exist: a dangling link breaks Python's scanner).
  // With `dir_sync`, the fsync of the link's folder is left to the batch.
  LinkKind link_snapshot(std::string_view commit, std::string_view repo_path, std::string_view etag,
                         util::DirSyncBatch* dir_sync = nullptr) const;
  // Returns true if snapshots/<commit>/<repo_path> resolves to an existing regular file.
  bool has_snapshot_file(std::string_view commit, std::string_view repo_path) const;
  // Returns the repo paths ("/"-separated, sorted) of the files and links under snapshots/<commit>,
  // excluding our leftover temp names. Empty if the snapshot does not exist. Throws std::system_error.
  std::vector<std::string> snapshot_files(std::string_view commit) const;

  // ---- .no_exist markers ----
  // Creates the empty marker .no_exist/<commit>/<repo_path>. Throws std::system_error.
  void mark_no_exist(std::string_view commit, std::string_view repo_path) const;
  // Returns true if the marker exists.
  bool is_marked_no_exist(std::string_view commit, std::string_view repo_path) const;

  // ---- tree cache ----
  // Writes trees/<commit>.json in Python's exact format, atomically. Throws std::system_error.
  void write_tree_cache(std::string_view commit, const std::vector<TreeFile>& files) const;
  // Returns the cached listing, or nullopt if missing, unreadable or of an unknown format.
  std::optional<std::vector<TreeFile>> read_tree_cache(std::string_view commit) const;

private:
  std::filesystem::path m_root;
  RepoType m_type;
  std::string m_repo_id;
  std::string m_folder;
  bool m_symlinks_disabled = false;
  // Set after a symlink() failure so later links go straight to the copy fallback.
  mutable std::atomic<bool> m_symlinks_failed{false};
};

// Returns why `etag` cannot name a blob file, or nullopt: it must be non-empty, at most 255 bytes, of
// [A-Za-z0-9._+=-] and not start with ".".
std::optional<std::string> etag_error(std::string_view etag);

// Returns <cache_root>/.locks/<repo_folder>/<etag>.lock: the download lock of a blob, exactly where the
// Python client puts it. The one spelling of that path: pull, rm, prune and repair must agree on it, or a
// deletion could race a download. Throws std::invalid_argument for an etag that is not a plain file name.
std::filesystem::path lock_path(const std::filesystem::path& cache_root, std::string_view repo_folder,
                                std::string_view etag);
// Returns <cache_root>/.locks/<repo_folder>: the folder holding a repo's lock_path()s.
std::filesystem::path lock_dir(const std::filesystem::path& cache_root, std::string_view repo_folder);

// Writes `dir`/CACHEDIR.TAG with k_cachedir_tag if no such file exists. Returns true if written; failures
// are swallowed (returns false) because the tag only helps backup tools.
bool write_cachedir_tag_if_missing(const std::filesystem::path& dir) noexcept;

} // namespace modelmgr::cache
