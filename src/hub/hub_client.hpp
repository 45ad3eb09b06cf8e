#pragma once
// Hugging Face Hub semantics on top of net/: endpoint and token, URL shapes, the metadata HEAD with its
// relative-redirect loop, revision and tree APIs, and the mapping of Hub errors (X-Error-Code) to
// modelmgr's error classes with messages that say what to do. See shared/docs/hub-protocol.md §1-§6.

#include "cache/paths.hpp"
#include "cache/tree.hpp"
#include "hub/hub_json.hpp"
#include "net/http.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::util {
class Env;
}

namespace modelmgr::hub {

inline constexpr std::string_view k_default_endpoint = "https://huggingface.co";

struct HubConfig {
  std::string endpoint = std::string(k_default_endpoint); // no trailing '/'
  std::optional<std::string> token;
  std::chrono::milliseconds etag_timeout{10'000};     // HF_HUB_ETAG_TIMEOUT: metadata and API calls
  std::chrono::milliseconds download_timeout{10'000}; // HF_HUB_DOWNLOAD_TIMEOUT: stall timeout of GETs
  int max_retries = 5;                                // consecutive transient failures before giving up
  std::chrono::milliseconds retry_base{1'000};        // first back-off step (doubles, capped at 8 steps)
};

// Token lookup in the Python client's order: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, the file HF_TOKEN_PATH or
// $HF_HOME/token. Values are cleaned (CR/LF removed, whitespace stripped); empty means none.
std::optional<std::string> find_token(const util::Env& env);
// Endpoint, token and timeouts from the environment (HF_ENDPOINT, HF_HUB_ETAG_TIMEOUT,
// HF_HUB_DOWNLOAD_TIMEOUT, MODEL_DOWNLOAD_TIMEOUT, HF_HUB_DISABLE_IMPLICIT_TOKEN, MODELMGR_RETRY_BASE_MS).
HubConfig hub_config_from_env(const util::Env& env);
// Removes the trailing '/' and validates the scheme; throws ConfigurationError on a bad endpoint.
std::string normalize_endpoint(std::string_view endpoint);

struct RepoId {
  cache::RepoType type = cache::RepoType::model;
  std::string id;
  // "model 'org/name'" for messages.
  std::string describe() const;
};

bool is_commit_hash(std::string_view revision) noexcept;

struct FileMetadata {
  std::string commit; // X-Repo-Commit
  std::string etag;   // normalised X-Linked-Etag, else ETag
  std::uint64_t size = 0;
  std::string location; // where to GET the bytes (CDN URL or resolve-cache URL)
};

class HubClient {
public:
  HubClient(HubConfig config, net::Client& http, const std::atomic<bool>* cancel = nullptr);

  const HubConfig& config() const noexcept { return m_config; }
  net::Client& http() noexcept { return m_http; }
  const std::atomic<bool>* cancel_flag() const noexcept { return m_cancel; }

  // {endpoint}/{prefix}{repo}/resolve/{revision as one encoded segment}/{path, '/' kept}
  std::string resolve_url(const RepoId& repo, std::string_view revision, std::string_view path) const;
  // {endpoint}/api/{type}s/{repo}{suffix}
  std::string api_url(const RepoId& repo, std::string_view suffix) const;

  // HEAD on the resolve URL, following relative redirects (and absolute ones to the endpoint's own host).
  // Throws MissingModelError / DownloadError(auth|network) with a message naming repo, revision and file.
  FileMetadata file_metadata(const RepoId& repo, std::string_view revision, std::string_view path);
  // The same, but a missing file (EntryNotFound) returns nullopt and sets `missing_commit` to the commit the
  // Hub named (for the .no_exist marker); other failures throw.
  std::optional<FileMetadata> try_file_metadata(const RepoId& repo, std::string_view revision,
                                                std::string_view path, std::string& missing_commit);
  // GET /api/{type}s/{repo}/revision/{rev}: the commit a revision points to.
  RevisionInfo revision_info(const RepoId& repo, std::string_view revision);
  // Every file of the repo at `commit` (recursive tree listing, following Link pagination). A next link
  // that points back to a page already fetched, or to another host, is a BadResponseError.
  std::vector<cache::TreeFile> list_files(const RepoId& repo, std::string_view commit);

  // Headers for a request to `url`: the token only when the URL is on the endpoint's origin.
  std::vector<std::string> headers_for(std::string_view url) const;
  // Performs a metadata/API request with retries on transient failures (honouring Retry-After).
  net::Response request_with_retries(net::Request request, std::string_view what);
  // Maps a failed response to the right exception. `path` may be empty.
  [[noreturn]] void throw_for_response(const net::Response& response, const RepoId& repo,
                                       std::string_view revision, std::string_view path) const;

  // Number of HTTP requests this client has sent (for tests and --json output).
  std::uint64_t requests_sent() const noexcept { return m_requests.load(); }
  void count_request() noexcept { ++m_requests; }

private:
  HubConfig m_config;
  net::Client& m_http;
  const std::atomic<bool>* m_cancel;
  std::string m_endpoint_origin;
  std::atomic<std::uint64_t> m_requests{0};
};

// Strips W/ and quotes from an ETag value.
std::string normalize_etag(std::string_view etag);
// Message for a transport failure ("cannot connect to http://…: Connection refused").
std::string describe_transport_error(const net::Response& r, std::string_view url);
// Sleeps for `d` unless `cancel` becomes true first; returns false when cancelled.
bool interruptible_sleep(std::chrono::milliseconds d, const std::atomic<bool>* cancel);
// Back-off before retry number `attempt` (1-based): Retry-After when given, else base·2^(attempt-1) capped
// at 8·base, with ±20 % jitter.
std::chrono::milliseconds backoff_delay(int attempt, std::chrono::milliseconds base, const net::Response* r);

} // namespace modelmgr::hub
