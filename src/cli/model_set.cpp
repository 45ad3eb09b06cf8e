// Configuration discovery for the model-set commands.

#include "cli/model_set.hpp"

#include "manager/config.hpp"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace modelmgr::cli {

std::optional<std::filesystem::path> default_model_config(bool print_note)
{
  std::string note;
  auto getenv = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  auto path = manager::find_default_config(std::filesystem::current_path(), getenv, &note);
  if (print_note && !note.empty()) {
    fmt::print(stderr, "modelmgr: {}\n", note);
  }
  return path;
}

ModelManager load_model_set(const std::string& config_flag, const GlobalOptions& global)
{
  ModelManager mm =
      config_flag.empty() ? load_default_model_set(global) : ModelManager::from_config(config_flag);
  if (mm.config().models.empty() && !global.quiet) {
    // Valid: a project config for `start` only ([model], [server], catalog). Say why nothing happens.
    fmt::print(stderr, "modelmgr: {} lists no models (it has no 'models' entries); nothing to do\n",
               mm.config().path.string());
  }
  return mm;
}

ModelManager load_default_model_set(const GlobalOptions& global)
{
  auto path = default_model_config(!global.quiet);
  if (!path) {
    throw ConfigurationError("no model-set configuration found in the current directory (looked for "
                             "config/model_manager/models.yaml, modelmgr.yaml, modelmgr.toml)",
                             "pass --config FILE (format: docs/config.md)", ErrorKind::usage);
  }
  return ModelManager::from_config(*path);
}

bool has_default_model_config()
{
  return default_model_config(false).has_value();
}

} // namespace modelmgr::cli
