#include "server/http_types.hpp"

#include "util/strings.hpp"

#include <fmt/format.h>
#include <unistd.h>

namespace modelmgr::server {

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept
{
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] + 32) : b[i];
    if (x != y) {
      return false;
    }
  }
  return true;
}

// Header values built from cache names must not end the header early.
std::string header_safe(std::string_view value)
{
  std::string out(value);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\0') {
      c = ' ';
    }
  }
  return out;
}

} // namespace

std::optional<std::string_view> Request::header(std::string_view name) const
{
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

FileHandle::~FileHandle()
{
  if (m_fd >= 0) {
    ::close(m_fd);
  }
}

std::optional<std::string_view> Response::header(std::string_view name) const
{
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

void Response::set_header(std::string name, std::string value)
{
  for (auto& [k, v] : headers) {
    if (iequals(k, name)) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

std::string_view status_reason(int status) noexcept
{
  switch (status) {
  case 200: return "OK";
  case 206: return "Partial Content";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 416: return "Range Not Satisfiable";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

std::string serialize_head(const Response& response, bool keep_alive)
{
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", response.status, status_reason(response.status));
  for (const auto& [k, v] : response.headers) {
    if (iequals(k, "content-length") || iequals(k, "connection")) {
      continue;
    }
    out += header_safe(k);
    out += ": ";
    out += header_safe(v);
    out += "\r\n";
  }
  // 304 has no body and its Content-Length would describe the entity; leave it out.
  if (response.status != 304) {
    out += fmt::format("Content-Length: {}\r\n", response.content_length());
  }
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  return out;
}

} // namespace modelmgr::server
