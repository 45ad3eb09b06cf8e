#include "server/upstream.hpp"

#include "modelmgr/pull.hpp"

#include "cache/repo_cache.hpp"
#include "hub/http_options.hpp"
#include "hub/hub_client.hpp"
#include "net/http.hpp"
#include "server/url.hpp"
#include "util/env.hpp"

#include <fmt/format.h>

namespace modelmgr::server {

struct Upstream::Impl {
  net::Client http;
  hub::HubClient hub;
  Impl(const UpstreamOptions& o, const std::atomic<bool>* cancel)
      // The CA bundle variables pull honours: an upstream behind a private CA works as it does for pull.
      : http(hub::http_options_from_env(util::Env::process(), "modelmgr-serve")), hub(config(o), http, cancel)
  {
  }
  static hub::HubConfig config(const UpstreamOptions& o)
  {
    hub::HubConfig c = hub::hub_config_from_env(util::Env::process());
    c.endpoint = hub::normalize_endpoint(o.endpoint);
    return c;
  }
};

Upstream::Upstream(std::filesystem::path cache_root, UpstreamOptions options, const std::atomic<bool>* cancel)
    : m_root(std::move(cache_root)), m_options(std::move(options)), m_cancel(cancel),
      m_impl(std::make_unique<Impl>(m_options, cancel))
{
}

Upstream::~Upstream()
{
  std::vector<Background> threads;
  {
    std::lock_guard lock(m_mutex);
    threads.swap(m_background);
  }
  for (auto& b : threads) {
    if (b.thread.joinable()) {
      b.thread.join();
    }
  }
}

void Upstream::start_fetch(cache::RepoType type, const std::string& repo_id, const std::string& commit,
                           const std::string& path) noexcept
{
  try {
    const std::string key = fmt::format("{}:{}@{}/{}", cache::to_string(type), repo_id, commit, path);
    std::lock_guard lock(m_mutex);
    if (m_in_flight.contains(key)) {
      return;
    }
    // Join what has finished, so the list stays as long as the fetches in flight.
    std::erase_if(m_background, [](Background& b) {
      if (!b.done->load()) {
        return false;
      }
      b.thread.join();
      return true;
    });
    auto done = std::make_shared<std::atomic<bool>>(false);
    // fetch() catches everything: no exception leaves the thread.
    std::thread t([this, type, repo_id, commit, path, done] {
      fetch(type, repo_id, commit, path);
      done->store(true);
    });
    m_background.push_back({std::move(t), std::move(done)});
  } catch (...) {
    // No thread: the next request tries again.
  }
}

std::string Upstream::resolve_url(cache::RepoType type, const std::string& repo_id, const std::string& commit,
                                  const std::string& path) const
{
  std::string base = m_options.endpoint;
  while (base.ends_with('/')) {
    base.pop_back();
  }
  return fmt::format("{}/{}{}/resolve/{}/{}", base, cache::url_prefix(type), repo_id, commit,
                     percent_encode(path, true));
}

void Upstream::refresh_ref(cache::RepoType type, const std::string& repo_id,
                           const std::string& revision) noexcept
{
  try {
    if (cache::is_commit_hash(revision) || cache::revision_error(revision) || cache::repo_id_error(repo_id)) {
      return;
    }
    const std::string key = fmt::format("{}:{}@{}", cache::to_string(type), repo_id, revision);
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(m_mutex);
      auto it = m_refreshed.find(key);
      if (it != m_refreshed.end() && now - it->second < m_options.refresh_interval) {
        return;
      }
      m_refreshed[key] = now;
    }
    auto info = m_impl->hub.revision_info(hub::RepoId{type, repo_id}, revision);
    cache::RepoCache rc(m_root, type, repo_id, util::MapEnv{});
    rc.ensure_layout();
    rc.write_ref(revision, info.sha);
  } catch (...) {
    // Unreachable upstream, unknown repo or revision: answer from the cache as it is.
  }
}

void Upstream::ensure_listing(cache::RepoType type, const std::string& repo_id,
                              const std::string& commit) noexcept
{
  try {
    cache::RepoCache rc(m_root, type, repo_id, util::MapEnv{});
    std::error_code ec;
    if (!cache::is_commit_hash(commit) || std::filesystem::exists(rc.tree_cache_path(commit), ec)) {
      return; // (a listing is never rewritten: a commit's files do not change)
    }
    auto files = m_impl->hub.list_files(hub::RepoId{type, repo_id}, commit);
    rc.ensure_layout();
    rc.write_tree_cache(commit, files);
  } catch (...) {
    // The listing stays what the snapshot folder holds.
  }
}

std::optional<std::string> Upstream::fetch(cache::RepoType type, const std::string& repo_id,
                                           const std::string& commit, const std::string& path) noexcept
{
  try {
    const std::string key = fmt::format("{}:{}@{}/{}", cache::to_string(type), repo_id, commit, path);
    std::shared_future<std::optional<std::string>> shared;
    std::promise<std::optional<std::string>> promise;
    bool leader = false;
    {
      std::lock_guard lock(m_mutex);
      if (auto it = m_in_flight.find(key); it != m_in_flight.end()) {
        shared = it->second;
      } else {
        shared = promise.get_future().share();
        m_in_flight.emplace(key, shared);
        leader = true;
      }
    }
    if (!leader) {
      return shared.get();
    }
    ++m_fetches;
    std::optional<std::string> outcome;
    try {
      PullOptions o;
      o.repo_id = repo_id;
      o.repo_type = std::string(cache::to_string(type));
      o.revision = commit;
      o.files = {path};
      o.cache_dir = m_root;
      o.endpoint = m_options.endpoint;
      o.offline = false;
      o.cancel = m_cancel;
      modelmgr::pull(o);
    } catch (const std::exception& e) {
      outcome = fmt::format("the upstream download of {} failed: {}", path, e.what());
    }
    promise.set_value(outcome);
    std::lock_guard lock(m_mutex);
    m_in_flight.erase(key);
    return outcome;
  } catch (const std::exception& e) {
    return std::string(e.what());
  } catch (...) {
    return std::string("the upstream download failed");
  }
}

} // namespace modelmgr::server
