// `modelmgr models select`: the numbered menu of catalog models for this machine; the choice is downloaded
// and written to the project config as [model] spec, which `modelmgr start` then runs. Also the shared
// catalog pieces of catalog_cli.hpp.

#include "modelmgr/errors.hpp"

#include "cli/cache_maint.hpp"
#include "cli/catalog_cli.hpp"
#include "cli/model_set.hpp"
#include "manager/config.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"
#include "util/size.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <unistd.h>

namespace modelmgr::cli {

namespace fs = std::filesystem;

namespace {
constexpr const char* k_sysroot_env = "MODELMGR_TEST_SYSROOT";
// llama-server's default context when the catalog entry does not name one.
constexpr std::uint64_t k_default_context = 4096;
} // namespace

catalog::Catalog load_effective_catalog(const std::vector<std::string>& extra_files,
                                        const std::string& config_flag)
{
  std::vector<fs::path> files;
  const std::optional<fs::path> config =
      config_flag.empty() ? default_model_config(false) : std::optional<fs::path>(config_flag);
  if (config && fs::exists(*config)) {
    const ModelSetConfig c = manager::load_config(*config);
    for (const auto& f : c.catalogs) {
      files.push_back(fs::path(f).is_absolute() ? fs::path(f) : config->parent_path() / f);
    }
  }
  files.insert(files.end(), extra_files.begin(), extra_files.end());
  return catalog::load_catalog(util::Env::process(), files);
}

std::vector<CatalogCandidate> catalog_candidates(const catalog::Catalog& cat, const fs::path& cache_root)
{
  std::vector<CatalogCandidate> out;
  for (const auto& entry : cat.entries) {
    for (const auto& variant : entry.variants) {
      CatalogCandidate c;
      c.input.entry = &entry;
      c.input.variant = &variant;
      try {
        const auto state = catalog::variant_cache_state(entry, variant, cache_root, util::Env::process());
        c.input.cached = state.complete;
        if (state.complete && !state.snapshot.empty() && !variant.file.empty()) {
          c.cached_file = state.snapshot / fs::path(variant.file);
        }
      } catch (const std::exception&) {
        c.input.cached = false; // an unreadable cache entry counts as not cached
      }
      if (c.input.cached && entry.format == "gguf" && !c.cached_file.empty()) {
        c.input.ram_from_header = catalog::ram_from_gguf(
            c.cached_file, entry.context_length > 0 ? entry.context_length : k_default_context);
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

catalog::SystemInfo probe_this_machine(const fs::path& cache_root)
{
  catalog::ProbeOptions probe;
  if (auto root = util::Env::process().get_nonempty(k_sysroot_env)) {
    probe.root = *root; // test hook
  }
  probe.disk_path = cache_root;
  return catalog::probe_system(probe);
}

PullOptions variant_pull_options(const catalog::Entry& entry, const catalog::Variant& variant)
{
  PullOptions o;
  o.repo_id = entry.hf_repo;
  o.revision = entry.revision;
  o.include = catalog::variant_patterns(entry, variant);
  o.cancel = &cancel_flag();
  return o;
}

namespace {

bool on_terminal()
{
  return ::isatty(STDIN_FILENO) != 0 && ::isatty(STDOUT_FILENO) != 0;
}

// The config `models select` writes: --config, else the project's default config, else ./modelmgr.toml.
fs::path target_config(const SelectOptions& o)
{
  if (!o.config.empty()) {
    return o.config;
  }
  if (auto p = default_model_config(false)) {
    return *p;
  }
  return fs::current_path() / "modelmgr.toml";
}

void save_choice(const fs::path& path, const std::string& spec)
{
  std::string text;
  std::error_code ec;
  if (fs::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      throw ConfigurationError(fmt::format("cannot read {}", path.string()), "check its permissions");
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const auto format = manager::detect_format(path, text.empty() ? std::string_view("[model]") : text);
  const std::string out = manager::with_model_spec(text, format, spec, path.string());
  try {
    util::atomic_write_file(path, out);
  } catch (const std::exception& e) {
    throw ModelManagerError(ErrorKind::disk, fmt::format("cannot write {}: {}", path.string(), e.what()),
                            "check the folder's permissions, or pass --config FILE");
  }
}

} // namespace

std::string run_select_flow(const SelectOptions& o, const GlobalOptions& global)
{
  if (!on_terminal()) {
    throw ModelManagerError(
        ErrorKind::usage, "models select needs a terminal to ask which model to use",
        "name the model instead: `modelmgr start --model ID` or `modelmgr models download "
        "ID` (ids: `modelmgr models list`)");
  }
  const catalog::Catalog cat = load_effective_catalog(o.catalogs, o.config);
  const fs::path cache_root = cache_root_for(o.cache_dir);
  const catalog::SystemInfo system = probe_this_machine(cache_root);
  const auto candidates = catalog_candidates(cat, cache_root);
  std::vector<catalog::FitInput> inputs;
  std::vector<const CatalogCandidate*> shown;
  const std::string use_case = o.use_case == "all" ? std::string() : o.use_case;
  for (const auto& c : candidates) {
    inputs.push_back(c.input);
    const auto& uc = c.input.entry->use_cases;
    if (use_case.empty() || std::find(uc.begin(), uc.end(), use_case) != uc.end()) {
      shown.push_back(&c);
    }
  }
  if (shown.empty()) {
    throw ConfigurationError(fmt::format("no catalog entry has the use case '{}'", use_case),
                             "see `modelmgr models list` for the use cases, or --use-case all",
                             ErrorKind::usage);
  }
  const auto rec = catalog::recommend(inputs, system, use_case);
  fmt::print("Your system: {}\n\n", rec.summary);
  std::size_t recommended = 0;
  for (std::size_t i = 0; i < shown.size(); ++i) {
    const auto& in = shown[i]->input;
    const auto fit = catalog::check_fit(in, system);
    const bool is_rec = rec.best && rec.best->entry == in.entry && rec.best->variant == in.variant;
    if (is_rec) {
      recommended = i + 1;
    }
    fmt::print("{:>3}) {:<38} {:>9} download  {:>9} RAM  {}{}{}\n", i + 1,
               catalog::spec_of(*in.entry, *in.variant), util::format_bytes_iec(in.variant->size_bytes),
               util::format_bytes_iec(fit.ram_needed_bytes), fit.fits ? "fits" : "too big",
               in.cached ? ", cached" : "", is_rec ? "  <- recommended" : "");
    fmt::print("     {}\n", in.entry->description);
  }
  std::size_t choice = 0;
  for (;;) {
    fmt::print("\nChoose a model [1-{}]{}, q to quit: ", shown.size(),
               recommended ? fmt::format(" (Enter = {})", recommended) : std::string());
    std::fflush(stdout);
    std::string line;
    if (!std::getline(std::cin, line) || cancel_flag().load()) {
      throw ModelManagerError(ErrorKind::interrupted, "no model chosen (input closed)");
    }
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line == "q" || line == "Q") {
      throw ModelManagerError(ErrorKind::interrupted, "no model chosen");
    }
    if (line.empty() && recommended) {
      choice = recommended;
      break;
    }
    char* end = nullptr;
    const unsigned long n = std::strtoul(line.c_str(), &end, 10);
    if (!line.empty() && end && *end == '\0' && n >= 1 && n <= shown.size()) {
      choice = n;
      break;
    }
    fmt::print("'{}' is not one of the numbers 1 to {}.\n", line, shown.size());
  }
  const auto& chosen = shown[choice - 1]->input;
  const std::string spec = catalog::spec_of(*chosen.entry, *chosen.variant);
  if (o.download) {
    PullOptions p = variant_pull_options(*chosen.entry, *chosen.variant);
    if (!o.cache_dir.empty()) {
      p.cache_dir = o.cache_dir;
    }
    auto progress = make_progress_renderer(global);
    p.observer = progress.get();
    const PullResult r = pull(p);
    progress.reset();
    fmt::print("Downloaded {} to {}\n", spec, r.root.string());
  }
  const fs::path config = target_config(o);
  save_choice(config, spec);
  fmt::print("Saved to {}: [model] spec = \"{}\"\nRun it with: modelmgr start\n", config.string(), spec);
  std::fflush(stdout);
  return spec;
}

void add_models_select_command(CLI::App& models, GlobalOptions& global, int& exit_code)
{
  auto o = std::make_shared<SelectOptions>();
  auto* cmd = models.add_subcommand(
      "select", "Choose a model from a numbered menu, download it and save it as the project's model");
  cmd->add_option("--use-case", o->use_case, "chat, code, embedding, rerank, vision or all")
      ->capture_default_str();
  cmd->add_option("--config", o->config,
                  "Project config to write (default: the project's, else ./modelmgr.toml)");
  cmd->add_option("--cache-dir", o->cache_dir, "Cache directory");
  cmd->add_option("--catalog", o->catalogs, "Extra catalog file (repeatable)");
  cmd->add_flag("!--no-download", o->download, "Only save the choice");
  cmd->callback([o, &global, &exit_code] {
    (void)run_select_flow(*o, global);
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
