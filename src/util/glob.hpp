#pragma once
// Include/exclude patterns with the semantics of huggingface_hub's `filter_repo_objects` (what
// `snapshot_download(allow_patterns=..., ignore_patterns=...)` and `hf download --include/--exclude` use):
// Python `fnmatch.fnmatchcase`, where `*` also matches "/" (so `**` behaves like `*`), `?` one character,
// `[seq]` / `[!seq]` a set (ranges allowed, `]` literal when first, an unclosed `[` is literal),
// case-sensitive; a pattern ending in "/" names a folder (`*` is appended); "\" becomes "/" in patterns
// and paths. Characters are Unicode code points of UTF-8 text, as in Python.

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::util {

// Returns true if the whole of `path` matches `pattern` (fnmatchcase; no "/" or "\" rewriting).
bool fnmatch(std::string_view path, std::string_view pattern);

// Returns `pattern` as filter_repo_objects applies it: "\" → "/", then "*" appended after a trailing "/".
std::string normalize_pattern(std::string_view pattern);

// Returns true if `path` ("\" → "/") matches at least one of `patterns` (each normalised).
bool matches_any(std::string_view path, std::span<const std::string> patterns);

// Returns the paths kept, in input order: those matching at least one of `include` (an empty list means
// "no include filter", i.e. everything) and none of `exclude`.
std::vector<std::string> filter_paths(std::span<const std::string> paths,
                                      std::span<const std::string> include,
                                      std::span<const std::string> exclude);

} // namespace modelmgr::util
