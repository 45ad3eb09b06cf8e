#pragma once
// Running an inference server for `modelmgr start`: the command from a template with placeholders, the
// child process (own process group, dies with us), waiting for its health endpoint. No printing; the CLI
// renders and forwards signals.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace modelmgr::manager {

// Values for the placeholders of a server command template: {file} {dir} {host} {port} {model} {repo}
// {quant} {context} (docs/start.md).
using Placeholders = std::map<std::string, std::string>;

// Splits `tmpl` into words like a POSIX shell does for plain words and quotes ('…', "…", backslash), with
// no expansion other than the placeholders, which are replaced inside every word ({{ and }} are literal
// braces). Throws ConfigurationError naming an unknown placeholder or an unclosed quote.
std::vector<std::string> expand_command_template(std::string_view tmpl, const Placeholders& values);

// llama-server's command line: `llama-server -m {file} --host {host} --port {port}`.
std::vector<std::string> default_server_command(const Placeholders& values);

// The command as one line a user can paste into a shell (words quoted where needed).
std::string shell_join(const std::vector<std::string>& argv);

// `name` itself when it contains a '/', else the first executable `name` on `path_env` (PATH's value).
std::optional<std::filesystem::path> find_executable(const std::string& name, std::string_view path_env);

// A child process in its own process group, sent SIGTERM if this process dies (PR_SET_PDEATHSIG), and
// terminated (SIGTERM, then SIGKILL after a grace period) when the object is destroyed while it runs.
class ServerProcess {
public:
  // Starts argv[0] (resolved on PATH). Throws ModelManagerError(not_found) when it cannot be executed,
  // with the system's reason.
  explicit ServerProcess(const std::vector<std::string>& argv);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const noexcept { return m_pid; }
  // The exit status once it has ended (its exit code, or 128 + signal number), without blocking.
  std::optional<int> poll();
  // Blocks until it ends; returns the status as poll() does.
  int wait();
  void send_signal(int sig) noexcept;
  // SIGTERM, then SIGKILL once `grace` has passed; returns the status.
  int terminate(std::chrono::milliseconds grace = std::chrono::seconds(10));

private:
  pid_t m_pid = -1;
  std::optional<int> m_status;
};

enum class HealthResult { ready, exited, timed_out, cancelled };

// Polls GET `url` until it answers 200 (llama-server answers 503 while loading the model), the process
// ends, `timeout` passes or `cancel` is set.
HealthResult wait_for_health(ServerProcess& server, const std::string& url, std::chrono::milliseconds timeout,
                             const std::atomic<bool>* cancel);

} // namespace modelmgr::manager
