#pragma once
// One file of a repo tree listing (what GET /api/<type>s/<repo>/tree/<commit>?recursive=true returns for
// a file), and the `trees/<commit>.json` cache format of huggingface_hub >= 1.22:
//   {"format_version": 1, "files": {"<path>": {"size", "blob_id", "lfs_sha256"?, "lfs_size"?, "xet_hash"?}}}
// sorted by path, json.dump(indent=1) layout, ASCII-escaped, no trailing newline.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::cache {

struct TreeFile {
  std::string path; // repo-relative, "/"-separated (untrusted: validate before touching disk)
  std::uint64_t size = 0;
  std::string blob_id; // git blob sha1 (the tree's "oid")
  std::optional<std::string> lfs_sha256;
  std::optional<std::uint64_t> lfs_size;
  std::optional<std::string> xet_hash;

  // Returns the name of the file's blob in the cache: lfs_sha256 if the file is LFS, else blob_id.
  std::string etag() const { return lfs_sha256 ? *lfs_sha256 : blob_id; }
  bool operator==(const TreeFile&) const = default;
};

// The tree cache format version this code reads and writes.
inline constexpr int k_tree_cache_format_version = 1;

// Returns the JSON text Python writes for `files` (sorted by path; on duplicate paths the last wins).
// Throws std::invalid_argument if a string is not valid UTF-8.
std::string tree_cache_json(std::vector<TreeFile> files);

// Returns the files of a tree cache JSON text sorted by path, or nullopt when it is not usable: malformed
// JSON, wrong shapes, or a format_version other than 1 (Python then ignores the file and re-fetches).
std::optional<std::vector<TreeFile>> parse_tree_cache_json(std::string_view text);

} // namespace modelmgr::cache
