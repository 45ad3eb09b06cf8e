#pragma once
// Private to net/: what the blocking path (http.cpp) and the multiplexed path (multi_loop.cpp) share, so
// that both configure an easy handle the same way, run the same callbacks and classify results alike: the
// per-transfer state the curl callbacks work on, the one easy-handle setup, and curl's result → Response.

#include "net/http.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <span>
#include <string>

#include <curl/curl.h>

namespace modelmgr::net::detail {

// The error message of a transfer whose sink returned false.
inline constexpr const char* k_refused_message = "transfer refused by the receiver";

// Takes the body bytes of a 2xx response that has a sink, on the thread that runs curl, in place of the
// sink: the multiplexed path hands them to the caller's thread. Returns data.size() (taken),
// CURL_WRITEFUNC_PAUSE (no room: offer the same bytes again after curl_easy_pause(CURLPAUSE_CONT)) or 0
// (abort the transfer).
class BodyRelay {
public:
  virtual std::size_t accept(std::span<const char> data, const Response& head) noexcept = 0;

protected:
  ~BodyRelay() = default;
};

// The state the callbacks of one running easy handle work on (header, write, progress). Only the thread
// that runs the handle touches it while it runs.
struct Transfer {
  const Request* request = nullptr;
  const Sink* sink = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  CURL* easy = nullptr;
  Response* response = nullptr;
  bool status_known = false;
  bool deliver_to_sink = false;
  bool stalled = false;
  bool too_large = false; // a 2xx body without a sink exceeded request->max_body
  curl_off_t last_bytes = -1;
  std::chrono::steady_clock::time_point last_progress;
  BodyRelay* relay = nullptr; // set: sink-bound bytes go to the relay (multiplexed path)
  bool paused = false; // the relay paused the transfer: its consumer is busy, the server is not stalled
  // What a callback threw: curl's frames are C, so nothing may unwind through them. The callback stores
  // the exception, makes curl abort, and the caller rethrows it once curl has let go of the handle.
  std::exception_ptr exception;
};

// What a configured easy handle points into: must outlive the transfer.
struct EasyResources {
  curl_slist* headers = nullptr;
  std::string range;
  char errbuf[CURL_ERROR_SIZE] = {};

  EasyResources() = default;
  ~EasyResources() { curl_slist_free_all(headers); }
  EasyResources(const EasyResources&) = delete;
  EasyResources& operator=(const EasyResources&) = delete;
};

// Sets every option of `request` on a fresh (or reset) easy handle, with `t` as the callbacks' state.
// `share` may be null.
void configure_easy(CURL* easy, const Request& request, const ClientOptions& options, CURLSH* share,
                    Transfer& t, EasyResources& resources);
// Fills status, effective URL and the classified error of *t.response once the handle has finished with
// `code`.
void finish_response(CURL* easy, CURLcode code, const Transfer& t, const EasyResources& resources);

} // namespace modelmgr::net::detail
