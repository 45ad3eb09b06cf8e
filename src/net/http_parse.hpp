#pragma once
// Parsers of untrusted HTTP header values. Each accepts exactly the grammar it documents and returns
// nullopt for anything else: a server's "-1", "1e9", " 12abc" or an overflowing number is never read as a
// size.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace modelmgr::net {

// A decimal number of at most 20 digits that fits in 64 bits, with optional surrounding spaces or tabs
// (Content-Length, X-Linked-Size, Retry-After). No sign, no other characters.
std::optional<std::uint64_t> parse_uint(std::string_view value) noexcept;

// "bytes first-last/total" (total a number greater than `last`, or '*'), as [first, last] inclusive.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_content_range(std::string_view value) noexcept;

// The target of the `rel="next"` link of a Link header value (RFC 8288: comma-separated
// `<uri>; param=value` entries, rel possibly unquoted or a space-separated list), or nullopt.
std::optional<std::string> parse_link_next(std::string_view value);

} // namespace modelmgr::net
