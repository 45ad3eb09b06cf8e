// The record of a sync (model_manifest.json) and the lock file (modelmgr.lock): formats in docs/config.md.

#include "modelmgr/model_manager.hpp"

#include "cache/paths.hpp"
#include "hub/http_options.hpp"
#include "hub/hub_client.hpp"
#include "manager/config.hpp"
#include "manager/model_set_internal.hpp"
#include "net/http.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"
#include "util/time.hpp"

#include <map>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* k_manifest_format = "modelmgr-manifest";
constexpr const char* k_lock_format = "modelmgr-lock";
constexpr int k_format_version = 1;

// `"load": {"ok", "parameter_count", "checked_at"}`, plus `"errors"` naming each file that does not load.
json load_json(const LoadResult& load)
{
  json j = {{"ok", load.ok}, {"parameter_count", load.parameter_count}, {"checked_at", load.checked_at}};
  if (!load.ok) {
    json errors = json::array();
    for (const auto& f : load.files) {
      if (!f.ok) {
        errors.push_back(manager::load_failure_message(f));
      }
    }
    j["errors"] = std::move(errors);
  }
  return j;
}

json to_json(const ModelResult& m)
{
  json j = {{"id", m.id},
            {"repo_id", m.repo_id},
            {"repo_type", m.repo_type},
            {"revision", m.revision},
            {"status", to_string(m.status)}};
  if (m.status == ModelStatus::failed) {
    j["error"] = m.reason;
    if (m.load) {
      j["load"] = load_json(*m.load);
    }
    return j;
  }
  j["commit"] = m.commit;
  j["path"] = m.path.string();
  j["verify"] = std::string(to_string(m.verify));
  j["verified_at"] = m.verified_at.empty() ? json(nullptr) : json(m.verified_at);
  json files = json::array();
  for (const auto& f : m.files) {
    files.push_back({{"path", f.path},
                     {"size", f.size},
                     {"etag", f.etag},
                     {"etag_kind", f.etag_kind},
                     {"sha256", f.sha256 ? json(*f.sha256) : json(nullptr)},
                     {"local_path", f.local_path.string()}});
  }
  j["files"] = std::move(files);
  if (m.load) {
    j["load"] = load_json(*m.load);
  }
  return j;
}

void write_json_atomically(const fs::path& path, const json& j, const char* what)
{
  try {
    util::create_directories(path.parent_path());
    util::atomic_write_file(path, j.dump(2) + "\n");
  } catch (const std::system_error& e) {
    throw DownloadError(ErrorKind::disk,
                        fmt::format("cannot write the {} {}: {}", what, path.string(), e.what()),
                        "check the folder's permissions and free space");
  }
}

struct HubSession {
  explicit HubSession(const EnsureOptions& o)
      : http(hub::http_options_from_env(util::Env::process())), hub(config(o), http, o.cancel)
  {
  }
  static hub::HubConfig config(const EnsureOptions& o)
  {
    hub::HubConfig c = hub::hub_config_from_env(util::Env::process());
    if (o.endpoint) {
      c.endpoint = hub::normalize_endpoint(*o.endpoint);
    }
    if (o.token) {
      c.token = *o.token;
    }
    return c;
  }
  net::Client http;
  hub::HubClient hub;
};

bool offline(const EnsureOptions& o)
{
  if (o.offline) {
    return *o.offline;
  }
  const auto& env = util::Env::process();
  if (auto v = env.get("HF_HUB_OFFLINE"); v && !v->empty()) {
    return util::is_truthy(*v);
  }
  return util::env_bool(env, "TRANSFORMERS_OFFLINE");
}

std::string resolve_commit(HubSession& s, const ModelSpec& spec)
{
  if (cache::is_commit_hash(spec.revision)) {
    return spec.revision;
  }
  return s.hub.revision_info(hub::RepoId{manager::repo_type_of(spec), spec.repo_id}, spec.revision).sha;
}

} // namespace

void ModelManager::write_manifest(const SyncReport& report, const fs::path& path) const
{
  // Entries of configured models this run did not touch (sync --model X) stay as they were.
  std::map<std::string, json> previous;
  try {
    if (auto text = util::read_file_if_exists(path)) {
      auto old = json::parse(*text);
      for (const auto& m : old.at("models")) {
        previous[m.at("id").get<std::string>()] = m;
      }
    }
  } catch (const std::exception&) {
    previous.clear(); // unreadable or foreign: rewrite from scratch
  }
  std::map<std::string, json> current;
  for (const auto& m : report.models) {
    current[m.id] = to_json(m);
  }
  json models = json::array();
  for (const auto& spec : m_config.models) {
    if (auto it = current.find(spec.id); it != current.end()) {
      models.push_back(it->second);
    } else if (auto old = previous.find(spec.id); old != previous.end()) {
      models.push_back(old->second);
    }
  }
  json j = {{"format", k_manifest_format},
            {"version", k_format_version},
            {"config", fs::absolute(m_config.path).string()},
            {"cache_dir", m_cache_dir.string()},
            {"generated_at", util::format_iso8601_utc(std::chrono::system_clock::now())},
            {"models", std::move(models)}};
  write_json_atomically(path, j, "manifest");
}

