#pragma once
// Advisory inter-process locks compatible with the Python client (`filelock` on POSIX): flock(LOCK_EX) on
// the same path, lock file created with mode 0664 and left in place after release. While held, the file
// carries who holds it (pid, host, start time) so a waiter can say what it is waiting for.
//
// Python's filelock opens the file with O_TRUNC on every attempt, so a Python waiter erases our holder
// info: it is a courtesy for messages, never a correctness input.

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace modelmgr::util {

// Who holds a lock, as written into the lock file by the holder.
struct LockHolder {
  long pid = 0;
  std::string hostname;
  std::string since; // ISO-8601 UTC, as written by the holder

  // Returns "pid 123 on host since 2025-01-31T12:00:00Z" (missing parts left out).
  std::string describe() const;
};

// Called while waiting for a lock, at most about once a second (first call on the first failed attempt):
// the current holder if the lock file says, and how long we have waited. To abandon the wait (Ctrl-C),
// throw from the callback: nothing is held while waiting, so the exception propagates cleanly.
using LockWaitCallback =
    std::function<void(const std::optional<LockHolder>& holder, std::chrono::milliseconds waited)>;

class FileLock {
public:
  // Refers to `lock_path` without locking it.
  explicit FileLock(std::filesystem::path lock_path);
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  // Releases the lock if held (the lock file stays).
  ~FileLock();

  // Returns true if the lock was acquired now (or is already held by this object), false if another
  // holder has it. Creates the lock file and its parent directories. Throws std::system_error on I/O errors.
  [[nodiscard]] bool try_lock();
  // Returns true once acquired, false if `timeout` passed first; polls (10..100 ms back-off) and calls
  // `on_wait` while waiting. Throws std::system_error on I/O errors, or what `on_wait` throws.
  [[nodiscard]] bool lock_for(std::chrono::milliseconds timeout, const LockWaitCallback& on_wait = {});
  // Waits without a deadline (Python waits forever too). Throws like lock_for.
  void lock(const LockWaitCallback& on_wait = {});
  // Releases the lock (clearing the holder info first); no-op when not held. Never deletes the file.
  void unlock() noexcept;

  // Returns true while this object holds the lock.
  bool is_locked() const noexcept { return m_fd >= 0; }
  // Returns the lock file's path.
  const std::filesystem::path& path() const noexcept { return m_path; }

private:
  std::filesystem::path m_path;
  int m_fd = -1;
};

// Returns the holder info written in `lock_path`, or nullopt if the file is missing, empty (unheld, or held
// by a client that writes none) or unparsable. Never blocks and never locks.
std::optional<LockHolder> read_holder(const std::filesystem::path& lock_path);

// Deletes `lock_path` if nobody holds it (for prune/clean). Returns true if it was deleted, false if it
// is held or already gone. Throws std::system_error on other I/O errors.
bool remove_if_unheld(const std::filesystem::path& lock_path);

// Returns this machine's host name (as written into holder info).
std::string host_name();

namespace detail {
// Test seam: `hook` runs between open() and flock() of every acquisition attempt (where the unlink race
// happens), so tests can replace the lock file at exactly that moment. Pass {} to clear. Not thread-safe.
void set_lock_open_hook(std::function<void(const std::filesystem::path&)> hook);
} // namespace detail

} // namespace modelmgr::util
