#include "transfer/engine.hpp"

#include "net/http_parse.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/lock.hpp"
#include "util/size.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::transfer {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t k_min_chunk = 16ull << 20;
constexpr std::uint64_t k_max_chunk = 64ull << 20;
constexpr auto k_progress_interval = std::chrono::milliseconds(100);
constexpr auto k_state_interval = std::chrono::milliseconds(500);
// Files smaller than this, fetched in one piece, are restarted rather than resumed after a crash.
constexpr std::uint64_t k_min_resumable_size = 8ull << 20;
// A chunk in flight is split for an idle connection only when both halves get at least this much.
constexpr std::uint64_t k_min_split_piece = 4ull << 20;
// ...and only when its own rate, observed for at least this long (s), predicts more than k_split_min_eta.
constexpr double k_split_min_observation = 0.5;
constexpr double k_split_min_eta = 2.0;

// Caps the total receive rate of all connections (token bucket with a small burst).
class RateLimiter {
public:
  explicit RateLimiter(std::uint64_t bytes_per_sec) : m_rate(bytes_per_sec) {}
  void consume(std::size_t n, const std::atomic<bool>* cancel)
  {
    if (m_rate == 0) {
      return;
    }
    Clock::time_point wake;
    {
      std::lock_guard lock(m_mutex);
      const auto now = Clock::now();
      const auto burst = std::chrono::milliseconds(100);
      if (m_next < now - burst) {
        m_next = now - burst;
      }
      m_next += std::chrono::nanoseconds(
          static_cast<long long>(static_cast<double>(n) * 1e9 / static_cast<double>(m_rate)));
      wake = m_next;
    }
    while (Clock::now() < wake) {
      if (cancel && cancel->load()) {
        return;
      }
      std::this_thread::sleep_for(
          std::min<Clock::duration>(wake - Clock::now(), std::chrono::milliseconds(50)));
    }
  }

private:
  std::uint64_t m_rate;
  std::mutex m_mutex;
  Clock::time_point m_next{};
};

struct Chunk {
  std::uint64_t start = 0;
  // Exclusive end. Only ever lowered, by a split while the chunk is in flight (the request then stops at
  // the new end); read without the scheduler lock by the receiving thread.
  std::atomic<std::uint64_t> end{0};
  std::atomic<std::uint64_t> written{0};
  bool in_flight = false;
  Clock::time_point dispatched{}; // when the current request started
  std::uint64_t written_at_dispatch = 0;
  int failures = 0; // consecutive attempts without progress
  Clock::time_point not_before{};
  std::uint64_t length() const { return end.load() - start; }
  bool done() const { return written.load() >= length(); }
  std::uint64_t remaining() const
  {
    const std::uint64_t w = written.load();
    return w >= length() ? 0 : length() - w;
  }
};

enum class FileStage { waiting, active, finished };

struct FileState {
  std::size_t index = 0;
  const FileJob* job = nullptr;
  cache::RepoCache cache;
  FileStage stage = FileStage::waiting;
  bool opening = false;
  int fd = -1;
  std::optional<util::FileLock> lock;
  std::deque<Chunk> chunks; // deque: Chunk holds an atomic and must not move
  std::uint64_t chunk_size = 0;
  int in_flight = 0;
  // Small one-chunk files keep no resume state: re-fetching them is cheaper than the two fsyncs an atomic
  // state write costs (measured: 1,500-file snapshots were dominated by fsyncs).
  bool persist_state = true;
  std::string origin; // scheme://host:port the bytes come from (guarded by the scheduler lock)
  bool hash_retry_used = false;
  bool failed = false;
  std::atomic<bool> abort{false};
  std::exception_ptr error;
  std::atomic<std::uint64_t> fetched{0};
  bool downloaded = false;

  // Location of the bytes once known (e.g. the CDN URL after the first redirect chain).
  std::mutex location_mutex;
  std::string location;

  // In-order hashing of the contiguous prefix.
  std::mutex hash_mutex;
  std::atomic<bool> hash_pending{false};
  std::optional<util::Hasher> hasher;
  std::uint64_t hashed = 0;

  std::mutex state_mutex;
  Clock::time_point last_state_save{};
  std::atomic<std::int64_t> last_progress_ns{0};

  explicit FileState(cache::RepoCache c) : cache(std::move(c)) {}

  std::uint64_t present() const
  {
    std::uint64_t sum = 0;
    for (const auto& c : chunks) {
      sum += std::min(c.written.load(), c.length());
    }
    return sum;
  }
  bool all_done() const
  {
    return std::all_of(chunks.begin(), chunks.end(), [](const Chunk& c) { return c.done(); });
  }
  // The chunk holding `offset`. Chunks are not uniform once a slow one was split (splits append).
  Chunk& chunk_at(std::uint64_t offset)
  {
    for (auto& c : chunks) {
      if (c.start <= offset && offset < c.end.load()) {
        return c;
      }
    }
    return chunks.back();
  }
};

std::string io_error(const std::string& what, const fs::path& p, int err)
{
  return fmt::format("{} {}: {}", what, p.string(), std::strerror(err));
}

[[noreturn]] void throw_disk(const std::string& what, const fs::path& p, int err)
{
  std::string hint = err == ENOSPC ? "free disk space or point --cache-dir / HF_HUB_CACHE to a larger disk"
                                   : "check permissions and the file system of the cache directory";
  throw DownloadError(ErrorKind::disk, io_error(what, p, err), hint);
}

