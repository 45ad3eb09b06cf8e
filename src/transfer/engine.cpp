#include "transfer/engine.hpp"

#include "net/http_parse.hpp"
#include "transfer/resume_state.hpp"
#include "transfer/scheduler.hpp"
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
#include <optional>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::transfer {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Fixed mode (--connections/--max-workers): files of at least TransferOptions::parallel_threshold are cut
// into size/connections pieces within these bounds, as before the scheduler.
constexpr std::uint64_t k_min_chunk = 16ull << 20;
constexpr std::uint64_t k_max_chunk = 64ull << 20;
constexpr auto k_progress_interval = std::chrono::milliseconds(100);
constexpr auto k_state_interval = std::chrono::milliseconds(500);
// Files smaller than this, fetched in one piece, are restarted rather than resumed after a crash.
constexpr std::uint64_t k_min_resumable_size = 8ull << 20;
// Adaptive mode: connections to one host, and requests in flight in total.
constexpr int k_max_connections_per_host = 64;
constexpr int k_max_requests_total = 64;
// Adaptive mode: files below this size are fetched in one request each.
constexpr std::uint64_t k_small_file_size = 16ull << 20;
// How often the supervising thread samples the bytes of every request for the scheduler.
constexpr auto k_sample_interval = std::chrono::milliseconds(50);
// Workers beyond the requests in flight: they open the next files and finish completed ones.
constexpr int k_spare_workers = 4;

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

// One worker thread's request: a fixed address for the whole run, so that the thread receiving the bytes and
// the scheduler's driver never share a container that grows.
struct Slot {
  // Guards `claimed` and changes of `end` between the receiving thread and a split (the global lock holder).
  std::mutex mutex;
  std::uint64_t first = 0;               // first byte of the request (set before it starts)
  std::atomic<std::uint64_t> end{0};     // exclusive; only lowered, by a split, under `mutex`
  std::uint64_t claimed = 0;             // bytes from `first` reserved for writing (under `mutex`)
  std::uint64_t flushing = 0;            // bytes from `first` handed to writeback (receiving thread only)
  std::atomic<std::uint64_t> written{0}; // bytes from `first` on disk
  std::atomic<bool> stop{false};         // aborts the transfer: interrupted, or stalled per the scheduler
  std::atomic<bool> stalled{false};
  // Under the global lock:
  bool active = false;
  RequestId id = 0;
  struct FileState* file = nullptr;

  std::uint64_t length() const { return end.load() - first; }
  bool done() const { return written.load() >= length(); }
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
  std::optional<FileId> sched;  // the scheduler's id once the file is open (guarded by the scheduler lock)
  ByteRanges resumed;           // ranges found on disk when opening, before the scheduler knows the file
  std::uint64_t chunk_size = 0; // informational, for the resume state
  int in_flight = 0;            // requests in flight (guarded by the scheduler lock)
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
  // Bytes on disk (progress events), and the contiguous prefix from byte 0 that is on disk (the hasher).
  std::atomic<std::uint64_t> present_bytes{0};
  std::atomic<std::uint64_t> prefix{0};

  // Location of the bytes once known (e.g. the CDN URL after the first redirect chain).
  std::mutex location_mutex;
  std::string location;

  // In-order hashing of the contiguous prefix.
  std::mutex hash_mutex;
  std::atomic<bool> hash_pending{false};
  std::optional<util::Hasher> hasher;
  std::uint64_t hashed = 0;

  std::mutex state_mutex;
  std::uint64_t state_written_seq = 0; // under state_mutex
  std::uint64_t state_seq = 0;         // under the scheduler lock
  std::atomic<std::int64_t> last_state_save_ns{0};
  std::atomic<std::int64_t> last_progress_ns{0};

  explicit FileState(cache::RepoCache c) : cache(std::move(c)) {}

