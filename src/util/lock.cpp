#include "util/lock.hpp"

#include "util/fs.hpp"
#include "util/time.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::util {

namespace fs = std::filesystem;

namespace {

// The Python client's filelock mode for HF cache locks (group-writable so a shared cache works).
constexpr mode_t k_lock_mode = 0664;
// How often a lock file may be swapped under us before we give up (each swap needs a concurrent unlink).
constexpr int k_inode_retries = 1000;

std::function<void(const fs::path&)>& open_hook()
{
  static std::function<void(const fs::path&)> hook;
  return hook;
}

int open_lock_file(const fs::path& path)
{
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, k_lock_mode);
    if (fd >= 0) {
      // Same as filelock: force 0664 despite the umask; fails harmlessly on another user's file.
      (void)::fchmod(fd, k_lock_mode);
      return fd;
    }
    if (errno == EACCES) {
      // Another user's 0644 lock file in a shared cache: flock works on a read-only descriptor too.
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd >= 0) {
        return fd;
      }
      throw make_fs_error(errno, "open lock file", path);
    }
    if (errno == ENOENT && attempt == 0) {
      std::error_code ec;
      fs::create_directories(path.parent_path(), ec);
      if (ec) {
        throw make_fs_error(ec.value(), "create directory", path.parent_path());
      }
      continue;
    }
    throw make_fs_error(errno, "open lock file", path);
  }
  throw make_fs_error(ENOENT, "open lock file", path);
}

// True if `fd` is still the file at `path`. After flock() returns, the file may have been unlinked by a
// remover (remove_if_unheld, `rm -rf .locks`) between our open() and our flock(): we would then hold a
// lock on an orphan inode while the next process creates a fresh file and locks that one too. Step by
// step: A opens inode 1; B locks 1, unlinks the path, unlocks; A's flock succeeds on 1; C creates inode 2
// and locks it. Without this check A and C both "hold" the lock.
bool still_linked(int fd, const fs::path& path)
{
  struct stat by_fd {};
  struct stat by_path {};
  if (::fstat(fd, &by_fd) != 0) {
    throw make_fs_error(errno, "stat lock file", path);
  }
  if (::stat(path.c_str(), &by_path) != 0) {
    if (errno == ENOENT) {
      return false;
    }
    throw make_fs_error(errno, "stat lock file", path);
  }
  return by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

void write_holder_info(int fd)
{
  const std::string info = "pid=" + std::to_string(::getpid()) + "\nhost=" + host_name() +
                           "\nsince=" + format_iso8601_utc(std::chrono::system_clock::now()) + "\n";
  // Best effort (a read-only descriptor, a full disk): the info is only used for messages.
  if (::ftruncate(fd, 0) == 0) {
    (void)::pwrite(fd, info.data(), info.size(), 0);
  }
}

// Returns a locked descriptor, or -1 if someone else holds the lock.
int try_acquire(const fs::path& path)
{
  for (int attempt = 0; attempt < k_inode_retries; ++attempt) {
    const int fd = open_lock_file(path);
    if (open_hook()) {
      open_hook()(path);
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK || err == EINTR) {
        return -1;
      }
      if (err == ENOLCK || err == ENOSYS || err == EOPNOTSUPP) {
        throw std::system_error(err, std::generic_category(),
                                "lock '" + path.string() + "' (the filesystem does not support flock)");
      }
      throw make_fs_error(err, "lock", path);
    }
    bool linked = false;
    try {
      linked = still_linked(fd, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    if (!linked) {
      ::close(fd);
      continue;
    }
    write_holder_info(fd);
    return fd;
  }
  throw make_fs_error(EAGAIN, "lock (the lock file keeps being replaced)", path);
}

} // namespace

std::string LockHolder::describe() const
{
  std::string out = "pid " + std::to_string(pid);
  if (!hostname.empty()) {
    out += " on " + hostname;
  }
  if (!since.empty()) {
    out += " since " + since;
  }
  return out;
}

std::string host_name()
{
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) {
    return {};
  }
  return buf.data();
}

FileLock::FileLock(fs::path lock_path) : m_path(std::move(lock_path)) {}

