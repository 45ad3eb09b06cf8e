// modelmgr: the command-line front end. The only code that prints; everything else is in the library.

#include "modelmgr/errors.hpp"

#include "cli/cli.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <unistd.h>

namespace modelmgr::cli {

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

} // namespace modelmgr::cli

int main(int argc, char** argv)
{
  using namespace modelmgr;
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
  cli::install_signal_handlers();
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
    std::fflush(stdout);
    if (global.json) {
      nlohmann::json j;
      j["error"] = {{"kind", to_string(e.kind())},
                    {"message", e.what()},
                    {"hint", e.hint()},
                    {"exit_code", exit_code_for(e.kind())}};
      fmt::print(stderr, "{}\n", j.dump());
    } else {
      fmt::print(stderr, "modelmgr: error: {}\n", e.what());
      if (!e.hint().empty()) {
        fmt::print(stderr, "  hint: {}\n", e.hint());
      }
    }
    return exit_code_for(e.kind());
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "modelmgr: error: {}\n", e.what());
    return exit_code_for(ErrorKind::internal);
  }
  return exit_code;
}
