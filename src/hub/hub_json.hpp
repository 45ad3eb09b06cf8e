#pragma once
// Readers of the Hub's JSON answers (revision info, tree listing pages). The server is not trusted: every
// field used is type-checked, sizes must be non-negative and sane, file names must stay inside the repo,
// and nesting depth and value count are bounded while parsing. Anything else is a BadResponseError that
// says which answer, which entry and which field, with server text escaped for the terminal.

#include "cache/tree.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::hub {

// Larger than any file the Hub stores: a bigger size is a lie (and would size chunk tables accordingly).
inline constexpr std::uint64_t k_max_file_size = 16ull << 40; // 16 TiB

struct RevisionInfo {
  std::string sha;
  bool is_private = false;
  std::string gated; // "", "auto", "manual"
};

// GET /api/{type}s/{repo}/revision/{rev}. `source` names the answer in messages (a display URL). Throws
// BadResponseError.
RevisionInfo parse_revision_info(std::string_view body, std::string_view source);

// One page of GET /api/{type}s/{repo}/tree/{commit}?recursive=true: the file entries (directories and
// unknown types skipped). Throws BadResponseError.
std::vector<cache::TreeFile> parse_tree_page(std::string_view body, std::string_view source);

// Why a repo file name from the server is unsafe (absolute, '..' or '.' or empty segments, backslash,
// control characters, invalid UTF-8…), or empty when it is fine.
std::string unsafe_name_reason(std::string_view path);

} // namespace modelmgr::hub
