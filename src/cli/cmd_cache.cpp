// `modelmgr cache ls|scan` and `modelmgr cache du`: read-only views of the Hugging Face cache, shaped like
// `hf cache ls` (hub-protocol.md §8.3) so that people and scripts used to it find the same columns.

#include "modelmgr/errors.hpp"

#include "cache/paths.hpp"
#include "cache/scan.hpp"
#include "cli/cache_maint.hpp"
#include "cli/cli.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"
#include "util/size.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {

namespace fs = std::filesystem;

struct CacheLsArgs {
  std::string cache_dir;
  bool revisions = false;
  std::string sort = "name";
  std::vector<std::string> filters;
  std::size_t limit = 0;
};

// Without -v, a cache full of Python's left-behind lock files would bury the table.
constexpr std::size_t k_max_problems_shown = 20;

std::string refs_text(const std::vector<std::string>& refs)
{
  std::string out;
  for (const auto& r : refs) {
    out += (out.empty() ? "" : ", ") + r;
  }
  return out;
}

std::vector<std::string> repo_refs(const cache::CachedRepo& repo)
{
  std::vector<std::string> refs;
  for (const auto& [name, commit] : repo.refs) {
    refs.push_back(name);
  }
  return refs;
}

void print_problems(const std::vector<cache::CacheProblem>& all, bool verbose)
{
  // Lock files nobody holds are what every client leaves behind after a download (Python's filelock keeps
  // them on purpose): worth a note, not an alarm, unless asked for the details.
  std::vector<cache::CacheProblem> problems;
  std::size_t unheld_locks = 0;
  for (const auto& p : all) {
    if (p.kind == cache::ProblemKind::stale_lock && !verbose) {
      ++unheld_locks;
    } else {
      problems.push_back(p);
    }
  }
  if (unheld_locks > 0) {
    fmt::print("{} unused lock file(s) (harmless; listed with -v).\n", unheld_locks);
  }
  if (problems.empty()) {
    return;
  }
  std::map<std::string_view, std::size_t> per_kind;
  for (const auto& p : problems) {
    ++per_kind[cache::to_string(p.kind)];
  }
  std::string summary;
  for (const auto& [kind, n] : per_kind) {
    summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, kind);
  }
  fmt::print("\n{} problem(s) found ({}):\n", problems.size(), summary);
  const std::size_t shown = verbose ? problems.size() : std::min(problems.size(), k_max_problems_shown);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& p = problems[i];
    fmt::print("  [{}] {}: {}{}\n", cache::to_string(p.kind), p.path.string(), p.message,
               p.size > 0 ? fmt::format(" ({})", util::format_size(p.size)) : "");
  }
  if (shown < problems.size()) {
    fmt::print("  ... and {} more (use -v to list all)\n", problems.size() - shown);
  }
}

double unix_time(util::SystemTime t)
{
  return util::to_unix_seconds(t);
}

nlohmann::json to_json(const cache::CachedRevision& rev, bool with_files)
{
  nlohmann::json j = {{"commit", rev.commit},     {"path", rev.path.string()},
                      {"refs", rev.refs},         {"size_on_disk", rev.size_on_disk},
                      {"nb_files", rev.nb_files}, {"last_modified", unix_time(rev.last_modified)}};
  if (with_files) {
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : rev.files) {
      files.push_back({{"path", f.path},
                       {"file_path", f.file_path.string()},
                       {"blob_path", f.blob_path.string()},
                       {"size", f.size}});
    }
    j["files"] = std::move(files);
  }
  return j;
}

nlohmann::json to_json(const cache::CachedRepo& repo, bool with_files)
{
  nlohmann::json revisions = nlohmann::json::array();
  for (const auto& rev : repo.revisions) {
    revisions.push_back(to_json(rev, with_files));
  }
  return {{"id", repo.display_id()},
          {"repo_id", repo.repo_id},
          {"repo_type", cache::to_string(repo.type)},
          {"path", repo.path.string()},
          {"size_on_disk", repo.size_on_disk},
          {"nb_files", repo.nb_files},
          {"last_accessed", unix_time(repo.last_accessed)},
          {"last_modified", unix_time(repo.last_modified)},
          {"refs", repo.refs},
          {"revisions", std::move(revisions)}};
}

