// `modelmgr cache rm`, `cache prune`, `cache verify` and `cache locks` (docs/cache.md). Deleting commands
// print their plan first and ask on a terminal; the deletion itself (and its locking against concurrent
// downloads) lives in cache/delete.hpp, the hashing in cache/verify.hpp; `rm -i` picks its targets in
// cmd_cache_select.cpp. --lock-timeout waits are reported here (the library only calls back).

#include "modelmgr/errors.hpp"
#include "modelmgr/pull.hpp"

#include "cache/delete.hpp"
#include "cache/locks.hpp"
#include "cache/paths.hpp"
#include "cache/repo_cache.hpp"
#include "cache/scan.hpp"
#include "cache/verify.hpp"
#include "catalog/catalog.hpp"
#include "cli/cache_maint.hpp"
#include "cli/catalog_cli.hpp"
#include "cli/terminal.hpp"
#include "manager/cache_pins.hpp"
#include "manager/config.hpp"
#include "util/env.hpp"
#include "util/lock.hpp"
#include "util/size.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
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

// Reads one line from a terminal descriptor other than standard input (/dev/tty for `rm -i`).
std::string read_line(int fd)
{
  std::string line;
  char c = 0;
  for (;;) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR && !cancel_flag().load()) {
      continue;
    }
    if (n <= 0 || c == '\n') {
      return line;
    }
    line += c;
  }
}

// Returns true to go ahead. Deleting without a person to ask needs an explicit -y, so a script that
// forgot it fails loudly instead of hanging on a prompt or deleting by surprise. The answer is read from
// `answer_fd` (standard input, or the terminal `rm -i` used).
bool confirm(bool yes, bool json, int answer_fd = STDIN_FILENO)
{
  if (yes) {
    return true;
  }
  if (::isatty(answer_fd) != 1 || json) {
    throw ConfigurationError("refusing to delete without confirmation: standard input is not a terminal",
                             "pass -y/--yes to delete without asking, or --dry-run to only see the plan",
                             ErrorKind::usage);
  }
  fmt::print(stderr, "Proceed? [y/N] ");
  std::fflush(stderr);
  std::string answer;
  if (answer_fd == STDIN_FILENO) {
    std::getline(std::cin, answer);
  } else {
    answer = read_line(answer_fd);
  }
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES";
}

