// `modelmgr models list|download` (and `recommend`, cmd_models_recommend.cpp): the model catalog.
//   list [--use-case X] [--fits] [--json] [--refresh]: one row per variant (id, quantization, download
//     size, RAM needed, fits this machine now, cached); --refresh compares the catalog's sizes with the
//     Hub's tree listing instead and exits 9 when any drifted; for an entry pinned to a commit it also
//     notes a newer upload of a variant's file on `main` (not a drift).
//   download ID[:QUANT]: `modelmgr pull` of the entry's repo/revision/files, same progress and checks.
// The catalog is the built-in one < the user catalog < each --catalog FILE (see docs/catalog.md).
//
// Test hook (as `models recommend`): MODELMGR_TEST_SYSROOT=DIR makes the probe read DIR/proc and DIR/sys.

#include "modelmgr/errors.hpp"
#include "modelmgr/pull.hpp"

#include "catalog/catalog.hpp"
#include "catalog/recommend.hpp"
#include "catalog/system_probe.hpp"
#include "cli/cache_maint.hpp"
#include "cli/catalog_cli.hpp"
#include "cli/cli.hpp"
#include "hub/http_options.hpp"
#include "hub/hub_client.hpp"
#include "manager/gguf_select.hpp"
#include "net/http.hpp"
#include "util/env.hpp"
#include "util/size.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* k_sysroot_env = "MODELMGR_TEST_SYSROOT";
// `models list --refresh`: some catalog size differs from the Hub (documented in docs/catalog.md).
constexpr int k_exit_drift = 9;
// Context assumed for a cached GGUF whose entry names none (llama-server's default).
constexpr std::uint64_t k_default_context = 4096;

struct ListArgs {
  std::vector<std::string> catalogs;
  std::string use_case;
  bool fits = false;
  bool refresh = false;
  std::string cache_dir;
};

struct DownloadArgs {
  std::vector<std::string> catalogs;
  std::string spec;
  std::string cache_dir;
  std::string local_dir;
};

catalog::Catalog load(const std::vector<std::string>& files)
{
  return load_effective_catalog(files);
}

