// Model sets: ensure (pull + verify), offline checks, repair and clean of the models a config lists.
// Manifest and lock files live in manifest.cpp.

#include "modelmgr/model_manager.hpp"

#include "cache/paths.hpp"
#include "cache/repo_cache.hpp"
#include "formats/load_check.hpp"
#include "manager/config.hpp"
#include "manager/model_set_internal.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"
#include "util/glob.hpp"
#include "util/hash.hpp"
#include "util/lock.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

namespace modelmgr {

namespace fs = std::filesystem;

const char* to_string(ModelStatus status) noexcept
{
  switch (status) {
  case ModelStatus::downloaded: return "downloaded";
  case ModelStatus::cached: return "cached";
  case ModelStatus::failed: return "failed";
  }
  return "failed";
}

const char* to_string(FileProblem::Kind kind) noexcept
{
  switch (kind) {
  case FileProblem::Kind::missing_link: return "missing";
  case FileProblem::Kind::missing_blob: return "missing blob";
  case FileProblem::Kind::size_mismatch: return "wrong size";
  case FileProblem::Kind::hash_mismatch: return "hash mismatch";
  case FileProblem::Kind::pin_mismatch: return "pinned sha256 mismatch";
  case FileProblem::Kind::unreadable: return "unreadable";
  case FileProblem::Kind::load_failure: return "load failure";
  }
  return "unknown";
}

const char* to_string(CacheState state) noexcept
{
  switch (state) {
  case CacheState::cached: return "cached";
  case CacheState::partial: return "partial";
  case CacheState::missing: return "missing";
  case CacheState::corrupt: return "corrupt";
  }
  return "missing";
}

bool SyncReport::ok() const
{
  return std::none_of(models.begin(), models.end(),
                      [](const ModelResult& m) { return m.status == ModelStatus::failed; });
}

std::optional<ErrorKind> SyncReport::worst_error() const
{
  // Most actionable first: an interruption explains every other failure; a checksum failure means bad
  // data somewhere; auth and disk need the user; network and not-found are often transient or typos.
  static const ErrorKind k_priority[] = {ErrorKind::interrupted,  ErrorKind::checksum,  ErrorKind::auth,
                                         ErrorKind::disk,         ErrorKind::locked,    ErrorKind::network,
                                         ErrorKind::bad_response, ErrorKind::not_found, ErrorKind::config,
                                         ErrorKind::usage,        ErrorKind::internal};
  std::optional<ErrorKind> worst;
  auto rank = [](ErrorKind k) {
    return static_cast<int>(std::find(std::begin(k_priority), std::end(k_priority), k) -
                            std::begin(k_priority));
  };
  for (const auto& m : models) {
    if (m.status == ModelStatus::failed && (!worst || rank(m.error_kind) < rank(*worst))) {
      worst = m.error_kind;
    }
  }
  return worst;
}

const LockedModel* LockFile::find(std::string_view id) const
{
  auto it = std::find_if(models.begin(), models.end(), [&](const LockedModel& m) { return m.id == id; });
  return it == models.end() ? nullptr : &*it;
}

namespace manager {

bool has_glob_chars(std::string_view pattern)
{
  return pattern.find_first_of("*?[") != std::string_view::npos ||
         (!pattern.empty() && pattern.back() == '/');
}

Selection selection_of(const ModelSpec& spec)
{
  Selection s;
  s.exclude = spec.exclude;
  const bool any_glob = std::any_of(spec.files.begin(), spec.files.end(), has_glob_chars);
  if (any_glob) {
    // A plain name is also a pattern that matches only itself, so a mixed list works as include globs.
    s.include = spec.files;
  } else {
    for (const auto& f : spec.files) {
      if (!util::matches_any(f, spec.exclude)) {
        s.exact.push_back(f);
      }
    }
  }
  return s;
}

bool Selection::selects(const std::string& path) const
{
  if (!exact.empty()) {
    return std::find(exact.begin(), exact.end(), path) != exact.end();
  }
  if (!include.empty() && !util::matches_any(path, include)) {
    return false;
  }
  return !util::matches_any(path, exclude);
}

cache::RepoType repo_type_of(const ModelSpec& spec)
{
  auto type = cache::parse_repo_type(spec.repo_type);
  if (!type) {
    throw ConfigurationError(fmt::format("model '{}': unknown repo_type '{}'", spec.id, spec.repo_type),
                             "use model, dataset or space");
  }
  return *type;
}

fs::path expand_config_path(const std::string& raw, const fs::path& base)
{
  fs::path p = util::expand_path(raw, util::Env::process());
  if (p.is_relative() && !base.empty()) {
    p = base / p;
  }
  return fs::absolute(p).lexically_normal();
}

PullOptions pull_options(const ModelSpec& spec, const fs::path& cache_dir, const fs::path& config_dir,
                         const EnsureOptions& o)
{
  PullOptions p;
  p.repo_id = spec.repo_id;
  p.repo_type = spec.repo_type;
  p.revision = spec.revision;
  const Selection sel = selection_of(spec);
  if (!spec.files.empty() && sel.include.empty() && sel.exact.empty()) {
    throw ConfigurationError(
        fmt::format("model '{}': every file in `files` is excluded by `exclude`", spec.id),
        "remove the overlap between files and exclude");
  }
  p.files = sel.exact;
  p.include = sel.include;
  p.exclude = sel.exclude;
  p.cache_dir = cache_dir;
  if (spec.local_dir) {
    p.local_dir = expand_config_path(*spec.local_dir, config_dir);
    p.local_dir_hardlink = spec.local_dir_hardlink;
  }
  p.endpoint = o.endpoint;
  p.token = o.token;
  p.offline = o.offline;
  p.dry_run = o.dry_run;
  p.transfer = o.transfer;
  p.observer = o.observer;
  p.cancel = o.cancel;
  if (auto it = o.locked_commits.find(spec.id); it != o.locked_commits.end()) {
    p.revision = it->second;
  }
  return p;
}

namespace {

std::string link_etag(const fs::path& snapshot_file)
{
  std::error_code ec;
  auto target = fs::read_symlink(snapshot_file, ec);
  return ec ? std::string() : target.filename().string();
}

std::string etag_kind_name(std::string_view etag)
{
  switch (util::etag_kind(etag)) {
  case util::EtagKind::sha256: return "sha256";
  case util::EtagKind::git_sha1: return "git-sha1";
  case util::EtagKind::opaque: return "opaque";
  }
  return "opaque";
}

} // namespace

OfflinePlan offline_plan(const ModelSpec& spec, const cache::RepoCache& rc)
{
  OfflinePlan plan;
  plan.commit = rc.resolve_offline(spec.revision);
  if (!plan.commit) {
    return plan;
  }
  const Selection sel = selection_of(spec);
  const std::string& commit = *plan.commit;
  if (auto tree = rc.read_tree_cache(commit)) {
    plan.listing_known = true;
    std::set<std::string> seen;
    for (const auto& f : *tree) {
      if (sel.selects(f.path)) {
        plan.files.push_back({f.path, f.etag(), f.size});
        seen.insert(f.path);
      }
    }
    for (const auto& p : sel.exact) {
      if (!seen.count(p)) {
        plan.files.push_back({p, link_etag(rc.snapshot_file(commit, p)), std::nullopt});
      }
    }
  } else if (!sel.exact.empty()) {
    // Named files: the list is known even without the tree listing; the etag comes from the link.
    plan.listing_known = true;
    for (const auto& p : sel.exact) {
      plan.files.push_back({p, link_etag(rc.snapshot_file(commit, p)), std::nullopt});
    }
  } else {
    for (const auto& p : rc.snapshot_files(commit)) {
      if (sel.selects(p)) {
        plan.files.push_back({p, link_etag(rc.snapshot_file(commit, p)), std::nullopt});
      }
    }
  }
  return plan;
}

std::optional<FileProblem> check_file(const fs::path& file, const std::string& repo_path, std::string etag,
                                      std::optional<std::uint64_t> size,
                                      const std::optional<std::string>& pin, VerifyLevel level,
                                      std::uint64_t* actual_size)
{
  std::error_code ec;
  auto st = fs::symlink_status(file, ec);
  if (ec || !fs::exists(st)) {
    return FileProblem{FileProblem::Kind::missing_link, repo_path, etag,
                       fmt::format("{}: missing from the snapshot ({})", repo_path, file.string())};
  }
  if (fs::is_symlink(st)) {
    const std::string linked = link_etag(file);
    if (etag.empty()) {
      etag = linked;
    } else if (linked != etag) {
      return FileProblem{FileProblem::Kind::hash_mismatch, repo_path, etag,
                         fmt::format("{}: links to blob {}, expected {}", repo_path, linked, etag)};
    }
  }
  if (!fs::exists(file, ec)) {
    return FileProblem{FileProblem::Kind::missing_blob, repo_path, etag,
                       fmt::format("{}: the snapshot link points at a missing blob {}", repo_path, etag)};
  }
  const auto actual = fs::file_size(file, ec);
  if (ec) {
    return FileProblem{FileProblem::Kind::unreadable, repo_path, etag,
                       fmt::format("{}: cannot stat {}: {}", repo_path, file.string(), ec.message())};
  }
  if (actual_size) {
    *actual_size = actual;
  }
  if (size && actual != *size) {
    return FileProblem{FileProblem::Kind::size_mismatch, repo_path, etag,
                       fmt::format("{}: {} bytes, expected {}{}", repo_path, actual, *size,
                                   actual < *size ? " (truncated)" : "")};
  }
  if (level == VerifyLevel::none || level == VerifyLevel::size) {
    // Pins on LFS files cost nothing: the etag is the content's sha256.
    if (pin && util::etag_kind(etag) == util::EtagKind::sha256 && *pin != etag) {
      return FileProblem{
          FileProblem::Kind::pin_mismatch, repo_path, etag,
          fmt::format("{}: the Hub's sha256 {} differs from the pinned {}", repo_path, etag, *pin)};
    }
    return std::nullopt;
  }
  try {
    if (!etag.empty() && util::etag_kind(etag) != util::EtagKind::opaque) {
      const std::string got = util::hash_file_for_etag(file, etag);
      if (got != etag) {
        return FileProblem{FileProblem::Kind::hash_mismatch, repo_path, etag,
                           fmt::format("{}: content hash {} ({}) does not match the etag {}", repo_path, got,
                                       etag_kind_name(etag), etag)};
      }
    }
    if (pin) {
      const std::string got =
          util::etag_kind(etag) == util::EtagKind::sha256 ? etag : util::sha256_file(file);
      if (got != *pin) {
        return FileProblem{FileProblem::Kind::pin_mismatch, repo_path, etag,
                           fmt::format("{}: sha256 {} differs from the pinned {}", repo_path, got, *pin)};
      }
    }
  } catch (const std::exception& e) {
    return FileProblem{FileProblem::Kind::unreadable, repo_path, etag,
                       fmt::format("{}: {}", repo_path, e.what())};
  }
  return std::nullopt;
}

LoadResult load_check_files(const std::vector<std::pair<std::string, fs::path>>& files)
{
  LoadResult result;
  // Shards (repo paths) an index that loads already counted.
  std::set<std::string> covered;
  std::vector<std::pair<const FileLoadCheck*, bool>> weights; // (file, is an index)
  result.files.reserve(files.size());
  for (const auto& [repo_path, file] : files) {
    const formats::InspectedFile inspected = formats::inspect_file(file);
    const formats::LoadCheck& c = inspected.check;
    FileLoadCheck f;
    f.path = repo_path;
    f.format = std::string(formats::to_string(c.format));
    f.ok = c.ok;
    f.error = c.error;
    f.parameter_count = c.parameter_count;
    f.summary = c.summary;
    result.ok = result.ok && c.ok;
    if (c.format == formats::FileFormat::safetensors_index && c.ok && inspected.index) {
      const std::string dir = fs::path(repo_path).parent_path().generic_string();
      for (const auto& shard : inspected.index->shards()) {
        covered.insert(dir.empty() ? shard : dir + "/" + shard);
      }
    }
    result.files.push_back(std::move(f));
  }
  for (const auto& f : result.files) {
    const bool index = f.format == formats::to_string(formats::FileFormat::safetensors_index);
    const bool weight = f.format == formats::to_string(formats::FileFormat::gguf) ||
                        f.format == formats::to_string(formats::FileFormat::safetensors) ||
                        f.format == formats::to_string(formats::FileFormat::onnx);
    if ((index && f.ok) || (weight && !covered.count(f.path))) {
      result.parameter_count += f.parameter_count;
    }
  }
  result.checked_at = util::format_iso8601_utc(std::chrono::system_clock::now());
  return result;
}

std::string load_failure_message(const FileLoadCheck& file)
{
  // Parse errors start with the file's name already: say it once.
  std::string reason = file.error;
  const std::string name = fs::path(file.path).filename().string() + ": ";
  if (reason.rfind(name, 0) == 0) {
    reason.erase(0, name.size());
  }
  return fmt::format("{}: does not load: {}", file.path, reason);
}

ModelCheck check_spec(const ModelSpec& spec, const fs::path& cache_dir, const fs::path& config_dir,
                      VerifyLevel level)
{
  ModelCheck c;
  c.id = spec.id;
  c.repo_id = spec.repo_id;
  c.revision = spec.revision;
  cache::RepoCache rc(cache_dir, repo_type_of(spec), spec.repo_id);
  const OfflinePlan plan = offline_plan(spec, rc);
  if (!plan.commit || !fs::is_directory(rc.snapshot_dir(*plan.commit))) {
    c.state = CacheState::missing;
    return c;
  }
  c.commit = *plan.commit;
  c.listing_known = plan.listing_known;
  c.path = spec.local_dir ? expand_config_path(*spec.local_dir, config_dir) : rc.snapshot_dir(c.commit);
  c.files_expected = plan.files.size();
  std::set<std::string> counted;
  bool corrupt = false;
  for (const auto& f : plan.files) {
    std::optional<std::string> pin;
    if (auto it = spec.sha256.find(f.path); it != spec.sha256.end()) {
      pin = it->second;
    }
    std::uint64_t size = 0;
    auto problem = check_file(rc.snapshot_file(c.commit, f.path), f.path, f.etag, f.size, pin, level, &size);
    if (!problem || (problem->kind != FileProblem::Kind::missing_link &&
                     problem->kind != FileProblem::Kind::missing_blob)) {
      ++c.files_present;
      const std::string key = f.etag.empty() ? f.path : f.etag;
      if (counted.insert(key).second) {
        c.size_on_disk += size;
      }
    }
    if (problem) {
      corrupt = corrupt || (problem->kind != FileProblem::Kind::missing_link &&
                            problem->kind != FileProblem::Kind::missing_blob);
      c.problems.push_back(std::move(*problem));
    }
  }
  if (level == VerifyLevel::load && c.problems.empty()) {
    // Every hash is fine: now whether the files load (from where the user loads them: local_dir or snapshot).
    std::vector<std::pair<std::string, fs::path>> files;
    for (const auto& f : plan.files) {
      files.emplace_back(f.path, spec.local_dir ? c.path / f.path : rc.snapshot_file(c.commit, f.path));
    }
    c.load = load_check_files(files);
    for (const auto& f : c.load->files) {
      if (!f.ok) {
        corrupt = true;
        c.problems.push_back(
            FileProblem{FileProblem::Kind::load_failure, f.path, {}, load_failure_message(f)});
      }
    }
  }
  if (corrupt) {
    c.state = CacheState::corrupt;
  } else if (c.files_present == 0 && c.files_expected > 0) {
    c.state = CacheState::missing;
  } else if (!c.problems.empty()) {
    c.state = CacheState::partial;
  } else {
    c.state = CacheState::cached;
  }
  return c;
}

ModelResult ensure_spec(const ModelSpec& spec, const fs::path& cache_dir, const fs::path& config_dir,
                        VerifyLevel level, const EnsureOptions& o)
{
  ModelResult r;
  r.id = spec.id;
  r.repo_id = spec.repo_id;
  r.repo_type = spec.repo_type;
  r.revision = spec.revision;
  r.verify = level;
  const PullOptions po = pull_options(spec, cache_dir, config_dir, o);
  const PullResult pr = pull(po);
  r.commit = pr.commit;
  r.path = pr.root;
  r.bytes_to_download = pr.bytes_to_download;
  r.http_requests = pr.http_requests;
  const bool any_downloaded =
      std::any_of(pr.files.begin(), pr.files.end(), [](const PulledFile& f) { return f.downloaded; });
  r.status = any_downloaded ? ModelStatus::downloaded : ModelStatus::cached;
  for (const auto& f : pr.files) {
    ModelFile mf;
    mf.path = f.path;
    mf.size = f.size;
    mf.etag = f.etag;
    mf.etag_kind = etag_kind_name(f.etag);
    if (util::etag_kind(f.etag) == util::EtagKind::sha256) {
      mf.sha256 = f.etag;
    }
    mf.local_path = f.local_path;
    mf.downloaded = f.downloaded;
    r.files.push_back(std::move(mf));
  }
  if (o.dry_run) {
    return r;
  }
  cache::RepoCache rc(pr.cache_dir, repo_type_of(spec), spec.repo_id);
  if (po.revision != spec.revision && !cache::is_commit_hash(spec.revision)) {
    // A locked sync pulled the commit itself; the branch still points there (check_lock made sure).
    rc.write_ref(spec.revision, pr.commit);
  }
  std::vector<std::string> failures;
  for (auto& f : r.files) {
    std::optional<std::string> pin;
    if (auto it = spec.sha256.find(f.path); it != spec.sha256.end()) {
      pin = it->second;
    }
    const fs::path file = rc.snapshot_file(pr.commit, f.path);
    std::optional<std::uint64_t> size;
    if (level != VerifyLevel::none && f.size > 0) {
      size = f.size;
    }
    if (auto problem = check_file(file, f.path, f.etag, size, pin, level, nullptr)) {
      failures.push_back(problem->message);
    } else if (level >= VerifyLevel::sha256 && !f.sha256) {
      // Git files are named by their blob sha1; the manifest also wants the content's sha256.
      f.sha256 = util::sha256_file(file);
    }
  }
  if (!failures.empty()) {
    throw BadChecksumError(
        fmt::format("model '{}' ({}) failed verification: {}", spec.id, spec.repo_id,
                    fmt::join(failures, "; ")),
        fmt::format("run `modelmgr verify {} --repair` to fetch the broken files again", spec.id));
  }
  r.verified_at = util::format_iso8601_utc(std::chrono::system_clock::now());
  if (level == VerifyLevel::load) {
    std::vector<std::pair<std::string, fs::path>> files;
    for (const auto& f : r.files) {
      files.emplace_back(f.path, f.local_path.empty() ? rc.snapshot_file(pr.commit, f.path) : f.local_path);
    }
    r.load = load_check_files(files);
    std::vector<std::string> bad;
    for (const auto& f : r.load->files) {
      if (!f.ok) {
        bad.push_back(load_failure_message(f));
      }
    }
    if (!bad.empty()) {
      // A value, not a throw, so the manifest keeps the load result; ensure_model() throws it.
      r.status = ModelStatus::failed;
      r.error_kind = ErrorKind::checksum;
      r.reason = fmt::format("model '{}' ({}) failed the load check: {}", spec.id, spec.repo_id,
                             fmt::join(bad, "; "));
      r.hint = "the files match the Hub's hashes, so the repo itself holds them: exclude the file in the "
               "config (`exclude`), pin another revision, or report it to the repo's owner";
    }
  }
  return r;
}

} // namespace manager

using namespace manager;

ModelManager ModelManager::from_config(const fs::path& path)
{
  return ModelManager(load_config(path));
}

ModelManager::ModelManager(ModelSetConfig config) : m_config(std::move(config))
{
  std::optional<fs::path> dir;
  if (m_config.cache_dir) {
    dir = expand_config_path(*m_config.cache_dir, m_config.path.parent_path());
  }
  m_cache_dir = cache::resolve_cache_dir(dir, util::Env::process());
}

const ModelSpec& ModelManager::get_model_spec(std::string_view id) const
{
  if (const ModelSpec* spec = m_config.find(id)) {
    return *spec;
  }
  // select_models words the error (known ids, closest match).
  select_models(m_config, {std::string(id)});
  throw ConfigurationError(fmt::format("unknown model id '{}'", id));
}

ModelResult ModelManager::ensure_model(std::string_view id, const EnsureOptions& options) const
{
  ModelResult r =
      ensure_spec(get_model_spec(id), m_cache_dir, m_config.path.parent_path(), m_config.verify, options);
  if (r.status == ModelStatus::failed) {
    throw BadChecksumError(r.reason, r.hint);
  }
  return r;
}

SyncReport ModelManager::ensure_all(const EnsureOptions& options) const
{
  SyncReport report;
  for (const auto& spec : select_models(m_config, options.ids)) {
    try {
      report.models.push_back(
          ensure_spec(spec, m_cache_dir, m_config.path.parent_path(), m_config.verify, options));
    } catch (const std::exception& e) {
      ModelResult r;
      r.id = spec.id;
      r.repo_id = spec.repo_id;
      r.repo_type = spec.repo_type;
      r.revision = spec.revision;
      r.verify = m_config.verify;
      r.status = ModelStatus::failed;
      r.reason = e.what();
      if (const auto* me = dynamic_cast<const ModelManagerError*>(&e)) {
        r.error_kind = me->kind();
        r.hint = me->hint();
      } else if (dynamic_cast<const std::system_error*>(&e)) {
        r.error_kind = ErrorKind::disk;
      }
      const ErrorKind kind = r.error_kind;
      report.models.push_back(std::move(r));
      if (kind == ErrorKind::interrupted || (options.cancel && options.cancel->load())) {
        break;
      }
    }
  }
  return report;
}

ModelCheck ModelManager::check_model(std::string_view id, VerifyLevel level) const
{
  return check_spec(get_model_spec(id), m_cache_dir, m_config.path.parent_path(), level);
}

std::vector<ModelCheck> ModelManager::check_models(const std::vector<std::string>& ids,
                                                   VerifyLevel level) const
{
  std::vector<ModelCheck> out;
  for (const auto& spec : select_models(m_config, ids)) {
    out.push_back(check_spec(spec, m_cache_dir, m_config.path.parent_path(), level));
  }
  return out;
}

namespace {

// The etag of the blob in rc.blobs_dir() that snapshot entry `link` stands for: `etag` when it is a valid
// blob name, else the name a symlink points at, but only when that target lies lexically in blobs/ (no
// resolving through other links). Nullopt when the entry is no link into blobs/.
std::optional<std::string> blob_etag_of(const cache::RepoCache& rc, const fs::path& link,
                                        const std::string& etag)
{
  if (!etag.empty() && !cache::etag_error(etag)) {
    return etag;
  }
  std::error_code ec;
  const fs::path target = fs::read_symlink(link, ec);
  if (ec) {
    return std::nullopt;
  }
  const fs::path resolved = (link.parent_path() / target).lexically_normal();
  const std::string name = resolved.filename().string();
  if (resolved.parent_path() != rc.blobs_dir().lexically_normal() || cache::etag_error(name)) {
    return std::nullopt;
  }
  return name;
}

} // namespace

RepairResult ModelManager::repair_model(const ModelCheck& check, const EnsureOptions& options) const
{
  RepairResult r;
  r.id = check.id;
  const ModelSpec& spec = get_model_spec(check.id);
  try {
    if (check.commit.empty() || check.state == CacheState::missing) {
      // Nothing usable is cached: a normal ensure fetches everything.
      auto res = ensure_model(check.id, options);
      for (const auto& f : res.files) {
        r.repaired.push_back(f.path);
      }
      r.ok = true;
      return r;
    }
    cache::RepoCache rc(m_cache_dir, repo_type_of(spec), spec.repo_id);
    std::vector<std::string> paths;
    for (const auto& p : check.problems) {
      if (p.kind == FileProblem::Kind::load_failure) {
        continue; // the Hub has these very bytes: downloading them again changes nothing
      }
      const fs::path link = rc.snapshot_file(check.commit, p.path);
      if (p.kind != FileProblem::Kind::missing_link && p.kind != FileProblem::Kind::missing_blob) {
        // The blob itself is bad: pull would otherwise see a blob of the right name (and maybe size) and
        // only relink it. Take the download lock so a concurrent pull never sees it half-deleted. Only a
        // blob inside this repo's blobs/ is ever deleted: a snapshot link may point anywhere (a hand-made
        // link, a hostile cache), and what it points at outside the cache is not ours; the link itself
        // is removed below and pulled again.
        if (const auto etag = blob_etag_of(rc, link, p.etag)) {
          util::FileLock lock(rc.lock_path(*etag));
          if (!lock.lock_for(options.transfer.lock_timeout)) {
            throw DownloadError(
                ErrorKind::locked,
                fmt::format("blob {} of {} is locked by another process", *etag, spec.repo_id),
                "wait for the other download to finish, then run verify --repair again");
          }
          std::error_code ec;
          fs::remove(rc.blob_path(*etag), ec);
        }
      }
      std::error_code ec;
      fs::remove(link, ec);
      paths.push_back(p.path);
    }
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
    if (paths.empty()) {
      r.ok = true;
      return r;
    }
    PullOptions po = pull_options(spec, m_cache_dir, m_config.path.parent_path(), options);
    po.revision = check.commit;
    po.files = paths;
    po.include.clear();
    po.exclude.clear();
    pull(po);
    r.repaired = paths;
    r.ok = true;
  } catch (const ModelManagerError& e) {
    r.reason = e.what();
    r.interrupted = e.kind() == ErrorKind::interrupted;
  } catch (const std::exception& e) {
    r.reason = e.what();
  }
  return r;
}

namespace {

// Blob names the symlinks under `dir` point at.
void collect_linked_blobs(const fs::path& dir, std::set<std::string>& out)
{
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_symlink(ec)) {
      out.insert(fs::read_symlink(it->path(), ec).filename().string());
    }
  }
}

} // namespace

