#pragma once
// Shared by the model-set commands (sync, list, verify, clean, lock): which configuration file to use,
// and how per-model lines look.

#include "modelmgr/model_manager.hpp"

#include "cli/cli.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace modelmgr::cli {

// The default configuration of the current directory (find_default_config), or nullopt. Prints the
// CI_MINIMAL_MODELS note to stderr when `print_note` and a note applies. Throws ConfigurationError.
std::optional<std::filesystem::path> default_model_config(bool print_note);

// Loads `--config FILE`, or the default configuration; throws ConfigurationError when there is none. Notes on
// stderr (unless quiet) when the file lists no models (a config for `start` only).
ModelManager load_model_set(const std::string& config_flag, const GlobalOptions& global);
// The default configuration; throws ConfigurationError when there is none.
ModelManager load_default_model_set(const GlobalOptions& global);

// "✓" / "✗" on a terminal or not: the report is for people and for grep alike.
inline constexpr const char* k_ok_mark = "\u2713";
inline constexpr const char* k_fail_mark = "\u2717";

} // namespace modelmgr::cli