bool iequals(std::string_view a, std::string_view b)
{
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The entries of `use_case` ("" or "all": every entry). Throws a usage error naming the known use cases
// when none has it.
std::vector<const catalog::Entry*> entries_for(const catalog::Catalog& cat, const std::string& use_case)
{
  std::vector<const catalog::Entry*> out;
  std::vector<std::string> known;
  for (const auto& e : cat.entries) {
    bool match = use_case.empty() || use_case == "all";
    for (const auto& u : e.use_cases) {
      match = match || iequals(u, use_case);
      if (std::find(known.begin(), known.end(), u) == known.end()) {
        known.push_back(u);
      }
    }
    if (match) {
      out.push_back(&e);
    }
  }
  if (out.empty() && !cat.entries.empty()) {
    throw ConfigurationError(fmt::format("no catalog entry has the use case '{}'", use_case),
                             fmt::format("use one of: {} (or leave --use-case out)", fmt::join(known, ", ")),
                             ErrorKind::usage);
  }
  return out;
}

struct Row {
  const catalog::Entry* entry = nullptr;
  const catalog::Variant* variant = nullptr;
  catalog::CacheState cache;
  catalog::Fit fit;
};

void run_list(const ListArgs& args, const GlobalOptions& global)
{
  const util::Env& env = util::Env::process();
  const catalog::Catalog cat = load(args.catalogs);
  const auto entries = entries_for(cat, args.use_case);
  const fs::path cache_root = cache_root_for(args.cache_dir);

  catalog::ProbeOptions probe;
  if (auto root = env.get_nonempty(k_sysroot_env)) {
    probe.root = *root;
  }
  probe.disk_path = cache_root;
  const catalog::SystemInfo system = catalog::probe_system(probe);

  std::vector<Row> rows;
  for (const auto* e : entries) {
    for (const auto& v : e->variants) {
      Row row{e, &v, {}, {}};
      try {
        row.cache = catalog::variant_cache_state(*e, v, cache_root, env);
      } catch (const std::exception&) {
        row.cache = {}; // unreadable: not cached
      }
      catalog::FitInput in{e, &v, row.cache.complete, std::nullopt};
      if (row.cache.complete && e->format == "gguf") {
        in.ram_from_header =
            catalog::ram_from_gguf(row.cache.snapshot / fs::path(v.file),
                                   e->context_length > 0 ? e->context_length : k_default_context);
      }
      row.fit = catalog::check_fit(in, system);
      if (args.fits && !row.fit.fits) {
        continue;
      }
      rows.push_back(std::move(row));
    }
  }

  if (global.json) {
    nlohmann::json models = nlohmann::json::array();
    for (const auto& r : rows) {
      models.push_back(
          {{"id", r.entry->id},
           {"spec", catalog::spec_of(*r.entry, *r.variant)},
           {"name", r.entry->name},
           {"hf_repo", r.entry->hf_repo},
           {"revision", r.entry->revision},
           {"format", r.entry->format},
           {"use_cases", r.entry->use_cases},
           {"quantization", r.variant->quantization},
           {"file", r.variant->file},
           {"default", r.variant->is_default},
           {"size_bytes", r.variant->size_bytes},
           {"size_exact", r.variant->size_exact},
           {"min_ram_bytes", r.variant->min_ram_bytes},
           {"ram_needed_bytes", r.fit.ram_needed_bytes},
           {"ram_source", r.fit.ram_source},
           {"fits", r.fit.fits},
           {"fit_reason", r.fit.reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.fit.reason)},
           {"cached", r.cache.complete},
           {"path", r.cache.complete ? nlohmann::json((r.cache.snapshot / fs::path(r.variant->file)).string())
                                     : nlohmann::json(nullptr)},
           {"license", r.entry->license},
           {"description", r.entry->description},
           {"origin", r.entry->origin}});
    }
    fmt::print("{}\n", nlohmann::json{{"system", catalog::describe_system(system)},
                                      {"cache_dir", cache_root.string()},
                                      {"models", models}}
                           .dump());
    return;
  }
  if (rows.empty()) {
    fmt::print("No catalog model fits this machine ({}).\n", catalog::describe_system(system));
    fmt::print("`modelmgr models list` without --fits shows them all, with what each needs.\n");
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows) {
    std::string fits = r.fit.fits ? "yes" : "no";
    table.push_back({r.entry->id, r.variant->quantization.empty() ? "-" : r.variant->quantization,
                     (r.variant->size_exact ? "" : "~") + util::format_bytes_iec(r.variant->size_bytes),
                     util::format_bytes_iec(r.fit.ram_needed_bytes), fits, r.cache.complete ? "yes" : "no"});
  }
  print_table({"ID", "QUANT", "SIZE", "RAM", "FITS", "CACHED"}, table, false);
  if (!global.quiet) {
    fmt::print(stderr, "This machine: {}. RAM is what the model needs at its default context.\n",
               catalog::describe_system(system));
    const bool approximate =
        std::any_of(rows.begin(), rows.end(), [](const auto& r) { return !r.variant->size_exact; });
    if (approximate) {
      fmt::print(stderr,
                 "~ = the Hub page's rounded size, not yet the exact byte count; `modelmgr models list "
                 "--refresh` reads the exact sizes from the Hub.\n");
    }
  }
}

// ---- --refresh ----------------------------------------------------------------------------------------

struct EntryCheck {
  const catalog::Entry* entry = nullptr;
  std::string commit;
  std::vector<catalog::SizeCheck> checks;
  std::optional<ModelManagerError> error;
};

// For an entry pinned to a commit: whether `main` has moved on to another upload of a variant's file. Only a
// note, so a repo without a `main` branch (or one that cannot be read) leaves the checks as they are.
void check_main_for_newer_uploads(hub::HubClient& hub, const hub::RepoId& repo,
                                  const std::vector<cache::TreeFile>& pinned, EntryCheck& r)
{
  try {
    const std::string main_commit = hub.revision_info(repo, "main").sha;
    if (main_commit != r.commit) {
      catalog::note_newer_uploads(r.checks, pinned, main_commit, hub.list_files(repo, main_commit));
    }
  } catch (const ModelManagerError& err) {
    if (err.kind() == ErrorKind::interrupted || cancel_flag().load()) {
      throw;
    }
  }
}

