// `modelmgr lock`: record the commit each configured model's revision resolves to (modelmgr.lock).

#include "modelmgr/model_manager.hpp"

#include "cli/cli.hpp"
#include "cli/model_set.hpp"

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {
struct LockArgs {
  std::string config;
  std::vector<std::string> models;
};
} // namespace

void set_lock_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<LockArgs>();
  auto* cmd = app.add_subcommand("lock", "Write modelmgr.lock with the resolved commit of every model");
  cmd->add_option("--config", args->config, "Model-set file (default: found in the current directory)");
  cmd->add_option("--model", args->models,
                  "Only re-resolve this model id (repeatable); others keep their entry");
  cmd->callback([args, &global, &exit_code] {
    const ModelManager mm = load_model_set(args->config, global);
    EnsureOptions opts;
    opts.ids = args->models;
    opts.cancel = &cancel_flag();
    LockFile fresh = mm.resolve_lock(opts);
    const auto path = mm.default_lock_path();
    LockFile out;
    std::optional<LockFile> old;
    if (!args->models.empty() && std::filesystem::exists(path)) {
      old = read_lock_file(path);
    }
    for (const auto& spec : mm.config().models) {
      if (const auto* e = fresh.find(spec.id)) {
        out.models.push_back(*e);
      } else if (const auto* o = old ? old->find(spec.id) : nullptr) {
        out.models.push_back(*o);
      }
    }
    write_lock_file(out, path);
    if (!global.quiet) {
      for (const auto& m : fresh.models) {
        fmt::print("{}: {}@{} -> {}\n", m.id, m.repo_id, m.revision, m.commit);
      }
      fmt::print(stderr, "wrote {}\n", path.string());
    }
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