std::vector<CleanResult> ModelManager::clean(const std::vector<std::string>& ids) const
{
  const auto selected = select_models(m_config, ids);
  std::set<std::string> cleaning;
  for (const auto& s : selected) {
    cleaning.insert(s.id);
  }
  // Snapshots the models that stay still need: (repo folder, commit) → model id.
  std::map<std::pair<std::string, std::string>, std::string> needed;
  for (const auto& s : m_config.models) {
    if (cleaning.count(s.id)) {
      continue;
    }
    cache::RepoCache rc(m_cache_dir, repo_type_of(s), s.repo_id);
    if (auto commit = rc.resolve_offline(s.revision)) {
      needed.emplace(std::make_pair(rc.folder_name(), *commit), s.id);
    }
  }
  std::vector<CleanResult> out;
  for (const auto& spec : selected) {
    CleanResult r;
    r.id = spec.id;
    cache::RepoCache rc(m_cache_dir, repo_type_of(spec), spec.repo_id);
    auto commit = rc.resolve_offline(spec.revision);
    if (!commit || !fs::exists(rc.snapshot_dir(*commit))) {
      r.kept.push_back("not in the cache");
      out.push_back(std::move(r));
      continue;
    }
    if (auto it = needed.find({rc.folder_name(), *commit}); it != needed.end()) {
      r.kept.push_back(
          fmt::format("snapshot {} is also used by model '{}'", commit->substr(0, 12), it->second));
      out.push_back(std::move(r));
      continue;
    }
    std::set<std::string> used;
    collect_linked_blobs(rc.snapshot_dir(*commit), used);
    std::error_code ec;
    fs::remove_all(rc.snapshot_dir(*commit), ec);
    r.removed.push_back(rc.snapshot_dir(*commit));
    // Every ref that points at the removed commit would dangle (a tag on the same commit, say).
    for (auto it = fs::recursive_directory_iterator(rc.refs_dir(), ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file()) {
        auto content = util::read_file_if_exists(it->path());
        if (content && content->find(*commit) == 0) {
          fs::remove(it->path(), ec);
          r.removed.push_back(it->path());
        }
      }
    }
    fs::remove(rc.tree_cache_path(*commit), ec);
    fs::remove_all(rc.repo_dir() / ".no_exist" / *commit, ec);
    std::set<std::string> still_used;
    for (auto it = fs::directory_iterator(rc.snapshots_dir(), ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      collect_linked_blobs(it->path(), still_used);
    }
    for (const auto& etag : used) {
      if (still_used.count(etag) || cache::etag_error(etag)) {
        continue;
      }
      const fs::path blob = rc.blob_path(etag);
      // A download of this blob holds its lock: it is in use, leave it.
      util::FileLock lock(rc.lock_path(etag));
      if (!lock.try_lock()) {
        r.kept.push_back(fmt::format("blob {} is in use by a download", etag));
        continue;
      }
      const auto size = fs::file_size(blob, ec);
      if (!ec && fs::remove(blob, ec)) {
        r.freed += size;
        r.removed.push_back(blob);
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

fs::path ModelManager::default_manifest_path() const
{
  fs::path p = util::expand_path(m_config.manifest, util::Env::process());
  return p.is_absolute() ? p : fs::absolute(m_config.path).parent_path() / p;
}

fs::path ModelManager::default_lock_path() const
{
  return fs::absolute(m_config.path).parent_path() / "modelmgr.lock";
}

SyncReport ensure_models(const fs::path& config_path)
{
  auto mm = ModelManager::from_config(config_path);
  SyncReport report = mm.ensure_all();
  mm.write_manifest(report, mm.default_manifest_path());
  return report;
}

bool is_cached(const ModelSpec& spec, const fs::path& cache_dir)
{
  return check_spec(spec, cache_dir, fs::current_path(), VerifyLevel::none).state == CacheState::cached;
}

fs::path get_model_path(const ModelSpec& spec, const fs::path& cache_dir)
{
  auto c = check_spec(spec, cache_dir, fs::current_path(), VerifyLevel::none);
  if (c.state != CacheState::cached) {
    throw MissingModelError(fmt::format("model '{}' ({} at '{}') is {} in the cache {}", spec.id,
                                        spec.repo_id, spec.revision, to_string(c.state), cache_dir.string()),
                            fmt::format("run `modelmgr sync --model {}` with network access", spec.id));
  }
  return c.path;
}

fs::path download_model(const ModelSpec& spec, const fs::path& cache_dir)
{
  return ensure_spec(spec, cache_dir, fs::current_path(), VerifyLevel::size, {}).path;
}

std::vector<FileProblem> verify_model(const fs::path& path, VerifyLevel level)
{
  std::vector<FileProblem> problems;
  const fs::path meta_root = path / ".cache" / "huggingface" / "download";
  std::error_code ec;
  if (fs::is_directory(meta_root)) {
    // A local_dir: each file's etag is in .cache/huggingface/download/<path>.metadata ("commit\netag\n…").
    for (auto it = fs::recursive_directory_iterator(meta_root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!it->is_regular_file() || name.size() <= 9 || name.substr(name.size() - 9) != ".metadata") {
        continue;
      }
      const std::string rel = fs::relative(it->path(), meta_root).generic_string();
      const std::string repo_path = rel.substr(0, rel.size() - 9);
      auto text = util::read_file_if_exists(it->path()).value_or("");
      const auto l1 = text.find('\n');
      const auto l2 = l1 == std::string::npos ? std::string::npos : text.find('\n', l1 + 1);
      const std::string etag = l2 == std::string::npos ? std::string() : text.substr(l1 + 1, l2 - l1 - 1);
      if (auto p =
              check_file(path / repo_path, repo_path, etag, std::nullopt, std::nullopt, level, nullptr)) {
        problems.push_back(std::move(*p));
      }
    }
    return problems;
  }
  // A snapshot folder: sizes come from the tree listing when it is cached (trees/<commit>.json).
  std::map<std::string, cache::TreeFile> by_path;
  const fs::path tree_file =
      path.parent_path().parent_path() / "trees" / (path.filename().string() + ".json");
  if (auto text = util::read_file_if_exists(tree_file)) {
    if (auto tree = cache::parse_tree_cache_json(*text)) {
      for (auto& f : *tree) {
        by_path.emplace(f.path, f);
      }
    }
  }
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) {
      continue;
    }
    // Lexically: fs::relative would follow the snapshot's symlink to ../../blobs/<etag>.
    const std::string repo_path = it->path().lexically_relative(path).generic_string();
    std::string etag;
    std::optional<std::uint64_t> size;
    if (auto f = by_path.find(repo_path); f != by_path.end()) {
      etag = f->second.etag();
      size = f->second.size;
    }
    if (auto p = check_file(it->path(), repo_path, etag, size, std::nullopt, level, nullptr)) {
      problems.push_back(std::move(*p));
    }
  }
  return problems;
}

} // namespace modelmgr