nlohmann::json to_json(const std::vector<cache::CacheProblem>& problems)
{
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : problems) {
    out.push_back({{"kind", cache::to_string(p.kind)},
                   {"path", p.path.string()},
                   {"repo", p.repo},
                   {"message", p.message},
                   {"size", p.size}});
  }
  return out;
}

void run_ls(const CacheLsArgs& args, const GlobalOptions& global)
{
  // Parse filters and sort before touching the disk, so a typo fails fast with exit code 2.
  std::vector<cache::RepoFilter> filters;
  for (const auto& f : args.filters) {
    filters.push_back(cache::parse_repo_filter(f));
  }
  const auto sort = cache::parse_repo_sort(args.sort);
  const fs::path root = cache_root_for(args.cache_dir);
  // Per-file entries (two paths each: most of the scan's memory) are only printed by --json --revisions.
  const auto info = scan_cache_root(root, {.list_files = global.json && args.revisions});
  const auto now = std::chrono::system_clock::now();
  auto repos = cache::select_repos(info, filters, sort, now);
  if (args.limit > 0 && repos.size() > args.limit) {
    repos.resize(args.limit);
  }
  std::size_t revisions = 0;
  std::uint64_t size = 0;
  for (const auto* r : repos) {
    revisions += r->revisions.size();
    size += r->size_on_disk;
  }

  if (global.json) {
    // One object, written a repo at a time (keys in nlohmann's sorted order, as one dump() would give):
    // with --revisions the per-file entries of a large cache make tens of MB of JSON.
    // Unused lock files are no problem (Python leaves one per blob; the text output calls them harmless):
    // they are counted apart, so a script checking `problems` sees only what needs attention.
    std::vector<cache::CacheProblem> problems;
    std::size_t unused_locks = 0;
    for (const auto& p : info.problems) {
      if (p.kind == cache::ProblemKind::stale_lock) {
        ++unused_locks;
      } else {
        problems.push_back(p);
      }
    }
    fmt::print("{{\"cache_dir\":{},\"exists\":{},\"problems\":{},\"repos\":[",
               nlohmann::json(info.root.string()).dump(), info.exists ? "true" : "false",
               to_json(problems).dump());
    for (std::size_t i = 0; i < repos.size(); ++i) {
      fmt::print("{}{}", i == 0 ? "" : ",", to_json(*repos[i], args.revisions).dump());
    }
    fmt::print(
        "],\"totals\":{},\"unused_locks\":{}}}\n",
        nlohmann::json{{"repos", repos.size()}, {"revisions", revisions}, {"size_on_disk", size}}.dump(),
        unused_locks);
    return;
  }

  std::vector<std::vector<std::string>> rows;
  if (args.revisions) {
    for (const auto* rp : repos) {
      const auto& r = *rp;
      for (const auto& rev : r.revisions) {
        rows.push_back({r.display_id(), rev.commit, util::format_size(rev.size_on_disk),
                        std::to_string(rev.nb_files), util::format_time_ago(rev.last_modified, now),
                        refs_text(rev.refs)});
      }
    }
    print_table({"ID", "REVISION", "SIZE", "FILES", "LAST_MODIFIED", "REFS"}, rows);
  } else {
    for (const auto* rp : repos) {
      const auto& r = *rp;
      rows.push_back({r.display_id(), util::format_size(r.size_on_disk), std::to_string(r.nb_files),
                      util::format_time_ago(r.last_accessed, now),
                      util::format_time_ago(r.last_modified, now), refs_text(repo_refs(r))});
    }
    print_table({"ID", "SIZE", "FILES", "LAST_ACCESSED", "LAST_MODIFIED", "REFS"}, rows);
  }
  fmt::print("\nFound {} repo(s) for a total of {} revision(s) and {} on disk.\n", repos.size(), revisions,
             util::format_size(size));
  if (!info.exists) {
    fmt::print("(cache directory {} does not exist)\n", info.root.string());
  }
  print_problems(info.problems, global.verbose);
}

