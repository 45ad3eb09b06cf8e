#include "cache/delete.hpp"

#include "modelmgr/errors.hpp"

#include "cache/repo_cache.hpp"
#include "util/lock.hpp"

#include <algorithm>
#include <map>
#include <system_error>
#include <unordered_set>

#include <sys/stat.h>

namespace modelmgr::cache {

namespace fs = std::filesystem;

namespace {

// Shown in "not in the cache" hints; a cache with thousands of repos would drown the message.
constexpr std::size_t k_max_listed = 10;

bool is_hex(std::string_view s)
{
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

const CachedRepo* find_repo(const CacheInfo& info, RepoType type, std::string_view repo_id)
{
  for (const auto& r : info.repos) {
    if (r.type == type && r.repo_id == repo_id) {
      return &r;
    }
  }
  return nullptr;
}

std::string list_repos(const CacheInfo& info)
{
  if (info.repos.empty()) {
    return "the cache at " + info.root.string() + " holds no repos";
  }
  std::string out = "cached repos: ";
  for (std::size_t i = 0; i < info.repos.size() && i < k_max_listed; ++i) {
    out += (i == 0 ? "" : ", ") + info.repos[i].display_id();
  }
  if (info.repos.size() > k_max_listed) {
    out += ", ... (" + std::to_string(info.repos.size() - k_max_listed) + " more; see `modelmgr cache ls`)";
  }
  return out;
}

std::string list_revisions(const CachedRepo& repo)
{
  if (repo.revisions.empty()) {
    return repo.display_id() + " has no cached revision";
  }
  std::string out = "cached revisions of " + repo.display_id() + ": ";
  for (std::size_t i = 0; i < repo.revisions.size(); ++i) {
    const auto& rev = repo.revisions[i];
    out += (i == 0 ? "" : ", ") + rev.commit;
    if (!rev.refs.empty()) {
      std::string refs;
      for (const auto& r : rev.refs) {
        refs += (refs.empty() ? "" : ", ") + r;
      }
      out += " (" + refs + ")";
    }
  }
  return out;
}

// Returns the commits `revision` names in `repo`: the commit of a ref, or every cached commit starting with
// a hex prefix of at least 4 digits. Empty when nothing matches.
std::vector<std::string> match_revision(const CachedRepo& repo, std::string_view revision)
{
  if (auto it = repo.refs.find(std::string(revision)); it != repo.refs.end()) {
    return {it->second};
  }
  std::vector<std::string> out;
  if (revision.size() >= 4 && is_hex(revision)) {
    for (const auto& rev : repo.revisions) {
      if (rev.commit.starts_with(revision)) {
        out.push_back(rev.commit);
      }
    }
  }
  return out;
}

bool has_revision(const CachedRepo& repo, std::string_view commit)
{
  return std::any_of(repo.revisions.begin(), repo.revisions.end(),
                     [&](const CachedRevision& r) { return r.commit == commit; });
}

// The deletion of `commits` (with a reason each) from `repo`; `whole` removes the folder.
RepoDeletion make_repo_deletion(const CachedRepo& repo, const fs::path& root,
                                const std::map<std::string, std::string>& commits, bool whole)
{
  RepoDeletion d;
  d.display_id = repo.display_id();
  d.folder = repo.folder;
  d.path = repo.path;
  d.cache_root = root;
  d.lock_dir = lock_dir(root, repo.folder);
  d.whole_repo = whole;
  for (const auto& [commit, reason] : commits) {
    d.commits.push_back(commit);
    d.reasons.push_back(reason);
  }
  const fs::path blobs_dir = repo.path / "blobs";
  std::unordered_set<std::string> kept;
  for (const auto& rev : repo.revisions) {
    if (!whole && !commits.contains(rev.commit)) {
      for (const auto& f : rev.files) {
        kept.insert(f.blob_path.native());
      }
    }
  }
  std::unordered_set<std::string> seen;
  for (const auto& rev : repo.revisions) {
    if (!whole && !commits.contains(rev.commit)) {
      continue;
    }
    d.snapshots.push_back(rev.path);
    for (const auto& f : rev.files) {
      if (kept.contains(f.blob_path.native()) || !seen.insert(f.blob_path.native()).second) {
        continue;
      }
      d.freed += f.size;
      // Symlink-less caches keep the bytes inside the snapshot: they go with the snapshot folder.
      if (f.blob_path.parent_path() == blobs_dir) {
        d.blobs.push_back({f.blob_path, f.blob_path.filename().string(), f.size});
      }
    }
  }
  for (const auto& [name, commit] : repo.refs) {
    if (whole || commits.contains(commit)) {
      d.refs.push_back(repo.path / "refs" / name);
    }
  }
  if (whole) {
    d.freed = std::max(d.freed, repo.size_on_disk);
  }
  return d;
}

void add_orphans(RepoDeletion& d, const CacheInfo& info)
{
  for (const auto& p : info.problems) {
    if (p.kind == ProblemKind::orphan_blob && p.repo == d.folder) {
      d.blobs.push_back({p.path, p.path.filename().string(), p.size});
      d.freed += p.size;
    }
  }
}

// Thrown from the wait callback to stop waiting once the cancel flag is set.
struct WaitCancelled {};

class Executor {
public:
  explicit Executor(const ExecuteOptions& options) : m_options(options) {}

  DeleteReport run(const DeletePlan& plan)
  {
    std::vector<const RepoDeletion*> piecewise;
    for (const auto& d : plan.repos) {
      if (d.whole_repo && remove_whole_repo(d)) {
        continue;
      }
      piecewise.push_back(&d);
    }
    for (const auto* d : piecewise) {
      for (const auto& s : d->snapshots) {
        remove_tree(s);
      }
    }
    for (const auto* d : piecewise) {
      for (const auto& r : d->refs) {
        remove_file(r, 0);
        remove_empty_parents(r, d->path / "refs");
      }
    }
    for (const auto* d : piecewise) {
      for (const auto& b : d->blobs) {
        remove_locked(b.path, lock_path(d->cache_root, d->folder, b.etag), b.size);
      }
    }
    for (const auto& t : plan.temp_files) {
      if (t.lock) {
        remove_locked(t.path, *t.lock, t.size);
      } else {
        remove_file(t.path, t.size);
      }
    }
    for (const auto& l : plan.lock_files) {
      try {
        if (util::remove_if_unheld(l)) {
          m_report.deleted.push_back(l);
        }
      } catch (const std::exception& e) {
        m_report.errors.push_back({l, e.what()});
      }
    }
    return std::move(m_report);
  }

private:
  bool cancelled() const { return m_options.cancel != nullptr && m_options.cancel->load(); }

  // Takes `lock`: at once, or within lock_timeout when one is set. A lock already waited for in vain is
  // not waited for again (a whole repo falling back to piecewise deletion meets its locks twice). Throws
  // std::system_error on I/O errors.
  bool acquire(util::FileLock& lock)
  {
    if (lock.try_lock()) {
      return true;
    }
    const fs::path& path = lock.path();
    if (m_options.lock_timeout <= std::chrono::milliseconds::zero() || m_gave_up.contains(path.native()) ||
        cancelled()) {
      return false;
    }
    bool got = false;
    try {
      got = lock.lock_for(m_options.lock_timeout, [&](const std::optional<util::LockHolder>& holder,
                                                      std::chrono::milliseconds waited) {
        if (cancelled()) {
          throw WaitCancelled{};
        }
        if (m_options.on_wait) {
          m_options.on_wait(path, holder, waited);
        }
      });
    } catch (const WaitCancelled&) {
      got = false;
    }
    if (!got) {
      m_gave_up.insert(path.native());
      m_report.timed_out = m_report.timed_out || !cancelled();
    }
    return got;
  }

  std::string in_use_reason(const fs::path& lock_path) const
  {
    std::string reason = "in use: lock " + lock_path.string() + " is held";
    if (auto holder = util::read_holder(lock_path)) {
      reason += " by " + holder->describe();
    }
    if (m_gave_up.contains(lock_path.native())) {
      reason +=
          cancelled()
              ? " (interrupted while waiting)"
              : " (still held after waiting " +
                    std::to_string(
                        std::chrono::duration_cast<std::chrono::seconds>(m_options.lock_timeout).count()) +
                    " s)";
    }
    return reason;
  }

  // Removes the now empty folders between `file` and `stop` (refs/pr/ after deleting refs/pr/1), never
  // `stop` itself. A folder that is not empty (another ref) stays.
  void remove_empty_parents(const fs::path& file, const fs::path& stop)
  {
    std::error_code ec;
    for (fs::path dir = file.parent_path(); dir != stop && dir.native().starts_with(stop.native());
         dir = dir.parent_path()) {
      if (!fs::is_empty(dir, ec) || ec || !fs::remove(dir, ec)) {
        return;
      }
    }
  }

  // Removes the folder in one go while holding every lock of the repo. Returns false (nothing deleted)
  // when a lock is held: the caller then deletes piece by piece, skipping what is in use.
  bool remove_whole_repo(const RepoDeletion& d)
  {
    std::vector<util::FileLock> held;
    std::vector<fs::path> lock_paths;
    std::error_code ec;
    for (auto it = fs::directory_iterator(d.lock_dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (it->path().extension() == ".lock") {
        lock_paths.push_back(it->path());
      }
    }
    // hf-hub 0.x locks blobs/<etag>.lock inside the repo.
    for (auto it = fs::directory_iterator(d.path / "blobs", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (it->path().extension() == ".lock") {
        lock_paths.push_back(it->path());
      }
    }
    bool busy = false;
    for (const auto& p : lock_paths) {
      util::FileLock lock(p);
      try {
        if (!acquire(lock)) {
          busy = true; // the repo goes piecewise: its other locks are met (and waited for) blob by blob
          break;
        }
      } catch (const std::exception&) {
        continue; // vanished or unreadable: it protects nothing we could honour
      }
      held.push_back(std::move(lock));
    }
    if (busy) {
      return false;
    }
    fs::remove_all(d.path, ec);
    if (ec) {
      m_report.errors.push_back({d.path, ec.message()});
      return true;
    }
    m_report.deleted.push_back(d.path);
    m_report.freed += d.freed;
    return true;
  }

  void remove_tree(const fs::path& p)
  {
    std::error_code ec;
    const auto n = fs::remove_all(p, ec);
    if (ec) {
      m_report.errors.push_back({p, ec.message()});
    } else if (n > 0) {
      m_report.deleted.push_back(p);
    }
  }

  void remove_file(const fs::path& p, std::uint64_t size)
  {
    std::error_code ec;
    if (fs::remove(p, ec)) {
      m_report.deleted.push_back(p);
      m_report.freed += size;
    } else if (ec) {
      m_report.errors.push_back({p, ec.message()});
    }
  }

  // Deletes `path` while holding `lock_path`, the lock a downloader takes before writing or linking it.
  // Taking it (not just probing) closes the race where a download starts between our check and unlink:
  // that download then waits for us and finds the blob gone, so it fetches it again instead of linking a
  // file we are deleting.
  void remove_locked(const fs::path& path, const fs::path& lock_path, std::uint64_t size)
  {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(path, ec))) {
      return;
    }
    const bool lock_existed = fs::exists(fs::symlink_status(lock_path, ec));
    {
      util::FileLock lock(lock_path);
      try {
        if (!acquire(lock)) {
          m_report.in_use.push_back({path, in_use_reason(lock_path)});
          return;
        }
      } catch (const std::exception& e) {
        m_report.errors.push_back({path, std::string("cannot take lock: ") + e.what()});
        return;
      }
      remove_file(path, size);
    }
    if (!lock_existed) {
      // We created it only to exclude downloaders; once released, take it away again unless someone
      // grabbed it meanwhile (remove_if_unheld re-checks under its own lock).
      try {
        (void)util::remove_if_unheld(lock_path);
      } catch (const std::exception&) {
        // Leaving an empty lock file behind is what every download does anyway.
      }
    }
  }

  const ExecuteOptions& m_options;
  DeleteReport m_report;
  std::unordered_set<std::string> m_gave_up; // lock paths waited for in vain
};

} // namespace

std::string DeleteTarget::describe() const
{
  std::string s = std::string(to_string(type)) + "/" + repo_id;
  if (revision) {
    s += "@" + *revision;
  }
  return s;
}

DeleteTarget parse_delete_target(std::string_view text, RepoType type)
{
  DeleteTarget t;
  t.type = type;
  const auto at = text.find('@');
  t.repo_id = std::string(text.substr(0, at));
  if (auto err = repo_id_error(t.repo_id)) {
    throw ConfigurationError("invalid target '" + std::string(text) + "': " + *err,
                             "expected REPO or REPO@REVISION, e.g. BAAI/bge-m3@main", ErrorKind::usage);
  }
  if (at != std::string_view::npos) {
    const std::string_view rev = text.substr(at + 1);
    if (rev.empty()) {
      throw ConfigurationError("invalid target '" + std::string(text) + "': empty revision after '@'", {},
                               ErrorKind::usage);
    }
    t.revision = std::string(rev);
  }
  return t;
}

std::uint64_t DeletePlan::freed() const
{
  std::uint64_t n = 0;
  for (const auto& r : repos) {
    n += r.freed;
  }
  for (const auto& t : temp_files) {
    n += t.size;
  }
  return n;
}

bool DeletePlan::empty() const
{
  return repos.empty() && temp_files.empty() && lock_files.empty();
}

DeletePlan plan_delete(const CacheInfo& info, const std::vector<DeleteTarget>& targets)
{
  // repo index → selected commits; a repo named without a revision is selected whole.
  std::map<std::size_t, std::map<std::string, std::string>> selected;
  std::set<std::size_t> whole;
  for (const auto& t : targets) {
    const CachedRepo* repo = find_repo(info, t.type, t.repo_id);
    if (repo == nullptr) {
      throw MissingModelError("'" + t.describe() + "' is not in the cache at " + info.root.string(),
                              list_repos(info));
    }
    const auto idx = static_cast<std::size_t>(repo - info.repos.data());
    auto& commits = selected[idx];
    if (!t.revision) {
      whole.insert(idx);
      continue;
    }
    const auto matches = match_revision(*repo, *t.revision);
    if (matches.empty()) {
      throw MissingModelError("revision '" + *t.revision + "' of " + repo->display_id() +
                                  " is not in the cache (neither a ref nor a cached commit)",
                              list_revisions(*repo));
    }
    if (matches.size() > 1) {
      throw ConfigurationError("revision '" + *t.revision + "' of " + repo->display_id() +
                                   " is ambiguous: it starts " + std::to_string(matches.size()) +
                                   " cached commits",
                               list_revisions(*repo), ErrorKind::usage);
    }
    if (!has_revision(*repo, matches.front())) {
      throw MissingModelError("ref '" + *t.revision + "' of " + repo->display_id() + " points to commit " +
                                  matches.front() + " which has no snapshot",
                              list_revisions(*repo));
    }
    commits.emplace(matches.front(), "");
  }
  DeletePlan plan;
  for (auto& [idx, commits] : selected) {
    const CachedRepo& repo = info.repos[idx];
    const bool all = whole.contains(idx) || commits.size() == repo.revisions.size();
    if (all) {
      for (const auto& rev : repo.revisions) {
        commits.emplace(rev.commit, "");
      }
    }
    RepoDeletion d = make_repo_deletion(repo, info.root, commits, all);
    if (all) {
      // The folder takes orphan blobs with it; listed for the piecewise path a held lock forces.
      add_orphans(d, info);
    }
    plan.repos.push_back(std::move(d));
  }
  return plan;
}

DeletePlan plan_prune(const CacheInfo& info, const PruneOptions& options)
{
  std::map<std::size_t, std::set<std::string>> pinned_commits;
  std::set<std::size_t> pinned_repos;
  for (const auto& pin : options.pins) {
    const CachedRepo* repo = find_repo(info, pin.type, pin.repo_id);
    if (repo == nullptr) {
      continue;
    }
    const auto idx = static_cast<std::size_t>(repo - info.repos.data());
    if (pin.keep_repo) {
      pinned_repos.insert(idx);
    }
    for (auto& c : match_revision(*repo, pin.revision)) {
      pinned_commits[idx].insert(std::move(c));
    }
  }

  // 1. Detached revisions and orphan blobs, per repo.
  std::vector<std::map<std::string, std::string>> chosen(info.repos.size());
  std::vector<bool> evicted(info.repos.size(), false);
  const auto build = [&](std::size_t idx) {
    const CachedRepo& repo = info.repos[idx];
    RepoDeletion d = make_repo_deletion(repo, info.root, chosen[idx], evicted[idx]);
    // Orphans are not part of size_on_disk, so they add to what the repo gives back either way.
    add_orphans(d, info);
    return d;
  };
  for (std::size_t i = 0; i < info.repos.size(); ++i) {
    for (const auto& rev : info.repos[i].revisions) {
      if (rev.refs.empty() && !pinned_commits[i].contains(rev.commit)) {
        chosen[i].emplace(rev.commit, "detached");
      }
    }
  }

  // 2. Least-recently-used repos until the rest fits.
  if (options.keep_under) {
    std::uint64_t remaining = info.size_on_disk;
    for (std::size_t i = 0; i < info.repos.size(); ++i) {
      if (!chosen[i].empty()) {
        const RepoDeletion d = make_repo_deletion(info.repos[i], info.root, chosen[i], false);
        remaining -= std::min(remaining, d.freed);
      }
    }
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < info.repos.size(); ++i) {
      if (!pinned_repos.contains(i)) {
        order.push_back(i);
      }
    }
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const auto& ra = info.repos[a];
      const auto& rb = info.repos[b];
      if (ra.last_accessed != rb.last_accessed) {
        return ra.last_accessed < rb.last_accessed;
      }
      return ra.display_id() < rb.display_id();
    });
    for (const std::size_t i : order) {
      if (remaining <= *options.keep_under) {
        break;
      }
      std::uint64_t already = 0;
      if (!chosen[i].empty()) {
        already = make_repo_deletion(info.repos[i], info.root, chosen[i], false).freed;
      }
      remaining -=
          std::min(remaining, info.repos[i].size_on_disk - std::min(already, info.repos[i].size_on_disk));
      evicted[i] = true;
      for (const auto& rev : info.repos[i].revisions) {
        chosen[i].emplace(rev.commit, "least recently used");
      }
    }
  }

  DeletePlan plan;
  for (std::size_t i = 0; i < info.repos.size(); ++i) {
    RepoDeletion d = build(i);
    if (!d.whole_repo && d.commits.empty() && d.blobs.empty()) {
      continue;
    }
    plan.repos.push_back(std::move(d));
  }

  // 3. Temp files old enough that no live download can own them, and lock files nobody holds.
  for (const auto& p : info.problems) {
    if (p.kind == ProblemKind::stale_lock) {
      plan.lock_files.push_back(p.path);
      continue;
    }
    if (p.kind != ProblemKind::temp_file) {
      continue;
    }
    struct stat st {};
    if (::lstat(p.path.c_str(), &st) != 0) {
      continue;
    }
    const util::SystemTime mtime{std::chrono::duration_cast<util::SystemTime::duration>(
        std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec))};
    if (options.now - mtime < options.temp_older_than) {
      continue;
    }
    TempDeletion t{p.path, p.size, std::nullopt};
    const std::string name = p.path.filename().string();
    if (!p.repo.empty() && p.path.parent_path().filename() == "blobs" && name.ends_with(".incomplete")) {
      // blobs/<etag>.incomplete (Python), <etag>.modelmgr[.state].incomplete (modelmgr): the etag is the
      // part before the first dot, and its download lock guards the file.
      const std::string etag = name.substr(0, name.find('.'));
      if (!etag_error(etag)) {
        t.lock = lock_path(info.root, p.repo, etag);
      }
    }
    plan.temp_files.push_back(std::move(t));
  }
  return plan;
}

DeleteReport execute_plan(const DeletePlan& plan, const ExecuteOptions& options)
{
  return Executor(options).run(plan);
}

} // namespace modelmgr::cache
