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

// How a child's stdout or stderr is connected.
enum class Stream {
  captured,    // a pipe the test reads (the default)
  reader_gone, // a pipe whose read end is closed before the child starts: every write fails with EPIPE
  closed,      // no descriptor at all, as with `2>&-`
  to_stdout,   // stderr only: the pipe of stdout, as with `2>&1`
};
struct Stdio {
  Stream out = Stream::captured;
  Stream err = Stream::captured;
};

// A child process with captured stdout/stderr. The environment is the test's own environment with
// `HF_*`/`HUGGING*`/`TRANSFORMERS_OFFLINE` removed (so the developer's settings never leak in), plus `env`.
class Process {
public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {}, Stdio stdio = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const noexcept { return m_pid; }
  void signal(int sig);
  // Reads stdout and stderr until `text` appears in either (returns true), the child closes both, or
  // `timeout` passes (false). What was read stays in the result of wait().
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Waits for exit (killing the child after `timeout`) and returns its output.
  ProcessResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // What was read so far (by wait_for_output), while the child still runs.
  const ProcessResult& output_so_far() const noexcept { return m_result; }
  // Closes the test's read end of stdout, as `| head -1` does once it has its line: the child's next
  // write to it fails with EPIPE. What was read so far stays in the result of wait().
  void close_stdout();

private:
  // Reads until both pipes close; with `until`, stops once `until` appears in the output (returns true).
  // At the deadline: kills the child when `kill_at_deadline`, else returns false.
  bool drain(std::chrono::steady_clock::time_point deadline, const std::string* until, bool kill_at_deadline);
  pid_t m_pid = -1;
  int m_out = -1;
  int m_err = -1;
  ProcessResult m_result;
  bool m_done = false;
};

// A child process on a pseudo-terminal (forkpty), for interactive commands: the test writes keys to it
// and reads what it draws (stdout and stderr both arrive through the terminal). Environment as Process.
class PtyProcess {
public:
  PtyProcess(std::vector<std::string> argv, std::map<std::string, std::string> env = {}, int rows = 24,
             int cols = 100);
  ~PtyProcess();
  PtyProcess(const PtyProcess&) = delete;
  PtyProcess& operator=(const PtyProcess&) = delete;

  pid_t pid() const noexcept { return m_pid; }
  // Types `keys` (e.g. "\033[B" for the down arrow, " ", "\r" for Enter).
  void write(const std::string& keys);
  // Reads output until `text` appears after the end of the previous match (returns true, and moves the
  // match point past it), the terminal closes, or `timeout` passes (false). Never sleeps.
  bool wait_for(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Everything read so far, and what came after the previous match.
  const std::string& output() const noexcept { return m_output; }
  std::string unmatched() const { return m_output.substr(m_matched); }
  // Waits for exit (killing the child after `timeout`); `out` holds the whole output.
  ProcessResult wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));

private:
  bool read_some(std::chrono::steady_clock::time_point deadline);
  pid_t m_pid = -1;
  int m_master = -1;
  std::string m_output;
  std::size_t m_matched = 0;
  bool m_done = false;
  ProcessResult m_result;
};

// Holds an exclusive flock on a lock file in a forked child, with holder info in the file as modelmgr
// writes it (pid=, host=, since=), until release() (the child clears the info, unlocks and exits) or
// kill() (SIGKILL: the flock dies with the process, the holder info stays behind). The child only makes
// system calls, so forking from a multi-threaded test is safe.
class LockHolderChild {
public:
  explicit LockHolderChild(const std::filesystem::path& lock_path);
  ~LockHolderChild();
  LockHolderChild(const LockHolderChild&) = delete;
  LockHolderChild& operator=(const LockHolderChild&) = delete;

  pid_t pid() const noexcept { return m_pid; }
  // True once the child holds the lock (false if someone else held it).
  bool locked() const noexcept { return m_locked; }
  void release();
  void kill();

private:
  pid_t m_pid = -1;
  int m_release = -1;
  bool m_locked = false;
  bool m_reaped = false;
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
// The lines of `s` without their '\n' (a last line without one counts; no empty line after a final '\n').
std::vector<std::string> lines_of(const std::string& s);

} // namespace modelmgr::test
