// Lock tests across processes: a forked child holds the lock and the two sides sequence each other with
// pipes (no sleeps as synchronisation). The parent must have no other threads when forking: gtest
// runs tests on the main thread only.

#include "support/test_util.hpp"
#include "util/fs.hpp"
#include "util/lock.hpp"
#include "util/time.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using modelmgr::test::TempDir;
using namespace modelmgr::util;
using namespace std::chrono_literals;

namespace {

class Pipe {
public:
  Pipe()
  {
    if (::pipe(m_fds) != 0) {
      throw std::system_error(errno, std::generic_category(), "pipe");
    }
  }
  ~Pipe()
  {
    close_read();
    close_write();
  }
  bool send(char c) { return ::write(m_fds[1], &c, 1) == 1; }
  char receive()
  {
    char c = 0;
    return ::read(m_fds[0], &c, 1) == 1 ? c : '\0';
  }
  void close_read()
  {
    if (m_fds[0] >= 0) {
      ::close(m_fds[0]);
      m_fds[0] = -1;
    }
  }
  void close_write()
  {
    if (m_fds[1] >= 0) {
      ::close(m_fds[1]);
      m_fds[1] = -1;
    }
  }

private:
  int m_fds[2] = {-1, -1};
};

// A child process that takes the lock, says 'L', waits for any byte (or EOF), then releases and exits.
class LockHolderChild {
public:
  explicit LockHolderChild(const fs::path& lock_path)
  {
    m_pid = ::fork();
    if (m_pid == 0) {
      m_to_parent.close_read();
      m_to_child.close_write();
      int status = 1;
      {
        FileLock lock(lock_path);
        if (lock.try_lock()) {
          m_to_parent.send('L');
          (void)m_to_child.receive();
          status = 0;
        }
      }
      ::_exit(status);
    }
    m_to_parent.close_write();
    m_to_child.close_read();
    m_locked = m_to_parent.receive() == 'L';
  }
  ~LockHolderChild() { release(); }
  bool locked() const { return m_locked; }
  pid_t pid() const { return m_pid; }
  // Tells the child to unlock and exit, and reaps it; returns its exit status.
  int release()
  {
    if (m_pid <= 0) {
      return -1;
    }
    m_to_child.close_write();
    int status = 0;
    ::waitpid(m_pid, &status, 0);
    m_pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  Pipe& to_child() { return m_to_child; }

private:
  Pipe m_to_parent;
  Pipe m_to_child;
  pid_t m_pid = -1;
  bool m_locked = false;
};

ino_t inode_of(const fs::path& p)
{
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

} // namespace

TEST(UtilLock, TryLockCreatesFileWithPythonModeAndLeavesItOnRelease)
{
  TempDir dir;
  const fs::path path = dir / ".locks" / "models--a--b" / "e.lock";
  {
    FileLock lock(path);
    EXPECT_FALSE(lock.is_locked());
    ASSERT_TRUE(lock.try_lock());
    EXPECT_TRUE(lock.is_locked());
    EXPECT_TRUE(lock.try_lock()); // re-entrant on the same object
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0664u);
  }
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(fs::file_size(path), 0u); // holder info cleared on release
}

TEST(UtilLock, SecondDescriptorInSameProcessIsRefused)
{
  TempDir dir;
  FileLock a(dir / "x.lock");
  FileLock b(dir / "x.lock");
  ASSERT_TRUE(a.try_lock());
  EXPECT_FALSE(b.try_lock());
  a.unlock();
  EXPECT_TRUE(b.try_lock());
}

TEST(UtilLock, HolderInfoIsWrittenAndReadable)
{
  TempDir dir;
  FileLock lock(dir / "h.lock");
  const auto before = std::chrono::system_clock::now() - 1s;
  ASSERT_TRUE(lock.try_lock());
  auto holder = read_holder(dir / "h.lock");
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, ::getpid());
  EXPECT_EQ(holder->hostname, host_name());
  auto since = parse_iso8601_utc(holder->since);
  ASSERT_TRUE(since.has_value()) << holder->since;
  EXPECT_GE(*since, std::chrono::floor<std::chrono::seconds>(before));
  EXPECT_EQ(holder->describe(),
            "pid " + std::to_string(::getpid()) + " on " + host_name() + " since " + holder->since);
  lock.unlock();
  EXPECT_FALSE(read_holder(dir / "h.lock").has_value());
}

TEST(UtilLock, ReadHolderToleratesMissingEmptyAndForeignContent)
{
  TempDir dir;
  EXPECT_FALSE(read_holder(dir / "none.lock").has_value());
  atomic_write_file(dir / "empty.lock", "");
  EXPECT_FALSE(read_holder(dir / "empty.lock").has_value());
  atomic_write_file(dir / "junk.lock", "garbage\npid=abc\n");
  EXPECT_FALSE(read_holder(dir / "junk.lock").has_value());
  atomic_write_file(dir / "min.lock", "pid=42\n");
  auto holder = read_holder(dir / "min.lock");
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->describe(), "pid 42");
}

