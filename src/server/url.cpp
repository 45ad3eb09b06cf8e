#include "server/url.hpp"

#include <charconv>

namespace modelmgr::server {

namespace {

int hex_value(char c) noexcept
{
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::vector<std::string_view> split(std::string_view s, char sep)
{
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) {
      return out;
    }
    start = pos + 1;
  }
}

bool parse_u64(std::string_view s, std::uint64_t& out) noexcept
{
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// The words after /api/{type}s/{repo}/ that end a canonical (namespace-less) repo id.
bool is_api_keyword(std::string_view s) noexcept
{
  return s == "revision" || s == "tree" || s == "paths-info" || s == "refs" || s == "resolve" ||
         s == "commits" || s == "xet-read-token" || s == "preupload" || s == "commit";
}

} // namespace

std::optional<std::string> percent_decode(std::string_view s)
{
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) {
        return std::nullopt;
      }
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) {
        return std::nullopt;
      }
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') {
      return std::nullopt;
    }
    out.push_back(c);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text)
{
  std::vector<std::pair<std::string, std::string>> out;
  for (auto part : split(text, '&')) {
    if (part.empty()) {
      continue;
    }
    auto eq = part.find('=');
    std::string key(part.substr(0, eq));
    std::string value(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
    for (auto* s : {&key, &value}) {
      for (char& c : *s) {
        if (c == '+') {
          c = ' ';
        }
      }
    }
    auto k = percent_decode(key);
    auto v = percent_decode(value);
    if (k && v) {
      out.emplace_back(std::move(*k), std::move(*v));
    }
  }
  return out;
}

std::optional<std::string> query_value(std::string_view query, std::string_view key)
{
  for (auto& [k, v] : parse_form(query)) {
    if (k == key) {
      return v;
    }
  }
  return std::nullopt;
}

bool truthy(std::string_view value) noexcept
{
  return value == "true" || value == "True" || value == "1";
}

std::optional<std::string> repo_path_error(std::string_view path)
{
  if (path.empty()) {
    return "empty path";
  }
  if (path.front() == '/') {
    return "absolute path";
  }
  for (unsigned char c : path) {
    if (c == '\\') {
      return "backslash in path";
    }
    if (c < 0x20 || c == 0x7f) {
      return "control character in path";
    }
  }
  for (auto seg : split(path, '/')) {
    if (seg.empty()) {
      return "empty path segment";
    }
    if (seg == "." || seg == "..") {
      return "'.' or '..' path segment";
    }
  }
  return std::nullopt;
}

RangeResult parse_range(std::string_view header, std::uint64_t size, ByteRange& out)
{
  if (header.empty()) {
    return RangeResult::none;
  }
  constexpr std::string_view unit = "bytes=";
  if (!header.starts_with(unit)) {
    return RangeResult::ignored;
  }
  std::string_view spec = header.substr(unit.size());
  if (spec.find(',') != std::string_view::npos) {
    return RangeResult::ignored;
  }
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) {
    return RangeResult::ignored;
  }
  std::string_view a = spec.substr(0, dash);
  std::string_view b = spec.substr(dash + 1);
  if (a.empty()) {
    // Suffix range: the last n bytes.
    std::uint64_t n = 0;
    if (!parse_u64(b, n)) {
      return RangeResult::ignored;
    }
    if (n == 0 || size == 0) {
      return RangeResult::unsatisfiable;
    }
    n = std::min(n, size);
    out = ByteRange{size - n, size - 1};
    return RangeResult::ok;
  }
  std::uint64_t first = 0;
  if (!parse_u64(a, first)) {
    return RangeResult::ignored;
  }
  std::uint64_t last = 0;
  if (b.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!parse_u64(b, last) || last < first) {
    return RangeResult::ignored;
  }
  if (first >= size) {
    return RangeResult::unsatisfiable;
  }
  out = ByteRange{first, std::min(last, size - 1)};
  return RangeResult::ok;
}

