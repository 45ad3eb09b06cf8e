#include "support/test_util.hpp"

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
} // namespace

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env)
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
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  std::vector<char*> cargv;
  for (auto& a : argv) {
    cargv.push_back(a.data());
  }
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  for (auto& e : envs) {
    cenv.push_back(e.data());
  }
  cenv.push_back(nullptr);
  m_pid = ::fork();
  if (m_pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
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

void Process::drain(bool, std::chrono::steady_clock::time_point deadline)
{
  char buf[65536];
  while (m_out >= 0 || m_err >= 0) {
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
}

ProcessResult Process::wait(std::chrono::milliseconds timeout)
{
  if (m_done) {
    return m_result;
  }
  drain(true, std::chrono::steady_clock::now() + timeout);
  int status = 0;
  while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
  }
  m_result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m_done = true;
  return m_result;
}

std::string modelmgr_binary()
{
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

void write_file(const fs::path& p, const std::string& content)
{
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
}

} // namespace modelmgr::test
