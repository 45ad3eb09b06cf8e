// `modelmgr list`: every configured model with its state in the cache (offline, no hashing).

#include "modelmgr/model_manager.hpp"

#include "cli/cli.hpp"
#include "cli/model_set.hpp"
#include "util/size.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {
struct ListArgs {
  std::string config;
};
} // namespace

void set_list_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<ListArgs>();
  auto* cmd = app.add_subcommand(
      "list", "List the configured models: cached, partial, missing or corrupt. Checks presence and sizes "
              "only, no hashes: a file with the right size but changed bytes still shows as cached; "
              "`modelmgr verify` re-hashes every file");
  cmd->add_option("--config", args->config, "Model-set file (default: found in the current directory)");
  cmd->callback([args, &global, &exit_code] {
    const ModelManager mm = load_model_set(args->config, global);
    // Size checks only: `corrupt` here means a blob of the wrong size, which costs a stat, not a hash.
    const auto checks = mm.check_models({}, VerifyLevel::size);
    if (global.json) {
      nlohmann::json models = nlohmann::json::array();
      for (const auto& c : checks) {
        const ModelSpec& spec = mm.get_model_spec(c.id);
        models.push_back({{"id", c.id},
                          {"repo_id", c.repo_id},
                          {"repo_type", spec.repo_type},
                          {"revision", c.revision},
                          {"commit", c.commit.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.commit)},
                          {"status", to_string(c.state)},
                          {"files", c.files_expected},
                          {"files_present", c.files_present},
                          {"size_on_disk", c.size_on_disk},
                          {"path", c.path.string()}});
      }
      fmt::print("{}\n", nlohmann::json{{"cache_dir", mm.cache_dir().string()}, {"models", models}}.dump());
    } else {
      fmt::print("{:<24} {:<8} {:<20} {:<12} {:>10}  {}\n", "ID", "STATUS", "REVISION", "COMMIT", "SIZE",
                 "REPO");
      for (const auto& c : checks) {
        fmt::print("{:<24} {:<8} {:<20} {:<12} {:>10}  {}\n", c.id, to_string(c.state), c.revision,
                   c.commit.empty() ? "-" : c.commit.substr(0, 12), util::format_bytes_iec(c.size_on_disk),
                   c.repo_id);
      }
    }
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
