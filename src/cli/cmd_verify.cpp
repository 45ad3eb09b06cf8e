// `modelmgr verify`: offline re-hash of every file of the configured models against the blob names
// (etags), with --load also the load check of every file; reports every problem at once; --repair fetches
// only the broken files again.

#include "modelmgr/errors.hpp"
#include "modelmgr/model_manager.hpp"

#include "cli/cli.hpp"
#include "cli/load_report.hpp"
#include "cli/model_set.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {

struct VerifyArgs {
  std::string config;
  std::vector<std::string> ids;
  bool repair = false;
  bool load = false;
};

void print_check(const ModelCheck& c)
{
  if (c.ok()) {
    fmt::print("{} {}: {} files verified at {}{}\n", k_ok_mark, c.id, c.files_expected,
               c.commit.substr(0, 12),
               c.load ? fmt::format(", loads ({})", parameters_text(*c.load)) : std::string());
    return;
  }
  if (c.commit.empty()) {
    fmt::print("{} {}: missing: not in the cache\n", k_fail_mark, c.id);
    return;
  }
  fmt::print("{} {}: {} ({} problem{})\n", k_fail_mark, c.id, to_string(c.state), c.problems.size(),
             c.problems.size() == 1 ? "" : "s");
  for (const auto& p : c.problems) {
    fmt::print("    {}: {}\n", to_string(p.kind), p.message);
  }
}

int code_for(const std::vector<ModelCheck>& checks)
{
  int code = 0;
  for (const auto& c : checks) {
    if (c.state == CacheState::corrupt) {
      return exit_code_for(ErrorKind::checksum);
    }
    if (!c.ok()) {
      code = exit_code_for(ErrorKind::not_found);
    }
  }
  return code;
}

} // namespace

void set_verify_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<VerifyArgs>();
  auto* cmd =
      app.add_subcommand("verify", "Re-hash the configured models' files offline (--repair fixes them)");
  cmd->add_option("ids", args->ids, "Model ids (default: every model)");
  cmd->add_option("--config", args->config, "Model-set file (default: found in the current directory)");
  cmd->add_flag("--repair", args->repair, "Delete broken blobs and download only those files again");
  cmd->add_flag("--load", args->load,
                "After the hashes, parse every file (GGUF, safetensors, ONNX, JSON) and count parameters");
  cmd->callback([args, &global, &exit_code] {
    const ModelManager mm = load_model_set(args->config, global);
    // Always the hashes; the load check on request (the config's `verify` level is for sync).
    const VerifyLevel level = args->load ? VerifyLevel::load : VerifyLevel::sha256;
    auto checks = mm.check_models(args->ids, level);
    if (!global.json) {
      for (const auto& c : checks) {
        print_check(c);
      }
    }
    if (args->repair) {
      auto renderer = make_progress_renderer(global);
      EnsureOptions opts;
      opts.observer = renderer.get();
      opts.cancel = &cancel_flag();
      std::vector<std::string> redo;
      for (const auto& c : checks) {
        const bool only_load = std::all_of(c.problems.begin(), c.problems.end(), [](const FileProblem& p) {
          return p.kind == FileProblem::Kind::load_failure;
        });
        if (c.ok() || (only_load && !c.problems.empty())) {
          // Files that fail only the load check hold the Hub's own bytes: downloading them again is useless.
          continue;
        }
        auto r = mm.repair_model(c, opts);
        if (r.interrupted || cancel_flag().load()) {
          throw DownloadError(ErrorKind::interrupted, "verify --repair interrupted");
        }
        if (!global.json) {
          if (r.ok) {
            fmt::print("{} {}: repaired {} file{}\n", k_ok_mark, r.id, r.repaired.size(),
                       r.repaired.size() == 1 ? "" : "s");
          } else {
            fmt::print("{} {}: repair failed: {}\n", k_fail_mark, r.id, r.reason);
          }
        }
        redo.push_back(c.id);
      }
      renderer.reset();
      if (!redo.empty()) {
        // Trust nothing: the repaired models are checked again from scratch.
        auto again = mm.check_models(redo, level);
        for (auto& c : again) {
          for (auto& old : checks) {
            if (old.id == c.id) {
              old = c;
            }
          }
          if (!c.ok() && !global.json) {
            print_check(c);
          }
        }
      }
    }
    if (global.json) {
      nlohmann::json models = nlohmann::json::array();
      for (const auto& c : checks) {
        nlohmann::json problems = nlohmann::json::array();
        for (const auto& p : c.problems) {
          problems.push_back({{"kind", to_string(p.kind)}, {"path", p.path}, {"message", p.message}});
        }
        nlohmann::json entry = {
            {"id", c.id}, {"status", to_string(c.state)}, {"commit", c.commit}, {"problems", problems}};
        if (c.load) {
          entry["load"] = load_json(*c.load);
        }
        models.push_back(std::move(entry));
      }
      fmt::print("{}\n", nlohmann::json{{"models", models}}.dump());
    }
    exit_code = code_for(checks);
  });
}

} // namespace modelmgr::cli