int run_refresh(const ListArgs& args, const GlobalOptions& global)
{
  const util::Env& env = util::Env::process();
  const catalog::Catalog cat = load(args.catalogs);
  const auto entries = entries_for(cat, args.use_case);

  hub::HubConfig config = hub::hub_config_from_env(env);
  net::Client http(hub::http_options_from_env(env));
  hub::HubClient hub(config, http, &cancel_flag());

  std::vector<EntryCheck> results;
  for (const auto* e : entries) {
    EntryCheck r;
    r.entry = e;
    try {
      const hub::RepoId repo{cache::RepoType::model, e->hf_repo};
      const bool pinned = hub::is_commit_hash(e->revision);
      r.commit = pinned ? e->revision : hub.revision_info(repo, e->revision).sha;
      const auto files = hub.list_files(repo, r.commit);
      r.checks = catalog::compare_sizes(*e, files);
      if (pinned) {
        check_main_for_newer_uploads(hub, repo, files, r);
      }
    } catch (const ModelManagerError& err) {
      if (err.kind() == ErrorKind::interrupted || cancel_flag().load()) {
        throw;
      }
      r.error = err;
    }
    results.push_back(std::move(r));
  }

  std::size_t files = 0;
  std::size_t drifted = 0;
  std::size_t newer = 0;
  std::optional<ErrorKind> worst;
  for (const auto& r : results) {
    if (r.error) {
      worst = worst ? worst : r.error->kind();
    }
    for (const auto& c : r.checks) {
      ++files;
      drifted += c.drift() ? 1 : 0;
      newer += c.newer ? 1 : 0;
    }
  }
  const int code = worst ? exit_code_for(*worst) : (drifted > 0 ? k_exit_drift : 0);

  if (global.json) {
    nlohmann::json checks = nlohmann::json::array();
    nlohmann::json errors = nlohmann::json::array();
    for (const auto& r : results) {
      if (r.error) {
        errors.push_back({{"id", r.entry->id},
                          {"hf_repo", r.entry->hf_repo},
                          {"kind", to_string(r.error->kind())},
                          {"message", r.error->what()},
                          {"hint", r.error->hint()}});
      }
      for (const auto& c : r.checks) {
        checks.push_back(
            {{"id", r.entry->id},
             {"quantization", c.quantization},
             {"hf_repo", r.entry->hf_repo},
             {"revision", r.entry->revision},
             {"commit", r.commit},
             {"path", c.path},
             {"catalog_size", c.catalog_size},
             {"hub_size", c.hub_size ? nlohmann::json(*c.hub_size) : nlohmann::json(nullptr)},
             {"drift", c.drift()},
             {"newer_on_main",
              c.newer ? nlohmann::json{{"commit", c.newer->commit},
                                       {"hub_size", c.newer->size ? nlohmann::json(*c.newer->size)
                                                                  : nlohmann::json(nullptr)}}
                      : nlohmann::json(nullptr)}});
      }
    }
    fmt::print("{}\n", nlohmann::json{{"checks", checks},
                                      {"errors", errors},
                                      {"files_checked", files},
                                      {"drifted", drifted},
                                      {"newer_on_main", newer},
                                      {"exit_code", code}}
                           .dump());
    return code;
  }
  for (const auto& r : results) {
    if (r.error) {
      fmt::print("error {}: cannot list {}: {}\n", r.entry->id, r.entry->hf_repo, r.error->what());
      continue;
    }
    for (const auto& c : r.checks) {
      const std::string spec = c.quantization.empty() ? r.entry->id : r.entry->id + ":" + c.quantization;
      if (!c.hub_size) {
        fmt::print("DRIFT {} {}: not on the Hub at {}@{} (catalog {} bytes)\n", spec, c.path,
                   r.entry->hf_repo, r.entry->revision, c.catalog_size);
      } else if (c.drift()) {
        fmt::print("DRIFT {} {}: catalog {} bytes, Hub {} bytes ({:+} bytes)\n", spec, c.path, c.catalog_size,
                   *c.hub_size, static_cast<long long>(*c.hub_size) - static_cast<long long>(c.catalog_size));
      } else {
        fmt::print("ok    {} {}: {} bytes\n", spec, c.path, c.catalog_size);
      }
      if (c.newer && c.newer->size) {
        fmt::print(
            "newer {} {}: main ({}) has another upload, {} bytes; to move to it, set revision = \"{}\" "
            "and size_bytes = {}\n",
            spec, c.path, c.newer->commit.substr(0, 7), *c.newer->size, c.newer->commit, *c.newer->size);
      } else if (c.newer) {
        fmt::print("newer {} {}: no longer on main ({}); the pinned revision still has it\n", spec, c.path,
                   c.newer->commit.substr(0, 7));
      }
    }
  }
  fmt::print("{} file{} checked, {} drifted{}{}\n", files, files == 1 ? "" : "s", drifted,
             newer > 0 ? fmt::format(", {} changed on main since the pinned revision", newer) : "",
             worst ? ", some repos could not be listed" : "");
  if (drifted > 0 && !global.quiet) {
    fmt::print(
        stderr,
        "The catalog's sizes differ from the Hub: update size_bytes (and min_ram_bytes) in the catalog "
        "that defines the entry (see docs/catalog.md).\n");
  }
  return code;
}

