#pragma once
// Shared pieces of the command-line front end: global output settings, cancellation, error rendering.

#include "modelmgr/progress.hpp"
#include "modelmgr/pull.hpp"

#include <CLI/CLI.hpp>
#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace modelmgr::cli {

struct GlobalOptions {
  bool json = false;
  bool quiet = false;
  bool verbose = false;
};

// Set by SIGINT/SIGTERM (and by output_failed); library calls poll it and stop cleanly.
std::atomic<bool>& cancel_flag();
// SIGINT/SIGTERM set cancel_flag (a second one exits at once); SIGPIPE is ignored, so that a write to a
// closed pipe fails with EPIPE, which stops the command cleanly (see k_exit_output_closed).
void install_signal_handlers();

// ---- output that can fail (output.cpp) ----------------------------------------------------------------

// Exit status when the reader of stdout or stderr went away (EPIPE, e.g. `modelmgr pull ... | head -1`):
// 141 = 128 + SIGPIPE, what a shell reports for a writer that SIGPIPE killed (`yes | head -1`), so scripts
// with `set -o pipefail` see the status they know. Nothing is printed: there is no one left to read it.
inline constexpr int k_exit_output_closed = 128 + 13;

// True when `error` is a write to a pipe or socket whose reader is gone (EPIPE).
bool is_closed_output(std::exception_ptr error) noexcept;
// Called by the progress renderers (on download threads) when they cannot write: remembers the first
// failure and asks running library calls to stop, as Ctrl-C does. Never throws.
void output_failed(std::exception_ptr error) noexcept;
// The failure recorded by output_failed, or null.
std::exception_ptr output_failure() noexcept;
// Flushes stdout; throws std::system_error (EPIPE, ENOSPC ...) when its bytes cannot be written.
void flush_stdout();
// Prints to stderr, ignoring errors (for error messages, which have no better place to go).
void print_stderr_noexcept(const std::string& text) noexcept;

// Renders progress events: a live line on a terminal, periodic plain lines otherwise (kubectl logs), JSON
// lines with --json, nothing with --quiet or HF_HUB_DISABLE_PROGRESS_BARS=1. Writes to stderr.
std::unique_ptr<ProgressObserver> make_progress_renderer(const GlobalOptions& global);

// Prints rows as left-aligned columns two spaces apart (the last column unpadded), the header first, then a
// rule of dashes under it when `rule` is set.
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                 bool rule = true);

// The files of a pull as `pull --json` prints them: path, local_path, size, etag, downloaded.
nlohmann::json pulled_files_json(const PullResult& r);

// Parses sizes like 50M / 1.5GiB for options; throws CLI::ValidationError with the option name.
std::uint64_t parse_size_option(const std::string& option, const std::string& value);

void set_pull_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_serve_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_cache_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_sync_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_list_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_verify_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_clean_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_lock_command(CLI::App& app, GlobalOptions& global, int& exit_code);
// `models list|download` (cmd_models.cpp); it adds `models recommend` below itself.
void set_models_command(CLI::App& app, GlobalOptions& global, int& exit_code);
// `models recommend` (cmd_models_recommend.cpp), added under `models` by set_models_command.
void add_models_recommend_command(CLI::App& models, GlobalOptions& global, int& exit_code);
void set_inspect_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_bench_load_command(CLI::App& app, GlobalOptions& global, int& exit_code);
void set_start_command(CLI::App& app, GlobalOptions& global, int& exit_code);
// `login`, `logout`, `whoami` (cmd_login.cpp).
void set_login_commands(CLI::App& app, GlobalOptions& global, int& exit_code);
// Hidden `__complete` (shell completion candidates) and `__man DIR` (man pages), cmd_meta.cpp; registered
// last, so that they see every other command.
void set_meta_commands(CLI::App& app, GlobalOptions& global, int& exit_code);
// `modelmgr` without a subcommand: true when it should run `sync` (a default model-set config exists).
bool has_default_model_config();

} // namespace modelmgr::cli
