#pragma once
// `modelmgr cache rm|prune|verify|locks`: the commands that change or check the cache (cmd_cache_maint.cpp,
// cmd_cache_select.cpp for `rm -i`), registered under the `cache` subcommand by set_cache_command().

#include "cache/delete.hpp"
#include "cache/scan.hpp"
#include "cli/cli.hpp"

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

namespace modelmgr::cli {

void set_cache_maint_commands(CLI::App& cache_cmd, GlobalOptions& global, int& exit_code);

// The cache root from --cache-dir (empty = HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub).
std::filesystem::path cache_root_for(const std::string& explicit_dir);
// scan_cache() with I/O failures turned into a disk error that names the option to check.
cache::CacheInfo scan_cache_root(const std::filesystem::path& root, const cache::ScanOptions& options = {});

struct SelectResult {
  enum class How { accepted, quit, interrupted };
  How how = How::quit;
  std::vector<cache::DeleteTarget> targets; // when accepted: whole repos and single revisions
};

// The list of `cache rm -i` (cmd_cache_select.cpp): the repos of `info`, largest first, each expandable to
// its revisions, drawn full-screen on `out_fd` in raw mode while keys are read from `in_fd`, with the
// space the ticked entries free (cache::plan_delete, as `cache rm` computes it) at the bottom. Restores
// the terminal before returning or throwing. `cancel` (SIGINT/SIGTERM) ends it as interrupted.
SelectResult select_delete_targets(const cache::CacheInfo& info, int in_fd, int out_fd,
                                   const std::atomic<bool>* cancel);

} // namespace modelmgr::cli