TEST(UtilLock, ContentionAcrossProcesses)
{
  TempDir dir;
  const fs::path path = dir / "c.lock";
  LockHolderChild child(path);
  ASSERT_TRUE(child.locked());

  FileLock lock(path);
  EXPECT_FALSE(lock.try_lock());
  auto holder = read_holder(path);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->pid, child.pid());

  // A bounded wait gives up and reports the holder while waiting.
  int calls = 0;
  std::optional<LockHolder> seen;
  EXPECT_FALSE(lock.lock_for(50ms, [&](const std::optional<LockHolder>& h, std::chrono::milliseconds) {
    ++calls;
    seen = h;
  }));
  EXPECT_FALSE(lock.is_locked());
  EXPECT_EQ(calls, 1); // at most about once a second
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->pid, child.pid());

  EXPECT_EQ(child.release(), 0);
  EXPECT_TRUE(lock.try_lock());
}

TEST(UtilLock, WaiterAcquiresWhenHolderReleases)
{
  TempDir dir;
  const fs::path path = dir / "w.lock";
  LockHolderChild child(path);
  ASSERT_TRUE(child.locked());
  FileLock lock(path);
  bool told = false;
  // The first wait callback (first failed attempt) tells the child to let go.
  ASSERT_TRUE(lock.lock_for(60s, [&](const std::optional<LockHolder>&, std::chrono::milliseconds) {
    if (!told) {
      told = true;
      child.to_child().close_write();
    }
  }));
  EXPECT_TRUE(told);
  EXPECT_EQ(read_holder(path)->pid, ::getpid());
  EXPECT_EQ(child.release(), 0);
}

TEST(UtilLock, ExceptionFromWaitCallbackAbandonsTheWait)
{
  TempDir dir;
  FileLock holder(dir / "x.lock");
  ASSERT_TRUE(holder.try_lock());
  FileLock waiter(dir / "x.lock");
  EXPECT_THROW(waiter.lock([](const std::optional<LockHolder>&, std::chrono::milliseconds) {
    throw std::runtime_error("interrupted");
  }),
               std::runtime_error);
  EXPECT_FALSE(waiter.is_locked());
}

TEST(UtilLock, InodeGuardRetriesWhenLockFileIsReplacedBeforeFlock)
{
  TempDir dir;
  const fs::path path = dir / "r.lock";
  // Between our open() and flock() another process deletes the lock file and a third one creates a new
  // file there and locks it. Our flock on the orphan inode succeeds; the guard must notice and retry,
  // and the retry must then see the lock as busy.
  int intruder_fd = -1;
  int hook_calls = 0;
  detail::set_lock_open_hook([&](const fs::path& p) {
    if (hook_calls++ == 0) {
      ASSERT_EQ(::unlink(p.c_str()), 0);
      intruder_fd = ::open(p.c_str(), O_RDWR | O_CREAT, 0664);
      ASSERT_GE(intruder_fd, 0);
      ASSERT_EQ(::flock(intruder_fd, LOCK_EX | LOCK_NB), 0);
    }
  });
  FileLock lock(path);
  const bool got = lock.try_lock();
  detail::set_lock_open_hook({});
  EXPECT_FALSE(got) << "locked an orphaned inode while someone else holds the real lock file";
  EXPECT_EQ(hook_calls, 2);
  ::close(intruder_fd);
  EXPECT_TRUE(lock.try_lock());
}

TEST(UtilLock, InodeGuardRetriesWhenLockFileIsDeletedBeforeFlock)
{
  TempDir dir;
  const fs::path path = dir / "d.lock";
  int hook_calls = 0;
  detail::set_lock_open_hook([&](const fs::path& p) {
    if (hook_calls++ == 0) {
      ASSERT_EQ(::unlink(p.c_str()), 0);
    }
  });
  FileLock lock(path);
  ASSERT_TRUE(lock.try_lock());
  detail::set_lock_open_hook({});
  EXPECT_EQ(hook_calls, 2);
  // The lock we hold is on the file that is at the path now.
  FileLock other(path);
  EXPECT_FALSE(other.try_lock());
  EXPECT_NE(inode_of(path), 0u);
}

TEST(UtilLock, RemoveIfUnheld)
{
  TempDir dir;
  const fs::path path = dir / "p.lock";
  EXPECT_FALSE(remove_if_unheld(path)); // missing
  FileLock lock(path);
  ASSERT_TRUE(lock.try_lock());
  EXPECT_FALSE(remove_if_unheld(path)); // held: kept
  EXPECT_TRUE(fs::exists(path));
  lock.unlock();
  EXPECT_TRUE(remove_if_unheld(path));
  EXPECT_FALSE(fs::exists(path));
}

TEST(UtilLock, RemoveIfUnheldRefusesWhileAnotherProcessHoldsIt)
{
  TempDir dir;
  const fs::path path = dir / "q.lock";
  LockHolderChild child(path);
  ASSERT_TRUE(child.locked());
  EXPECT_FALSE(remove_if_unheld(path));
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(child.release(), 0);
  EXPECT_TRUE(remove_if_unheld(path));
}

TEST(UtilLock, MoveTransfersOwnership)
{
  TempDir dir;
  FileLock a(dir / "m.lock");
  ASSERT_TRUE(a.try_lock());
  FileLock b = std::move(a);
  EXPECT_TRUE(b.is_locked());
  FileLock probe(dir / "m.lock");
  EXPECT_FALSE(probe.try_lock());
  b.unlock();
  EXPECT_TRUE(probe.try_lock());
}
