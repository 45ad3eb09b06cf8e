#include "emulator/http_util.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <dirent.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::emulator::detail {

namespace {

int hex_value(char c)
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

std::string decode(std::string_view s, bool plus_is_space)
{
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

int port_of(const sockaddr_storage& addr)
{
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  }
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  }
  return -1;
}

// Calls fn(fd, local_port, remote_port) for every connected TCP socket of this process. The fd list comes
// from /proc because httplib does not expose accepted sockets.
template <typename Fn> void for_each_connection(Fn&& fn)
{
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) {
    return;
  }
  std::vector<int> fds;
  while (auto* entry = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0') {
      fds.push_back(static_cast<int>(fd));
    }
  }
  closedir(dir);
  for (int fd : fds) {
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      continue;
    }
    sockaddr_storage local{}, remote{};
    socklen_t local_len = sizeof local, remote_len = sizeof remote;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &remote_len) != 0) {
      continue;
    }
    if (fn(fd, port_of(local), port_of(remote))) {
      return;
    }
  }
}

} // namespace

std::string percent_decode(std::string_view s)
{
  return decode(s, false);
}

std::string percent_encode(std::string_view s, bool keep_slash)
{
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 0xf]);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_form(std::string_view body)
{
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& part : split(body, '&')) {
    if (part.empty()) {
      continue;
    }
    auto eq = part.find('=');
    std::string_view key = std::string_view(part).substr(0, eq);
    std::string_view value =
        eq == std::string::npos ? std::string_view() : std::string_view(part).substr(eq + 1);
    out.emplace_back(decode(key, true), decode(value, true));
  }
  return out;
}

std::vector<std::string> split(std::string_view s, char sep)
{
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) {
      break;
    }
    start = pos + 1;
  }
  return out;
}

RangeResult parse_range(std::string_view header, std::uint64_t size, ByteRange& out)
{
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
      v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
      v.remove_suffix(1);
    }
    return v;
  };
  header = trim(header);
  if (header.empty()) {
    return RangeResult::none;
  }
  if (!header.starts_with("bytes=")) {
    return RangeResult::ignored;
  }
  std::string_view spec = trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) {
    return RangeResult::ignored;
  }
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) {
    return RangeResult::ignored;
  }
  auto number = [](std::string_view v, std::uint64_t& value) {
    if (v.empty() || v.size() > 19) {
      return false;
    }
    value = 0;
    for (char c : v) {
      if (c < '0' || c > '9') {
        return false;
      }
      value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
  };
  std::string_view a = trim(spec.substr(0, dash));
  std::string_view b = trim(spec.substr(dash + 1));
  std::uint64_t first = 0, last = 0;
  if (a.empty()) {
    // Suffix range: the last n bytes.
    if (!number(b, last)) {
      return RangeResult::ignored;
    }
    if (last == 0 || size == 0) {
      return RangeResult::unsatisfiable;
    }
    out.first = last >= size ? 0 : size - last;
    out.last = size - 1;
    return RangeResult::ok;
  }
  if (!number(a, first)) {
    return RangeResult::ignored;
  }
  if (b.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!number(b, last) || last < first) {
    return RangeResult::ignored;
  }
  if (first >= size) {
    return RangeResult::unsatisfiable;
  }
  out.first = first;
  out.last = std::min(last, size - 1);
  return RangeResult::ok;
}

std::string base64url(std::string_view data)
{
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : data) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 6) {
      out.push_back(table[(buffer >> (bits - 6)) & 0x3f]);
      bits -= 6;
    }
  }
  if (bits > 0) {
    out.push_back(table[(buffer << (6 - bits)) & 0x3f]);
  }
  return out;
}

std::string base64url_decode(std::string_view data)
{
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : data) {
    int v = -1;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-' || c == '+') {
      v = 62;
    } else if (c == '_' || c == '/') {
      v = 63;
    } else {
      break;
    }
    buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

int find_connection_socket(int local_port, int remote_port)
{
  int found = -1;
  for_each_connection([&](int fd, int local, int remote) {
    if (local == local_port && remote == remote_port) {
      found = fd;
      return true;
    }
    return false;
  });
  return found;
}

void reset_connection(int fd)
{
  // A RST discards whatever is still queued for sending; give the peer up to 200 ms to take the bytes the
  // fault promised ("send N bytes, then reset") so the byte count a client sees is deterministic.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  int queued = 0;
  while (ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  // connect(AF_UNSPEC) disconnects a TCP socket; on an established connection Linux answers with a RST
  // (tcp_disconnect) while the descriptor stays valid for httplib to close later.
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  (void)::connect(fd, &unspec, sizeof unspec);
}

void shutdown_connections(const std::set<int>& ports)
{
  for_each_connection([&](int fd, int local, int) {
    if (ports.contains(local)) {
      ::shutdown(fd, SHUT_RDWR);
    }
    return false;
  });
}

} // namespace modelmgr::emulator::detail