class ChunkError : public std::runtime_error {
public:
  ChunkError(std::string msg, bool is_transient, bool did_progress,
             std::optional<std::chrono::milliseconds> wait_for = {}, bool was_stalled = false)
      : std::runtime_error(std::move(msg)), transient(is_transient), progressed(did_progress), wait(wait_for),
        stalled(was_stalled)
  {
  }
  bool transient;
  bool progressed;
  std::optional<std::chrono::milliseconds> wait;
  bool stalled;
  // The server pushed back (429/503, refused or reset connections): fewer connections to `origin`.
  bool pushback = false;
  std::string origin;
};

} // namespace

std::vector<std::pair<std::uint64_t, std::uint64_t>> plan_chunks(std::uint64_t size, const TransferOptions& o)
{
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  if (size == 0) {
    return out;
  }
  std::uint64_t chunk = size;
  if (o.chunk_size > 0) {
    chunk = o.chunk_size;
  } else if (size >= o.parallel_threshold && o.connections_per_file > 1) {
    chunk = std::clamp<std::uint64_t>(size / static_cast<std::uint64_t>(o.connections_per_file), k_min_chunk,
                                      k_max_chunk);
  }
  for (std::uint64_t off = 0; off < size; off += chunk) {
    out.emplace_back(off, std::min(size, off + chunk));
  }
  return out;
}

struct Run {
  hub::HubClient& hub;
  const TransferOptions& options;
  ProgressObserver* observer;
  const std::atomic<bool>* cancel;
  RateLimiter limiter;
  std::deque<FileState> files;

  std::mutex mutex;
  std::condition_variable cv;
  util::DirSyncBatch dir_sync; // blobs/ folders, synced once at the end of the run
  std::size_t next_to_open = 0;

  Run(hub::HubClient& h, const TransferOptions& o, ProgressObserver* obs)
      : hub(h), options(o), observer(obs), cancel(h.cancel_flag()), limiter(o.rate_limit)
  {
  }

  // The first failure that belongs to no file (an observer that threw, an unexpected error in a worker);
  // Engine::run rethrows it once every worker has joined. `aborted` stops the run like a cancellation.
  std::mutex error_mutex;
  std::exception_ptr run_error;
  std::atomic<bool> aborted{false};
  std::atomic<bool> observer_failed{false};

  bool cancelled() const { return (cancel && cancel->load()) || aborted.load(); }

  void abort_run(std::exception_ptr error) noexcept
  {
    {
      std::lock_guard lock(error_mutex);
      if (!run_error) {
        run_error = error;
      }
    }
    aborted.store(true);
    cv.notify_all();
  }

  // Never throws: it runs inside libcurl's write callback and on worker threads, where an exception would
  // unwind through C frames or end in std::terminate. An observer that throws is not called again, and the
  // run stops (partial files kept, as on Ctrl-C) with the observer's exception.
  void emit(const FileState& f, EventType type, std::uint64_t current = 0, std::string message = {},
            int attempt = 0) noexcept
  {
    if (!observer || observer_failed.load()) {
      return;
    }
    try {
      ProgressEvent e;
      e.type = type;
      e.repo_id = f.job->repo.id;
      e.path = f.job->repo_path;
      e.total = f.job->size;
      e.current = current;
      e.attempt = attempt;
      e.message = std::move(message);
      observer->on_event(e);
    } catch (...) {
      observer_failed.store(true);
      abort_run(std::current_exception());
    }
  }

  // ---- resume state -------------------------------------------------------------------------------------

  // `closing`: the file stops here (failure, interruption); its state is worth saving even for small files.
  void save_state(FileState& f, bool force, bool closing = false)
  {
    if (!f.persist_state && !closing) {
      return;
    }
    std::unique_lock lock(f.state_mutex, std::try_to_lock);
    if (!lock.owns_lock()) {
      if (!force) {
        return;
      }
      lock.lock();
    }
    const auto now = Clock::now();
    if (!force && now - f.last_state_save < k_state_interval) {
      return;
    }
    f.last_state_save = now;
    nlohmann::json j;
    j["format"] = "modelmgr-resume";
    j["version"] = 1;
    j["etag"] = f.job->etag;
    j["size"] = f.job->size;
    j["chunk_size"] = f.chunk_size;
    auto arr = nlohmann::json::array();
    for (const auto& c : f.chunks) {
      arr.push_back({c.start, c.end.load(), std::min(c.written.load(), c.length())});
    }
    j["chunks"] = std::move(arr);
    try {
      util::atomic_write_file(f.cache.resume_state_path(f.job->etag), j.dump());
    } catch (const std::exception&) {
      // Losing resume state only costs a re-download later; the download itself goes on.
    }
  }

