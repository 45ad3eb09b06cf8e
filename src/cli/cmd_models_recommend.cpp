// `modelmgr models recommend [--use-case chat] [--json]`: probes the machine (RAM with cgroup limits, free
// disk under the cache, CPU features, GPUs), checks every catalog variant of the use case against it and
// prints the best that fits, how to get and run it, and why the larger ones were not chosen.
//
// Test hook: MODELMGR_TEST_SYSROOT=DIR makes the probe read DIR/proc and DIR/sys instead of /proc and /sys
// (a fake machine); tests fake nvidia-smi by putting a script of that name first on PATH.

#include "modelmgr/errors.hpp"

#include "catalog/catalog.hpp"
#include "catalog/recommend.hpp"
#include "catalog/system_probe.hpp"
#include "cli/cache_maint.hpp"
#include "cli/catalog_cli.hpp"
#include "cli/cli.hpp"
#include "util/env.hpp"
#include "util/size.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {

namespace fs = std::filesystem;
using catalog::Fit;
using catalog::FitInput;

struct RecommendArgs {
  std::string use_case = "chat";
  std::string cache_dir;
  std::vector<std::string> catalogs;
};

std::string ram_source_text(const Fit& fit)
{
  if (fit.ram_source == "header") {
    return "from the file's header";
  }
  if (fit.ram_source == "catalog") {
    return "from the catalog";
  }
  return "estimated from the download size";
}

nlohmann::json system_json(const catalog::SystemInfo& s)
{
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : s.gpus) {
    gpus.push_back(
        {{"name", g.name},
         {"memory_total_bytes", g.memory_total_bytes},
         {"memory_free_bytes", g.memory_free_bytes ? nlohmann::json(*g.memory_free_bytes) : nullptr},
         {"source", g.source}});
  }
  auto known = [](bool k, std::uint64_t v) { return k ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"ram_physical_bytes", known(s.ram_physical_bytes > 0, s.ram_physical_bytes)},
          {"cgroup_version",
           s.cgroup_version.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.cgroup_version)},
          {"cgroup_limit_bytes", s.cgroup_limit_bytes ? nlohmann::json(*s.cgroup_limit_bytes) : nullptr},
          {"ram_total_bytes", known(s.ram_known(), s.ram_total_bytes)},
          {"ram_available_bytes", known(s.ram_known(), s.ram_available_bytes)},
          {"ram_headroom_bytes", catalog::ram_headroom_bytes(s)},
          {"disk_path", s.disk_path.string()},
          {"disk_free_bytes", known(s.disk_known, s.disk_free_bytes)},
          {"cpu_threads", known(s.cpu_threads > 0, s.cpu_threads)},
          {"cpu_features", s.cpu_features},
          {"gpus", gpus}};
}

nlohmann::json fit_json(const FitInput& in, const Fit& fit)
{
  return {{"id", in.entry->id},
          {"spec", catalog::spec_of(*in.entry, *in.variant)},
          {"name", in.entry->name},
          {"hf_repo", in.entry->hf_repo},
          {"file", in.variant->file},
          {"quantization", in.variant->quantization},
          {"size_bytes", in.variant->size_bytes},
          {"cached", in.cached},
          {"ram_needed_bytes", fit.ram_needed_bytes},
          {"ram_source", fit.ram_source},
          {"fits", fit.fits},
          {"where", fit.where.empty() ? nlohmann::json(nullptr) : nlohmann::json(fit.where)},
          {"reason", fit.reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(fit.reason)}};
}

// `modelmgr start` runs llama-server (or a configured server) on a GGUF file; embedding/rerank models in
// other formats are used through a library, so no start command is suggested for them.
bool runnable(const catalog::Entry& entry)
{
  return entry.format == "gguf";
}

std::string use_case_phrase(const std::string& use_case)
{
  return use_case.empty() ? std::string("any use case") : "use case '" + use_case + "'";
}