std::chrono::milliseconds lock_timeout_option(double seconds)
{
  if (!(seconds >= 0) || seconds > 1e9) {
    throw ConfigurationError(
        "invalid --lock-timeout " + fmt::format("{}", seconds),
        "give the seconds to wait for a lock held by a download, e.g. 60 (0: do not wait)", ErrorKind::usage);
  }
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

// Reports waits for download locks: once per lock, on stderr ("waiting for <path>: held by pid N on HOST
// since T (up to Ns)"), or as a JSON line with --json.
std::function<void(const fs::path&, const std::optional<util::LockHolder>&, std::chrono::milliseconds)>
lock_wait_reporter(const GlobalOptions& global, std::chrono::milliseconds timeout)
{
  auto reported = std::make_shared<std::set<std::string>>();
  const bool json = global.json;
  return [reported, json, timeout](const fs::path& lock, const std::optional<util::LockHolder>& holder,
                                   std::chrono::milliseconds) {
    if (!reported->insert(lock.string()).second) {
      return;
    }
    const std::string who =
        holder ? holder->describe() : std::string("an unknown process (no holder info, e.g. Python)");
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
    if (json) {
      nlohmann::json j{{"event", "waiting_lock"},
                       {"path", lock.string()},
                       {"lock_timeout", secs},
                       {"message", "held by " + who}};
      if (holder) {
        j["pid"] = holder->pid;
        j["host"] = holder->hostname;
        j["since"] = holder->since;
      }
      fmt::print(stderr, "{}\n", j.dump());
    } else {
      fmt::print(stderr, "waiting for {}: held by {} (up to {}s)\n", lock.string(), who, secs);
    }
    std::fflush(stderr);
  };
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

// Shows the plan, asks, executes, reports. Returns the exit code: 0; 7 (disk) if something could not be
// deleted; 8 (locked) if a --lock-timeout wait ran out (those entries were skipped); 130 when interrupted.
// Entries skipped at once because a download holds them (no --lock-timeout) are reported but are not a
// failure.
int run_plan(const cache::DeletePlan& plan, const cache::CacheInfo& info, bool dry_run, bool yes,
             const GlobalOptions& global, std::chrono::milliseconds lock_timeout,
             int answer_fd = STDIN_FILENO)
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
  if (!confirm(yes, global.json, answer_fd)) {
    fmt::print("Aborted: nothing deleted.\n");
    return 0;
  }
  cache::ExecuteOptions options;
  options.lock_timeout = lock_timeout;
  options.cancel = &cancel_flag();
  if (lock_timeout > std::chrono::milliseconds::zero()) {
    options.on_wait = lock_wait_reporter(global, lock_timeout);
  }
  const auto report = cache::execute_plan(plan, options);
  if (global.json) {
    fmt::print("{}\n", nlohmann::json{{"dry_run", false},
                                      {"plan", plan_json(plan)},
                                      {"freed", report.freed},
                                      {"deleted", report.deleted.size()},
                                      {"in_use", skipped_json(report.in_use)},
                                      {"errors", skipped_json(report.errors)},
                                      {"timed_out", report.timed_out}}
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
  if (!report.errors.empty()) {
    return exit_code_for(ErrorKind::disk);
  }
  if (cancel_flag().load()) {
    return exit_code_for(ErrorKind::interrupted);
  }
  if (report.timed_out) {
    if (!global.json) {
      fmt::print(stderr,
                 "modelmgr: error: gave up waiting for a lock after {} s: not everything was deleted\n"
                 "  hint: a download is still using it (see `modelmgr cache locks`); run the command "
                 "again later or with a longer --lock-timeout\n",
                 std::chrono::duration_cast<std::chrono::seconds>(lock_timeout).count());
    }
    return exit_code_for(ErrorKind::locked);
  }
  return 0;
}

struct RmArgs {
  std::vector<std::string> targets;
  std::string repo_type = "model";
  std::string cache_dir;
  bool yes = false;
  bool dry_run = false;
  bool interactive = false;
  double lock_timeout_s = 0;
};

// Closes a descriptor this command opened (/dev/tty), never standard input.
struct FdCloser {
  int fd = -1;
  ~FdCloser()
  {
    if (fd > STDERR_FILENO) {
      ::close(fd);
    }
  }
};

int run_rm_interactive(const RmArgs& a, const GlobalOptions& global)
{
  const auto lock_timeout = lock_timeout_option(a.lock_timeout_s);
  if (!a.targets.empty()) {
    throw ConfigurationError("cache rm -i selects what to delete on the terminal: it takes no REPO arguments",
                             "run `modelmgr cache rm -i` alone, or name the repos without -i",
                             ErrorKind::usage);
  }
  if (global.json) {
    throw ConfigurationError(
        "cache rm -i is interactive and cannot print --json",
        "name the repos to delete instead: modelmgr cache rm REPO[@REVISION]... --json -y", ErrorKind::usage);
  }
  FdCloser in{open_key_input()};
  if (in.fd < 0 || ::isatty(STDOUT_FILENO) != 1) {
    throw ConfigurationError(
        "cache rm -i needs a terminal, but standard input or output is not one",
        "name the repos to delete instead: modelmgr cache rm REPO[@REVISION]... (see `modelmgr cache ls`)",
        ErrorKind::usage);
  }
  const auto info = scan_cache_root(cache_root_for(a.cache_dir));
  if (info.repos.empty()) {
    fmt::print("The cache at {} holds no repos. Nothing deleted.\n", info.root.string());
    return 0;
  }
  std::fflush(stdout);
  const auto selection = select_delete_targets(info, in.fd, STDOUT_FILENO, &cancel_flag());
  if (selection.how != SelectResult::How::accepted) {
    fmt::print("Nothing deleted.\n");
    return selection.how == SelectResult::How::interrupted ? exit_code_for(ErrorKind::interrupted) : 0;
  }
  return run_plan(cache::plan_delete(info, selection.targets), info, a.dry_run, a.yes, global, lock_timeout,
                  in.fd);
}

int run_rm(const RmArgs& a, const GlobalOptions& global)
{
  if (a.interactive) {
    return run_rm_interactive(a, global);
  }
  const auto lock_timeout = lock_timeout_option(a.lock_timeout_s);
  if (a.targets.empty()) {
    throw ConfigurationError("cache rm needs at least one REPO[@REVISION] to delete",
                             "see `modelmgr cache ls` for what is cached, or use -i to pick on a terminal",
                             ErrorKind::usage);
  }
  const auto type = repo_type_option(a.repo_type);
  std::vector<cache::DeleteTarget> targets;
  for (const auto& t : a.targets) {
    targets.push_back(cache::parse_delete_target(t, type));
  }
  const auto info = scan_cache_root(cache_root_for(a.cache_dir));
  return run_plan(cache::plan_delete(info, targets), info, a.dry_run, a.yes, global, lock_timeout);
}

struct PruneArgs {
  std::string cache_dir;
  std::string older_than = "1d";
  std::string keep_under;
  std::string config;
  bool yes = false;
  bool dry_run = false;
  double lock_timeout_s = 0;
};

int run_prune(const PruneArgs& a, const GlobalOptions& global)
{
  const auto lock_timeout = lock_timeout_option(a.lock_timeout_s);
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
  // A catalog model downloaded at its pinned commit has no ref: keep that revision (docs/cache.md).
  for (auto& pin : catalog::revision_pins(load_effective_catalog({}, a.config))) {
    o.pins.push_back(std::move(pin));
  }
  const auto info = scan_cache_root(cache_root_for(a.cache_dir));
  return run_plan(cache::plan_prune(info, o), info, a.dry_run, a.yes, global, lock_timeout);
}

struct VerifyArgs {
  std::vector<std::string> repos;
  std::string repo_type = "model";
  std::string cache_dir;
  bool repair = false;
  double lock_timeout_s = 0;
};

// Deletes `bad` (under its download lock) and pulls every file that pointed at it again, at the commit of
// its snapshot. Returns an error message, or empty on success.
std::string repair_blob(const cache::CorruptBlob& bad, const cache::CacheInfo& info, const fs::path& root,
                        const GlobalOptions& global, std::chrono::milliseconds lock_timeout)
{
  {
    const fs::path lock_path = cache::lock_path(root, bad.folder, bad.etag);
    util::FileLock lock(lock_path);
    bool got = lock.try_lock();
    if (!got && lock_timeout > std::chrono::milliseconds::zero() && !cancel_flag().load()) {
      const auto report = lock_wait_reporter(global, lock_timeout);
      got = lock.lock_for(lock_timeout, [&](const std::optional<util::LockHolder>& holder,
                                            std::chrono::milliseconds waited) {
        if (cancel_flag().load()) {
          throw DownloadError(ErrorKind::interrupted, "interrupted while waiting for " + lock_path.string());
        }
        report(lock_path, holder, waited);
      });
    }
    if (!got) {
      const auto holder = util::read_holder(lock_path);
      return "in use by a download: lock " + lock_path.string() + " is held" +
             (holder ? " by " + holder->describe() : std::string()) +
             (lock_timeout > std::chrono::milliseconds::zero()
                  ? fmt::format(" (still held after waiting {} s)",
                                std::chrono::duration_cast<std::chrono::seconds>(lock_timeout).count())
                  : std::string("; try again later, or wait for it with --lock-timeout"));
    }
    // Only ever a blob of this repo inside the cache, whatever a snapshot link pointed at.
    if (bad.blob_path.parent_path() != root / bad.folder / "blobs") {
      return "not deleted: " + bad.blob_path.string() + " is not a blob inside the cache";
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
      if (e.kind() == ErrorKind::interrupted || cancel_flag().load()) {
        throw; // Ctrl-C: exit 130 like every command, not "repair failed"
      }
      return std::string("re-download failed: ") + e.what();
    }
  }
  return {};
}

int run_verify(const VerifyArgs& a, const GlobalOptions& global)
{
  const auto type = repo_type_option(a.repo_type);
  const auto lock_timeout = lock_timeout_option(a.lock_timeout_s);
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
  if (!global.json && !global.quiet) {
    // Hashing a large cache takes minutes: say what is going on before the first result.
    fmt::print(stderr, "verifying the blobs of {} repo(s) in {} ...\n", repos.size(), info.root.string());
    std::fflush(stderr);
  }
  const auto report = cache::verify_blobs(info, repos, threads, &cancel_flag());
  if (cancel_flag().load()) {
    throw DownloadError(ErrorKind::interrupted, "cache verify interrupted");
  }
  std::map<std::string, std::string> repair_errors; // blob path → error
  std::size_t repaired = 0;
  if (a.repair) {
    for (const auto& bad : report.corrupt) {
      if (cancel_flag().load()) {
        throw DownloadError(ErrorKind::interrupted, "cache verify --repair interrupted");
      }
      auto err = repair_blob(bad, info, root, global, lock_timeout);
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
  auto* rm = cache_cmd.add_subcommand(
      "rm", "Delete cached repos or revisions (REPO or REPO@REVISION; -i picks them on the terminal)");
  rm->fallthrough();
  rm->add_option("targets", rm_args->targets, "REPO[@REVISION]: a ref name or a (short) commit");
  rm->add_flag("-i,--interactive", rm_args->interactive,
               "Pick repos and revisions to delete from a list on the terminal (sorted by size)");
  rm->add_option("--repo-type", rm_args->repo_type, "model, dataset or space")->capture_default_str();
  rm->add_option("--cache-dir", rm_args->cache_dir, "Cache directory");
  rm->add_flag("-y,--yes", rm_args->yes, "Do not ask for confirmation");
  rm->add_flag("--dry-run", rm_args->dry_run, "Only print what would be deleted");
  rm->add_option("--lock-timeout", rm_args->lock_timeout_s,
                 "Seconds to wait for each lock a download holds (0: skip what is in use at once)")
      ->capture_default_str();
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
  prune
      ->add_option("--lock-timeout", prune_args->lock_timeout_s,
                   "Seconds to wait for each lock a download holds (0: skip what is in use at once)")
      ->capture_default_str();
  prune->callback([prune_args, &global, &exit_code] { exit_code = run_prune(*prune_args, global); });

  auto verify_args = std::make_shared<VerifyArgs>();
  auto* verify = cache_cmd.add_subcommand("verify", "Re-hash cached blobs against their names (offline)");
  verify->fallthrough();
  verify->add_option("repos", verify_args->repos, "Repos to check (default: all)");
  verify->add_option("--repo-type", verify_args->repo_type, "model, dataset or space")->capture_default_str();
  verify->add_option("--cache-dir", verify_args->cache_dir, "Cache directory");
  verify->add_flag("--repair", verify_args->repair,
                   "Delete corrupt blobs and download the files using them again (needs the Hub)");
  verify
      ->add_option("--lock-timeout", verify_args->lock_timeout_s,
                   "With --repair: seconds to wait for a lock a download holds (0: skip it at once)")
      ->capture_default_str();
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
