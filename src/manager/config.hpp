#pragma once
// Reading, validating and discovering model-set configuration files (YAML or TOML; schema in
// docs/config.md). Every function here either returns a fully valid configuration or throws.

#include "modelmgr/config.hpp"

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::manager {

using Format = ConfigFormat;

// Environment lookup, injected so that tests need not touch the real environment.
using GetEnv = std::function<std::optional<std::string>(const char*)>;

// Reads and validates a file. The format comes from the extension (.yaml, .yml, .toml), otherwise it is
// sniffed from the content. Throws ConfigurationError when the file cannot be read, InvalidConfigError
// (a ConfigurationError) listing every problem when it is invalid.
ModelSetConfig load_config(const std::filesystem::path& path);

// Validates text; display_name is used in messages and as the result's path. Throws InvalidConfigError.
ModelSetConfig parse_config(std::string_view text, Format format, std::string_view display_name);

// Format of a file: by extension, else by a look at its first meaningful line (TOML if it starts with
// '[' or has `key =`, YAML otherwise).
Format detect_format(const std::filesystem::path& path, std::string_view text);

// The configuration to use when none is given: the first that exists of config/model_manager/models.yaml,
// modelmgr.yaml, modelmgr.toml (in cwd). When CI_MINIMAL_MODELS is true/1/yes (any case), the ".minimal"
// sibling of that file is returned instead and *note says so. Returns nullopt when none exists; throws
// ConfigurationError when the minimal file is required but missing, or CI_MINIMAL_MODELS is not a boolean.
// note (optional) is cleared unless the choice needs explaining.
std::optional<std::filesystem::path> find_default_config(const std::filesystem::path& cwd,
                                                         const GetEnv& getenv, std::string* note);

// The specs with these ids, in the order asked, duplicates dropped; every model when ids is empty.
// Throws ConfigurationError naming the unknown ids and listing the known ones.
std::vector<ModelSpec> select_models(const ModelSetConfig& config, const std::vector<std::string>& ids);

// `text` (a whole config file, possibly empty) with its `model.spec` set to `spec` (`[model] spec = "…"` in
// TOML, `model:\n  spec: "…"` in YAML), leaving every other line, comment included, as it was. The result
// is validated; throws InvalidConfigError if the file was invalid to begin with.
std::string with_model_spec(std::string_view text, Format format, std::string_view spec,
                            std::string_view display_name);

// Hub rules for a repo id; returns why it is invalid, or nullopt when it is valid.
std::optional<std::string> repo_id_problem(std::string_view repo_id);

} // namespace modelmgr::manager