// ---- download -----------------------------------------------------------------------------------------

// `models download org/name[:QUANT]`: the GGUF file(s) of one quantization from any repo (no catalog entry).
void run_repo_download(const DownloadArgs& args, const GlobalOptions& global)
{
  const auto rq = manager::split_repo_quant(args.spec);
  auto renderer = make_progress_renderer(global);
  PullOptions o;
  o.repo_id = rq.repo;
  o.gguf_quant = rq.quant.value_or("");
  if (!args.cache_dir.empty()) {
    o.cache_dir = args.cache_dir;
  }
  if (!args.local_dir.empty()) {
    o.local_dir = args.local_dir;
  }
  o.observer = renderer.get();
  o.cancel = &cancel_flag();
  const PullResult r = pull(o);
  renderer.reset();
  const auto name = manager::parse_gguf_name(r.files.front().path);
  const std::string quant = name ? name->quant : std::string();
  if (global.json) {
    fmt::print("{}\n", nlohmann::json{{"spec", quant.empty() ? rq.repo : rq.repo + ":" + quant},
                                      {"repo_id", r.repo_id},
                                      {"quantization", quant},
                                      {"revision", r.revision},
                                      {"commit", r.commit},
                                      {"cache_dir", r.cache_dir.string()},
                                      {"root", r.root.string()},
                                      {"path", r.files.front().local_path.string()},
                                      {"bytes_to_download", r.bytes_to_download},
                                      {"files", pulled_files_json(r)}}
                           .dump());
  } else {
    // The file to load first (the first split part), then the other parts and the mmproj file.
    for (const auto& f : r.files) {
      fmt::print("{}\n", f.local_path.string());
    }
  }
  std::fflush(stdout);
}

