#pragma once
// A read-only view of a Hugging Face cache folder as the Hub would describe it: which revisions a repo
// has (refs/, snapshots/), which files a commit has with their sizes and hashes (trees/<commit>.json when
// present, else what snapshots/<commit>/ holds), and the bytes of a file, opened so that nothing outside
// the repo's own blobs/ (or its snapshot folder, for copied files) can ever be read.
//
// What the cache knows, and so what this view can answer:
// - the blob name of a symlinked file is its etag: 64 hex = LFS (sha256 of the content), 40 hex = the git
//   blob sha1. For LFS files the git object id (the sha1 of the LFS pointer text) and the pointer size
//   are computed from sha256 and size, as git-lfs writes pointers.
// - files listed in trees/<commit>.json but never downloaded are listed (sizes and hashes from the
//   listing) but not `present`.
// - a snapshot file that is a copy (HF_HUB_DISABLE_SYMLINKS) has no etag on disk: the listing's is used,
//   else its git blob sha1 is computed once and remembered.
// - refs/ does not say whether a name is a branch or a tag: every named ref is reported as a branch.
//
// Symlink rules (why a read can never leave the cache): the repo folder, blobs/, snapshots/<commit>/ and
// every folder below it are opened with O_NOFOLLOW relative to the previous descriptor; a snapshot entry
// may be a regular file or a symlink whose target is exactly "../" × (depth + 2) + "blobs/<etag>" (what
// every client writes); the blob is then opened with openat(blobs, etag, O_NOFOLLOW) and must be a regular
// file. Anything else (absolute or other relative targets, links to links) is treated as absent.

#include "cache/paths.hpp"
#include "server/http_types.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::server {

struct CachedFile {
  std::string path; // repo-relative, '/'-separated
  std::uint64_t size = 0;
  std::string blob_id;                   // git object id (of the LFS pointer for LFS files)
  std::optional<std::string> lfs_sha256; // LFS files: sha256 of the content
  std::uint64_t pointer_size = 0;        // LFS files: size of the pointer text
  std::optional<std::string> xet_hash;
  bool present = false; // the bytes are in the cache

  // The blob name: the sha256 for LFS files, the git sha1 otherwise.
  const std::string& etag() const noexcept { return lfs_sha256 ? *lfs_sha256 : blob_id; }
};

// The git-lfs pointer text of a file with this sha256 and size ("version https://git-lfs.github.com/spec/v1
// \noid sha256:…\nsize N\n").
std::string lfs_pointer_text(std::string_view sha256, std::uint64_t size);

struct OpenedFile {
  CachedFile info;
  std::shared_ptr<FileHandle> file; // read-only, a regular file of info.size bytes
  bool from_blob = false;           // opened in blobs/ (false: a copy in the snapshot folder)
};

struct NamedRef {
  std::string name;   // "main", "v1.0", "refs/pr/1"
  std::string commit; // 40 hex
};

class RepoView {
public:
  RepoView(std::filesystem::path repo_dir, std::shared_ptr<FileHandle> repo_fd, cache::RepoType type,
           std::string repo_id);

  cache::RepoType type() const noexcept { return m_type; }
  const std::string& repo_id() const noexcept { return m_repo_id; }

  // The commit `revision` names here: a full commit hash with a snapshot or tree listing, a ref
  // (branch/tag names, "refs/heads/X", "refs/tags/X", "refs/pr/N"), or a unique prefix (>= 7 hex) of a
  // snapshot folder's name. nullopt when the cache does not know it.
  std::optional<std::string> resolve(std::string_view revision) const;
  // Every file of `commit`, sorted by path. Throws std::system_error on I/O errors.
  std::vector<CachedFile> files(std::string_view commit) const;
  // The bytes of `path` at `commit`, or nullopt when they are not in the cache (or not safely reachable).
  // `path` must have passed repo_path_error. Throws std::system_error on unexpected I/O errors.
  std::optional<OpenedFile> open(std::string_view commit, std::string_view path) const;
  // Whether .no_exist/<commit>/<path> marks the file as missing upstream.
  bool marked_missing(std::string_view commit, std::string_view path) const;
  // The refs of the repo, sorted by name.
  std::vector<NamedRef> refs() const;
  // When the snapshot folder of `commit` was last modified (for lastModified), or now.
  std::chrono::system_clock::time_point last_modified(std::string_view commit) const;

private:
  // The etag of the snapshot entry at `path` (a valid symlink target's blob name), "" for a regular file
  // (copy), nullopt when absent or unsafe.
  std::optional<std::string> link_etag(int dir_fd, const std::string& name, std::size_t depth) const;
  std::optional<CachedFile> describe_present(int dir_fd, const std::string& name, std::size_t depth,
                                             const std::string& path,
                                             const std::map<std::string, CachedFile>* listing) const;
  int open_blobs_dir() const;

  std::filesystem::path m_dir;
  std::shared_ptr<FileHandle> m_fd;
  cache::RepoType m_type;
  std::string m_repo_id;
};

class CacheView {
public:
  // Opens the cache folder `root` (must exist). Throws std::system_error naming it.
  explicit CacheView(std::filesystem::path root);

  const std::filesystem::path& root() const noexcept { return m_root; }
  // The repo, or nullopt when the cache has no folder for it (or the folder is a symlink).
  std::optional<RepoView> repo(cache::RepoType type, std::string_view repo_id) const;

private:
  std::filesystem::path m_root;
  std::shared_ptr<FileHandle> m_fd;
};

} // namespace modelmgr::server
