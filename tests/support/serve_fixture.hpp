#pragma once
// `modelmgr serve` as a child process on port 0 for integration tests: started with the given arguments,
// its endpoint read from the line it prints (`endpoint=http://127.0.0.1:PORT ...`), stopped with SIGTERM.

#include "support/test_util.hpp"

#include <memory>
#include <string>
#include <vector>

namespace modelmgr::test {

class ServeProcess {
public:
  // Runs `modelmgr serve --port 0 <args>` with `env`; returns once the endpoint is printed. Throws
  // std::runtime_error with the child's output when it does not start.
  explicit ServeProcess(std::vector<std::string> args, std::map<std::string, std::string> env = {});
  ~ServeProcess(); // stops the server

  const std::string& endpoint() const noexcept { return m_endpoint; } // http://127.0.0.1:PORT
  int port() const noexcept { return m_port; }
  pid_t pid() const noexcept { return m_process->pid(); }
  // Stops the server (SIGTERM) and returns its output (stderr has the access log with --access-log).
  ProcessResult stop();

private:
  std::unique_ptr<Process> m_process;
  std::string m_endpoint;
  int m_port = 0;
  bool m_stopped = false;
  ProcessResult m_result;
};

// Runs curl (the Debian binary) with `args`; stdout is the body or what -w/-D print.
ProcessResult run_curl(const std::vector<std::string>& args);
// The header `name` (case-insensitive) of the last response in a curl -D/-I dump, or "".
std::string header_of(const std::string& dump, const std::string& name);
// The status code of the last response in a curl -D/-I dump, or 0.
int status_of(const std::string& dump);

} // namespace modelmgr::test