void run_download(const DownloadArgs& args, const GlobalOptions& global)
{
  if (manager::looks_like_repo_spec(args.spec)) {
    run_repo_download(args, global);
    return;
  }
  const catalog::Catalog cat = load(args.catalogs);
  const catalog::Selection sel = catalog::resolve(cat, args.spec);
  const auto& entry = *sel.entry;
  const auto& variant = *sel.variant;

  auto renderer = make_progress_renderer(global);
  PullOptions o = variant_pull_options(entry, variant);
  if (!args.cache_dir.empty()) {
    o.cache_dir = args.cache_dir;
  }
  if (!args.local_dir.empty()) {
    o.local_dir = args.local_dir;
  }
  o.observer = renderer.get();
  const PullResult r = pull(o);
  renderer.reset();

  const auto weights = std::find_if(r.files.begin(), r.files.end(),
                                    [&](const PulledFile& f) { return f.path == variant.file; });
  if (weights == r.files.end()) {
    throw MissingModelError(
        fmt::format("catalog entry '{}': {} has no file '{}' at revision '{}' (commit {})",
                    catalog::spec_of(entry, variant), entry.hf_repo, variant.file, entry.revision, r.commit),
        fmt::format(
            "the repo changed since the catalog was written; run `modelmgr models list --refresh` and fix "
            "the entry in {}",
            entry.origin));
  }
  if (global.json) {
    const nlohmann::json files = pulled_files_json(r);
    fmt::print("{}\n", nlohmann::json{{"id", entry.id},
                                      {"spec", catalog::spec_of(entry, variant)},
                                      {"repo_id", r.repo_id},
                                      {"revision", r.revision},
                                      {"commit", r.commit},
                                      {"cache_dir", r.cache_dir.string()},
                                      {"root", r.root.string()},
                                      {"path", weights->local_path.string()},
                                      {"size_bytes", weights->size},
                                      {"catalog_size_bytes", variant.size_bytes},
                                      {"bytes_to_download", r.bytes_to_download},
                                      {"files", files}}
                           .dump());
  } else {
    // The weights first (what a runtime is pointed at), then the extra files, as `pull` prints them.
    fmt::print("{}\n", weights->local_path.string());
    for (const auto& f : r.files) {
      if (&f != &*weights) {
        fmt::print("{}\n", f.local_path.string());
      }
    }
  }
  std::fflush(stdout);
  if (!global.quiet && weights->size != variant.size_bytes) {
    fmt::print(
        stderr,
        "note: {} is {} bytes on the Hub, the catalog says {}; run `modelmgr models list --refresh`.\n",
        variant.file, weights->size, variant.size_bytes);
  }
}

} // namespace

void set_models_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto* models = app.add_subcommand("models", "The model catalog: list, recommend and download models");
  models->require_subcommand(1);

  auto list_args = std::make_shared<ListArgs>();
  auto* list = models->add_subcommand("list", "One row per catalog model and quantization: size, RAM needed, "
                                              "whether it fits this machine, whether it is cached");
  list->add_option("--use-case", list_args->use_case,
                   "Only entries for this use case (chat, code, embedding, "
                   "rerank, vision ...)");
  list->add_flag("--fits", list_args->fits, "Only the variants that fit this machine now");
  list->add_flag("--refresh", list_args->refresh,
                 "Compare the catalog's sizes with the Hub's file listing; exit 9 when any differs");
  list->add_flag("--json", global.json, "Machine-readable output");
  list->add_option("--catalog", list_args->catalogs,
                   "Extra catalog file (TOML) overriding the built-in and user catalogs (repeatable)");
  list->add_option("--cache-dir", list_args->cache_dir,
                   "Cache directory (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)");
  list->callback([list_args, &global, &exit_code] {
    exit_code = 0;
    if (list_args->refresh) {
      exit_code = run_refresh(*list_args, global);
    } else {
      run_list(*list_args, global);
    }
  });

  auto dl_args = std::make_shared<DownloadArgs>();
  auto* dl = models->add_subcommand("download", "Download a catalog model (ID or ID:QUANT) or a GGUF repo's "
                                                "quantization (REPO[:QUANT]) into the cache, verified like "
                                                "`modelmgr pull`, and print its local path");
  dl->add_option(
        "model", dl_args->spec,
        "Catalog id, optionally with the quantization (ID or ID:QUANT), or a GGUF repo (REPO[:QUANT], "
        "default Q4_K_M)")
      ->required();
  dl->add_option("--catalog", dl_args->catalogs,
                 "Extra catalog file (TOML) overriding the built-in and user catalogs (repeatable)");
  dl->add_option("--cache-dir", dl_args->cache_dir,
                 "Cache directory (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)");
  dl->add_option("--local-dir", dl_args->local_dir, "Also export the files as plain files into this folder");
  dl->add_flag("--json", global.json, "Machine-readable output");
  dl->callback([dl_args, &global, &exit_code] {
    run_download(*dl_args, global);
    exit_code = 0;
  });

  add_models_recommend_command(*models, global, exit_code);
  add_models_select_command(*models, global, exit_code);
}

} // namespace modelmgr::cli