LockFile ModelManager::resolve_lock(const EnsureOptions& options) const
{
  HubSession session(options);
  LockFile lock;
  for (const auto& spec : manager::select_models(m_config, options.ids)) {
    lock.models.push_back(
        {spec.id, spec.repo_id, spec.repo_type, spec.revision, resolve_commit(session, spec)});
  }
  return lock;
}

std::map<std::string, std::string> ModelManager::check_lock(const LockFile& lock,
                                                            const EnsureOptions& options) const
{
  const auto specs = manager::select_models(m_config, options.ids);
  std::vector<std::string> stale;
  for (const auto& spec : specs) {
    const LockedModel* entry = lock.find(spec.id);
    if (!entry) {
      stale.push_back(fmt::format("model '{}' is not in the lock file", spec.id));
    } else if (entry->repo_id != spec.repo_id || entry->repo_type != spec.repo_type ||
               entry->revision != spec.revision) {
      stale.push_back(fmt::format("model '{}': the lock has {} {}@{}, the config {} {}@{}", spec.id,
                                  entry->repo_type, entry->repo_id, entry->revision, spec.repo_type,
                                  spec.repo_id, spec.revision));
    }
  }
  if (!stale.empty()) {
    throw ConfigurationError(
        fmt::format("the lock file does not match the config: {}", fmt::join(stale, "; ")),
        "run `modelmgr lock` to update it");
  }
  std::map<std::string, std::string> commits;
  std::vector<std::string> moved;
  std::optional<HubSession> session;
  for (const auto& spec : specs) {
    const LockedModel& entry = *lock.find(spec.id);
    commits[spec.id] = entry.commit;
    if (cache::is_commit_hash(spec.revision) || offline(options)) {
      continue; // a commit cannot move; offline there is nothing to ask
    }
    if (!session) {
      session.emplace(options);
    }
    const std::string now = resolve_commit(*session, spec);
    if (now != entry.commit) {
      moved.push_back(fmt::format("model '{}' ({}): '{}' is locked at {} but now points at {}", spec.id,
                                  spec.repo_id, spec.revision, entry.commit, now));
    }
  }
  if (!moved.empty()) {
    throw ConfigurationError(fmt::format("refusing to sync --locked: {}", fmt::join(moved, "; ")),
                             "run `modelmgr lock` to accept the new commits, or sync without --locked");
  }
  return commits;
}

LockFile read_lock_file(const fs::path& path)
{
  std::optional<std::string> text;
  try {
    text = util::read_file_if_exists(path);
  } catch (const std::system_error& e) {
    throw ConfigurationError(fmt::format("cannot read the lock file {}: {}", path.string(), e.what()));
  }
  if (!text) {
    throw ConfigurationError(fmt::format("no lock file at {}", path.string()),
                             "run `modelmgr lock` first to record the commits");
  }
  LockFile lock;
  try {
    auto j = json::parse(*text);
    if (j.at("format") != k_lock_format || j.at("version") != k_format_version) {
      throw std::runtime_error("unknown format or version");
    }
    for (const auto& [id, m] : j.at("models").items()) {
      LockedModel e{id, m.at("repo_id"), m.at("repo_type"), m.at("revision"), m.at("commit")};
      if (!cache::is_commit_hash(e.commit)) {
        throw std::runtime_error(fmt::format("model '{}': '{}' is not a commit", id, e.commit));
      }
      lock.models.push_back(std::move(e));
    }
  } catch (const std::exception& e) {
    throw ConfigurationError(fmt::format("invalid lock file {}: {}", path.string(), e.what()),
                             "delete it and run `modelmgr lock` again");
  }
  return lock;
}

void write_lock_file(const LockFile& lock, const fs::path& path)
{
  json models = json::object();
  for (const auto& m : lock.models) {
    models[m.id] = {
        {"repo_id", m.repo_id}, {"repo_type", m.repo_type}, {"revision", m.revision}, {"commit", m.commit}};
  }
  json j = {{"format", k_lock_format}, {"version", k_format_version}, {"models", std::move(models)}};
  write_json_atomically(path, j, "lock file");
}

} // namespace modelmgr