  std::uint64_t present() const { return present_bytes.load(); }
  bool all_done() const { return present() >= job->size; }
  // Raises the contiguous prefix to at least `upto` (bytes [0, upto) are known to be on disk).
  void raise_prefix(std::uint64_t upto)
  {
    std::uint64_t cur = prefix.load();
    while (cur < upto && !prefix.compare_exchange_weak(cur, upto, std::memory_order_release)) {
    }
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

SchedulerOptions scheduler_options(const TransferOptions& o, const hub::HubConfig& config)
{
  SchedulerOptions so;
  so.adaptive = o.connections_per_file <= 0 && o.max_connections <= 0;
  if (so.adaptive) {
    so.max_per_host = k_max_connections_per_host;
    so.max_total = k_max_requests_total;
    so.max_per_file = k_max_connections_per_host;
    so.small_file_size = k_small_file_size;
  } else {
    // Explicit counts: fixed, as given. One of the two implies the other.
    const int total = o.max_connections > 0 ? o.max_connections : o.connections_per_file;
    so.max_total = std::max(1, total);
    so.max_per_host = so.max_total;
    so.max_per_file = std::max(1, o.connections_per_file > 0 ? o.connections_per_file : total);
    so.small_file_size = o.parallel_threshold;
    so.min_piece = k_min_chunk;
    so.max_piece = k_max_chunk;
  }
  so.fixed_piece = o.chunk_size;
  so.max_retries = config.max_retries;
  so.retry_base = config.retry_base;
  // The transfer layer detects stalls itself (net::Request::stall_timeout); the scheduler's check is a
  // safety net for a connection that neither delivers nor times out.
  so.stall_timeout = config.download_timeout * 2 + std::chrono::seconds(1);
  return so;
}

struct Run {
  hub::HubClient& hub;
  const TransferOptions& options;
  ProgressObserver* observer;
  const std::atomic<bool>* cancel;
  RateLimiter limiter;
  // Filled before the workers start, never resized while they run.
  std::deque<FileState> files;

  // The scheduler lock: guards the scheduler, the slots' bookkeeping and the file fields marked so.
  std::mutex mutex;
  // Idle workers wait on `cv`. Events wake one of them (which wakes the next if it found work), not all:
  // with dozens of workers a broadcast per event costs more than the transfers.
  std::condition_variable cv;
  std::condition_variable supervisor_cv; // the supervising thread: new files, all done
  util::DirSyncBatch dir_sync;           // blobs/ folders, synced once at the end of the run
  std::size_t next_to_open = 0;
  Scheduler sched;
  std::map<FileId, FileState*> by_id;
  // One slot per worker thread; worker i only ever uses slots[i].
  int max_workers;
  std::unique_ptr<Slot[]> slots;
  int workers = 0;   // threads started
  int opening = 0;   // workers opening a file
  int finishing = 0; // workers verifying and committing a file
  bool all_done = false;

  Run(hub::HubClient& h, const TransferOptions& o, ProgressObserver* obs)
      : hub(h), options(o), observer(obs), cancel(h.cancel_flag()), limiter(o.rate_limit),
        sched(scheduler_options(o, h.config())),
        max_workers(sched.options().adaptive ? sched.options().max_total + k_spare_workers
                                             : sched.options().max_total),
        slots(std::make_unique<Slot[]>(static_cast<std::size_t>(max_workers)))
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

  // The bytes of the file's requests in flight, as the scheduler's bookkeeping (caller holds the lock).
  void sample_file(FileState& f, Clock::time_point now)
  {
    for (int i = 0; i < workers; ++i) {
      Slot& slot = slots[static_cast<std::size_t>(i)];
      if (slot.active && slot.file == &f) {
        sched.on_progress(slot.id, slot.written.load(std::memory_order_acquire), now);
      }
    }
    if (f.sched) {
      f.raise_prefix(sched.contiguous_prefix(*f.sched));
    }
  }

  // `closing`: the file stops here (failure, interruption); its state is worth saving even for small files.
  // `locked`: the caller holds the scheduler lock.
  void save_state(FileState& f, bool force, bool closing = false, bool locked = false)
  {
    if (!f.persist_state && !closing) {
      return;
    }
    const auto now = Clock::now();
    const std::int64_t now_ns = now.time_since_epoch().count();
    if (!force) {
      auto last = f.last_state_save_ns.load();
      if (now_ns - last < std::chrono::nanoseconds(k_state_interval).count() ||
          !f.last_state_save_ns.compare_exchange_strong(last, now_ns)) {
        return;
      }
    } else {
      f.last_state_save_ns.store(now_ns);
    }
    ResumeState state;
    state.etag = f.job->etag;
    state.size = f.job->size;
    state.chunk_size = f.chunk_size;
    std::uint64_t seq = 0;
    {
      std::unique_lock lock(mutex, std::defer_lock);
      if (!locked) {
        lock.lock();
      }
      if (f.stage == FileStage::finished && !f.failed && !closing) {
        return; // committed: the state is gone and must stay gone
      }
      if (f.sched) {
        sample_file(f, now);
        state.present = sched.present(*f.sched);
      } else {
        state.present = f.resumed;
      }
      seq = ++f.state_seq;
    }
    std::unique_lock lock(f.state_mutex, std::defer_lock);
    if (force) {
      lock.lock();
    } else if (!lock.try_lock()) {
      return;
    }
    if (seq <= f.state_written_seq) {
      return; // a newer snapshot is already on disk
    }
    f.state_written_seq = seq;
    try {
      util::atomic_write_file(f.cache.resume_state_path(f.job->etag), serialize_resume_state(state));
    } catch (const std::exception&) {
      // Losing resume state only costs a re-download later; the download itself goes on.
    }
  }

  // Restores progress from a previous run; returns false when there is nothing usable. The previous run
  // may have used another layout (other --connections or --chunk-size): what counts is which byte ranges are
  // on disk.
  bool load_state(FileState& f, std::uint64_t temp_size)
  {
    std::ifstream in(f.cache.resume_state_path(f.job->etag));
    if (!in) {
      return false;
    }
    std::ostringstream text;
    text << in.rdbuf();
    auto state = parse_resume_state(text.str(), f.job->etag, f.job->size, temp_size);
    if (!state || state->present.empty()) {
      return false;
    }
    f.resumed = state->present;
    f.present_bytes.store(f.resumed.total());
    f.prefix.store(f.resumed.prefix());
    return true;
  }

  // Forgets every byte of the file (a fresh start or a hash mismatch).
  void reset_progress(FileState& f)
  {
    f.resumed.clear();
    f.present_bytes.store(0);
    f.prefix.store(0);
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
        const std::uint64_t avail = f.prefix.load(std::memory_order_acquire);
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
    f.chunk_size = options.chunk_size;
    f.persist_state =
        job.size >= k_min_resumable_size || (options.chunk_size > 0 && job.size > options.chunk_size);
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
      reset_progress(f);
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
  // our resume state). Returns true if there are any.
  bool resume_from_prefix(FileState& f, std::uint64_t prefix)
  {
    reset_progress(f);
    if (prefix == 0) {
      return false;
    }
    f.resumed.add(0, prefix);
    f.present_bytes.store(f.resumed.total());
    f.prefix.store(f.resumed.prefix());
    return true;
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
      f.cache.commit_blob(std::exchange(f.fd, -1), temp, job.etag, &dir_sync, blob_mode(f));
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
    emit(f, EventType::done, job.size, connections_note(f));
    cv.notify_one();
  }

  // The mode new blobs get, learned once per blobs/ folder and run: the probe is a file created and deleted,
  // and a snapshot of thousands of small files paid one per file (ext4's inode allocator slows down with
  // every recently deleted inode: half the kernel time of a 1,500-file pull, measured with perf).
  std::mutex mode_mutex;
  std::map<fs::path, mode_t> blob_modes; // blobs/ folder -> mode; only grows under mode_mutex

  mode_t blob_mode(const FileState& f)
  {
    const fs::path dir = f.cache.blobs_dir();
    {
      std::lock_guard lock(mode_mutex);
      if (auto it = blob_modes.find(dir); it != blob_modes.end()) {
        return it->second;
      }
    }
    const mode_t mode = f.cache.default_blob_mode(); // outside the lock: it does I/O
    std::lock_guard lock(mode_mutex);
    return blob_modes.emplace(dir, mode).first->second;
  }

  // A process killed while writing its resume state leaves the atomic-write temp file (".<state
  // name>.<hex>.tmp") behind; once the blob is committed those are garbage. Each blobs/ folder is listed
  // once per run (listing it for each of thousands of small files made a snapshot pull quadratic): such
  // temps come from earlier runs only, as this run holds the lock of every file it writes state for.
  std::mutex stale_mutex;
  std::map<fs::path, std::vector<std::string>> stale_temps; // blobs/ folder -> hidden *.tmp names in it

  void remove_stale_state_temps(FileState& f)
  {
    const std::string prefix = "." + f.cache.resume_state_path(f.job->etag).filename().string() + ".";
    const fs::path dir = f.cache.blobs_dir();
    std::vector<std::string> stale;
    {
      std::lock_guard lock(stale_mutex);
      auto [it, listed_now] = stale_temps.try_emplace(dir);
      if (listed_now) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
          std::string name = entry.path().filename().string();
          if (name.starts_with(".") && name.ends_with(".tmp")) {
            it->second.push_back(std::move(name));
          }
        }
      }
      for (const auto& name : it->second) {
        if (name.starts_with(prefix)) {
          stale.push_back(name);
        }
      }
    }
    std::error_code ec;
    for (const auto& name : stale) {
      fs::remove(dir / name, ec);
    }
  }

  void restart_file(FileState& f)
  {
    {
      std::lock_guard lock(mutex);
      reset_progress(f);
      if (f.sched) {
        sched.restart_file(*f.sched);
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
    cv.notify_one();
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
      if (f.sched) {
        sched.fail_file(*f.sched);
      }
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
    cv.notify_one();
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
        save_state(f, true, true, true);
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

  // ---- fetching one range ------------------------------------------------------------------------------

  // Fetches the slot's range [first, end) from where its bytes stop. The end may be lowered meanwhile by a
  // split: the request then stops there.
  void fetch_chunk(FileState& f, Slot& c)
  {
    const FileJob& job = *f.job;
    std::string url;
    {
      std::lock_guard lock(f.location_mutex);
      url = f.location.empty() ? job.url : f.location;
    }
    const std::uint64_t before = c.written.load();
    for (int hop = 0; hop < 10; ++hop) {
      const std::uint64_t first = c.first + c.written.load();
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
      bool split_stop = false; // the range was shortened by a split: stop at its new end
      auto sink = [&](std::span<const char> data, const net::Response& head) -> bool {
        if (!head_checked) {
          note_origin(f, url);
        }
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
        std::uint64_t at = 0;
        {
          // Reserve the bytes before writing them, so that a split never cuts below what is being written.
          std::lock_guard reserve(c.mutex);
          at = c.first + c.claimed;
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
          c.claimed += data.size();
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
        f.present_bytes.fetch_add(data.size());
        if (c.first <= f.prefix.load(std::memory_order_acquire)) {
          // This request extends the contiguous prefix: everything it wrote is in it now.
          f.raise_prefix(at + data.size());
        }
        start_writeback(f, c);
        advance_hash(f, data.data(), at, data.size());
        report_bytes(f);
        save_state(f, false);
        return !split_stop;
      };
      net::Response r = hub.http().perform(req, sink, &c.stop);
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
      if (c.stalled.load()) {
        ChunkError e(
            fmt::format(
                "{}: no data for {} ms", net::display_url(url),
                std::chrono::duration_cast<std::chrono::milliseconds>(sched.options().stall_timeout).count()),
            true, c.written.load() > before, std::nullopt, true);
        throw e;
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
                                       c.written.load() - (first - c.first), c.end.load() - first),
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

  // Starts writing back what the request wrote, every few MiB, without waiting for it: the fsync before the
  // final rename then has little left to do, instead of a whole file's dirty pages at the very end (seconds
  // for a GiB on a small VM's disk), and the kernel does not throttle writers for a mountain of dirty pages.
  static void start_writeback(const FileState& f, Slot& c)
  {
    constexpr std::uint64_t k_writeback_step = 8ull << 20;
    const std::uint64_t written = c.written.load(std::memory_order_relaxed);
    constexpr std::uint64_t k_writeback_tail = 1ull << 20;
    // At the end of the request only a sizeable tail is worth a call: a small file's few bytes go out with
    // the fsync of its commit anyway.
    if (written - c.flushing < (written < c.length() ? k_writeback_step : k_writeback_tail)) {
      return;
    }
    // Advisory: an error here changes nothing, the fsync before the commit is what is checked.
    ::sync_file_range(f.fd, static_cast<off_t>(c.first + c.flushing),
                      static_cast<off_t>(written - c.flushing), SYNC_FILE_RANGE_WRITE);
    c.flushing = written;
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

  // ---- scheduling -----------------------------------------------------------------------------------------
  // Workers ask the scheduler (under `mutex`) what to do, run one request at a time in their own slot, and
  // report the outcome. The thread that called Engine::run supervises: it samples the bytes of every request
  // for the scheduler, cancels what the scheduler calls stalled, passes Ctrl-C on, and starts workers as the
  // scheduler's targets grow.

  // Where the bytes of a file come from, learnt from its first answered request (the CDN behind a redirect).
  void note_origin(FileState& f, const std::string& url)
  {
    const std::string where = net::origin_of(url);
    std::lock_guard lock(mutex);
    if (where.empty() || where == f.origin) {
      return;
    }
    f.origin = where;
    if (f.sched) {
      sched.set_host(*f.sched, where);
    }
  }

  static Failure failure_of(const ChunkError& e)
  {
    Failure out;
    out.retry_after = e.wait;
    if (!e.transient) {
      out.kind = FailureKind::fatal;
    } else if (e.pushback) {
      out.kind = FailureKind::pushback;
    } else if (e.stalled) {
      out.kind = FailureKind::stall;
    } else {
      out.kind = FailureKind::transient;
    }
    return out;
  }

  Slot* slot_of(RequestId id)
  {
    for (int i = 0; i < workers; ++i) {
      Slot& slot = slots[static_cast<std::size_t>(i)];
      if (slot.active && slot.id == id) {
        return &slot;
      }
    }
    return nullptr;
  }

  // Puts a start or split decision into `slot` (caller holds the lock). Returns nullptr when a split could
  // not be applied: the shortened request had already received bytes beyond the new end.
  FileState* take_request(Slot& slot, const Decision& d, Clock::time_point now)
  {
    if (d.kind == Decision::Kind::split) {
      Slot* old = slot_of(d.shortened);
      bool applied = false;
      if (old) {
        std::lock_guard reserve(old->mutex);
        if (old->first + old->claimed <= d.new_end) {
          old->end.store(d.new_end);
          applied = true;
        }
      }
      if (!applied) {
        sched.undo_split(d.request.id);
        if (old) {
          sched.on_progress(d.shortened, old->written.load(std::memory_order_acquire), now);
        }
        return nullptr;
      }
    }
    FileState& f = *by_id.at(d.request.file);
    {
      std::lock_guard reserve(slot.mutex);
      slot.first = d.request.first;
      slot.end.store(d.request.last + 1);
      slot.claimed = 0;
    }
    slot.written.store(0);
    slot.flushing = 0;
    slot.stop.store(cancelled());
    slot.stalled.store(false);
    slot.active = true;
    slot.id = d.request.id;
    slot.file = &f;
    ++f.in_flight;
    return &f;
  }

  // The body of each worker thread: nothing may escape a std::thread (std::terminate). Failures of a file
  // are handled per file; anything else stops the run.
  void worker(int index) noexcept
  {
    try {
      work(index);
    } catch (...) {
      abort_run(std::current_exception());
    }
  }

  void work(int index)
  {
    Slot& slot = slots[static_cast<std::size_t>(index)];
    std::unique_lock lock(mutex);
    for (;;) {
      if (all_done || cancelled()) {
        break;
      }
      const auto now = Clock::now();
      // Files still to be opened are work waiting, as far as the concurrency controllers are concerned.
      sched.set_backlog(next_to_open < files.size() || opening > 0);
      const Decision d = sched.next(now);
      if (d.kind == Decision::Kind::start || d.kind == Decision::Kind::split) {
        FileState* f = take_request(slot, d, now);
        if (!f) {
          continue;
        }
        cv.notify_one(); // there may be more to start
        lock.unlock();
        run_chunk(*f, slot);
        lock.lock();
        continue;
      }
      // Open the next file when nothing can start now for lack of work (not for lack of connections).
      const bool may_open = d.kind != Decision::Kind::wait || !d.full;
      if (may_open && next_to_open < files.size()) {
        FileState& f = files[next_to_open++];
        f.opening = true;
        ++opening;
        cv.notify_one();
        lock.unlock();
        run_open(f);
        lock.lock();
        continue;
      }
      if (d.kind == Decision::Kind::done && next_to_open == files.size() && opening == 0 && finishing == 0) {
        all_done = true;
        cv.notify_all();
        supervisor_cv.notify_all();
        break;
      }
      // Wake up now and then even without news: a request in flight may become slow enough to split.
      const auto recheck = now + std::chrono::milliseconds(100);
      cv.wait_until(lock, d.wake ? std::min(*d.wake, recheck) : recheck);
    }
    cv.notify_one();
  }

  // The calling thread of Engine::run: starts the workers and feeds the scheduler until all is done.
  void supervise()
  {
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(max_workers));
    {
      std::unique_lock lock(mutex);
      for (;;) {
        const auto now = Clock::now();
        const bool stop_all = cancelled();
        for (int i = 0; i < workers; ++i) {
          Slot& slot = slots[static_cast<std::size_t>(i)];
          if (!slot.active) {
            continue;
          }
          if (stop_all) {
            slot.stop.store(true);
          }
          sched.on_progress(slot.id, slot.written.load(std::memory_order_acquire), now);
          slot.file->raise_prefix(sched.contiguous_prefix(*slot.file->sched));
        }
        for (RequestId id : sched.stalled(now)) {
          if (Slot* slot = slot_of(id)) {
            slot->stalled.store(true);
            slot->stop.store(true);
          }
        }
        if (all_done || stop_all) {
          break;
        }
        const int wanted = std::min(max_workers, sched.wanted_requests() + opening + finishing + 1);
        try {
          while (workers < wanted) {
            threads.emplace_back([this, index = workers] { worker(index); });
            ++workers;
          }
        } catch (...) {
          // No thread for this worker (resource limits): stop the ones started, then report why.
          abort_run(std::current_exception());
        }
        supervisor_cv.wait_for(lock, k_sample_interval);
      }
    }
    cv.notify_all();
    for (auto& t : threads) {
      t.join();
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
      --opening;
      if (f.fd >= 0) {
        ::close(f.fd);
        f.fd = -1;
      }
      f.lock.reset();
      cv.notify_one();
      return;
    }
    std::lock_guard lock(mutex);
    f.opening = false;
    --opening;
    if (active) {
      f.stage = FileStage::active;
      f.sched = sched.add_file(f.job->size, f.origin, f.resumed);
      by_id[*f.sched] = &f;
    } else if (f.stage != FileStage::finished) {
      f.stage = FileStage::finished;
      f.lock.reset();
    }
    cv.notify_one();
    supervisor_cv.notify_one(); // more work may want more workers
  }

  // What the done event of a large file says about the connections used (the JSON progress shows it).
  std::string connections_note(const FileState& f)
  {
    std::lock_guard lock(mutex);
    if (f.job->size < sched.options().small_file_size || f.origin.empty()) {
      return {};
    }
    const HostStatus h = sched.host_status(f.origin);
    return fmt::format("{} connections to {} (peak {})", h.big_target, f.origin, h.big_peak);
  }

  void run_chunk(FileState& f, Slot& c)
  {
    std::exception_ptr fatal;
    std::optional<ChunkError> soft;
    try {
      fetch_chunk(f, c);
      if (c.done()) {
        // A finished range is never fetched again, whatever happens to this process. Saved while the request
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
    FailureOutcome outcome;
    {
      std::lock_guard lock(mutex);
      const auto now = Clock::now();
      c.active = false;
      --f.in_flight;
      const std::uint64_t received = c.written.load(std::memory_order_acquire);
      if (!soft && !fatal && c.done()) {
        sched.on_complete(c.id, now);
      } else if (soft) {
        outcome = sched.on_failed(c.id, received, failure_of(*soft), now);
        if (outcome.target_after < outcome.target_before) {
          pushback_note =
              fmt::format("; connections to {} reduced to {}", soft->origin, outcome.target_after);
        }
        if (outcome.give_up) {
          fatal = std::make_exception_ptr(DownloadError(
              ErrorKind::network,
              fmt::format("downloading '{}' of {} failed after {} attempts: {}", f.job->repo_path,
                          f.job->repo.describe(), outcome.attempts, soft->what()),
              "check the network and retry: the bytes received so far are kept and the next run resumes"));
        }
      } else {
        // A fatal error, or the file stopped because another of its requests failed: what arrived counts.
        sched.on_failed(c.id, received, Failure{FailureKind::fatal, std::nullopt}, now);
      }
      f.raise_prefix(sched.contiguous_prefix(*f.sched));
      if (!fatal && !f.failed && f.in_flight == 0 && sched.complete(*f.sched)) {
        finish = true;
        ++finishing;
      }
    }

    if (soft && !fatal) {
      emit(f, soft->stalled ? EventType::stalled : EventType::retrying, f.present(),
           std::string(soft->what()) + pushback_note, outcome.attempts + 1);
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
    if (finish) {
      std::lock_guard lock(mutex);
      --finishing;
    }
    if (f.failed) {
      maybe_close(f, false);
    }
    cv.notify_one();
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

  run.supervise();

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
