// `modelmgr clean`: remove configured models from the cache, keeping blobs other snapshots still use.

#include "modelmgr/model_manager.hpp"

#include "cli/cli.hpp"
#include "cli/model_set.hpp"
#include "util/size.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {
struct CleanArgs {
  std::string config;
  std::vector<std::string> models;
};
} // namespace

void set_clean_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<CleanArgs>();
  auto* cmd = app.add_subcommand("clean", "Remove configured models' snapshots, refs and unshared blobs");
  cmd->add_option("--config", args->config, "Model-set file (default: found in the current directory)");
  cmd->add_option("--model", args->models, "Only this model id (repeatable; default: every model)");
  cmd->callback([args, &global, &exit_code] {
    const ModelManager mm = load_model_set(args->config, global);
    const auto results = mm.clean(args->models);
    std::uint64_t freed = 0;
    nlohmann::json models = nlohmann::json::array();
    for (const auto& r : results) {
      freed += r.freed;
      if (!global.json) {
        if (r.removed.empty()) {
          fmt::print("{}: nothing removed{}{}\n", r.id, r.kept.empty() ? "" : " (",
                     r.kept.empty() ? "" : fmt::format("{})", fmt::join(r.kept, "; ")));
        } else {
          fmt::print("{}: removed {} entr{}, freed {}\n", r.id, r.removed.size(),
                     r.removed.size() == 1 ? "y" : "ies", util::format_bytes_iec(r.freed));
          for (const auto& k : r.kept) {
            fmt::print("    kept: {}\n", k);
          }
        }
      }
      nlohmann::json removed = nlohmann::json::array();
      for (const auto& p : r.removed) {
        removed.push_back(p.string());
      }
      models.push_back({{"id", r.id}, {"removed", removed}, {"kept", r.kept}, {"freed", r.freed}});
    }
    if (global.json) {
      fmt::print("{}\n", nlohmann::json{{"models", models}, {"freed", freed}}.dump());
    } else {
      fmt::print("freed {} ({} bytes)\n", util::format_bytes_iec(freed), freed);
    }
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
