#pragma once
// How the model-set commands (sync, verify) show a model's load check: "1.17 M parameters" in text, and
// `"load": {ok, parameter_count, files: [...]}` in --json.

#include "modelmgr/model_manager.hpp"

#include "formats/load_check.hpp"

#include <nlohmann/json.hpp>
#include <string>

#include <fmt/format.h>

namespace modelmgr::cli {

// "1.17 M parameters".
inline std::string parameters_text(const LoadResult& load)
{
  return fmt::format("{} parameters", formats::format_parameter_count(load.parameter_count));
}

inline nlohmann::json load_json(const LoadResult& load)
{
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : load.files) {
    nlohmann::json j = {{"path", f.path},
                        {"format", f.format},
                        {"ok", f.ok},
                        {"parameter_count", f.parameter_count},
                        {"summary", f.summary}};
    if (!f.ok) {
      j["error"] = f.error;
    }
    files.push_back(std::move(j));
  }
  return {{"ok", load.ok},
          {"parameter_count", load.parameter_count},
          {"checked_at", load.checked_at},
          {"files", std::move(files)}};
}

} // namespace modelmgr::cli
