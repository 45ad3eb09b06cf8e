// `modelmgr sync`: make the cache match the model-set configuration, report per model, write the manifest.

#include "modelmgr/model_manager.hpp"

#include "cli/cli.hpp"
#include "cli/load_report.hpp"
#include "cli/model_set.hpp"
#include "util/fs.hpp"
#include "util/size.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {

struct SyncArgs {
  std::string config;
  std::vector<std::string> models;
  bool verify_only = false;
  bool dry_run = false;
  bool locked = false;
  bool offline = false;
  std::string manifest;
};

// --verify-only: nothing is downloaded; the cache is checked at the config's verify level.
int verify_only(const ModelManager& mm, const SyncArgs& a, const GlobalOptions& global)
{
  auto checks = mm.check_models(a.models, mm.config().verify);
  int code = 0;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : checks) {
    if (c.ok()) {
      if (!global.json) {
        fmt::print("{} {}: cached and verified ({}{})\n", k_ok_mark, c.id, to_string(mm.config().verify),
                   c.load ? ", " + parameters_text(*c.load) : std::string());
      }
    } else {
      const ErrorKind kind = c.state == CacheState::corrupt ? ErrorKind::checksum : ErrorKind::not_found;
      if (code == 0 || kind == ErrorKind::checksum) {
        code = exit_code_for(kind);
      }
      if (!global.json) {
        fmt::print("{} {}: {}\n", k_fail_mark, c.id,
                   c.commit.empty() ? std::string("missing: not in the cache") : to_string(c.state));
        for (const auto& p : c.problems) {
          fmt::print("    {}\n", p.message);
        }
      }
    }
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& p : c.problems) {
      problems.push_back(p.message);
    }
    nlohmann::json entry = {{"id", c.id},
                            {"status", to_string(c.state)},
                            {"commit", c.commit},
                            {"path", c.path.string()},
                            {"problems", problems}};
    if (c.load) {
      entry["load"] = load_json(*c.load);
    }
    out.push_back(std::move(entry));
  }
  if (global.json) {
    fmt::print("{}\n", nlohmann::json{{"models", out}}.dump());
  }
  return code;
}

void print_dry_run(const ModelManager& mm, const SyncReport& report)
{
  std::uint64_t total = 0;
  for (const auto& m : report.models) {
    if (m.status == ModelStatus::failed) {
      fmt::print("{} {}: {}\n", k_fail_mark, m.id, m.reason);
      continue;
    }
    total += m.bytes_to_download;
    const auto n =
        std::count_if(m.files.begin(), m.files.end(), [](const ModelFile& f) { return f.downloaded; });
    if (m.bytes_to_download == 0) {
      fmt::print("[dry-run] {}: cached ({} files at {})\n", m.id, m.files.size(), m.commit.substr(0, 12));
    } else {
      fmt::print("[dry-run] {}: would download {} ({} of {} files at {})\n", m.id,
                 util::format_bytes_iec(m.bytes_to_download), n, m.files.size(), m.commit.substr(0, 12));
    }
    for (const auto& f : m.files) {
      if (f.downloaded) {
        fmt::print("  download {:>10}  {}\n", util::format_bytes_iec(f.size), f.path);
      }
    }
  }
  std::uint64_t free = 0;
  try {
    // The same test hook the download engine honours, so tests can fake a full disk.
    const char* fake = std::getenv("MODELMGR_TEST_FREE_SPACE");
    free = fake && *fake ? std::stoull(fake) : util::free_space(mm.cache_dir());
  } catch (const std::exception&) {
  }
  fmt::print("[dry-run] total to download: {} ({} bytes); free in {}: {}: {}\n",
             util::format_bytes_iec(total), total, mm.cache_dir().string(), util::format_bytes_iec(free),
             free >= total ? "enough room" : "NOT enough room");
}

