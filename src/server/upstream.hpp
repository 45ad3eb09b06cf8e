#pragma once
// Pull-through for `modelmgr serve --upstream URL`: what the cache lacks is fetched from the upstream Hub
// through the normal verified download path (modelmgr::pull, the library behind `modelmgr pull`) into the
// cache, and then served from there. So a byte that fails verification never reaches the cache and is never
// served; concurrent requests for the same file wait for one shared download (single flight); refs are
// refreshed from the upstream at most once per refresh interval, and the cache's own ref is used when the
// upstream cannot be reached.
//
// The upstream token comes from the usual places (HF_TOKEN, the token file) and is only sent to the upstream;
// nothing of the upstream's answers (headers, tokens) is passed to clients.

#include "cache/paths.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace modelmgr::server {

struct UpstreamOptions {
  std::string endpoint; // e.g. https://huggingface.co
  std::chrono::seconds refresh_interval{60};
  // Files larger than this are not waited for on a GET miss: the client is redirected (302) to the upstream
  // while the mirror fetches the file in the background (first byte at once, but the client needs to reach
  // the upstream, and each redirected client downloads from it too). Unset: every GET waits for the
  // verified file (one upstream download however many clients ask).
  std::optional<std::uint64_t> redirect_above;
};

class Upstream {
public:
  // `cancel` (may be null) aborts downloads in flight when set (serve stopping).
  Upstream(std::filesystem::path cache_root, UpstreamOptions options,
           const std::atomic<bool>* cancel = nullptr);
  ~Upstream();
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  // Points refs/<revision> at the upstream's commit, unless it was asked less than refresh_interval ago (or
  // `revision` is a commit hash). Upstream failures are swallowed: the cache's ref (if any) stays in use.
  void refresh_ref(cache::RepoType type, const std::string& repo_id, const std::string& revision) noexcept;
  // Writes trees/<commit>.json from the upstream's listing when the cache has none. Failures are swallowed.
  void ensure_listing(cache::RepoType type, const std::string& repo_id, const std::string& commit) noexcept;
  // Downloads `path` of `commit` into the cache (verified), shared by concurrent callers for the same file.
  // Returns nullopt on success, else why it failed (for a 502 message; never contains a token).
  std::optional<std::string> fetch(cache::RepoType type, const std::string& repo_id,
                                   const std::string& commit, const std::string& path) noexcept;

  // Starts fetch() on a background thread unless that file is already being fetched.
  void start_fetch(cache::RepoType type, const std::string& repo_id, const std::string& commit,
                   const std::string& path) noexcept;
  // Whether a GET miss of a file of `size` bytes is redirected to the upstream (see redirect_above).
  bool redirects(std::uint64_t size) const noexcept
  {
    return m_options.redirect_above && size > *m_options.redirect_above;
  }
  // The upstream's resolve URL of a file (for the redirect).
  std::string resolve_url(cache::RepoType type, const std::string& repo_id, const std::string& commit,
                          const std::string& path) const;

  const std::string& endpoint() const noexcept { return m_options.endpoint; }
  // Downloads started (one per single flight), for tests and logs.
  std::uint64_t fetches_started() const noexcept { return m_fetches.load(); }

private:
  struct Impl;
  std::filesystem::path m_root;
  UpstreamOptions m_options;
  const std::atomic<bool>* m_cancel;
  std::unique_ptr<Impl> m_impl;
  std::atomic<std::uint64_t> m_fetches{0};
  std::mutex m_mutex;
  std::map<std::string, std::chrono::steady_clock::time_point> m_refreshed;
  std::map<std::string, std::shared_future<std::optional<std::string>>> m_in_flight;
  // Background fetches (redirect mode): finished ones are joined by the next start_fetch, the rest by the
  // destructor (downloads stop on `cancel`).
  struct Background {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Background> m_background;
};

} // namespace modelmgr::server