FileLock::FileLock(FileLock&& other) noexcept
    : m_path(std::move(other.m_path)), m_fd(std::exchange(other.m_fd, -1))
{
}

FileLock& FileLock::operator=(FileLock&& other) noexcept
{
  if (this != &other) {
    unlock();
    m_path = std::move(other.m_path);
    m_fd = std::exchange(other.m_fd, -1);
  }
  return *this;
}

FileLock::~FileLock()
{
  unlock();
}

bool FileLock::try_lock()
{
  if (m_fd >= 0) {
    return true;
  }
  m_fd = try_acquire(m_path);
  return m_fd >= 0;
}

bool FileLock::lock_for(std::chrono::milliseconds timeout, const LockWaitCallback& on_wait)
{
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const bool forever = timeout == std::chrono::milliseconds::max();
  std::optional<Clock::time_point> last_report;
  std::chrono::milliseconds backoff{10};
  for (;;) {
    if (try_lock()) {
      return true;
    }
    const auto now = Clock::now();
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - start);
    if (on_wait && (!last_report || now - *last_report >= std::chrono::seconds(1))) {
      last_report = now;
      on_wait(read_holder(m_path), waited);
    }
    if (!forever && waited >= timeout) {
      return false;
    }
    auto nap = backoff;
    if (!forever) {
      nap = std::min(nap, timeout - waited);
    }
    std::this_thread::sleep_for(nap);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
  }
}

void FileLock::lock(const LockWaitCallback& on_wait)
{
  (void)lock_for(std::chrono::milliseconds::max(), on_wait);
}

void FileLock::unlock() noexcept
{
  if (m_fd < 0) {
    return;
  }
  // Clear the holder info while still holding the lock, so that nobody reads stale info later.
  (void)::ftruncate(m_fd, 0);
  ::flock(m_fd, LOCK_UN);
  ::close(m_fd);
  m_fd = -1;
}

std::optional<LockHolder> read_holder(const fs::path& lock_path)
{
  std::optional<std::string> content;
  try {
    content = read_file_if_exists(lock_path);
  } catch (const std::system_error&) {
    return std::nullopt;
  }
  if (!content || content->empty()) {
    return std::nullopt;
  }
  LockHolder holder;
  bool has_pid = false;
  std::string_view rest = *content;
  while (!rest.empty()) {
    const std::size_t eol = rest.find('\n');
    const std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view{} : rest.substr(eol + 1);
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      continue;
    }
    const std::string_view key = line.substr(0, eq);
    const std::string_view value = line.substr(eq + 1);
    if (key == "pid") {
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), holder.pid);
      has_pid = ec == std::errc{} && ptr == value.data() + value.size() && holder.pid > 0;
    } else if (key == "host") {
      holder.hostname = value;
    } else if (key == "since") {
      holder.since = value;
    }
  }
  if (!has_pid) {
    return std::nullopt;
  }
  return holder;
}

bool remove_if_unheld(const fs::path& lock_path)
{
  const int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) {
      return false;
    }
    throw make_fs_error(errno, "open lock file", lock_path);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK || err == EINTR) {
      return false;
    }
    throw make_fs_error(err, "lock", lock_path);
  }
  bool linked = false;
  try {
    linked = still_linked(fd, lock_path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  // Unlink *while holding* the lock: anyone who opened the old inode before the unlink and wins the flock
  // after our close sees (still_linked) that the path no longer names it and starts over on a fresh file.
  // Unlocking first would leave a window where a newcomer locks the file we then delete.
  bool removed = false;
  int err = 0;
  if (linked) {
    if (::unlink(lock_path.c_str()) == 0 || errno == ENOENT) {
      removed = true;
    } else {
      err = errno;
    }
  }
  ::close(fd);
  if (err != 0) {
    throw make_fs_error(err, "remove lock file", lock_path);
  }
  return removed;
}

namespace detail {
void set_lock_open_hook(std::function<void(const fs::path&)> hook)
{
  open_hook() = std::move(hook);
}
} // namespace detail

} // namespace modelmgr::util
