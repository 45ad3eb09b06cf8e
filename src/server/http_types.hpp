#pragma once
// The values between the socket layer (http_server.*) and the request handler (handler.*): a parsed HTTP
// request in, a response out whose body is either bytes in memory or a range of an open file (sent with
// sendfile by the socket layer). Plain values, so the handler is unit-tested without sockets.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelmgr::server {

struct Request {
  std::string method; // "GET", "HEAD", "POST", ...
  std::string target; // raw request target, still percent-encoded ("/api/models/x?blobs=true")
  // Header names are lower case; repeated headers stay separate entries.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first header named `name` (lower case), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
};

// An open file descriptor, closed by the destructor.
class FileHandle {
public:
  explicit FileHandle(int fd) noexcept : m_fd(fd) {}
  ~FileHandle();
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int fd() const noexcept { return m_fd; }

private:
  int m_fd = -1;
};

struct FileBody {
  std::shared_ptr<FileHandle> file;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers; // sent in this order
  std::string body;                                         // unless `file` is set
  std::optional<FileBody> file;
  // HEAD: headers only, with the Content-Length the GET would have.
  bool head = false;
  // The Content-Length of a HEAD answered without opening the file (pull-through: from the listing).
  std::optional<std::uint64_t> head_length;

  // The value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
  void set_header(std::string name, std::string value);
  // Length of the body that follows the headers on a GET.
  std::uint64_t content_length() const noexcept
  {
    return file ? file->length : (head_length ? *head_length : body.size());
  }
};

// "OK", "Partial Content", ... (the reason phrase of a status code).
std::string_view status_reason(int status) noexcept;

// The status line and header block of `response` (ends with an empty line), Content-Length included.
std::string serialize_head(const Response& response, bool keep_alive);

} // namespace modelmgr::server
