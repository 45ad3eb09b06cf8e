#include "manager/server_launch.hpp"

#include "modelmgr/errors.hpp"

#include "net/http.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace modelmgr::manager {

namespace fs = std::filesystem;

namespace {

std::string replace_placeholders(const std::string& word, const Placeholders& values, std::string_view tmpl)
{
  std::string out;
  for (std::size_t i = 0; i < word.size(); ++i) {
    const char c = word[i];
    if ((c == '{' || c == '}') && i + 1 < word.size() && word[i + 1] == c) {
      out += c;
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    const auto close = word.find('}', i);
    if (close == std::string::npos) {
      throw ConfigurationError(fmt::format("server command '{}': unclosed '{{' in '{}'", tmpl, word),
                               "write {{ for a literal brace");
    }
    const std::string name = word.substr(i + 1, close - i - 1);
    auto it = values.find(name);
    if (it == values.end()) {
      std::string known;
      for (const auto& [k, v] : values) {
        known += fmt::format("{}{{{}}}", known.empty() ? "" : ", ", k);
      }
      throw ConfigurationError(fmt::format("server command '{}': unknown placeholder {{{}}}", tmpl, name),
                               "the placeholders are " + known + " (docs/start.md)");
    }
    out += it->second;
    i = close;
  }
  return out;
}

} // namespace

std::vector<std::string> expand_command_template(std::string_view tmpl, const Placeholders& values)
{
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (std::size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if (quote == '\'') {
      if (c == '\'') {
        quote = 0;
      } else {
        word += c;
      }
      continue;
    }
    if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < tmpl.size() && std::strchr("\"\\$`", tmpl[i + 1]) != nullptr) {
        word += tmpl[++i];
      } else {
        word += c;
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) {
        words.push_back(replace_placeholders(word, values, tmpl));
        word.clear();
        in_word = false;
      }
      continue;
    }
    in_word = true;
    if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '\\' && i + 1 < tmpl.size()) {
      word += tmpl[++i];
    } else {
      word += c;
    }
  }
  if (quote != 0) {
    throw ConfigurationError(fmt::format("server command '{}': unclosed {} quote", tmpl, quote),
                             "close the quote (the command is split into words like a shell does)");
  }
  if (in_word) {
    words.push_back(replace_placeholders(word, values, tmpl));
  }
  if (words.empty()) {
    throw ConfigurationError("server command is empty",
                             "set server.command, e.g. \"llama-server -m {file}\"");
  }
  return words;
}

std::vector<std::string> default_server_command(const Placeholders& values)
{
  return expand_command_template("llama-server -m {file} --host {host} --port {port}", values);
}

std::string shell_join(const std::vector<std::string>& argv)
{
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) {
      out += ' ';
    }
    const bool plain =
        !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789_-./:=@%+,") == std::string::npos;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

std::optional<fs::path> find_executable(const std::string& name, std::string_view path_env)
{
  if (name.find('/') != std::string::npos) {
    return ::access(name.c_str(), X_OK) == 0 ? std::optional<fs::path>(name) : std::nullopt;
  }
  std::size_t start = 0;
  while (start <= path_env.size()) {
    auto end = path_env.find(':', start);
    if (end == std::string_view::npos) {
      end = path_env.size();
    }
    // An empty PATH element means the current directory.
    const fs::path dir = end > start ? fs::path(path_env.substr(start, end - start)) : fs::path(".");
    fs::path candidate = dir / name;
    std::error_code ec;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate, ec)) {
      return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

ServerProcess::ServerProcess(const std::vector<std::string>& argv)
{
  if (argv.empty()) {
    throw ModelManagerError(ErrorKind::usage, "no server command to run");
  }
  const char* path = std::getenv("PATH");
  auto exe = find_executable(argv[0], path ? path : "/usr/local/bin:/usr/bin:/bin");
  if (!exe) {
    throw ModelManagerError(ErrorKind::not_found,
                            fmt::format("server program '{}' not found on PATH", argv[0]),
                            "install it (llama.cpp's llama-server) or set server.command in the config");
  }
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  // exec failures come back through a close-on-exec pipe: nothing read means exec succeeded.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw ModelManagerError(ErrorKind::internal,
                            fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw ModelManagerError(ErrorKind::internal,
                            fmt::format("cannot start '{}': {}", argv[0], std::strerror(err)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::close(fds[0]);
    ::setpgid(0, 0); // signals are forwarded by modelmgr, exactly once
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) {
      ::_exit(127); // the parent died before prctl
    }
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP}) {
      ::sigaction(sig, &dfl, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(exe->c_str(), args.data());
    const int err = errno;
    [[maybe_unused]] auto n = ::write(fds[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(fds[1]);
  int err = 0;
  ssize_t n;
  do {
    n = ::read(fds[0], &err, sizeof err);
  } while (n < 0 && errno == EINTR);
  ::close(fds[0]);
  m_pid = pid;
  if (n == static_cast<ssize_t>(sizeof err)) {
    wait();
    m_pid = -1;
    throw ModelManagerError(ErrorKind::not_found,
                            fmt::format("cannot run '{}': {}", exe->string(), std::strerror(err)),
                            "check that it is an executable for this machine");
  }
}

ServerProcess::~ServerProcess()
{
  if (m_pid > 0 && !m_status) {
    terminate(std::chrono::seconds(5));
  }
}

namespace {
int decode_status(int status)
{
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return 1;
}
} // namespace

std::optional<int> ServerProcess::poll()
{
  if (m_status || m_pid <= 0) {
    return m_status;
  }
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(m_pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == m_pid) {
    m_status = decode_status(status);
  }
  return m_status;
}

int ServerProcess::wait()
{
  if (m_status) {
    return *m_status;
  }
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(m_pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  m_status = r == m_pid ? decode_status(status) : 1;
  return *m_status;
}

void ServerProcess::send_signal(int sig) noexcept
{
  if (m_pid > 0 && !m_status) {
    ::kill(m_pid, sig);
  }
}

int ServerProcess::terminate(std::chrono::milliseconds grace)
{
  send_signal(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (!poll()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      send_signal(SIGKILL);
      return wait();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return *m_status;
}

HealthResult wait_for_health(ServerProcess& server, const std::string& url, std::chrono::milliseconds timeout,
                             const std::atomic<bool>* cancel)
{
  net::Client client;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(50);
  for (;;) {
    if (cancel && cancel->load()) {
      return HealthResult::cancelled;
    }
    if (server.poll()) {
      return HealthResult::exited;
    }
    net::Request req;
    req.url = url;
    req.connect_timeout = std::chrono::seconds(2);
    req.stall_timeout = std::chrono::seconds(5);
    auto r = client.perform(req, {}, cancel);
    if (r.transport_ok() && r.status == 200) {
      return HealthResult::ready;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return HealthResult::timed_out;
    }
    // The server is still starting (connection refused) or loading the model (503): ask again soon.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
}

} // namespace modelmgr::manager
