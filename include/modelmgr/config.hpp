#pragma once
// Model-set configuration: the models a project needs, as declared in a YAML or TOML file
// (see docs/config.md). Plain values; reading and validation live in src/manager/config.hpp.

#include "modelmgr/errors.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr {

// How thoroughly a synced model is checked. Ordered from cheapest to most thorough.
enum class VerifyLevel {
  none,   // presence only
  size,   // file sizes match the Hub (default)
  sha256, // full content hash
  load,   // hash, then the weights' headers are parsed
};

// "none", "size", "sha256" or "load".
std::string_view to_string(VerifyLevel level) noexcept;
// Inverse of to_string (exact, lower case); nullopt for anything else.
std::optional<VerifyLevel> parse_verify_level(std::string_view text) noexcept;

enum class ConfigFormat { yaml, toml };

// One entry of `models`.
struct ModelSpec {
  std::string id;                   // unique within the file, [A-Za-z0-9._-]+
  std::string repo_id;              // "name" or "namespace/name"
  std::string repo_type = "model";  // model | dataset | space
  std::string revision = "main";    // branch, tag or commit
  std::vector<std::string> files;   // names or globs; empty = whole repo
  std::vector<std::string> exclude; // globs
  std::optional<std::string> local_dir;
  bool local_dir_hardlink = false; // `local_dir_link: hardlink`: see PullOptions::local_dir_hardlink
  std::map<std::string, std::string> sha256; // repo path -> lower-case 64-hex pinned hash
  std::string description;
  int source_line = 0; // 1-based line of the entry in its file (0 if unknown)

  bool operator==(const ModelSpec&) const = default;
};

struct ModelSetConfig {
  std::filesystem::path path;           // the file it was read from (or the display name given)
  std::optional<std::string> cache_dir; // raw: `~` and `$VAR` are expanded by the caller
  VerifyLevel verify = VerifyLevel::size;
  std::string manifest = "model_manifest.json";
  std::vector<ModelSpec> models; // in file order; empty only when the file just selects a model
  // `[model] spec`: the catalog model ("ID" or "ID:QUANT") that `modelmgr start` runs, written by
  // `modelmgr models select`.
  std::optional<std::string> model_spec;
  // `catalog`: extra model catalog files (docs/catalog.md) as written, relative to the config's folder.
  std::vector<std::string> catalogs;
  // `[server]`: how `modelmgr start` runs the inference server (docs/start.md).
  struct Server {
    std::optional<std::string> command; // template with {file} {dir} {host} {port} ... placeholders
    std::optional<std::string> host;
    std::optional<int> port;
    std::string health_path = "/health";
    bool operator==(const Server&) const = default;
  } server;

  // The model with this id, or nullptr.
  const ModelSpec* find(std::string_view id) const;
};

// One problem found in a configuration file. line/column are 1-based; 0 when not known.
struct ConfigProblem {
  std::string file; // display name, e.g. "config/model_manager/models.yaml"
  int line = 0;
  int column = 0;
  std::string where;   // key path, e.g. "models[2].revision"; empty for syntax errors
  std::string message; // what is wrong and how to fix it

  // "file:line:col: where: message" (parts that are unknown are left out).
  std::string format() const;
};

// Thrown when a configuration file is invalid: carries every problem found, in file order. what() lists
// them, one per line, after a one-line summary.
class InvalidConfigError : public ConfigurationError {
public:
  InvalidConfigError(std::string file, std::vector<ConfigProblem> problems);
  const std::vector<ConfigProblem>& problems() const noexcept { return m_problems; }

private:
  std::vector<ConfigProblem> m_problems;
};

} // namespace modelmgr
