#include "http_client.hpp"

#include <algorithm>
#include <cctype>

namespace modelmgr::emulator::test {

namespace {

size_t on_body(char* data, size_t size, size_t n, void* user)
{
  static_cast<HttpResult*>(user)->body.append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user)
{
  auto* result = static_cast<HttpResult*>(user);
  std::string line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response (after 100-continue or similar): start over.
    result->headers.clear();
    result->all_headers.clear();
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ')) {
      value.erase(0, 1);
    }
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.pop_back();
    }
    result->headers[name] = value;
    result->all_headers.emplace(name, value);
  }
  return size * n;
}

struct Global {
  Global() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

} // namespace

HttpResult http(const HttpRequest& request)
{
  static Global global;
  HttpResult result;
  CURL* curl = request.reuse ? request.reuse : curl_easy_init();
  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) {
    headers = curl_slist_append(headers, h.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, request.timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOBODY, request.method == "HEAD" ? 1L : 0L);
  if (request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
  } else if (request.method != "GET" && request.method != "HEAD") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, request.method == "GET" ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, nullptr);
  }
  result.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  curl_slist_free_all(headers);
  if (!request.reuse) {
    curl_easy_cleanup(curl);
  }
  return result;
}

HttpResult http_follow(const std::string& method, const std::string& url, std::vector<std::string> headers)
{
  std::string current = url;
  auto origin = [](const std::string& u) { return u.substr(0, u.find('/', u.find("//") + 2)); };
  for (int hop = 0; hop < 10; ++hop) {
    auto result = http(HttpRequest{method, current, headers});
    if (result.status < 300 || result.status >= 400 || !result.has("location")) {
      return result;
    }
    std::string location = result.header("location");
    if (location.starts_with("/")) {
      current = origin(current) + location;
    } else {
      if (origin(location) != origin(current)) {
        std::erase_if(headers, [](const std::string& h) {
          std::string lower = h.substr(0, 14);
          std::transform(lower.begin(), lower.end(), lower.begin(),
                         [](unsigned char c) { return std::tolower(c); });
          return lower == "authorization:";
        });
      }
      current = location;
    }
  }
  return HttpResult{CURLE_TOO_MANY_REDIRECTS};
}

} // namespace modelmgr::emulator::test
