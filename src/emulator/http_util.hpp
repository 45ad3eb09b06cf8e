#pragma once
// Private helpers of the emulator: URL coding, Range parsing, and the socket tricks httplib does not offer
// (finding a request's socket to reset it, shutting down live connections on stop()).

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::emulator::detail {

// Percent-decoding of one path segment or path ('+' stays '+'); bad escapes are kept literally.
std::string percent_decode(std::string_view s);
// Encodes everything but RFC 3986 unreserved characters (and '/' when keep_slash).
std::string percent_encode(std::string_view s, bool keep_slash);
// application/x-www-form-urlencoded pairs ('+' is a space).
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view body);
std::vector<std::string> split(std::string_view s, char sep);

struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0; // inclusive
  std::uint64_t length() const { return last - first + 1; }
};

enum class RangeResult { none, ok, unsatisfiable, ignored };
// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`. Multiple ranges or other units
// are "ignored" (a server may always answer 200 with the full body).
RangeResult parse_range(std::string_view header, std::uint64_t size, ByteRange& out);

std::string base64url(std::string_view data);
std::string base64url_decode(std::string_view data);

// The socket of the TCP connection local_port <-> remote_port in this process, or -1.
int find_connection_socket(int local_port, int remote_port);
// Sends a TCP RST on `fd` (after letting already-written bytes drain for a moment) without closing the
// descriptor, which httplib still owns.
void reset_connection(int fd);
// shutdown()s every connected socket of this process whose local port is in `ports`: wakes httplib workers
// blocked on idle keep-alive connections so that Server::stop() can join them promptly.
void shutdown_connections(const std::set<int>& ports);

} // namespace modelmgr::emulator::detail
