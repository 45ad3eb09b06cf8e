#pragma once
// `--local-dir` downloads, compatible with huggingface_hub's `_local_folder.py`: plain files at
// <local_dir>/<path>, and bookkeeping under <local_dir>/.cache/huggingface/:
//   .gitignore                      "*" (no newline), so the folder never gets committed
//   CACHEDIR.TAG                    same text as the cache's
//   download/<path>.metadata        "<commit>\n<etag>\n<unix time float>\n"
//   download/<path>.lock            filelock-compatible lock guarding the metadata file
//   trees/<commit>.json             tree listing cache (Python >= 1.22)

#include "cache/tree.hpp"
#include "util/fs.hpp"
#include "util/time.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::cache {

struct LocalFileMetadata {
  std::string commit;
  std::string etag;
  double timestamp = 0; // UNIX seconds when the metadata was written
};

// Returns <local_dir>/.cache/huggingface.
std::filesystem::path local_dir_metadata_root(const std::filesystem::path& local_dir);
// Creates <local_dir>/.cache/huggingface/ with `.gitignore` ("*") and CACHEDIR.TAG when missing (existing
// files are never rewritten). Throws std::system_error if the folder cannot be created.
void ensure_local_dir_metadata(const std::filesystem::path& local_dir);

// Returns <local_dir>/<repo_path>. Throws std::invalid_argument for an unsafe path, or one inside
// ".cache/huggingface/" (a hostile repo could otherwise overwrite the metadata that vouches for files).
std::filesystem::path local_file_path(const std::filesystem::path& local_dir, std::string_view repo_path);
// Returns <local_dir>/.cache/huggingface/download/<repo_path>.metadata. Throws std::invalid_argument.
std::filesystem::path local_metadata_path(const std::filesystem::path& local_dir, std::string_view repo_path);
// Returns <local_dir>/.cache/huggingface/download/<repo_path>.lock. Throws std::invalid_argument.
std::filesystem::path local_lock_path(const std::filesystem::path& local_dir, std::string_view repo_path);
// Returns <local_dir>/.cache/huggingface/trees/<commit>.json. Throws std::invalid_argument.
std::filesystem::path local_tree_cache_path(const std::filesystem::path& local_dir, std::string_view commit);

// Returns the metadata for `repo_path` if it is trustworthy: the file parses, and the local file exists
// with mtime <= timestamp + 1 s (else it was modified after the download). A corrupt metadata file is
// deleted (as Python does). Holds the metadata lock while reading. Throws std::system_error on I/O errors.
std::optional<LocalFileMetadata> read_local_metadata(const std::filesystem::path& local_dir,
                                                     std::string_view repo_path);
// Writes the metadata file atomically under the metadata lock, with `now` as the timestamp (Python's
// repr of time.time()). Call it after the file itself is in place. Throws std::system_error.
void write_local_metadata(const std::filesystem::path& local_dir, std::string_view repo_path,
                          std::string_view commit, std::string_view etag,
                          util::SystemTime now = std::chrono::system_clock::now());

// Returns the text of a .metadata file: "<commit>\n<etag>\n<timestamp>\n".
std::string format_local_metadata(std::string_view commit, std::string_view etag, double timestamp);
// Returns the parsed metadata text, or nullopt if it is not three lines with a numeric timestamp.
std::optional<LocalFileMetadata> parse_local_metadata(std::string_view text);

enum class ExportMode {
  // An independent file: a reflink (copy-on-write clone) where the filesystem supports it, else a copy.
  // Editing the exported file never changes the cache blob (people edit configs and tokenizers).
  copy,
  // A hard link to the cache blob where the filesystem allows (no extra space, no time), else a copy.
  // The exported file then IS the blob: editing it in place edits the cache for every project using it.
  hardlink,
};
// Places `source` (a cache blob or a downloaded file) at <local_dir>/<repo_path> as a plain file,
// atomically (temp + fsync + checked close + rename; an existing file is replaced), creating parent
// folders. Returns the method used. Throws std::invalid_argument for an unsafe repo_path,
// std::system_error on I/O errors.
util::LinkMethod export_file(const std::filesystem::path& source, const std::filesystem::path& local_dir,
                             std::string_view repo_path, ExportMode mode = ExportMode::copy);

// Writes / reads the tree cache under <local_dir>/.cache/huggingface/trees/ (same format as the cache's).
void write_local_tree_cache(const std::filesystem::path& local_dir, std::string_view commit,
                            const std::vector<TreeFile>& files);
std::optional<std::vector<TreeFile>> read_local_tree_cache(const std::filesystem::path& local_dir,
                                                           std::string_view commit);

} // namespace modelmgr::cache
