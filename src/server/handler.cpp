#include "server/handler.hpp"

#include "server/upstream.hpp"
#include "util/hash.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::server {

using Json = nlohmann::json;

namespace {

constexpr std::string_view k_json_type = "application/json; charset=utf-8";
constexpr std::string_view k_expose_headers =
    "X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,X-Total-Count,ETag,Link,Accept-Ranges,"
    "Content-Range,X-Linked-Size,X-Linked-ETag,X-Xet-Hash";

Response json_response(const Json& body)
{
  Response r;
  r.status = 200;
  r.set_header("Content-Type", std::string(k_json_type));
  // The JSON may hold names that are not valid UTF-8 only if the cache does; dump replaces them.
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

Response not_found_page()
{
  return error_response(404, "", "Sorry, we can't find the page you are looking for.");
}

Response repo_not_found()
{
  return error_response(404, "RepoNotFound", "Repository not found in this mirror's cache");
}

Response revision_not_found(const std::string& revision)
{
  return error_response(404, "RevisionNotFound", fmt::format("Invalid rev id: {}", revision));
}

std::string tree_oid(std::string_view commit, std::string_view path)
{
  // The cache does not hold git tree objects: a stable stand-in (no client reads directory oids).
  return util::git_blob_sha1_hex(fmt::format("tree {}:{}", commit, path));
}

Json file_entry(const CachedFile& f, const std::string& commit, bool expand)
{
  Json e;
  e["type"] = "file";
  e["oid"] = f.blob_id;
  e["size"] = f.size;
  e["path"] = f.path;
  if (f.lfs_sha256) {
    e["lfs"] = {{"oid", *f.lfs_sha256}, {"size", f.size}, {"pointerSize", f.pointer_size}};
  }
  if (f.xet_hash) {
    e["xetHash"] = *f.xet_hash;
  }
  if (expand) {
    e["lastCommit"] = {{"id", commit}, {"title", ""}, {"date", nullptr}};
  }
  return e;
}

Json dir_entry(const std::string& path, const std::string& commit, bool expand)
{
  Json e;
  e["type"] = "directory";
  e["oid"] = tree_oid(commit, path);
  e["size"] = 0;
  e["path"] = path;
  if (expand) {
    e["lastCommit"] = {{"id", commit}, {"title", ""}, {"date", nullptr}};
  }
  return e;
}

bool is_directory(const std::vector<CachedFile>& files, const std::string& path)
{
  std::string prefix = path + "/";
  auto it = std::lower_bound(files.begin(), files.end(), prefix,
                             [](const CachedFile& f, const std::string& p) { return f.path < p; });
  return it != files.end() && it->path.starts_with(prefix);
}

const CachedFile* find_file(const std::vector<CachedFile>& files, const std::string& path)
{
  auto it = std::lower_bound(files.begin(), files.end(), path,
                             [](const CachedFile& f, const std::string& p) { return f.path < p; });
  return it != files.end() && it->path == path ? &*it : nullptr;
}

std::string strip_trailing_slashes(std::string s)
{
  while (s.ends_with('/')) {
    s.pop_back();
  }
  return s;
}

bool token_allowed(const Request& request, const std::set<std::string>& hashes, bool& presented)
{
  presented = false;
  auto value = request.header("authorization");
  if (!value) {
    return false;
  }
  presented = true;
  std::string_view v = *value;
  if (v.size() < 7 || (v.substr(0, 7) != "Bearer " && v.substr(0, 7) != "bearer ")) {
    return false;
  }
  v.remove_prefix(7);
  while (v.starts_with(' ')) {
    v.remove_prefix(1);
  }
  return hashes.contains(util::sha256_hex(v));
}

std::string file_name(std::string_view path)
{
  auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

Response file_headers(const CachedFile& info, const std::string& commit)
{
  Response r;
  const std::string etag = "\"" + info.etag() + "\"";
  r.set_header("X-Repo-Commit", commit);
  r.set_header("ETag", etag);
  if (info.lfs_sha256) {
    r.set_header("X-Linked-Etag", etag);
    r.set_header("X-Linked-Size", std::to_string(info.size));
  }
  r.set_header("Accept-Ranges", "bytes");
  r.set_header("Content-Type", "application/octet-stream");
  auto name = file_name(info.path);
  r.set_header("Content-Disposition", fmt::format("inline; filename*=UTF-8''{}; filename=\"{}\";",
                                                  percent_encode(name, false), percent_encode(name, false)));
  return r;
}

} // namespace

Response error_response(int status, std::string_view code, const std::string& message)
{
  Response r;
  r.status = status;
  if (!code.empty()) {
    r.set_header("X-Error-Code", std::string(code));
  }
  r.set_header("X-Error-Message", message);
  r.set_header("Content-Type", std::string(k_json_type));
  r.body = Json{{"error", message}}.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

Handler::Handler(const CacheView& cache, HandlerOptions options, Upstream* upstream)
    : m_cache(cache), m_options(std::move(options)), m_upstream(upstream)
{
}

std::optional<Handler::Resolved> Handler::resolve_rest(const RepoView& repo,
                                                       const std::vector<std::string>& rest) const
{
  auto found = [&]() -> std::optional<Resolved> {
    for (auto& [revision, remainder] : revision_splits(rest)) {
      if (auto commit = repo.resolve(revision)) {
        return Resolved{*commit, revision, remainder};
      }
    }
    return std::nullopt;
  };
  auto resolved = found();
  if (m_upstream && !rest.empty()) {
    // A commit the cache has never seen: its listing from the upstream makes it known.
    if (!resolved && cache::is_commit_hash(rest.front())) {
      m_upstream->ensure_listing(repo.type(), repo.repo_id(), rest.front());
      resolved = found();
    }
    if (resolved) {
      m_upstream->ensure_listing(repo.type(), repo.repo_id(), resolved->commit);
    }
  }
  return resolved;
}

Response Handler::handle(const Request& request) const noexcept
{
  Response response;
  try {
    response = dispatch(request);
  } catch (const std::exception& e) {
    try {
      response = error_response(500, "", fmt::format("modelmgr serve: internal error: {}", e.what()));
    } catch (...) {
      response = Response{};
      response.status = 500;
    }
  }
  try {
    response.set_header("Access-Control-Allow-Origin", "*");
    response.set_header("Access-Control-Expose-Headers", std::string(k_expose_headers));
  } catch (...) {
    // Out of memory for two headers: the answer still goes out without them.
  }
  response.head = request.method == "HEAD";
  return response;
}

Response Handler::dispatch(const Request& request) const
{
  Route route = parse_target(request.target);
  if (route.kind == RouteKind::bad_request) {
    return error_response(400, "BadRequest", route.error);
  }
  if (route.kind == RouteKind::not_found) {
    return not_found_page();
  }
  if (!m_options.client_token_hashes.empty()) {
    bool presented = false;
    if (!token_allowed(request, m_options.client_token_hashes, presented)) {
      // The Hub's answers: a bad token is "invalid credentials"; none at all looks like a missing repo.
      return presented ? error_response(401, "", "Invalid credentials in Authorization header")
                       : error_response(401, "RepoNotFound",
                                        "Invalid username or password. This mirror needs a token: set "
                                        "HF_TOKEN to one of its client tokens.");
    }
  }
  const bool get_or_head = request.method == "GET" || request.method == "HEAD";
  if (route.kind == RouteKind::paths_info ? request.method != "POST" : !get_or_head) {
    Response r = error_response(405, "", fmt::format("{} is not allowed here", request.method));
    r.set_header("Allow", route.kind == RouteKind::paths_info ? "POST" : "GET, HEAD");
    return r;
  }
  if (m_upstream) {
    // The revision as clients send it (one encoded segment); refreshed at most once per interval.
    std::string revision = "main";
    if (!route.rest.empty()) {
      revision = route.rest.front();
      if (route.kind == RouteKind::repo_info) {
        for (std::size_t i = 1; i < route.rest.size(); ++i) {
          revision += "/" + route.rest[i];
        }
      }
    }
    if (route.kind != RouteKind::refs) {
      m_upstream->refresh_ref(route.type, route.repo_id, revision);
    }
  }
  auto repo = m_cache.repo(route.type, route.repo_id);
  if (!repo && m_upstream && !route.rest.empty() && cache::is_commit_hash(route.rest.front())) {
    // A repo the cache has never seen, asked for by commit: its listing brings the repo folder.
    m_upstream->ensure_listing(route.type, route.repo_id, route.rest.front());
    repo = m_cache.repo(route.type, route.repo_id);
  }
  if (!repo) {
    return repo_not_found();
  }
  switch (route.kind) {
  case RouteKind::repo_info: return repo_info(request, route, *repo);
  case RouteKind::tree: return tree(request, route, *repo);
  case RouteKind::paths_info: return paths_info(request, route, *repo);
  case RouteKind::refs: return refs(*repo);
  case RouteKind::resolve: return resolve(request, route, *repo);
  default: return not_found_page();
  }
}

Response Handler::repo_info(const Request&, const Route& route, const RepoView& repo) const
{
  std::string revision = "main";
  if (!route.rest.empty()) {
    revision.clear();
    for (std::size_t i = 0; i < route.rest.size(); ++i) {
      revision += (i ? "/" : "") + route.rest[i];
    }
  }
  auto commit = repo.resolve(revision);
  if (!commit && m_upstream && cache::is_commit_hash(revision)) {
    m_upstream->ensure_listing(repo.type(), repo.repo_id(), revision);
    commit = repo.resolve(revision);
  }
  if (!commit) {
    return revision_not_found(revision);
  }
  if (m_upstream) {
    m_upstream->ensure_listing(repo.type(), repo.repo_id(), *commit);
  }
  const bool blobs = truthy(query_value(route.query, "blobs").value_or(""));
  auto files = repo.files(*commit);
  Json j;
  const std::string& id = repo.repo_id();
  j["_id"] = util::sha256_hex(id).substr(0, 24);
  j["id"] = id;
  if (repo.type() == cache::RepoType::model) {
    j["modelId"] = id;
  }
  auto slash = id.find('/');
  j["author"] = slash == std::string::npos ? id : id.substr(0, slash);
  j["sha"] = *commit;
  auto modified = util::format_iso8601_utc(repo.last_modified(*commit));
  j["lastModified"] = modified;
  j["createdAt"] = modified;
  j["private"] = false;
  j["gated"] = false;
  j["disabled"] = false;
  j["downloads"] = 0;
  j["likes"] = 0;
  j["tags"] = Json::array();
  Json siblings = Json::array();
  std::uint64_t used = 0;
  for (const auto& f : files) {
    Json s{{"rfilename", f.path}};
    if (blobs) {
      s["blobId"] = f.blob_id;
      s["size"] = f.size;
      if (f.lfs_sha256) {
        s["lfs"] = {{"sha256", *f.lfs_sha256}, {"size", f.size}, {"pointerSize", f.pointer_size}};
      }
    }
    used += f.size;
    siblings.push_back(std::move(s));
  }
  j["siblings"] = std::move(siblings);
  j["usedStorage"] = used;
  Response r = json_response(j);
  r.set_header("X-Repo-Commit", *commit);
  return r;
}

Response Handler::tree(const Request& request, const Route& route, const RepoView& repo) const
{
  auto resolved = resolve_rest(repo, route.rest);
  if (!resolved) {
    return revision_not_found(route.rest.front());
  }
  std::string base = strip_trailing_slashes(resolved->remainder);
  if (!base.empty()) {
    if (auto why = repo_path_error(base)) {
      return error_response(400, "BadRequest", fmt::format("invalid path '{}': {}", base, *why));
    }
  }
  auto files = repo.files(resolved->commit);
  if (!base.empty() && !is_directory(files, base)) {
    Response r = error_response(404, "EntryNotFound",
                                fmt::format("{} does not exist on \"{}\"", base, resolved->revision));
    r.set_header("X-Repo-Commit", resolved->commit);
    return r;
  }
  const bool recursive = truthy(query_value(route.query, "recursive").value_or(""));
  const bool expand = truthy(query_value(route.query, "expand").value_or(""));
  // path -> file (nullptr: a directory), sorted by path as the Hub lists them.
  std::map<std::string, const CachedFile*> entries;
  const std::string prefix = base.empty() ? "" : base + "/";
  for (const auto& f : files) {
    if (!f.path.starts_with(prefix)) {
      continue;
    }
    std::string rel = f.path.substr(prefix.size());
    if (recursive) {
      for (auto pos = rel.find('/'); pos != std::string::npos; pos = rel.find('/', pos + 1)) {
        entries.emplace(prefix + rel.substr(0, pos), nullptr);
      }
      entries[f.path] = &f;
    } else if (auto pos = rel.find('/'); pos != std::string::npos) {
      entries.emplace(prefix + rel.substr(0, pos), nullptr);
    } else {
      entries[f.path] = &f;
    }
  }
  std::size_t page = expand ? m_options.tree_page_expand : m_options.tree_page;
  if (auto limit = query_value(route.query, "limit")) {
    std::size_t n = 0;
    auto [p, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), n);
    if (ec == std::errc() && p == limit->data() + limit->size() && n > 0) {
      page = std::min(page, n);
    }
  }
  page = std::max<std::size_t>(page, 1);
  std::size_t offset = 0;
  if (auto cursor = query_value(route.query, "cursor")) {
    auto [p, ec] = std::from_chars(cursor->data(), cursor->data() + cursor->size(), offset);
    if (ec != std::errc() || p != cursor->data() + cursor->size()) {
      return error_response(400, "BadRequest", "Invalid cursor");
    }
  }
  Json out = Json::array();
  std::size_t index = 0;
  for (const auto& [path, file] : entries) {
    if (index >= offset && index - offset < page) {
      out.push_back(file ? file_entry(*file, resolved->commit, expand)
                         : dir_entry(path, resolved->commit, expand));
    }
    ++index;
  }
  Response r = json_response(out);
  r.set_header("X-Repo-Commit", resolved->commit);
  if (offset + page < entries.size()) {
    // Every parameter but the cursor is kept: clients treat the next URL as opaque.
    std::string query;
    for (const auto& [k, v] : parse_form(route.query)) {
      if (k != "cursor") {
        query += percent_encode(k, false) + "=" + percent_encode(v, false) + "&";
      }
    }
    query += fmt::format("cursor={}", offset + page);
    std::string host = safe_host(request.header("host").value_or("")).value_or("127.0.0.1");
    auto proto = request.header("x-forwarded-proto").value_or("http");
    std::string scheme = proto == "https" ? "https" : "http";
    std::string path(request.target.substr(0, request.target.find('?')));
    r.set_header("Link", fmt::format("<{}://{}{}?{}>; rel=\"next\"", scheme, host, path, query));
  }
  return r;
}

Response Handler::paths_info(const Request& request, const Route& route, const RepoView& repo) const
{
  auto resolved = resolve_rest(repo, route.rest);
  if (!resolved || !resolved->remainder.empty()) {
    return revision_not_found(route.rest.empty() ? "" : route.rest.front());
  }
  std::vector<std::string> paths;
  bool expand = false;
  const std::string& body = request.body;
  bool json_body = request.header("content-type").value_or("").find("json") != std::string_view::npos ||
                   (!body.empty() && body.front() == '{');
  if (json_body) {
    Json j = Json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("paths") || !j["paths"].is_array()) {
      return error_response(400, "BadRequest", "Invalid JSON body: expected {\"paths\": [...]}");
    }
    for (const auto& p : j["paths"]) {
      if (p.is_string()) {
        paths.push_back(p.get<std::string>());
      }
    }
    expand = j.contains("expand") && j["expand"].is_boolean() && j["expand"].get<bool>();
  } else {
    for (const auto& [key, value] : parse_form(body)) {
      if (key == "paths" || key == "paths[]") {
        paths.push_back(value);
      } else if (key == "expand") {
        expand = truthy(value);
      }
    }
  }
  auto files = repo.files(resolved->commit);
  Json out = Json::array();
  for (auto path : paths) {
    path = strip_trailing_slashes(std::move(path));
    if (path.empty() || repo_path_error(path)) {
      continue; // the Hub lists only the requested paths that exist
    }
    if (const CachedFile* f = find_file(files, path)) {
      out.push_back(file_entry(*f, resolved->commit, expand));
    } else if (is_directory(files, path)) {
      out.push_back(dir_entry(path, resolved->commit, expand));
    }
  }
  Response r = json_response(out);
  r.set_header("X-Repo-Commit", resolved->commit);
  return r;
}

Response Handler::refs(const RepoView& repo) const
{
  Json branches = Json::array();
  Json converts = Json::array();
  Json prs = Json::array();
  for (const auto& ref : repo.refs()) {
    if (ref.name.starts_with("refs/pr/")) {
      prs.push_back({{"name", ref.name}, {"ref", ref.name}, {"targetCommit", ref.commit}});
    } else if (ref.name.starts_with("refs/convert/")) {
      converts.push_back({{"name", ref.name.substr(13)}, {"ref", ref.name}, {"targetCommit", ref.commit}});
    } else if (!ref.name.starts_with("refs/")) {
      // refs/ in the cache does not say branch or tag: every name is reported as a branch.
      branches.push_back(
          {{"name", ref.name}, {"ref", "refs/heads/" + ref.name}, {"targetCommit", ref.commit}});
    }
  }
  Json j;
  j["branches"] = std::move(branches);
  j["converts"] = std::move(converts);
  j["tags"] = Json::array();
  j["pullRequests"] = std::move(prs);
  return json_response(j);
}

Response Handler::resolve(const Request& request, const Route& route, const RepoView& repo) const
{
  auto resolved = resolve_rest(repo, route.rest);
  if (!resolved) {
    return revision_not_found(route.rest.front());
  }
  const std::string& path = resolved->remainder;
  if (auto why = repo_path_error(path)) {
    Response r = error_response(400, "BadRequest", fmt::format("invalid file path '{}': {}", path, *why));
    r.set_header("X-Repo-Commit", resolved->commit);
    return r;
  }
  auto opened = repo.open(resolved->commit, path);
  if (!opened && m_upstream && !repo.marked_missing(resolved->commit, path)) {
    auto files = repo.files(resolved->commit);
    if (const CachedFile* listed = find_file(files, path)) {
      if (request.method == "HEAD") {
        // The metadata is in the listing: no need to wait for the bytes.
        Response r = file_headers(*listed, resolved->commit);
        r.head_length = listed->size;
        return r;
      }
      if (m_upstream->redirects(listed->size)) {
        // A big file: the client gets its first byte from the upstream now; the mirror fetches meanwhile.
        m_upstream->start_fetch(repo.type(), repo.repo_id(), resolved->commit, path);
        Response r = file_headers(*listed, resolved->commit);
        r.status = 302;
        r.set_header("Location",
                     m_upstream->resolve_url(repo.type(), repo.repo_id(), resolved->commit, path));
        return r;
      }
      if (auto failure = m_upstream->fetch(repo.type(), repo.repo_id(), resolved->commit, path)) {
        Response r = error_response(502, "", *failure);
        r.set_header("X-Repo-Commit", resolved->commit);
        return r;
      }
      opened = repo.open(resolved->commit, path);
    }
  }
  if (!opened) {
    std::string message = "Entry not found";
    if (!repo.marked_missing(resolved->commit, path)) {
      auto files = repo.files(resolved->commit);
      if (find_file(files, path)) {
        message = fmt::format("Entry not found: {} is listed for this revision but its bytes are not in this "
                              "mirror's cache",
                              path);
      }
    }
    Response r = error_response(404, "EntryNotFound", message);
    r.set_header("X-Repo-Commit", resolved->commit);
    return r;
  }
  return serve_file(request, repo, resolved->commit, std::move(*opened));
}

Response Handler::serve_file(const Request& request, const RepoView& repo, const std::string& commit,
                             OpenedFile opened) const
{
  const CachedFile& info = opened.info;
  const std::uint64_t size = info.size;
  Response r = file_headers(info, commit);
  const std::string etag = "\"" + info.etag() + "\"";
  if (auto inm = request.header("if-none-match"); inm && (*inm == etag || *inm == "W/" + etag)) {
    r.status = 304;
    return r;
  }
  const bool head = request.method == "HEAD";
  // nginx sends the bytes (and answers Range itself) when it is in front; the folder name and etag are
  // plain file names, the commit 40 hex, so the internal URI needs no escaping.
  if (!head && !m_options.accel_redirect_prefix.empty()) {
    // A copy in a snapshot folder has no blob for nginx to send: only blobs go through nginx.
    if (opened.from_blob) {
      r.status = 200;
      r.set_header("X-Accel-Redirect",
                   fmt::format("{}/{}/{}/{}", m_options.accel_redirect_prefix, commit,
                               cache::repo_folder_name(repo.type(), repo.repo_id()), info.etag()));
      return r;
    }
  }
  ByteRange range{0, size == 0 ? 0 : size - 1};
  auto result = parse_range(request.header("range").value_or(""), size, range);
  if (result == RangeResult::unsatisfiable) {
    Response e =
        error_response(416, "", fmt::format("Range not satisfiable: {} has {} bytes", info.path, size));
    e.set_header("Content-Range", fmt::format("bytes */{}", size));
    e.set_header("X-Repo-Commit", commit);
    e.set_header("Accept-Ranges", "bytes");
    return e;
  }
  FileBody body;
  body.file = std::move(opened.file);
  if (result == RangeResult::ok) {
    r.status = 206;
    r.set_header("Content-Range", fmt::format("bytes {}-{}/{}", range.first, range.last, size));
    body.offset = range.first;
    body.length = range.length();
  } else {
    r.status = 200;
    body.offset = 0;
    body.length = size;
  }
  r.file = std::move(body);
  return r;
}

} // namespace modelmgr::server