void run_du(const std::string& cache_dir, const GlobalOptions& global)
{
  const fs::path root = cache_root_for(cache_dir);
  // Sizes only: lock files weigh nothing and unused ones are no problem (`cache ls` calls them harmless),
  // so they are not probed (one open + flock + close each).
  const auto info = scan_cache_root(root, {.check_locks = false, .list_files = false});
  std::map<std::string, std::uint64_t> per_type;
  for (const auto& r : info.repos) {
    per_type[std::string(cache::to_string(r.type))] += r.size_on_disk;
  }
  // Bytes that `prune`-style cleanup could give back without touching any snapshot.
  std::uint64_t reclaimable = 0;
  for (const auto& p : info.problems) {
    reclaimable += p.size;
  }
  std::optional<std::uint64_t> free;
  try {
    free = util::free_space(root);
  } catch (const std::system_error&) {
    // A cache on an unreachable mount: still report the sizes.
  }
  if (global.json) {
    nlohmann::json j = {{"cache_dir", info.root.string()},
                        {"size_on_disk", info.size_on_disk},
                        {"per_type", per_type},
                        {"repos", info.repos.size()},
                        {"revisions", info.revision_count()},
                        {"reclaimable", reclaimable},
                        {"free_space", free ? nlohmann::json(*free) : nlohmann::json(nullptr)},
                        {"problems", info.problems.size()}};
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("Cache:      {}\n", info.root.string());
  fmt::print("Total:      {} in {} repo(s), {} revision(s)\n", util::format_size(info.size_on_disk),
             info.repos.size(), info.revision_count());
  for (const auto& [type, bytes] : per_type) {
    fmt::print("  {:<9} {}\n", type + "s:", util::format_size(bytes));
  }
  if (reclaimable > 0) {
    fmt::print("Leftovers:  {} (orphan blobs and temporary files)\n", util::format_size(reclaimable));
  }
  if (free) {
    fmt::print("Free space: {}\n", util::format_size(*free));
  }
  if (!info.problems.empty()) {
    fmt::print("{} problem(s) found: run `modelmgr cache ls` for details.\n", info.problems.size());
  }
}

} // namespace

void set_cache_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto* cache_cmd = app.add_subcommand("cache", "Inspect, clean and verify the Hugging Face cache");
  cache_cmd->require_subcommand(1);
  // Global flags (--json, -v) may follow the nested subcommand: `modelmgr cache ls --json`.
  cache_cmd->fallthrough();

  auto args = std::make_shared<CacheLsArgs>();
  auto* ls = cache_cmd->add_subcommand("ls", "List cached repos (like `hf cache ls`)");
  ls->alias("scan");
  ls->fallthrough();
  ls->add_option("--cache-dir", args->cache_dir,
                 "Cache directory (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)");
  ls->add_flag("--revisions", args->revisions, "One row per revision instead of per repo");
  ls->add_option("--sort", args->sort, "size|accessed|modified|name, optionally :asc or :desc")
      ->capture_default_str();
  ls->add_option("-f,--filter", args->filters,
                 "Keep repos matching e.g. size>1GB, accessed>30d (older), modified<7d, type=model; "
                 "repeatable, all must hold");
  ls->add_option("--limit", args->limit, "Show at most this many repos (0 = all)");
  ls->callback([args, &global, &exit_code] {
    run_ls(*args, global);
    exit_code = 0;
  });

  auto du_dir = std::make_shared<std::string>();
  auto* du = cache_cmd->add_subcommand("du", "Cache size per repo type and free space on its device");
  du->fallthrough();
  du->add_option("--cache-dir", *du_dir, "Cache directory");
  du->callback([du_dir, &global, &exit_code] {
    run_du(*du_dir, global);
    exit_code = 0;
  });

  set_cache_maint_commands(*cache_cmd, global, exit_code);
}

std::filesystem::path cache_root_for(const std::string& explicit_dir)
{
  std::optional<std::filesystem::path> dir;
  if (!explicit_dir.empty()) {
    dir = explicit_dir;
  }
  return cache::resolve_cache_dir(dir, util::Env::process());
}

cache::CacheInfo scan_cache_root(const std::filesystem::path& root, const cache::ScanOptions& options)
{
  try {
    return cache::scan_cache(root, options);
  } catch (const std::system_error& e) {
    throw ConfigurationError(e.what(), "check --cache-dir / HF_HUB_CACHE", ErrorKind::disk);
  }
}

} // namespace modelmgr::cli