void run_recommend(const RecommendArgs& args, const GlobalOptions& global)
{
  const catalog::Catalog cat = load_effective_catalog(args.catalogs);
  const fs::path cache_root = cache_root_for(args.cache_dir);
  const std::string use_case = args.use_case == "all" ? std::string() : args.use_case;

  const catalog::SystemInfo system = probe_this_machine(cache_root);

  const std::vector<CatalogCandidate> candidates = catalog_candidates(cat, cache_root);
  std::vector<FitInput> inputs;
  inputs.reserve(candidates.size());
  for (const auto& c : candidates) {
    inputs.push_back(c.input);
  }
  const catalog::Recommendation rec = catalog::recommend(inputs, system, use_case);

  if (rec.considered == 0) {
    std::vector<std::string> known;
    for (const auto& e : cat.entries) {
      for (const auto& u : e.use_cases) {
        if (std::find(known.begin(), known.end(), u) == known.end()) {
          known.push_back(u);
        }
      }
    }
    throw ConfigurationError(fmt::format("no catalog entry has the use case '{}'", use_case),
                             fmt::format("use one of: {} (or --use-case all)", fmt::join(known, ", ")),
                             ErrorKind::usage);
  }

  if (global.json) {
    nlohmann::json not_chosen = nlohmann::json::array();
    for (const auto& [in, fit] : rec.rejected) {
      not_chosen.push_back(fit_json(in, fit));
    }
    nlohmann::json recommended = nullptr;
    if (rec.best) {
      const std::string spec = catalog::spec_of(*rec.best->entry, *rec.best->variant);
      recommended = fit_json(*rec.best, *rec.best_fit);
      recommended["commands"] = {{"download", "modelmgr models download " + spec},
                                 {"start", runnable(*rec.best->entry)
                                               ? nlohmann::json("modelmgr start --model " + spec)
                                               : nlohmann::json(nullptr)}};
    }
    fmt::print("{}\n", nlohmann::json{{"system", system_json(system)},
                                      {"summary", rec.summary},
                                      {"use_case",
                                       use_case.empty() ? nlohmann::json(nullptr) : nlohmann::json(use_case)},
                                      {"considered", rec.considered},
                                      {"recommended", recommended},
                                      {"not_chosen", not_chosen}}
                           .dump());
  } else {
    fmt::print("Your system: {}\n", rec.summary);
    if (system.disk_known) {
      fmt::print("  (free disk measured at {})\n", system.disk_path.string());
    }
    if (rec.best) {
      const FitInput& best = *rec.best;
      const Fit& fit = *rec.best_fit;
      const std::string spec = catalog::spec_of(*best.entry, *best.variant);
      fmt::print("\nRecommended for {}: {}", use_case.empty() ? std::string("any use") : use_case, spec);
      if (!best.entry->name.empty()) {
        fmt::print(" ({})", best.entry->name);
      }
      fmt::print("\n  download {}{}, needs {} RAM ({}), runs in {}\n",
                 util::format_bytes_iec(best.variant->size_bytes), best.cached ? " (cached)" : "",
                 util::format_bytes_iec(fit.ram_needed_bytes), ram_source_text(fit), fit.where);
      if (!best.entry->description.empty()) {
        fmt::print("  {}\n", best.entry->description);
      }
      if (!best.cached) {
        fmt::print("  modelmgr models download {}\n", spec);
      }
      if (runnable(*best.entry)) {
        fmt::print("  modelmgr start --model {}\n", spec);
      }
    }
    if (!rec.rejected.empty()) {
      fmt::print("\nNot chosen:\n");
      for (const auto& [in, fit] : rec.rejected) {
        fmt::print("  {} ({}): {}\n", catalog::spec_of(*in.entry, *in.variant),
                   util::format_bytes_iec(in.variant->size_bytes), fit.reason);
      }
    }
  }

  if (!rec.best) {
    throw MissingModelError(
        fmt::format("no catalog model for {} fits this machine ({} candidate(s) checked: {})",
                    use_case_phrase(use_case), rec.considered, rec.summary),
        "free memory or disk space (each candidate's reason is listed above), or download one anyway with "
        "`modelmgr models download ID`");
  }
}

} // namespace

void add_models_recommend_command(CLI::App& models, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<RecommendArgs>();
  auto* cmd = models.add_subcommand(
      "recommend",
      "Probe this machine (RAM, cgroup limit, disk, CPU, GPU) and pick the best catalog model that fits");
  cmd->add_option("--use-case", args->use_case,
                  "chat, code, embedding, rerank, vision ... or all (default: chat)");
  cmd->add_option("--cache-dir", args->cache_dir, "Cache directory (free disk is measured there)");
  cmd->add_option("--catalog", args->catalogs,
                  "Extra catalog file (TOML) overriding the built-in and user catalogs (repeatable)");
  cmd->add_flag("--json", global.json, "Machine-readable output");
  cmd->callback([args, &global, &exit_code] {
    run_recommend(*args, global);
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
