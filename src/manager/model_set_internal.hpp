#pragma once
// Pieces shared by the model-set implementation files (model_manager.cpp, manifest.cpp) and their unit
// tests: how a ModelSpec selects files, how it maps onto PullOptions, and the offline per-file check.

#include "modelmgr/model_manager.hpp"

#include "cache/paths.hpp"
#include "cache/repo_cache.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::manager {

// True when a `files` entry is a pattern rather than a file name (`*`, `?`, `[`, or a trailing `/`).
bool has_glob_chars(std::string_view pattern);

// What a spec selects: exact names (no entry is a glob), else include globs; exclude globs either way.
struct Selection {
  std::vector<std::string> exact;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  bool selects(const std::string& path) const;
};
Selection selection_of(const ModelSpec& spec);

// Throws ConfigurationError for an unknown repo type.
cache::RepoType repo_type_of(const ModelSpec& spec);

// `~` and `$VAR` expanded; a relative result is taken from `base` (the config file's folder).
std::filesystem::path expand_config_path(const std::string& raw, const std::filesystem::path& base);

// The pull a spec stands for (a locked commit from `o` replaces the revision).
PullOptions pull_options(const ModelSpec& spec, const std::filesystem::path& cache_dir,
                         const std::filesystem::path& config_dir, const EnsureOptions& o);

struct ExpectedFile {
  std::string path;
  std::string etag; // empty when unknown
  std::optional<std::uint64_t> size;
};

// What the cache says a spec needs, without network: the commit from refs/ (or the revision itself), the
// files from trees/<commit>.json when cached, else the named files, else what the snapshot holds.
struct OfflinePlan {
  std::optional<std::string> commit;
  bool listing_known = false;
  std::vector<ExpectedFile> files;
};
OfflinePlan offline_plan(const ModelSpec& spec, const cache::RepoCache& rc);

// Checks one file (a snapshot entry or a plain file): present, linked to the expected blob, of the
// expected size; with sha256/load also its content hash against the etag and the pin. Returns the first
// problem, or nullopt. *actual_size receives the file's size when it could be read.
std::optional<FileProblem> check_file(const std::filesystem::path& file, const std::string& repo_path,
                                      std::string etag, std::optional<std::uint64_t> size,
                                      const std::optional<std::string>& pin, VerifyLevel level,
                                      std::uint64_t* actual_size);

// Runs the formats' load checks on `files` (repo path, file on disk): every file parsed, parameters summed
// over the weight files, a safetensors index counted instead of the shards it lists.
LoadResult load_check_files(const std::vector<std::pair<std::string, std::filesystem::path>>& files);
// "model.safetensors: does not load: <the parser's reason>".
std::string load_failure_message(const FileLoadCheck& file);

ModelCheck check_spec(const ModelSpec& spec, const std::filesystem::path& cache_dir,
                      const std::filesystem::path& config_dir, VerifyLevel level);
ModelResult ensure_spec(const ModelSpec& spec, const std::filesystem::path& cache_dir,
                        const std::filesystem::path& config_dir, VerifyLevel level, const EnsureOptions& o);

} // namespace modelmgr::manager
