#pragma once
// Pieces the catalog commands share (models list/recommend/select/download, start): the catalog's
// variants with their cache state, this machine's probe, the pull of one variant, and the select flow.

#include "modelmgr/pull.hpp"

#include "catalog/catalog.hpp"
#include "catalog/recommend.hpp"
#include "catalog/system_probe.hpp"
#include "cli/cli.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace modelmgr::cli {

struct CatalogCandidate {
  catalog::FitInput input;
  std::filesystem::path cached_file; // the weights in the snapshot when cached
};

// The catalog in effect: built-in < user catalog < the project config's `catalog` files (relative to the
// config; `config_flag`, else the project's default config, if any) < `extra_files` (--catalog).
catalog::Catalog load_effective_catalog(const std::vector<std::string>& extra_files,
                                        const std::string& config_flag = {});

// Every variant of the catalog, with its cache state and, for cached GGUF files, the RAM its own header
// asks for.
std::vector<CatalogCandidate> catalog_candidates(const catalog::Catalog& cat,
                                                 const std::filesystem::path& cache_root);

// This machine (RAM, disk under `cache_root`, CPU, GPUs). Test hook: MODELMGR_TEST_SYSROOT=DIR reads DIR/proc
// and DIR/sys instead.
catalog::SystemInfo probe_this_machine(const std::filesystem::path& cache_root);

// The pull of one catalog variant: its repo, revision, file and extra files.
PullOptions variant_pull_options(const catalog::Entry& entry, const catalog::Variant& variant);

struct SelectOptions {
  std::string use_case = "chat";
  std::string cache_dir;
  std::vector<std::string> catalogs;
  std::string config; // project config to write; empty = the default one, else ./modelmgr.toml
  bool download = true;
};

// `models select`: shows the numbered menu (size, RAM, description, the recommendation marked) on the
// terminal, reads a number, downloads the choice with progress and writes it to the project config as
// [model] spec. Returns the chosen spec. Off a terminal: a usage error naming --model.
std::string run_select_flow(const SelectOptions& options, const GlobalOptions& global);

void add_models_select_command(CLI::App& models, GlobalOptions& global, int& exit_code);

} // namespace modelmgr::cli
