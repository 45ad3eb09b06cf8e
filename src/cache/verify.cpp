#include "cache/verify.hpp"

#include "util/fs.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <tuple>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::cache {

namespace fs = std::filesystem;

namespace {

struct Job {
  const CachedRepo* repo = nullptr;
  fs::path blob;
  std::string etag;
  std::uint64_t size = 0;
  std::vector<BlobUser> users;
};

// Hashes `file` as hasher_for_etag() would, checking `cancel` between reads so that Ctrl-C on a verify of
// a 100 GB blob stops within one read. Returns nullopt when cancelled. Throws std::system_error.
std::optional<std::string> hash_blob(const fs::path& file, const std::string& etag,
                                     const std::atomic<bool>* cancel)
{
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw util::make_fs_error(errno, "open", file);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw util::make_fs_error(errno, "stat", file);
  }
  util::Hasher h = util::hasher_for_etag(etag, static_cast<std::uint64_t>(st.st_size));
  std::vector<char> buf(4 << 20);
  for (;;) {
    if (cancel != nullptr && cancel->load()) {
      return std::nullopt;
    }
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw util::make_fs_error(errno, "read", file);
    }
    if (n == 0) {
      break;
    }
    h.update(std::span<const char>(buf.data(), static_cast<std::size_t>(n)));
  }
  return h.hex_digest();
}

} // namespace

VerifyReport verify_blobs(const CacheInfo& info, const std::vector<const CachedRepo*>& repos,
                          unsigned threads, const std::atomic<bool>* cancel)
{
  VerifyReport report;
  std::vector<Job> jobs;
  for (const CachedRepo* repo : repos) {
    const fs::path blobs_dir = repo->path / "blobs";
    std::map<std::string, std::size_t> index; // blob path → job
    const auto add = [&](const fs::path& blob, std::uint64_t size) -> Job* {
      if (blob.parent_path() != blobs_dir) {
        return nullptr;
      }
      auto [it, inserted] = index.emplace(blob.native(), jobs.size());
      if (inserted) {
        jobs.push_back({repo, blob, blob.filename().string(), size, {}});
      }
      return &jobs[it->second];
    };
    for (const auto& rev : repo->revisions) {
      for (const auto& f : rev.files) {
        if (Job* j = add(f.blob_path, f.size)) {
          j->users.push_back({rev.commit, f.path});
        }
      }
    }
    for (const auto& p : info.problems) {
      if (p.kind == ProblemKind::orphan_blob && p.repo == repo->folder) {
        add(p.path, p.size);
      }
    }
  }
  // Hub-hash names only; anything else cannot be checked offline.
  std::erase_if(jobs, [&](const Job& j) {
    const bool opaque = util::etag_kind(j.etag) == util::EtagKind::opaque;
    report.blobs_skipped += opaque ? 1 : 0;
    return opaque;
  });
  // Largest first, so one big file at the end does not leave a core idle while the other works.
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.size > b.size; });

  std::atomic<std::size_t> next{0};
  std::mutex mu;
  const auto worker = [&] {
    while (cancel == nullptr || !cancel->load()) {
      const std::size_t i = next.fetch_add(1);
      if (i >= jobs.size()) {
        return;
      }
      const Job& j = jobs[i];
      CorruptBlob bad;
      bool ok = false;
      try {
        const auto actual = hash_blob(j.blob, j.etag, cancel);
        if (!actual) {
          return; // interrupted: this blob was not checked, so it is neither counted nor reported
        }
        bad.actual = *actual;
        ok = bad.actual == j.etag;
        bad.reason =
            util::etag_kind(j.etag) == util::EtagKind::sha256 ? "sha256 mismatch" : "git sha1 mismatch";
      } catch (const std::exception& e) {
        bad.reason = e.what();
      }
      std::lock_guard lock(mu);
      ++report.blobs_checked;
      report.bytes_checked += j.size;
      if (!ok) {
        bad.display_id = j.repo->display_id();
        bad.folder = j.repo->folder;
        bad.blob_path = j.blob;
        bad.etag = j.etag;
        bad.size = j.size;
        bad.users = j.users;
        std::sort(bad.users.begin(), bad.users.end(), [](const BlobUser& a, const BlobUser& b) {
          return std::tie(a.commit, a.path) < std::tie(b.commit, b.path);
        });
        report.corrupt.push_back(std::move(bad));
      }
    }
  };
  const unsigned n = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(jobs.size())));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n; ++t) {
    pool.emplace_back(worker);
  }
  worker();
  for (auto& t : pool) {
    t.join();
  }
  std::sort(report.corrupt.begin(), report.corrupt.end(), [](const CorruptBlob& a, const CorruptBlob& b) {
    return std::tie(a.folder, a.blob_path) < std::tie(b.folder, b.blob_path);
  });
  return report;
}

} // namespace modelmgr::cache
