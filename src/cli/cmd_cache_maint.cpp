// `modelmgr cache rm`, `cache prune`, `cache verify` and `cache locks` (docs/cache.md). Deleting commands
// print their plan first and ask on a terminal; the deletion itself (and its locking against concurrent
// downloads) lives in cache/delete.hpp, the hashing in cache/verify.hpp.

#include "modelmgr/errors.hpp"
#include "modelmgr/pull.hpp"

#include "cache/delete.hpp"
#include "cache/locks.hpp"
#include "cache/paths.hpp"
#include "cache/scan.hpp"
#include "cache/verify.hpp"
#include "cli/cache_maint.hpp"
#include "manager/cache_pins.hpp"
#include "manager/config.hpp"
#include "util/env.hpp"
#include "util/lock.hpp"
#include "util/size.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <unistd.h>

namespace modelmgr::cli {

namespace {

namespace fs = std::filesystem;

// Hashing is CPU-bound (OpenSSL, ~1–2 GB/s per core with SHA-NI): one worker per core, but no more than
// a few, so a verify on a laptop leaves it usable.
constexpr unsigned k_max_verify_threads = 4;

cache::RepoType repo_type_option(const std::string& text)
{
  const auto t = cache::parse_repo_type(text);
  if (!t) {
    throw ConfigurationError("invalid --repo-type '" + text + "'", "use model, dataset or space",
                             ErrorKind::usage);
  }
  return *t;
}

// Returns true to go ahead. Deleting without a person to ask needs an explicit -y, so a script that
// forgot it fails loudly instead of hanging on a prompt or deleting by surprise.
bool confirm(bool yes, bool json)
{
  if (yes) {
    return true;
  }
  if (::isatty(STDIN_FILENO) != 1 || json) {
    throw ConfigurationError("refusing to delete without confirmation: standard input is not a terminal",
                             "pass -y/--yes to delete without asking, or --dry-run to only see the plan",
                             ErrorKind::usage);
  }
  fmt::print(stderr, "Proceed? [y/N] ");
  std::fflush(stderr);
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES";
}

std::string refs_of(const cache::CacheInfo& info, const std::string& folder, const std::string& commit)
{
  for (const auto& r : info.repos) {
    if (r.folder != folder) {
      continue;
    }
    for (const auto& rev : r.revisions) {
      if (rev.commit == commit && !rev.refs.empty()) {
        std::string s;
        for (const auto& ref : rev.refs) {
          s += (s.empty() ? "" : ", ") + ref;
        }
        return " (" + s + ")";
      }
    }
  }
  return "";
}

void print_plan(const cache::DeletePlan& plan, const cache::CacheInfo& info, bool dry_run)
{
  fmt::print("{} {}:\n", dry_run ? "Would delete from" : "Will delete from", info.root.string());
  for (const auto& d : plan.repos) {
    if (d.whole_repo) {
      fmt::print("  {}: whole repo, {} revision(s){} ({})\n", d.display_id, d.commits.size(),
                 d.reasons.empty() || d.reasons[0].empty() ? "" : ", " + d.reasons[0],
                 util::format_size(d.freed));
      continue;
    }
    for (std::size_t i = 0; i < d.commits.size(); ++i) {
      fmt::print("  {}@{}{}{}\n", d.display_id, d.commits[i], refs_of(info, d.folder, d.commits[i]),
                 d.reasons[i].empty() ? "" : " [" + d.reasons[i] + "]");
    }
    if (!d.blobs.empty() || d.freed > 0) {
      fmt::print("  {}: {} blob(s) no kept revision uses ({})\n", d.display_id, d.blobs.size(),
                 util::format_size(d.freed));
    }
  }
  if (!plan.temp_files.empty()) {
    std::uint64_t bytes = 0;
    for (const auto& t : plan.temp_files) {
      bytes += t.size;
    }
    fmt::print("  {} temporary file(s) ({})\n", plan.temp_files.size(), util::format_size(bytes));
  }
  if (!plan.lock_files.empty()) {
    fmt::print("  {} unused lock file(s)\n", plan.lock_files.size());
  }
  fmt::print("{} {}.\n", dry_run ? "Would free" : "Will free", util::format_size(plan.freed()));
}

nlohmann::json plan_json(const cache::DeletePlan& plan)
{
  nlohmann::json repos = nlohmann::json::array();
  for (const auto& d : plan.repos) {
    nlohmann::json blobs = nlohmann::json::array();
    for (const auto& b : d.blobs) {
      blobs.push_back(b.path.string());
    }
    nlohmann::json snapshots = nlohmann::json::array();
    for (const auto& s : d.snapshots) {
      snapshots.push_back(s.string());
    }
    nlohmann::json refs = nlohmann::json::array();
    for (const auto& r : d.refs) {
      refs.push_back(r.string());
    }
    repos.push_back({{"id", d.display_id},
                     {"path", d.path.string()},
                     {"whole_repo", d.whole_repo},
                     {"commits", d.commits},
                     {"reasons", d.reasons},
                     {"snapshots", snapshots},
                     {"refs", refs},
                     {"blobs", blobs},
                     {"freed", d.freed}});
  }
  nlohmann::json temps = nlohmann::json::array();
  for (const auto& t : plan.temp_files) {
    temps.push_back({{"path", t.path.string()}, {"size", t.size}});
  }
  nlohmann::json locks = nlohmann::json::array();
  for (const auto& l : plan.lock_files) {
    locks.push_back(l.string());
  }
  return {{"repos", repos}, {"temp_files", temps}, {"lock_files", locks}, {"freed", plan.freed()}};
}

nlohmann::json skipped_json(const std::vector<cache::SkippedEntry>& entries)
{
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : entries) {
    out.push_back({{"path", e.path.string()}, {"reason", e.reason}});
  }
  return out;
}

// Shows the plan, asks, executes, reports. Returns the exit code: 0, or 7 (disk) if something could not
// be deleted. Entries skipped because a download holds them are reported but are not a failure.
int run_plan(const cache::DeletePlan& plan, const cache::CacheInfo& info, bool dry_run, bool yes,
             const GlobalOptions& global)
{
  if (plan.empty()) {
    if (global.json) {
      fmt::print("{}\n", nlohmann::json{{"dry_run", dry_run}, {"plan", plan_json(plan)}}.dump());
    } else {
      fmt::print("Nothing to delete.\n");
    }
    return 0;
  }
  if (dry_run) {
    if (global.json) {
      fmt::print("{}\n", nlohmann::json{{"dry_run", true}, {"plan", plan_json(plan)}}.dump());
    } else {
      print_plan(plan, info, true);
    }
    return 0;
  }
  if (!global.json) {
    print_plan(plan, info, false);
  }
  if (!confirm(yes, global.json)) {
    fmt::print("Aborted: nothing deleted.\n");
    return 0;
  }
  const auto report = cache::execute_plan(plan);
  if (global.json) {
    fmt::print("{}\n", nlohmann::json{{"dry_run", false},
                                      {"plan", plan_json(plan)},
                                      {"freed", report.freed},
                                      {"deleted", report.deleted.size()},
                                      {"in_use", skipped_json(report.in_use)},
                                      {"errors", skipped_json(report.errors)}}
                           .dump());
  } else {
    fmt::print("Deleted {} item(s), freed {}.\n", report.deleted.size(), util::format_size(report.freed));
    for (const auto& s : report.in_use) {
      fmt::print("Skipped {}: {}\n", s.path.string(), s.reason);
    }
    for (const auto& e : report.errors) {
      fmt::print(stderr, "modelmgr: error: cannot delete {}: {}\n", e.path.string(), e.reason);
    }
  }
  return report.errors.empty() ? 0 : exit_code_for(ErrorKind::disk);
}

struct RmArgs {
  std::vector<std::string> targets;
  std::string repo_type = "model";
  std::string cache_dir;
  bool yes = false;
  bool dry_run = false;
};

int run_rm(const RmArgs& a, const GlobalOptions& global)
{
  const auto type = repo_type_option(a.repo_type);
  std::vector<cache::DeleteTarget> targets;
  for (const auto& t : a.targets) {
    targets.push_back(cache::parse_delete_target(t, type));
  }
  const auto info = scan_cache_root(cache_root_for(a.cache_dir));
  return run_plan(cache::plan_delete(info, targets), info, a.dry_run, a.yes, global);
}

struct PruneArgs {
  std::string cache_dir;
  std::string older_than = "1d";
  std::string keep_under;
  std::string config;
  bool yes = false;
  bool dry_run = false;
};

int run_prune(const PruneArgs& a, const GlobalOptions& global)
{
  cache::PruneOptions o;
  try {
    o.temp_older_than = util::parse_duration(a.older_than);
  } catch (const std::invalid_argument& e) {
    throw ConfigurationError(std::string("invalid --older-than: ") + e.what(), "e.g. 1d, 12h, 30m",
                             ErrorKind::usage);
  }
  if (!a.keep_under.empty()) {
    o.keep_under = parse_size_option("--keep-under", a.keep_under);
  }
  if (!a.config.empty()) {
    o.pins = manager::pins_from_config(manager::load_config(a.config));
  }
  const auto info = scan_cache_root(cache_root_for(a.cache_dir));
  return run_plan(cache::plan_prune(info, o), info, a.dry_run, a.yes, global);
}

struct VerifyArgs {
  std::vector<std::string> repos;
  std::string repo_type = "model";
  std::string cache_dir;
  bool repair = false;
};

// Deletes `bad` (under its download lock) and pulls every file that pointed at it again, at the commit of
// its snapshot. Returns an error message, or empty on success.
std::string repair_blob(const cache::CorruptBlob& bad, const cache::CacheInfo& info, const fs::path& root,
                        const GlobalOptions& global)
{
  {
    util::FileLock lock(root / ".locks" / bad.folder / (bad.etag + ".lock"));
    if (!lock.try_lock()) {
      return "in use by a download (lock held); try again later";
    }
    std::error_code ec;
    fs::remove(bad.blob_path, ec);
    if (ec) {
      return "cannot delete: " + ec.message();
    }
  }
  const cache::CachedRepo* repo = nullptr;
  for (const auto& r : info.repos) {
    if (r.folder == bad.folder) {
      repo = &r;
    }
  }
  std::map<std::string, std::vector<std::string>> per_commit;
  for (const auto& u : bad.users) {
    per_commit[u.commit].push_back(u.path);
  }
  for (const auto& [commit, paths] : per_commit) {
    PullOptions o;
    o.repo_id = repo->repo_id;
    o.repo_type = std::string(cache::to_string(repo->type));
    o.revision = commit;
    o.files = paths;
    o.cache_dir = root;
    o.cancel = &cancel_flag();
    auto observer = make_progress_renderer(global);
    o.observer = observer.get();
    try {
      (void)pull(o);
    } catch (const ModelManagerError& e) {
      return std::string("re-download failed: ") + e.what();
    }
  }
  return {};
}

int run_verify(const VerifyArgs& a, const GlobalOptions& global)
{
  const auto type = repo_type_option(a.repo_type);
  const fs::path root = cache_root_for(a.cache_dir);
  const auto info = scan_cache_root(root);
  std::vector<const cache::CachedRepo*> repos;
  if (a.repos.empty()) {
    for (const auto& r : info.repos) {
      repos.push_back(&r);
    }
  }
  for (const auto& id : a.repos) {
    const auto t = cache::parse_delete_target(id, type);
    const auto it = std::find_if(info.repos.begin(), info.repos.end(), [&](const cache::CachedRepo& r) {
      return r.type == t.type && r.repo_id == t.repo_id;
    });
    if (it == info.repos.end()) {
      throw MissingModelError("'" + t.describe() + "' is not in the cache at " + info.root.string(),
                              "see `modelmgr cache ls`");
    }
    repos.push_back(&*it);
  }
  const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, k_max_verify_threads);
  const auto report = cache::verify_blobs(info, repos, threads, &cancel_flag());
  if (cancel_flag().load()) {
    throw DownloadError(ErrorKind::interrupted, "cache verify interrupted");
  }
  std::map<std::string, std::string> repair_errors; // blob path → error
  std::size_t repaired = 0;
  if (a.repair) {
    for (const auto& bad : report.corrupt) {
      auto err = repair_blob(bad, info, root, global);
      if (err.empty()) {
        ++repaired;
      } else {
        repair_errors[bad.blob_path.string()] = std::move(err);
      }
    }
  }
  if (global.json) {
    nlohmann::json corrupt = nlohmann::json::array();
    for (const auto& c : report.corrupt) {
      nlohmann::json users = nlohmann::json::array();
      for (const auto& u : c.users) {
        users.push_back({{"commit", u.commit}, {"path", u.path}});
      }
      nlohmann::json j = {{"id", c.display_id}, {"blob_path", c.blob_path.string()},
                          {"expected", c.etag}, {"actual", c.actual},
                          {"size", c.size},     {"reason", c.reason},
                          {"files", users}};
      if (a.repair) {
        const auto it = repair_errors.find(c.blob_path.string());
        j["repaired"] = it == repair_errors.end();
        if (it != repair_errors.end()) {
          j["repair_error"] = it->second;
        }
      }
      corrupt.push_back(std::move(j));
    }
    fmt::print("{}\n", nlohmann::json{{"cache_dir", info.root.string()},
                                      {"repos", repos.size()},
                                      {"blobs_checked", report.blobs_checked},
                                      {"bytes_checked", report.bytes_checked},
                                      {"blobs_skipped", report.blobs_skipped},
                                      {"corrupt", corrupt}}
                           .dump());
  } else {
    fmt::print("Verified {} blob(s) ({}) in {} repo(s) with {} thread(s): {} corrupt.\n",
               report.blobs_checked, util::format_size(report.bytes_checked), repos.size(), threads,
               report.corrupt.size());
    if (report.blobs_skipped > 0) {
      fmt::print("{} blob(s) skipped: their names are not Hub hashes.\n", report.blobs_skipped);
    }
    for (const auto& c : report.corrupt) {
      fmt::print("  {} {}: {}{}\n", c.display_id, c.blob_path.string(), c.reason,
                 c.actual.empty() ? "" : " (expected " + c.etag + ", got " + c.actual + ")");
      for (const auto& u : c.users) {
        fmt::print("      used by {} at {}\n", u.path, u.commit);
      }
      if (c.users.empty()) {
        fmt::print("      orphan: no snapshot uses it\n");
      }
      if (a.repair) {
        const auto it = repair_errors.find(c.blob_path.string());
        fmt::print("      {}\n", it == repair_errors.end() ? "repaired" : "NOT repaired: " + it->second);
      }
    }
    if (!report.corrupt.empty() && !a.repair) {
      fmt::print("Run `modelmgr cache verify --repair` to delete them and download the files again.\n");
    }
  }
  if (report.corrupt.empty() || (a.repair && repair_errors.empty())) {
    return 0;
  }
  return exit_code_for(ErrorKind::checksum);
}

