#pragma once
// Helpers shared by the test suites: a per-test temporary directory, and a subprocess runner for the
// modelmgr binary (environment, captured output, signals) so integration tests observe what a user sees.

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace modelmgr::test {

// A fresh directory under $TMPDIR, removed (recursively) when the object goes away.
class TempDir {
public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return m_path; }
  std::filesystem::path operator/(const std::string& rel) const { return m_path / rel; }

private:
  std::filesystem::path m_path;
};

struct ProcessResult {
  int exit_code = -1; // exit status, or 128+signal when killed by a signal
  std::string out;    // stdout
  std::string err;    // stderr
};

// A child process with captured stdout/stderr. The environment is the test's own environment with
// `HF_*`/`HUGGING*`/`TRANSFORMERS_OFFLINE` removed (so the developer's settings never leak in), plus `env`.
class Process {
public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const noexcept { return m_pid; }
  void signal(int sig);
  // Waits for exit (killing the child after `timeout`) and returns its output.
  ProcessResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(120));

private:
  void drain(bool block_until_exit, std::chrono::steady_clock::time_point deadline);
  pid_t m_pid = -1;
  int m_out = -1;
  int m_err = -1;
  ProcessResult m_result;
  bool m_done = false;
};

// Runs the modelmgr binary built with the tests.
ProcessResult run_modelmgr(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(120));
std::string modelmgr_binary();

// Every regular file below `dir` (relative paths, sorted), following no symlinks.
std::vector<std::string> list_tree(const std::filesystem::path& dir);
std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& content);

} // namespace modelmgr::test
