#pragma once
// Offline integrity check of cached blobs (`modelmgr cache verify`): every blob under blobs/ whose name is
// a Hub hash is re-hashed and compared with its name (64 hex → sha256 of the content, 40 hex → git blob
// sha1), with a small thread pool across files. Every corrupt blob is collected before returning (style
// rule 11: report all errors, then stop), together with the snapshot files pointing at it, so a repair can
// re-download exactly those paths. No network, no writes.

#include "cache/scan.hpp"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace modelmgr::cache {

// A snapshot file that resolves to a corrupt blob.
struct BlobUser {
  std::string commit;
  std::string path; // repo-relative
};

struct CorruptBlob {
  std::string display_id; // "model/org/name"
  std::string folder;
  std::filesystem::path blob_path;
  std::string etag;   // expected hash (the blob's name)
  std::string actual; // hash of the bytes on disk; empty when unreadable
  std::uint64_t size = 0;
  std::string reason;          // "sha256 mismatch", "git sha1 mismatch", or the I/O error
  std::vector<BlobUser> users; // sorted; empty for an orphan blob
};

struct VerifyReport {
  std::size_t blobs_checked = 0;
  std::uint64_t bytes_checked = 0;
  std::size_t blobs_skipped = 0;    // names that are no hash (symlink-less caches, other tools)
  std::vector<CorruptBlob> corrupt; // sorted by repo, then blob path
};

// Verifies the blobs of `repos` (orphans included) with `threads` workers (≥ 1). Stops early, with a
// partial report, once `cancel` becomes true. Never throws for a single blob: unreadable blobs are reported
// as corrupt with the system error as reason.
VerifyReport verify_blobs(const CacheInfo& info, const std::vector<const CachedRepo*>& repos,
                          unsigned threads, const std::atomic<bool>* cancel = nullptr);

} // namespace modelmgr::cache