Route parse_target(std::string_view target)
{
  Route route;
  auto qpos = target.find('?');
  std::string_view path = target.substr(0, qpos);
  if (qpos != std::string_view::npos) {
    route.query = std::string(target.substr(qpos + 1));
  }
  if (!path.starts_with('/')) {
    route.kind = RouteKind::bad_request;
    route.error = "the request target must start with '/'";
    return route;
  }
  auto raw = split(path.substr(1), '/');
  std::vector<std::string> segs;
  segs.reserve(raw.size());
  for (auto r : raw) {
    auto decoded = percent_decode(r);
    if (!decoded) {
      route.kind = RouteKind::bad_request;
      route.error = "malformed percent-encoding or NUL in the request path";
      return route;
    }
    segs.push_back(std::move(*decoded));
  }
  auto fail = [&](std::string why) {
    route.kind = RouteKind::bad_request;
    route.error = std::move(why);
    return route;
  };
  // A repo id is one or two raw segments; an encoded '/' inside either is not a repo id.
  auto take_repo = [&](std::size_t at, bool two) -> std::optional<std::string> {
    std::string id = two ? segs[at] + "/" + segs[at + 1] : segs[at];
    if (segs[at].find('/') != std::string::npos || (two && segs[at + 1].find('/') != std::string::npos) ||
        cache::repo_id_error(id)) {
      return std::nullopt;
    }
    return id;
  };

  if (segs.size() >= 3 && segs[0] == "api") {
    auto type = cache::parse_repo_type(segs[1]);
    if (!type || segs[1] == cache::to_string(*type)) { // the plural only: /api/models/...
      return route;
    }
    route.type = *type;
    bool two = segs.size() >= 4 && !is_api_keyword(segs[3]);
    auto id = take_repo(2, two);
    if (!id) {
      return fail("invalid repo id in the request path");
    }
    route.repo_id = std::move(*id);
    std::size_t next = two ? 4 : 3;
    std::string_view sub = next < segs.size() ? std::string_view(segs[next]) : std::string_view();
    if (sub.empty() && next + 1 >= segs.size()) {
      route.kind = RouteKind::repo_info;
    } else if (sub == "revision" && next + 1 < segs.size()) {
      route.kind = RouteKind::repo_info;
    } else if (sub == "tree" && next + 1 < segs.size()) {
      route.kind = RouteKind::tree;
    } else if (sub == "paths-info" && next + 1 < segs.size()) {
      route.kind = RouteKind::paths_info;
    } else if (sub == "refs" && next + 1 == segs.size()) {
      route.kind = RouteKind::refs;
    } else {
      return route;
    }
    if (next + 1 < segs.size()) {
      route.rest.assign(segs.begin() + static_cast<std::ptrdiff_t>(next + 1), segs.end());
    }
    return route;
  }

  std::size_t start = 0;
  if (!segs.empty() && (segs[0] == "datasets" || segs[0] == "spaces")) {
    route.type = segs[0] == "datasets" ? cache::RepoType::dataset : cache::RepoType::space;
    start = 1;
  }
  bool two = false;
  if (segs.size() > start + 2 && segs[start + 1] == "resolve") {
    two = false;
  } else if (segs.size() > start + 3 && segs[start + 2] == "resolve") {
    two = true;
  } else {
    return route;
  }
  auto id = take_repo(start, two);
  if (!id) {
    return fail("invalid repo id in the request path");
  }
  route.repo_id = std::move(*id);
  route.kind = RouteKind::resolve;
  std::size_t rev_at = start + (two ? 3 : 2);
  route.rest.assign(segs.begin() + static_cast<std::ptrdiff_t>(rev_at), segs.end());
  return route;
}

std::vector<std::pair<std::string, std::string>> revision_splits(const std::vector<std::string>& rest)
{
  std::vector<std::pair<std::string, std::string>> out;
  std::string revision;
  for (std::size_t k = 0; k < rest.size(); ++k) {
    if (k > 0) {
      revision += '/';
    }
    revision += rest[k];
    std::string remainder;
    for (std::size_t j = k + 1; j < rest.size(); ++j) {
      if (j > k + 1) {
        remainder += '/';
      }
      remainder += rest[j];
    }
    out.emplace_back(revision, std::move(remainder));
  }
  return out;
}

std::optional<std::string> safe_host(std::string_view host)
{
  if (host.empty() || host.size() > 255) {
    return std::nullopt;
  }
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) {
      return std::nullopt;
    }
  }
  return std::string(host);
}

} // namespace modelmgr::server
