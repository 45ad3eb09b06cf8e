#pragma once
// `modelmgr cache rm|prune|verify|locks`: the commands that change or check the cache (cmd_cache_maint.cpp),
// registered under the `cache` subcommand by set_cache_command().

#include "cache/scan.hpp"
#include "cli/cli.hpp"

#include <filesystem>
#include <string>

namespace modelmgr::cli {

void set_cache_maint_commands(CLI::App& cache_cmd, GlobalOptions& global, int& exit_code);

// The cache root from --cache-dir (empty = HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub).
std::filesystem::path cache_root_for(const std::string& explicit_dir);
// scan_cache() with I/O failures turned into a disk error that names the option to check.
cache::CacheInfo scan_cache_root(const std::filesystem::path& root);

} // namespace modelmgr::cli
