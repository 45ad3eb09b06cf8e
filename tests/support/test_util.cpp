#include "support/test_util.hpp"

#include "util/lock.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace modelmgr::test {

namespace fs = std::filesystem;

TempDir::TempDir()
{
  std::random_device rd;
  const char* base = std::getenv("TMPDIR");
  fs::path root = base && *base ? fs::path(base) : fs::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    fs::path p = root / ("modelmgr-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::error_code ec;
    if (fs::create_directory(p, ec)) {
      m_path = p;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir()
{
  std::error_code ec;
  // Tests may leave read-only folders behind; make them writable so the removal cannot fail half-way.
  for (auto it = fs::recursive_directory_iterator(m_path, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
  }
  fs::remove_all(m_path, ec);
}

namespace {
bool is_scrubbed(const std::string& name)
{
  return name.rfind("HF_", 0) == 0 || name.rfind("HUGGING", 0) == 0 || name == "TRANSFORMERS_OFFLINE" ||
         name.rfind("MODELMGR_", 0) == 0 || name == "CI_MINIMAL_MODELS" || name == "XDG_CACHE_HOME";
}

// argv/envp for execve: pointers into `strings`, null-terminated (built before fork: the child only execs).
std::vector<char*> exec_vector(std::vector<std::string>& strings)
{
  std::vector<char*> out;
  for (auto& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}
} // namespace

std::vector<std::string> child_env(const std::map<std::string, std::string>& env)
{
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    std::string name = kv.substr(0, kv.find('='));
    if (!is_scrubbed(name) && env.find(name) == env.end()) {
      envs.push_back(kv);
    }
  }
  for (const auto& [k, v] : env) {
    envs.push_back(k + "=" + v);
  }
  return envs;
}

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env, Stdio stdio)
{
  std::vector<std::string> envs = child_env(env);
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  // A reader that is gone before the child starts: only the write end is left.
  if (stdio.out == Stream::reader_gone) {
    ::close(out[0]);
    out[0] = -1;
  }
  if (stdio.err == Stream::reader_gone) {
    ::close(err[0]);
    err[0] = -1;
  }
  std::vector<char*> cargv = exec_vector(argv);
  std::vector<char*> cenv = exec_vector(envs);
  m_pid = ::fork();
  if (m_pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(stdio.err == Stream::to_stdout ? out[1] : err[1], 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    // After the open above, which would otherwise reuse the closed descriptor.
    if (stdio.out == Stream::closed) {
      ::close(1);
    }
    if (stdio.err == Stream::closed) {
      ::close(2);
    }
    ::execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  m_out = out[0];
  m_err = err[0];
}

Process::~Process()
{
  if (!m_done && m_pid > 0) {
    ::kill(m_pid, SIGKILL);
    wait(std::chrono::seconds(10));
  }
}

void Process::signal(int sig)
{
  if (m_pid > 0 && !m_done) {
    ::kill(m_pid, sig);
  }
}

bool Process::wait_for_output(const std::string& text, std::chrono::milliseconds timeout)
{
  if (m_done) {
    return m_result.out.find(text) != std::string::npos || m_result.err.find(text) != std::string::npos;
  }
  return drain(std::chrono::steady_clock::now() + timeout, &text, false);
}

bool Process::drain(std::chrono::steady_clock::time_point deadline, const std::string* until,
                    bool kill_at_deadline)
{
  char buf[65536];
  const auto found = [&] {
    return until != nullptr &&
           (m_result.out.find(*until) != std::string::npos || m_result.err.find(*until) != std::string::npos);
  };
  while (m_out >= 0 || m_err >= 0) {
    if (found()) {
      return true;
    }
    pollfd fds[2];
    int n = 0;
    if (m_out >= 0) {
      fds[n++] = {m_out, POLLIN, 0};
    }
    if (m_err >= 0) {
      fds[n++] = {m_err, POLLIN, 0};
    }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (!kill_at_deadline) {
        return false;
      }
      ::kill(m_pid, SIGKILL);
      left = std::chrono::milliseconds(5000);
      deadline = std::chrono::steady_clock::now() + left;
    }
    int r = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        std::string& dst = fds[i].fd == m_out ? m_result.out : m_result.err;
        if (got > 0) {
          dst.append(buf, static_cast<std::size_t>(got));
        } else {
          ::close(fds[i].fd);
          (fds[i].fd == m_out ? m_out : m_err) = -1;
        }
      }
    }
  }
  return found();
}

void Process::close_stdout()
{
  if (m_out >= 0) {
    ::close(m_out);
    m_out = -1;
  }
}

ProcessResult Process::wait(std::chrono::milliseconds timeout)
{
  if (m_done) {
    return m_result;
  }
  drain(std::chrono::steady_clock::now() + timeout, nullptr, true);
  int status = 0;
  while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
  }
  m_result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m_done = true;
  return m_result;
}

PtyProcess::PtyProcess(std::vector<std::string> argv, std::map<std::string, std::string> env, int rows,
                       int cols)
{
  std::vector<std::string> envs = child_env(env);
  std::vector<char*> cargv = exec_vector(argv);
  std::vector<char*> cenv = exec_vector(envs);
  winsize ws{};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  m_pid = ::forkpty(&m_master, nullptr, nullptr, &ws);
  if (m_pid < 0) {
    throw std::runtime_error(std::string("forkpty failed: ") + std::strerror(errno));
  }
  if (m_pid == 0) {
    ::execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::fcntl(m_master, F_SETFD, FD_CLOEXEC);
}

PtyProcess::~PtyProcess()
{
  if (!m_done && m_pid > 0) {
    ::kill(m_pid, SIGKILL);
    wait(std::chrono::seconds(10));
  }
  if (m_master >= 0) {
    ::close(m_master);
  }
}

void PtyProcess::write(const std::string& keys)
{
  std::size_t done = 0;
  while (done < keys.size()) {
    const ssize_t n = ::write(m_master, keys.data() + done, keys.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      throw std::runtime_error(std::string("writing to the pseudo-terminal failed: ") + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

// Returns false when the terminal closed (EOF/EIO once the child is gone) or the deadline passed.
bool PtyProcess::read_some(std::chrono::steady_clock::time_point deadline)
{
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{m_master, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      return false;
    }
    char buf[65536];
    const ssize_t n = ::read(m_master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    m_output.append(buf, static_cast<std::size_t>(n));
    return true;
  }
}

bool PtyProcess::wait_for(const std::string& text, std::chrono::milliseconds timeout)
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto at = m_output.find(text, m_matched);
    if (at != std::string::npos) {
      m_matched = at + text.size();
      return true;
    }
    if (m_done || !read_some(deadline)) {
      return false;
    }
  }
}

ProcessResult PtyProcess::wait(std::chrono::milliseconds timeout)
{
  if (m_done) {
    return m_result;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (read_some(deadline)) {
  }
  if (std::chrono::steady_clock::now() >= deadline) {
    ::kill(m_pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
  }
  m_result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m_result.out = m_output;
  m_done = true;
  return m_result;
}

LockHolderChild::LockHolderChild(const fs::path& lock_path)
{
  fs::create_directories(lock_path.parent_path());
  // Everything the child writes is prepared here: after fork() it only makes system calls.
  const std::string path = lock_path.string();
  const std::string tail = "\nhost=" + util::host_name() +
                           "\nsince=" + util::format_iso8601_utc(std::chrono::system_clock::now()) + "\n";
  int ready[2];
  int release[2];
  if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(release, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  m_pid = ::fork();
  if (m_pid < 0) {
    throw std::runtime_error("fork failed");
  }
  if (m_pid == 0) {
    ::close(ready[0]);
    ::close(release[1]); // else the child would keep its own release pipe open and never see EOF
    char ok = '0';
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0664);
    if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      char digits[24];
      int n = 0;
      for (long pid = ::getpid(); pid > 0; pid /= 10) {
        digits[n++] = static_cast<char>('0' + pid % 10);
      }
      char info[32];
      int len = 0;
      for (const char c : {'p', 'i', 'd', '='}) {
        info[len++] = c;
      }
      while (n > 0) {
        info[len++] = digits[--n];
      }
      if (::ftruncate(fd, 0) == 0 && ::write(fd, info, static_cast<std::size_t>(len)) == len &&
          ::write(fd, tail.data(), tail.size()) == static_cast<ssize_t>(tail.size())) {
        ok = '1';
      }
    }
    (void)!::write(ready[1], &ok, 1);
    char c = 0;
    (void)!::read(release[0], &c, 1); // EOF when the test lets go
    if (fd >= 0) {
      (void)!::ftruncate(fd, 0);
      ::flock(fd, LOCK_UN);
    }
    _exit(0);
  }
  ::close(ready[1]);
  ::close(release[0]);
  m_release = release[1];
  char ok = 0;
  m_locked = ::read(ready[0], &ok, 1) == 1 && ok == '1';
  ::close(ready[0]);
}

LockHolderChild::~LockHolderChild()
{
  release();
}

void LockHolderChild::release()
{
  if (m_release >= 0) {
    ::close(m_release);
    m_release = -1;
  }
  if (m_pid > 0 && !m_reaped) {
    int status = 0;
    while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
    }
    m_reaped = true;
  }
}

void LockHolderChild::kill()
{
  if (m_pid > 0 && !m_reaped) {
    ::kill(m_pid, SIGKILL);
  }
  release();
}

std::string modelmgr_binary()
{
  // MODELMGR_TEST_BINARY runs the suite against another build of the binary, e.g. an AddressSanitizer
  // one (scripts/sanitize.sh address), without instrumenting the test harness and its emulator too.
  if (const char* other = std::getenv("MODELMGR_TEST_BINARY"); other != nullptr && *other != '\0') {
    return other;
  }
  return MODELMGR_BINARY;
}

ProcessResult run_modelmgr(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout)
{
  std::vector<std::string> argv{modelmgr_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv, env);
  return p.wait(timeout);
}

std::vector<std::string> list_tree(const fs::path& dir)
{
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) {
      out.push_back(fs::relative(it->path(), dir).string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_file(const fs::path& p)
{
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& s)
{
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    const auto nl = s.find('\n', start);
    out.push_back(s.substr(start, nl - start));
    if (nl == std::string::npos) {
      break;
    }
    start = nl + 1;
  }
  return out;
}

void write_file(const fs::path& p, const std::string& content)
{
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
}

} // namespace modelmgr::test