int run_locks(const std::string& cache_dir, bool all, const GlobalOptions& global)
{
  const fs::path root = cache_root_for(cache_dir);
  const auto locks = cache::list_locks(root);
  const auto now = std::chrono::system_clock::now();
  std::size_t held = 0;
  for (const auto& l : locks) {
    held += l.held ? 1 : 0;
  }
  if (global.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& l : locks) {
      if (!l.held && !all) {
        continue;
      }
      nlohmann::json j = {{"path", l.path.string()}, {"repo", l.repo}, {"etag", l.etag}, {"held", l.held}};
      if (l.holder) {
        j["pid"] = l.holder->pid;
        j["host"] = l.holder->hostname;
        j["since"] = l.holder->since;
      }
      list.push_back(std::move(j));
    }
    fmt::print("{}\n", nlohmann::json{{"cache_dir", root.string()}, {"locks", list}}.dump());
    return 0;
  }
  for (const auto& l : locks) {
    if (!l.held && !all) {
      continue;
    }
    std::string who = "unknown holder (a client that writes no holder info, e.g. Python)";
    if (l.holder) {
      who = l.holder->describe();
      if (auto since = util::parse_iso8601_utc(l.holder->since)) {
        who += " (" + util::format_time_ago(*since, now) + ")";
      }
    }
    fmt::print("{}  {}  {}\n", l.held ? "HELD  " : "unused", l.repo + "/" + l.etag, l.held ? who : "");
  }
  fmt::print("{} held lock(s), {} unused lock file(s) in {}.\n", held, locks.size() - held, root.string());
  return 0;
}

} // namespace