nlohmann::json report_json(const SyncReport& report)
{
  nlohmann::json models = nlohmann::json::array();
  for (const auto& m : report.models) {
    nlohmann::json j = {{"id", m.id},
                        {"status", to_string(m.status)},
                        {"repo_id", m.repo_id},
                        {"revision", m.revision},
                        {"commit", m.commit},
                        {"path", m.path.string()},
                        {"bytes_to_download", m.bytes_to_download}};
    if (m.status == ModelStatus::failed) {
      j["error"] = {{"kind", to_string(m.error_kind)}, {"message", m.reason}, {"hint", m.hint}};
    }
    if (m.load) {
      j["load"] = load_json(*m.load);
    }
    models.push_back(std::move(j));
  }
  return {{"models", models}};
}

} // namespace

void set_sync_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<SyncArgs>();
  auto* cmd = app.add_subcommand("sync", "Download and verify every model of the model-set configuration");
  cmd->add_option("--config", args->config,
                  "Model-set file (default: config/model_manager/models.yaml, "
                  "modelmgr.yaml or modelmgr.toml)");
  cmd->add_option("--model", args->models, "Only this model id (repeatable)");
  cmd->add_flag("--verify-only", args->verify_only,
                "Download nothing; fail when a model is missing or corrupt");
  cmd->add_flag("--dry-run", args->dry_run, "Show what would be downloaded and whether the disk has room");
  cmd->add_flag("--locked", args->locked,
                "Pull exactly the commits of modelmgr.lock; refuse if a branch moved");
  cmd->add_flag("--offline", args->offline, "Use only the cache (like HF_HUB_OFFLINE=1)");
  cmd->add_option("--manifest", args->manifest,
                  "Where to write the manifest (default: the config's `manifest`)");

  cmd->callback([args, &global, &exit_code] {
    const ModelManager mm = load_model_set(args->config, global);
    if (args->verify_only) {
      exit_code = verify_only(mm, *args, global);
      return;
    }
    auto renderer = make_progress_renderer(global);
    EnsureOptions opts;
    opts.ids = args->models;
    opts.dry_run = args->dry_run;
    if (args->offline) {
      opts.offline = true;
    }
    opts.observer = renderer.get();
    opts.cancel = &cancel_flag();
    if (args->locked) {
      opts.locked_commits = mm.check_lock(read_lock_file(mm.default_lock_path()), opts);
    }
    const SyncReport report = mm.ensure_all(opts);
    renderer.reset();
    if (args->dry_run) {
      if (global.json) {
        fmt::print("{}\n", report_json(report).dump());
      } else {
        print_dry_run(mm, report);
      }
    } else {
      const std::filesystem::path manifest =
          args->manifest.empty() ? mm.default_manifest_path() : std::filesystem::path(args->manifest);
      mm.write_manifest(report, manifest);
      if (global.json) {
        auto j = report_json(report);
        j["manifest"] = manifest.string();
        fmt::print("{}\n", j.dump());
      } else {
        for (const auto& m : report.models) {
          if (m.status == ModelStatus::failed) {
            fmt::print("{} {}: {}\n", k_fail_mark, m.id, m.reason);
            if (!m.hint.empty()) {
              fmt::print("    hint: {}\n", m.hint);
            }
          } else if (m.status == ModelStatus::downloaded) {
            fmt::print("{} {}: downloaded and verified ({}{})\n", k_ok_mark, m.id, to_string(m.verify),
                       m.load ? ", " + parameters_text(*m.load) : std::string());
          } else if (m.load) {
            fmt::print("{} {}: cached and verified ({}, {})\n", k_ok_mark, m.id, to_string(m.verify),
                       parameters_text(*m.load));
          } else {
            fmt::print("{} {}: cached\n", k_ok_mark, m.id);
          }
        }
        for (const auto& m : report.models) {
          if (m.status != ModelStatus::failed) {
            fmt::print("{}\t{}\n", m.id, m.path.string());
          }
        }
        if (!global.quiet) {
          fmt::print(stderr, "manifest: {}\n", manifest.string());
        }
      }
    }
    auto worst = report.worst_error();
    exit_code = worst ? exit_code_for(*worst) : 0;
  });
}

} // namespace modelmgr::cli