  // Restores progress from a previous run; returns false when there is nothing usable. The previous run
  // may have used another chunk layout (other --connections or --chunk-size): what counts is which byte
  // ranges are on disk, so each new chunk keeps the present bytes at its start.
  bool load_state(FileState& f, std::uint64_t temp_size)
  {
    std::ifstream in(f.cache.resume_state_path(f.job->etag));
    if (!in) {
      return false;
    }
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_object() || j.value("format", "") != "modelmgr-resume" || j.value("version", 0) != 1 ||
        j.value("etag", "") != f.job->etag || j.value("size", std::uint64_t{0}) != f.job->size ||
        !j.contains("chunks") || !j["chunks"].is_array()) {
      return false;
    }
    std::vector<std::pair<std::uint64_t, std::uint64_t>> present; // [start, end)
    for (const auto& c : j["chunks"]) {
      if (!c.is_array() || c.size() != 3 || !c[0].is_number_unsigned() || !c[1].is_number_unsigned() ||
          !c[2].is_number_unsigned()) {
        return false;
      }
      const auto a = c[0].get<std::uint64_t>();
      const auto b = c[1].get<std::uint64_t>();
      const auto w = c[2].get<std::uint64_t>();
      if (a > b || b > f.job->size || w > b - a || a + w > temp_size) {
        return false;
      }
      if (w > 0) {
        present.emplace_back(a, a + w);
      }
    }
    std::sort(present.begin(), present.end());
    bool any = false;
    for (auto& chunk : f.chunks) {
      // Bytes present contiguously from the chunk's start.
      std::uint64_t upto = chunk.start;
      for (const auto& [a, b] : present) {
        if (a <= upto && b > upto) {
          upto = b;
        }
      }
      const std::uint64_t w = std::min(upto, chunk.end.load()) - chunk.start;
      chunk.written.store(w);
      any = any || w > 0;
    }
    return any;
  }

  // ---- hashing --------------------------------------------------------------------------------------------

  // Extends the hash over the contiguous prefix that is on disk. `buf` is data the calling thread just wrote
  // at `buf_off`; when the prefix reaches it, it is hashed from memory instead of being read back.
  void advance_hash(FileState& f, const char* buf, std::uint64_t buf_off, std::size_t n)
  {
    f.hash_pending.store(true);
    while (f.hash_pending.load()) {
      std::unique_lock lock(f.hash_mutex, std::try_to_lock);
      if (!lock.owns_lock()) {
        return; // the holder loops while hash_pending is set
      }
      f.hash_pending.store(false);
      std::vector<char> scratch;
      for (;;) {
        const std::uint64_t from = f.hashed;
        if (from >= f.job->size) {
          break;
        }
        Chunk& c = f.chunk_at(from);
        const std::uint64_t avail = c.start + std::min(c.written.load(std::memory_order_acquire), c.length());
        if (avail <= from) {
          break;
        }
        if (buf && buf_off <= from && from < buf_off + n) {
          const std::uint64_t upto = std::min<std::uint64_t>(avail, buf_off + n);
          f.hasher->update(
              std::span<const char>(buf + (from - buf_off), static_cast<std::size_t>(upto - from)));
          f.hashed = upto;
          continue;
        }
        if (scratch.empty()) {
          scratch.resize(1 << 20);
        }
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(avail - from, scratch.size()));
        ssize_t got = ::pread(f.fd, scratch.data(), want, static_cast<off_t>(from));
        if (got <= 0) {
          if (got < 0 && errno == EINTR) {
            continue;
          }
          // Leave the prefix where it is; the final check re-reads whatever is missing.
          break;
        }
        f.hasher->update(std::span<const char>(scratch.data(), static_cast<std::size_t>(got)));
        f.hashed = from + static_cast<std::uint64_t>(got);
      }
    }
  }

  // ---- opening and finishing a file ----------------------------------------------------------------------

  // Prepares a file: lock, skip when present, open the temp file, restore resume state. Returns false when
  // nothing needs downloading (already cached, or finished right here).
  bool open_file(FileState& f)
  {
    const FileJob& job = *f.job;
    f.cache.ensure_layout();
    if (f.cache.has_blob(job.etag, job.size)) {
      emit(f, EventType::cached, job.size);
      return false;
    }
    const fs::path lock_path = f.cache.lock_path(job.etag);
    util::FileLock lock(lock_path);
    const bool got = lock.lock_for(options.lock_timeout, [&](const std::optional<util::LockHolder>& holder,
                                                             std::chrono::milliseconds waited) {
      if (cancelled()) {
        throw DownloadError(ErrorKind::interrupted, "interrupted while waiting for a lock");
      }
      emit(f, EventType::waiting_lock, 0,
           fmt::format("held by {} ({} s so far)",
                       holder ? holder->describe() : std::string("another process"),
                       std::chrono::duration_cast<std::chrono::seconds>(waited).count()));
    });
    if (!got) {
      auto holder = util::read_holder(lock_path);
      throw DownloadError(
          ErrorKind::locked,
          fmt::format("'{}' of {} is being downloaded by another process ({}); gave up after {} s",
                      job.repo_path, job.repo.describe(),
                      holder ? holder->describe() : std::string("holder unknown"),
                      std::chrono::duration_cast<std::chrono::seconds>(options.lock_timeout).count()),
          fmt::format("wait for it to finish, or raise --lock-timeout; the lock is {}", lock_path.string()));
    }
    f.lock.emplace(std::move(lock));
    // Another process may have finished it while we waited.
    if (f.cache.has_blob(job.etag, job.size)) {
      emit(f, EventType::cached, job.size);
      return false;
    }
    auto ranges = plan_chunks(job.size, options);
    f.chunk_size = ranges.empty() ? 0 : ranges.front().second - ranges.front().first;
    f.persist_state = ranges.size() > 1 || job.size >= k_min_resumable_size;
    for (auto [a, b] : ranges) {
      auto& c = f.chunks.emplace_back();
      c.start = a;
      c.end = b;
    }
    const fs::path temp = f.cache.incomplete_path(job.etag);
    std::optional<std::uint64_t> adopted;
    try {
      // Python 0.x resumes from blobs/<etag>.incomplete itself; we take the prefix over (under the lock).
      adopted = f.cache.adopt_foreign_incomplete(job.etag, job.size);
      f.fd = f.cache.open_incomplete(job.etag);
    } catch (const std::system_error& e) {
      throw DownloadError(
          ErrorKind::disk, e.what(),
          e.code().value() == ELOOP || e.code().value() == EINVAL
              ? "something other than modelmgr created it: remove it, and check who can write "
                "to the cache's blobs/ folder"
              : "check permissions and the file system of the cache directory");
    }
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) {
      throw_disk("cannot stat", temp, errno);
    }
    bool resumed = st.st_size > 0 && load_state(f, static_cast<std::uint64_t>(st.st_size));
    if (!resumed && adopted) {
      resumed =
          resume_from_prefix(f, std::min<std::uint64_t>(*adopted, static_cast<std::uint64_t>(st.st_size)));
    }
    if (!resumed) {
      for (auto& c : f.chunks) {
        c.written.store(0);
      }
      if (::ftruncate(f.fd, 0) != 0) {
        throw_disk("cannot truncate", temp, errno);
      }
    }
    if (job.size > 0 && static_cast<std::uint64_t>(st.st_size) < job.size) {
      // Reserve the space now so that a full disk fails here, not in the middle of the transfer.
      int err = ::posix_fallocate(f.fd, 0, static_cast<off_t>(job.size));
      if (err == EOPNOTSUPP || err == EINVAL) {
        err = ::ftruncate(f.fd, static_cast<off_t>(job.size)) == 0 ? 0 : errno;
      }
      if (err != 0) {
        throw_disk("cannot reserve space for", temp, err);
      }
    }
    f.hasher.emplace(util::hasher_for_etag(job.etag, job.size));
    f.hashed = 0;
    // After a crash the hash state is gone: re-hash the prefix that is on disk, once.
    advance_hash(f, nullptr, 0, 0);
    emit(f, EventType::planned, f.present(), resumed ? "resuming" : "");
    if (job.size == 0 || f.all_done()) {
      finish_file(f);
      // A hash mismatch restarts the file: then it has chunks to fetch after all.
      std::lock_guard guard(mutex);
      return f.stage != FileStage::finished && !f.failed;
    }
    save_state(f, true);
    emit(f, EventType::started, f.present());
    return true;
  }

  // Marks the first `prefix` bytes of the temp file as present (a download another client left, without
  // our resume state). Returns true if any chunk has bytes.
  bool resume_from_prefix(FileState& f, std::uint64_t prefix)
  {
    bool any = false;
    for (auto& c : f.chunks) {
      const std::uint64_t w = prefix > c.start ? std::min(prefix - c.start, c.length()) : 0;
      c.written.store(w);
      any = any || w > 0;
    }
    return any;
  }

  // Checks size and hash, then moves the temp file to its blob name. On a hash mismatch the file is
  // restarted once; the second mismatch is an error.
  void finish_file(FileState& f)
  {
    const FileJob& job = *f.job;
    emit(f, EventType::verifying, job.size);
    advance_hash(f, nullptr, 0, 0);
    const fs::path temp = f.cache.incomplete_path(job.etag);
    if (f.hashed != job.size) {
      throw DownloadError(ErrorKind::disk,
                          fmt::format("cannot read back {} while verifying it", temp.string()));
    }
    const auto kind = util::etag_kind(job.etag);
    const std::string actual = f.hasher->hex_digest();
    if (kind != util::EtagKind::opaque && actual != job.etag) {
      const char* algo = kind == util::EtagKind::sha256 ? "sha256" : "git-sha1";
      if (!f.hash_retry_used) {
        f.hash_retry_used = true;
        emit(f, EventType::retrying, 0, fmt::format("{} mismatch (got {}), downloading again", algo, actual),
             2);
        restart_file(f);
        return;
      }
      fail_file(f, std::make_exception_ptr(BadChecksumError(
                       fmt::format("checksum mismatch for '{}' of {}: expected {} {}, got {} ({} bytes)",
                                   job.repo_path, job.repo.describe(), algo, job.etag, actual, job.size),
                       "the download was corrupted twice; retry later, or report it to the mirror/Hub if it "
                       "persists")));
      return;
    }
    // commit_blob fsyncs this very descriptor and checks its close() before the rename: nothing unflushed
    // or unwritten (NFS reports write errors at close) ever gets the final name.
    try {
      f.cache.commit_blob(std::exchange(f.fd, -1), temp, job.etag, &dir_sync);
    } catch (const std::system_error& e) {
      throw DownloadError(ErrorKind::disk,
                          fmt::format("cannot place '{}' in the cache: {}", job.repo_path, e.what()),
                          e.code() == std::errc::no_space_on_device
                              ? "free disk space or point --cache-dir / HF_HUB_CACHE to a larger disk"
                              : "check permissions and the file system of the cache directory");
    }
    std::error_code ec;
    fs::remove(f.cache.resume_state_path(job.etag), ec);
    remove_stale_state_temps(f);
    f.downloaded = true;
    f.lock.reset();
    {
      std::lock_guard lock(mutex);
      f.stage = FileStage::finished;
    }
    emit(f, EventType::done, job.size);
    cv.notify_all();
  }

  // A process killed while writing its resume state leaves the atomic-write temp file (".<state
  // name>.<hex>.tmp") behind; once the blob is committed those are garbage.
  void remove_stale_state_temps(FileState& f)
  {
    const std::string prefix = "." + f.cache.resume_state_path(f.job->etag).filename().string() + ".";
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(f.cache.blobs_dir(), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with(prefix) && name.ends_with(".tmp")) {
        fs::remove(entry.path(), ec);
      }
    }
  }

  void restart_file(FileState& f)
  {
    {
      std::lock_guard lock(mutex);
      for (auto& c : f.chunks) {
        c.written.store(0);
        c.failures = 0;
      }
      f.hasher.emplace(util::hasher_for_etag(f.job->etag, f.job->size));
      f.hashed = 0;
      std::lock_guard loc(f.location_mutex);
      f.location.clear();
    }
    std::error_code ec;
    fs::remove(f.cache.resume_state_path(f.job->etag), ec);
    if (f.job->size == 0) {
      finish_file(f);
    }
    cv.notify_all();
  }

  void fail_file(FileState& f, std::exception_ptr error)
  {
    {
      std::lock_guard lock(mutex);
      if (f.failed || f.stage == FileStage::finished) {
        return;
      }
      f.failed = true;
      f.error = error;
      f.abort.store(true);
    }
    std::string msg;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    // Keep the temp file and resume state for a later run unless the bytes are known to be bad.
    bool bad_bytes = false;
    try {
      std::rethrow_exception(error);
    } catch (const BadChecksumError&) {
      bad_bytes = true;
    } catch (...) {
    }
    maybe_close(f, bad_bytes);
    emit(f, EventType::failed, f.present(), msg);
    cv.notify_all();
  }

  // Closes a failed file once no chunk is in flight.
  void maybe_close(FileState& f, bool discard)
  {
    std::lock_guard lock(mutex);
    if (f.in_flight > 0 || f.stage == FileStage::finished) {
      return;
    }
    if (f.fd >= 0) {
      if (!discard) {
        save_state(f, true, true);
      }
      // Unchecked on purpose: this file is not committed, and a resume re-verifies every byte by hash.
      ::close(f.fd);
      f.fd = -1;
    }
    if (discard) {
      std::error_code ec;
      fs::remove(f.cache.incomplete_path(f.job->etag), ec);
      fs::remove(f.cache.resume_state_path(f.job->etag), ec);
    }
    f.lock.reset();
    f.stage = FileStage::finished;
  }

  // ---- fetching one chunk
  // ----------------------------------------------------------------------------------

  void fetch_chunk(FileState& f, Chunk& c)
  {
    const FileJob& job = *f.job;
    std::string url;
    {
      std::lock_guard lock(f.location_mutex);
      url = f.location.empty() ? job.url : f.location;
    }
    const std::uint64_t before = c.written.load();
    for (int hop = 0; hop < 10; ++hop) {
      const std::uint64_t first = c.start + c.written.load();
      const std::uint64_t last = c.end.load() - 1;
      net::Request req;
      req.url = url;
      req.headers = hub.headers_for(url);
      req.connect_timeout = hub.config().etag_timeout;
      req.stall_timeout = hub.config().download_timeout;
      const bool whole_file = first == 0 && c.end.load() == job.size;
      if (!whole_file) {
        req.range = std::make_pair(first, std::optional<std::uint64_t>(last));
      }
      // Small files are latency-bound: HTTP/2 streams of shared connections. Bigger ones keep their own
      // connection even below the parallel threshold, since CDNs cap the rate of each connection.
      req.multiplex =
          whole_file && job.size < std::min<std::uint64_t>(options.parallel_threshold, 2ull << 20);
      std::string violation;
      bool head_checked = false;
      bool split_stop = false; // the chunk was shortened by a split: stop at its new end
      auto sink = [&](std::span<const char> data, const net::Response& head) -> bool {
        if (f.abort.load() || aborted.load()) {
          return false;
        }
        if (!head_checked && !req.range) {
          // Asked for the whole file: a 200 is right; a 206 would be a lie.
          if (head.status != 200) {
            violation = fmt::format("HTTP {} to a request without Range", head.status);
            return false;
          }
        } else if (!head_checked) {
          // The server is not trusted: the range must be exactly the one asked.
          if (head.status != 206) {
            violation = fmt::format("HTTP {} instead of 206 to Range bytes={}-{}", head.status, first, last);
            return false;
          }
          auto cr = net::parse_content_range(head.single_header("content-range").value_or(""));
          if (!cr || cr->first != first || cr->second != last) {
            violation = fmt::format("Content-Range '{}' does not match the range asked (bytes {}-{})",
                                    head.single_header("content-range").value_or(""), first, last);
            return false;
          }
        }
        head_checked = true;
        const std::uint64_t at = c.start + c.written.load();
        if (at + data.size() > last + 1) {
          violation = fmt::format("server sent more than the {} bytes asked", last + 1 - first);
          return false;
        }
        const std::uint64_t end = c.end.load();
        if (at >= end) {
          split_stop = true;
          return false;
        }
        if (at + data.size() > end) {
          data = data.first(static_cast<std::size_t>(end - at));
          split_stop = true;
        }
        limiter.consume(data.size(), cancel);
        std::size_t off = 0;
        while (off < data.size()) {
          ssize_t w = ::pwrite(f.fd, data.data() + off, data.size() - off, static_cast<off_t>(at + off));
          if (w < 0) {
            if (errno == EINTR) {
              continue;
            }
            violation = "disk:" + io_error("cannot write", f.cache.incomplete_path(job.etag), errno);
            return false;
          }
          off += static_cast<std::size_t>(w);
        }
        c.written.fetch_add(data.size(), std::memory_order_release);
        f.fetched.fetch_add(data.size());
        advance_hash(f, data.data(), at, data.size());
        report_bytes(f);
        save_state(f, false);
        return !split_stop;
      };
      net::Response r = hub.http().perform(req, sink, cancel);
      hub.count_request();
      const bool progressed = c.written.load() > before;
      if (split_stop && c.done()) {
        return;
      }
      if (violation.starts_with("disk:")) {
        throw DownloadError(ErrorKind::disk, violation.substr(5),
                            "free disk space or point --cache-dir / HF_HUB_CACHE to a larger disk");
      }
      if (!violation.empty()) {
        throw ChunkError(fmt::format("{} from {}", violation, net::display_url(url)), true, progressed);
      }
      if (cancelled()) {
        throw DownloadError(ErrorKind::interrupted, "interrupted");
      }
      if (f.abort.load()) {
        return;
      }
      if (!r.transport_ok()) {
        ChunkError e(hub::describe_transport_error(r, url), true, progressed, std::nullopt,
                     r.error == net::TransferError::stalled);
        e.pushback = r.error == net::TransferError::connect || r.error == net::TransferError::recv;
        e.origin = net::origin_of(url);
        throw e;
      }
      if (r.is_redirect()) {
        auto loc = r.single_header("location");
        if (!loc) {
          throw ChunkError(fmt::format("HTTP {} without Location from {}", r.status, net::display_url(url)),
                           true, false);
        }
        url = net::resolve_location(url, *loc);
        continue;
      }
      if (r.is_success()) {
        if (!c.done()) {
          throw ChunkError(fmt::format("short body from {}: got {} of {} bytes", net::display_url(url),
                                       c.written.load() - (first - c.start), c.end.load() - first),
                           true, progressed);
        }
        std::lock_guard lock(f.location_mutex);
        f.location = url;
        return;
      }
      if (net::is_transient(r)) {
        std::optional<std::chrono::milliseconds> wait;
        if (auto ra = net::retry_after(r)) {
          wait = std::min<std::chrono::milliseconds>(*ra, std::chrono::minutes(5));
        }
        ChunkError e(fmt::format("HTTP {} from {}", r.status, net::display_url(url)), true, progressed, wait);
        e.pushback = r.status == 429 || r.status == 503;
        e.origin = net::origin_of(url);
        throw e;
      }
      if (net::origin_of(url) != net::origin_of(hub.config().endpoint) &&
          (r.status == 403 || r.status == 404 || r.status == 410)) {
        // A signed CDN URL may have expired: ask the Hub for a fresh one.
        std::lock_guard lock(f.location_mutex);
        f.location.clear();
        throw ChunkError(fmt::format("HTTP {} from {}", r.status, net::display_url(url)), true, progressed);
      }
      hub.throw_for_response(r, job.repo, "", job.repo_path);
    }
    throw ChunkError(fmt::format("too many redirects for '{}'", job.repo_path), false, false);
  }

  void report_bytes(FileState& f)
  {
    if (!observer) {
      return;
    }
    const auto now = Clock::now().time_since_epoch().count();
    auto last = f.last_progress_ns.load();
    if (now - last < std::chrono::nanoseconds(k_progress_interval).count()) {
      return;
    }
    if (f.last_progress_ns.compare_exchange_strong(last, now)) {
      emit(f, EventType::bytes, f.present());
    }
  }

  // ---- scheduling
  // ------------------------------------------------------------------------------------------

  struct Work {
    FileState* file = nullptr;
    Chunk* chunk = nullptr;
    bool open = false;
    std::string origin;
  };

  // Connections allowed to one host: starts at the global budget, halves when the host pushes back,
  // grows by one with each chunk it serves.
  struct Host {
    int cap = 0;
    int in_flight = 0;
  };
  std::map<std::string, Host> hosts;

  Host& host(const std::string& origin)
  {
    auto [it, inserted] = hosts.try_emplace(origin);
    if (inserted) {
      it->second.cap = std::max(1, options.max_connections);
    }
    return it->second;
  }

  Work dispatch(FileState& f, Chunk& c)
  {
    c.in_flight = true;
    c.dispatched = Clock::now();
    c.written_at_dispatch = c.written.load();
    ++f.in_flight;
    ++host(f.origin).in_flight;
    return {&f, &c, false, f.origin};
  }

  // When a connection is idle and nothing else is left, the in-flight chunk with the most bytes to go is
  // cut in two and the idle connection takes the second half, so a slow connection near the end of a
  // file does not hold up the whole download.
  std::optional<Work> try_split()
  {
    FileState* best_file = nullptr;
    Chunk* best = nullptr;
    double best_eta = 0;
    const auto now = Clock::now();
    for (auto& f : files) {
      if (f.stage != FileStage::active || f.failed ||
          f.in_flight >= std::max(1, options.connections_per_file)) {
        continue;
      }
      const Host& h = host(f.origin);
      if (h.in_flight >= h.cap) {
        continue;
      }
      for (auto& c : f.chunks) {
        if (!c.in_flight || c.remaining() < 2 * k_min_split_piece) {
          continue;
        }
        // Only a chunk that will clearly take long at its own measured rate: splitting a fast one wastes
        // the bytes already in flight on its connection.
        const double secs = std::chrono::duration<double>(now - c.dispatched).count();
        if (secs < k_split_min_observation) {
          continue;
        }
        const double rate = static_cast<double>(c.written.load() - c.written_at_dispatch) / secs;
        const double eta = rate > 0 ? static_cast<double>(c.remaining()) / rate : 1e9;
        if (eta > k_split_min_eta && eta > best_eta) {
          best = &c;
          best_file = &f;
          best_eta = eta;
        }
      }
    }
    if (!best) {
      return std::nullopt;
    }
    const std::uint64_t end = best->end.load();
    const std::uint64_t mid = (end - best->remaining() / 2) & ~std::uint64_t{0xffff};
    if (mid <= best->start + best->written.load() || mid >= end) {
      return std::nullopt;
    }
    // deque::emplace_back keeps references to the other chunks valid (they are in use by other threads).
    Chunk& piece = best_file->chunks.emplace_back();
    piece.start = mid;
    piece.end.store(end);
    best->end.store(mid);
    return dispatch(*best_file, piece);
  }

  // Picks the next piece of work: a chunk of an active file (earliest file first, within its connection
  // cap), else opening the next file. Waits while work may still appear. Returns empty work when all done.
  Work next_work(std::unique_lock<std::mutex>& lock)
  {
    for (;;) {
      if (cancelled()) {
        return {};
      }
      auto now = Clock::now();
      std::optional<Clock::time_point> earliest;
      bool busy = false;
      for (auto& f : files) {
        if (f.stage != FileStage::active || f.failed) {
          if (f.opening || (f.stage == FileStage::active && f.in_flight > 0)) {
            busy = true;
          }
          continue;
        }
        if (f.in_flight > 0) {
          busy = true;
        }
        if (f.in_flight >= std::max(1, options.connections_per_file)) {
          continue;
        }
        const Host& h = host(f.origin);
        if (h.in_flight >= h.cap) {
          continue;
        }
        for (auto& c : f.chunks) {
          if (c.in_flight || c.done()) {
            continue;
          }
          if (c.not_before > now) {
            earliest = earliest ? std::min(*earliest, c.not_before) : c.not_before;
            continue;
          }
          return dispatch(f, c);
        }
      }
      if (next_to_open < files.size()) {
        FileState& f = files[next_to_open++];
        f.opening = true;
        return {&f, nullptr, true, {}};
      }
      if (auto w = try_split()) {
        return *w;
      }
      if (!busy && !earliest) {
        return {};
      }
      // Wake up now and then even without news: a chunk in flight may become slow enough to split.
      const auto recheck = Clock::now() + std::chrono::milliseconds(250);
      cv.wait_until(lock, earliest ? std::min(*earliest, recheck) : recheck);
    }
  }

  // The body of each worker thread: nothing may escape a std::thread (std::terminate). Failures of a file
  // are handled per file below; anything else stops the run.
  void worker() noexcept
  {
    try {
      work();
    } catch (...) {
      abort_run(std::current_exception());
    }
  }

  void work()
  {
    std::unique_lock lock(mutex);
    for (;;) {
      Work w = next_work(lock);
      if (!w.file) {
        cv.notify_all();
        return;
      }
      lock.unlock();
      if (w.open) {
        run_open(*w.file);
      } else {
        run_chunk(*w.file, *w.chunk, w.origin);
      }
      lock.lock();
    }
  }

  void run_open(FileState& f)
  {
    bool active = false;
    try {
      active = open_file(f);
    } catch (...) {
      std::lock_guard lock(mutex);
      f.error = std::current_exception();
      f.failed = true;
      f.stage = FileStage::finished;
      f.opening = false;
      if (f.fd >= 0) {
        ::close(f.fd);
        f.fd = -1;
      }
      f.lock.reset();
      cv.notify_all();
      return;
    }
    std::lock_guard lock(mutex);
    f.opening = false;
    if (active) {
      f.stage = FileStage::active;
    } else if (f.stage != FileStage::finished) {
      f.stage = FileStage::finished;
      f.lock.reset();
    }
    cv.notify_all();
  }

  void run_chunk(FileState& f, Chunk& c, const std::string& origin)
  {
    std::exception_ptr fatal;
    std::optional<ChunkError> soft;
    try {
      fetch_chunk(f, c);
      if (c.done()) {
        // A finished chunk is never fetched again, whatever happens to this process. Saved while the chunk
        // still counts as in flight, so that it cannot race with the final commit removing the state.
        save_state(f, true);
      }
    } catch (const ChunkError& e) {
      soft.emplace(e);
    } catch (...) {
      fatal = std::current_exception();
    }
    bool finish = false;
    std::string pushback_note;
    {
      std::lock_guard lock(mutex);
      c.in_flight = false;
      --f.in_flight;
      --host(origin).in_flight;
      if (soft && soft->pushback) {
        f.origin = soft->origin;
        Host& h = host(soft->origin);
        const int before = h.cap;
        h.cap = std::max(1, h.cap / 2);
        if (h.cap != before) {
          pushback_note = fmt::format("; connections to {} reduced to {}", soft->origin, h.cap);
        }
      } else if (!soft && !fatal) {
        std::string where;
        {
          std::lock_guard loc(f.location_mutex);
          where = net::origin_of(f.location);
        }
        if (!where.empty()) {
          f.origin = where;
        }
        Host& h = host(f.origin);
        h.cap = std::min(std::max(1, options.max_connections), h.cap + 1);
      }
      if (soft) {
        c.failures = soft->progressed ? 1 : c.failures + 1;
        if (!soft->transient || c.failures > hub.config().max_retries) {
          fatal = std::make_exception_ptr(DownloadError(
              ErrorKind::network,
              fmt::format("downloading '{}' of {} failed after {} attempts: {}", f.job->repo_path,
                          f.job->repo.describe(), c.failures, soft->what()),
              "check the network and retry: the bytes received so far are kept and the next run resumes"));
        } else {
          auto wait = soft->wait.value_or(
              soft->progressed ? std::chrono::milliseconds(0)
                               : hub::backoff_delay(c.failures, hub.config().retry_base, nullptr));
          c.not_before = Clock::now() + wait;
        }
      } else if (!fatal && !f.failed && f.in_flight == 0 && f.all_done()) {
        finish = true;
      }
    }

    if (soft && !fatal) {
      emit(f, soft->stalled ? EventType::stalled : EventType::retrying, f.present(),
           std::string(soft->what()) + pushback_note, c.failures + 1);
    }
    if (fatal) {
      fail_file(f, fatal);
    } else if (finish) {
      try {
        finish_file(f);
      } catch (...) {
        fail_file(f, std::current_exception());
      }
    }
    if (f.failed) {
      maybe_close(f, false);
    }
    cv.notify_all();
  }
};

