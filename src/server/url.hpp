#pragma once
// Parsing of what a client sends to `modelmgr serve`: request targets (percent-decoding that refuses what
// could escape the cache), query strings, form bodies, the Range header, and the Hub's URL shapes
// (hub-protocol.md §1): /api/{models|datasets|spaces}/{repo}[/revision/{rev}|/tree/{rev}[/{path}]|
// /paths-info/{rev}|/refs] and /[{datasets|spaces}/]{repo}/resolve/{rev}/{path}. Pure functions.

#include "cache/paths.hpp"
#include "net/http.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelmgr::server {

// Percent-decodes `s` ('+' stays '+'). Returns nullopt for a malformed escape ("%zz", "%4") or a decoded
// NUL: a server must not guess what such a name meant.
std::optional<std::string> percent_decode(std::string_view s);
// Encodes everything but RFC 3986 unreserved characters (and '/' when keep_slash): the client's encoder, so
// that the mirror writes names exactly as modelmgr requests them.
using net::percent_encode;

// The pairs of a query string or an application/x-www-form-urlencoded body ('+' is a space); pairs with a
// malformed escape are dropped.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text);
// The value of the first `key` in the query, or nullopt.
std::optional<std::string> query_value(std::string_view query, std::string_view key);
// Hub booleans: "true"/"True"/"1" (httpx and requests spell them differently).
bool truthy(std::string_view value) noexcept;

// Returns why `path` cannot name a file inside a repo, or nullopt. Refused: empty, absolute, a backslash,
// NUL or other control characters, empty "." or ".." segments. (The Hub allows none of these either.)
std::optional<std::string> repo_path_error(std::string_view path);

struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0; // inclusive
  std::uint64_t length() const noexcept { return last - first + 1; }
};
enum class RangeResult { none, ok, unsatisfiable, ignored };
// Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` against a body of `size` bytes (RFC 9110 §14.1.2:
// `last` is clamped to size-1; `first` >= size is unsatisfiable). Several ranges, other units or garbage
// are "ignored" (the server may answer 200 with the whole body).
RangeResult parse_range(std::string_view header, std::uint64_t size, ByteRange& out);

// What a request target asks for.
enum class RouteKind {
  repo_info,  // GET /api/{type}s/{repo}[/revision/{rev}]
  tree,       // GET /api/{type}s/{repo}/tree/{rev}[/{path}]
  paths_info, // POST /api/{type}s/{repo}/paths-info/{rev}
  refs,       // GET /api/{type}s/{repo}/refs
  resolve,    // HEAD|GET /[{datasets|spaces}/]{repo}/resolve/{rev}/{path}
  not_found,  // no route matches (404 page)
  bad_request // a route, but a malformed or unsafe part (400)
};

struct Route {
  RouteKind kind = RouteKind::not_found;
  cache::RepoType type = cache::RepoType::model;
  std::string repo_id;
  // Decoded path segments after the revision position (revision and path are split later, against the
  // refs the cache knows: a client may send "refs/pr/1" encoded as one segment or raw as three).
  std::vector<std::string> rest;
  std::string query; // raw, without '?'
  std::string error; // bad_request: why
};

// Splits and decodes a request target. The repo id is checked with cache::repo_id_error; every decoded
// segment must be free of NUL, '/' (an encoded "%2F" inside a path segment is kept as part of the
// revision only), and the file path part must pass repo_path_error (checked by the handler once the
// revision is known).
Route parse_target(std::string_view target);

// Splits `rest` into (revision, remainder) for each possible split, shortest revision first:
// ["refs%2Fpr%2F1" decoded, "a.txt"] → ("refs/pr/1", "a.txt"); ["refs","pr","1","a.txt"] → ("refs",
// "pr/1/a.txt"), ("refs/pr", "1/a.txt"), ("refs/pr/1", "a.txt"). The remainder may be empty.
std::vector<std::pair<std::string, std::string>> revision_splits(const std::vector<std::string>& rest);

// A Host header value fit to build absolute URLs from (Link headers), or nullopt: letters, digits and
// ".-:[]" only, at most 255 bytes.
std::optional<std::string> safe_host(std::string_view host);

} // namespace modelmgr::server
