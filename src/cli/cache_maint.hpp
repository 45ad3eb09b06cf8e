#pragma once
// `modelmgr cache rm|prune|verify|locks`: the commands that change or check the cache (cmd_cache_maint.cpp),
// registered under the `cache` subcommand by set_cache_command().

#include "cli/cli.hpp"

namespace modelmgr::cli {

void set_cache_maint_commands(CLI::App& cache_cmd, GlobalOptions& global, int& exit_code);

} // namespace modelmgr::cli