Engine::Engine(hub::HubClient& hub, fs::path cache_root, TransferOptions options, ProgressObserver* observer)
    : m_hub(hub), m_cache_root(std::move(cache_root)), m_options(options), m_observer(observer)
{
}

std::uint64_t Engine::bytes_needed(const std::vector<FileJob>& jobs) const
{
  std::uint64_t need = 0;
  for (const auto& job : jobs) {
    cache::RepoCache cache(m_cache_root, job.repo.type, job.repo.id);
    if (cache.has_blob(job.etag, job.size)) {
      continue;
    }
    std::error_code ec;
    // Space reserved by an earlier attempt is already taken.
    auto have = fs::file_size(cache.incomplete_path(job.etag), ec);
    need += ec ? job.size : (job.size > have ? job.size - have : 0);
  }
  return need;
}

std::vector<FileOutcome> Engine::run(const std::vector<FileJob>& jobs)
{
  if (m_options.check_free_space) {
    const std::uint64_t need = bytes_needed(jobs);
    if (need > 0) {
      const std::uint64_t free = m_options.free_space_override.value_or(util::free_space(m_cache_root));
      // Keep a margin so the cache never fills the disk to the last byte.
      const std::uint64_t margin = std::min<std::uint64_t>(need / 100 + (64ull << 20), 1ull << 30);
      if (free < need + margin) {
        throw DownloadError(
            ErrorKind::disk,
            fmt::format("not enough disk space in {}: the download needs {} (plus a {} margin), {} "
                        "are free",
                        m_cache_root.string(), util::format_size(need), util::format_size(margin),
                        util::format_size(free)),
            "free space there, or choose another place with --cache-dir or HF_HUB_CACHE");
      }
    }
  }

  Run run(m_hub, m_options, m_observer);
  std::vector<std::size_t> order(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    order[i] = i;
  }
  // Small files first, so that a repo with many small files is not queued behind one large file.
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return jobs[a].size < jobs[b].size; });
  for (std::size_t i : order) {
    auto& f = run.files.emplace_back(cache::RepoCache(m_cache_root, jobs[i].repo.type, jobs[i].repo.id));
    f.index = i;
    f.job = &jobs[i];
    f.origin = net::origin_of(jobs[i].url);
  }

  const int workers = std::max(1, m_options.max_connections);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) {
    try {
      threads.emplace_back([&run] { run.worker(); });
    } catch (...) {
      // No thread for this worker (resource limits): stop the ones started, then report why.
      run.abort_run(std::current_exception());
      break;
    }
  }
  for (auto& t : threads) {
    t.join();
  }

  try {
    run.dir_sync.flush();
  } catch (const std::system_error& e) {
    throw DownloadError(ErrorKind::disk, e.what(), "check the file system of the cache directory");
  }
  std::vector<FileOutcome> outcomes(jobs.size());
  bool interrupted = run.cancelled();
  for (auto& f : run.files) {
    if (f.fd >= 0) {
      // Interrupted: keep what we have for the next run.
      run.save_state(f, true, true);
      ::close(f.fd);
      f.fd = -1;
    }
    f.lock.reset();
    FileOutcome& o = outcomes[f.index];
    o.bytes_fetched = f.fetched.load();
    o.downloaded = f.downloaded;
    if (f.error) {
      o.error = f.error;
    } else if (f.stage == FileStage::finished && !f.failed) {
      o.ok = true;
    } else {
      o.error = std::make_exception_ptr(DownloadError(
          ErrorKind::interrupted,
          fmt::format("interrupted while downloading '{}' of {}", f.job->repo_path, f.job->repo.describe()),
          "run the same command again: it resumes where it stopped"));
    }
  }
  if (run.run_error) {
    // Partial files and their resume state are kept, as on an interruption.
    std::rethrow_exception(run.run_error);
  }
  if (interrupted) {
    throw DownloadError(ErrorKind::interrupted,
                        "interrupted; partial downloads are kept and resume on the next run",
                        "run the same command again to resume");
  }
  return outcomes;
}

} // namespace modelmgr::transfer
