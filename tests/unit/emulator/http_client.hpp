#pragma once
// A minimal libcurl client for the emulator tests: one request, no automatic redirects, headers by lower-case
// name (last value wins), and the curl result code so truncation and resets can be told apart.

#include <map>
#include <string>
#include <vector>

#include <curl/curl.h>

namespace modelmgr::emulator::test {

struct HttpResult {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::map<std::string, std::string> headers; // lower-case names
  std::multimap<std::string, std::string> all_headers;
  std::string body;
  std::string header(const std::string& name) const
  {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool has(const std::string& name) const { return headers.count(name) > 0; }
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers; // "Name: value"
  std::string body;                 // POST body
  long timeout_ms = 120000; // a safety net against a hung test, not a limit: a loaded CI machine is slow
  CURL* reuse = nullptr;    // an easy handle to reuse (keeps its connection alive), or null
};

HttpResult http(const HttpRequest& request);
inline HttpResult http_get(const std::string& url, std::vector<std::string> headers = {})
{
  return http(HttpRequest{"GET", url, std::move(headers)});
}
inline HttpResult http_head(const std::string& url, std::vector<std::string> headers = {})
{
  return http(HttpRequest{"HEAD", url, std::move(headers)});
}

// Follows the Hub's redirects the way huggingface_hub does for a download: relative ones on the same host
// with the same headers, an absolute one (the CDN) without Authorization. Returns the final response.
HttpResult http_follow(const std::string& method, const std::string& url,
                       std::vector<std::string> headers = {});

} // namespace modelmgr::emulator::test
