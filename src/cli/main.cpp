// modelmgr: the command-line front end. The only code that prints; everything else is in the library.

#include "modelmgr/errors.hpp"

#include "cli/cli.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace modelmgr::cli {

// `modelmgr __complete WORD...`: prints the completion candidates for the last word (cmd_meta.cpp). Declared
// here, its only caller, rather than in cli.hpp, which every command includes.
int print_completions(CLI::App& app, const std::vector<std::string>& words);

std::atomic<bool>& cancel_flag()
{
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {
extern "C" void on_signal(int sig)
{
  if (cancel_flag().exchange(true)) {
    // Second signal: the user insists. Partial files only ever live under temporary names, so stopping
    // hard loses nothing that is committed.
    _exit(128 + sig);
  }
}
} // namespace

void install_signal_handlers()
{
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

namespace {

void ensure_standard_descriptors() noexcept
{
  // A standard descriptor the caller closed (`2>&-`) would be taken by the first file this process opens
  // (a lock file, a blob being downloaded), and progress text would be written into it: point it at
  // /dev/null instead. open() returns the lowest free descriptor, which is the closed one.
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      const int null_fd = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
      if (null_fd >= 0 && null_fd != fd) {
        ::dup2(null_fd, fd);
        ::close(null_fd);
      }
    }
  }
}

// The exit status when writing output failed during the command (recorded by a progress renderer, or
// `error`, the exception that ended the command); nullopt when output is fine. A closed pipe ends quietly
// with k_exit_output_closed; other write errors say what failed.
std::optional<int> exit_for_output_failure(std::exception_ptr error) noexcept
{
  std::exception_ptr failure = output_failure();
  if (!failure && error && is_closed_output(error)) {
    failure = error;
  }
  if (!failure) {
    return std::nullopt;
  }
  if (is_closed_output(failure)) {
    return k_exit_output_closed;
  }
  std::string reason = "unknown error";
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    reason = e.what();
  } catch (...) {
  }
  print_stderr_noexcept(
      fmt::format("modelmgr: error: cannot write the output: {}\n  hint: check where stdout "
                  "and stderr go (a full disk, a closed descriptor); downloads that were "
                  "stopped resume on the next run\n",
                  reason));
  return exit_code_for(ErrorKind::disk);
}

} // namespace

} // namespace modelmgr::cli

int main(int argc, char** argv)
{
  using namespace modelmgr;
  cli::ensure_standard_descriptors();
  CLI::App app{"modelmgr: download, verify, cache and manage Hugging Face models"};
  app.require_subcommand(0, 1); // none: `sync` when a default model-set config exists, else help
  app.fallthrough();            // global flags (--json, -q) may also follow the subcommand
  app.set_version_flag("--version", "modelmgr 0.1.0");
  cli::GlobalOptions global;
  app.add_flag("--json", global.json,
               "Machine-readable output (one JSON object on stdout, JSON lines on stderr)");
  app.add_flag("-q,--quiet", global.quiet, "No progress output");
  app.add_flag("-v,--verbose", global.verbose, "More detail in messages");
  int exit_code = 0;
  cli::set_pull_command(app, global, exit_code);
  cli::set_serve_command(app, global, exit_code);
  cli::set_cache_command(app, global, exit_code);
  cli::set_sync_command(app, global, exit_code);
  cli::set_list_command(app, global, exit_code);
  cli::set_verify_command(app, global, exit_code);
  cli::set_clean_command(app, global, exit_code);
  cli::set_lock_command(app, global, exit_code);
  cli::set_models_command(app, global, exit_code);
  cli::set_inspect_command(app, global, exit_code);
  cli::set_bench_load_command(app, global, exit_code);
  cli::set_start_command(app, global, exit_code);
  cli::set_login_commands(app, global, exit_code);
  cli::set_meta_commands(app, global, exit_code);
  cli::install_signal_handlers();
  if (argc > 1 && std::string_view(argv[1]) == "__complete") {
    // Shell completion: the words are partial, so they are not parsed as a command line.
    return cli::print_completions(app, std::vector<std::string>(argv + 2, argv + argc));
  }
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) {
      if (!cli::has_default_model_config()) {
        fmt::print("{}", app.help());
        return exit_code_for(ErrorKind::usage);
      }
      std::vector<std::string> again(argv + 1, argv + argc);
      again.push_back("sync");
      std::reverse(again.begin(), again.end()); // CLI11 takes the arguments in reverse order
      app.parse(again);
    }
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : exit_code_for(ErrorKind::usage);
  } catch (const ModelManagerError& e) {
    if (auto code = cli::exit_for_output_failure(std::current_exception())) {
      return *code;
    }
    std::fflush(stdout);
    if (global.json) {
      nlohmann::json j;
      j["error"] = {{"kind", to_string(e.kind())},
                    {"message", e.what()},
                    {"hint", e.hint()},
                    {"exit_code", exit_code_for(e.kind())}};
      cli::print_stderr_noexcept(j.dump() + "\n");
    } else {
      cli::print_stderr_noexcept(fmt::format("modelmgr: error: {}\n", e.what()));
      if (!e.hint().empty()) {
        cli::print_stderr_noexcept(fmt::format("  hint: {}\n", e.hint()));
      }
    }
    return exit_code_for(e.kind());
  } catch (const std::exception& e) {
    if (auto code = cli::exit_for_output_failure(std::current_exception())) {
      return *code;
    }
    std::fflush(stdout);
    cli::print_stderr_noexcept(fmt::format("modelmgr: error: {}\n", e.what()));
    return exit_code_for(ErrorKind::internal);
  }
  // Buffered stdout is written here at the latest: a reader that left, or a full disk, must not look like
  // success.
  try {
    cli::flush_stdout();
  } catch (const std::exception& e) {
    if (auto code = cli::exit_for_output_failure(std::current_exception())) {
      return *code;
    }
    cli::print_stderr_noexcept(fmt::format("modelmgr: error: {}\n", e.what()));
    return exit_code_for(ErrorKind::disk);
  }
  if (auto code = cli::exit_for_output_failure(nullptr)) {
    return *code;
  }
  return exit_code;
}
