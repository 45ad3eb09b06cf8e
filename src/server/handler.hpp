#pragma once
// The Hub protocol over a cache: turns one Request into one Response (hub-protocol.md §1-§2, the answer
// shapes of src/emulator/hub_emulator.cpp, which mirror huggingface.co). No sockets, no printing, so the
// whole protocol is unit-tested by calling handle().
//
// Every file is answered directly with 200/206 (no redirect to a CDN): ETag is the blob name (quoted),
// LFS files add X-Linked-Etag and X-Linked-Size, every answer about a revision carries X-Repo-Commit, and
// errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, BadRequest) and
// X-Error-Message as the official clients expect.

#include "server/cache_view.hpp"
#include "server/http_types.hpp"
#include "server/url.hpp"

#include <cstddef>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::server {

struct HandlerOptions {
  // Tree API page sizes (the Hub's: ~1000 entries, ~50 with expand=true).
  std::size_t tree_page = 1000;
  std::size_t tree_page_expand = 50;
  // When set, a GET of a blob is answered with `X-Accel-Redirect: <prefix>/<commit>/<repo folder>/<etag>`
  // and no body, for nginx to send the file itself (deploy/nginx/modelmgr-serve.conf). HEAD requests,
  // copies in snapshot folders and every JSON answer are still answered here.
  std::string accel_redirect_prefix;
  // sha256 (hex) of the client tokens allowed in; empty = no token needed. Only the hashes are kept.
  std::set<std::string> client_token_hashes;
};

class Upstream;

class Handler {
public:
  // With `upstream` (pull-through), what the cache lacks is fetched first: refs (at most once per refresh
  // interval), listings, and file bytes (a GET waits for the verified file; a HEAD is answered from the
  // listing). handle() may then block on the network: call it off the socket threads.
  Handler(const CacheView& cache, HandlerOptions options, Upstream* upstream = nullptr);

  // Answers `request`. Never throws: an unexpected failure becomes a 500 naming what failed.
  Response handle(const Request& request) const noexcept;

  const HandlerOptions& options() const noexcept { return m_options; }
  bool may_block() const noexcept { return m_upstream != nullptr; }

private:
  Response dispatch(const Request& request) const;
  Response repo_info(const Request& request, const Route& route, const RepoView& repo) const;
  Response tree(const Request& request, const Route& route, const RepoView& repo) const;
  Response paths_info(const Request& request, const Route& route, const RepoView& repo) const;
  Response refs(const RepoView& repo) const;
  Response resolve(const Request& request, const Route& route, const RepoView& repo) const;
  Response serve_file(const Request& request, const RepoView& repo, const std::string& commit,
                      OpenedFile opened) const;

  struct Resolved {
    std::string commit;
    std::string revision;
    std::string remainder;
  };
  // The first split of `rest` whose revision the cache knows (after asking the upstream, if any).
  std::optional<Resolved> resolve_rest(const RepoView& repo, const std::vector<std::string>& rest) const;

  const CacheView& m_cache;
  HandlerOptions m_options;
  Upstream* m_upstream = nullptr;
};

// Builds the Hub's error answer: status, X-Error-Code (omitted when empty), X-Error-Message and the JSON
// body {"error": message}.
Response error_response(int status, std::string_view code, const std::string& message);

} // namespace modelmgr::server