void set_cache_maint_commands(CLI::App& cache_cmd, GlobalOptions& global, int& exit_code)
{
  auto rm_args = std::make_shared<RmArgs>();
  auto* rm = cache_cmd.add_subcommand("rm", "Delete cached repos or revisions (REPO or REPO@REVISION)");
  rm->fallthrough();
  rm->add_option("targets", rm_args->targets, "REPO[@REVISION]: a ref name or a (short) commit")->required();
  rm->add_option("--repo-type", rm_args->repo_type, "model, dataset or space")->capture_default_str();
  rm->add_option("--cache-dir", rm_args->cache_dir, "Cache directory");
  rm->add_flag("-y,--yes", rm_args->yes, "Do not ask for confirmation");
  rm->add_flag("--dry-run", rm_args->dry_run, "Only print what would be deleted");
  rm->callback([rm_args, &global, &exit_code] { exit_code = run_rm(*rm_args, global); });

  auto prune_args = std::make_shared<PruneArgs>();
  auto* prune = cache_cmd.add_subcommand(
      "prune", "Delete detached revisions, orphan blobs, old temp files, unused locks (and LRU repos)");
  prune->fallthrough();
  prune->add_option("--cache-dir", prune_args->cache_dir, "Cache directory");
  prune
      ->add_option("--older-than", prune_args->older_than,
                   "Only delete temp files older than this (e.g. 1d, 12h)")
      ->capture_default_str();
  prune->add_option("--keep-under", prune_args->keep_under,
                    "Then evict least recently used repos until the cache is at most SIZE (e.g. 50G)");
  prune->add_option("--config", prune_args->config,
                    "Model-set config whose models (repo + revision) are never pruned or evicted");
  prune->add_flag("-y,--yes", prune_args->yes, "Do not ask for confirmation");
  prune->add_flag("--dry-run", prune_args->dry_run, "Only print what would be deleted");
  prune->callback([prune_args, &global, &exit_code] { exit_code = run_prune(*prune_args, global); });

  auto verify_args = std::make_shared<VerifyArgs>();
  auto* verify = cache_cmd.add_subcommand("verify", "Re-hash cached blobs against their names (offline)");
  verify->fallthrough();
  verify->add_option("repos", verify_args->repos, "Repos to check (default: all)");
  verify->add_option("--repo-type", verify_args->repo_type, "model, dataset or space")->capture_default_str();
  verify->add_option("--cache-dir", verify_args->cache_dir, "Cache directory");
  verify->add_flag("--repair", verify_args->repair,
                   "Delete corrupt blobs and download the files using them again (needs the Hub)");
  verify->callback([verify_args, &global, &exit_code] { exit_code = run_verify(*verify_args, global); });

  auto locks_dir = std::make_shared<std::string>();
  auto locks_all = std::make_shared<bool>(false);
  auto* locks = cache_cmd.add_subcommand("locks", "List download locks held right now, with their holder");
  locks->fallthrough();
  locks->add_option("--cache-dir", *locks_dir, "Cache directory");
  locks->add_flag("--all", *locks_all, "Also list lock files nobody holds");
  locks->callback(
      [locks_dir, locks_all, &global, &exit_code] { exit_code = run_locks(*locks_dir, *locks_all, global); });
}

} // namespace modelmgr::cli
