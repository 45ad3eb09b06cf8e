#pragma once
// Private to net/: the event loop behind Request::multiplex. One thread owns a curl multi handle with
// HTTP/2 multiplexing on; callers enqueue configured easy handles and block until theirs is done, so that
// concurrent requests share the multi's connections (streams of one HTTP/2 connection where the server
// offers it).
//
// The sink keeps running on the caller's thread (it does blocking work: pwrite, hashing, a rate limiter
// that sleeps). The loop's write callback copies body bytes into a bounded buffer per transfer and pauses
// the transfer when it is full; the caller swaps the buffer out, feeds the sink, and asks the loop to
// resume (curl_easy_pause must be called on the loop's thread). Memory per transfer in flight is bounded by
// two buffers of k_relay_capacity plus curl's receive buffer of k_multiplex_buffer_size.

#include "net/http.hpp"

#include <atomic>
#include <cstddef>
#include <memory>
#include <thread>

#include <curl/curl.h>

namespace modelmgr::net::detail {

// Body bytes a transfer holds for its caller before the loop pauses it (and as much again in the caller's
// hands while its sink runs).
inline constexpr std::size_t k_relay_capacity = 128 * 1024;
// curl's receive buffer for multiplexed transfers (the blocking path uses 512 KiB for big ranges).
inline constexpr long k_multiplex_buffer_size = 64 * 1024;

class MultiLoop {
public:
  // `share` (DNS and TLS sessions) must outlive the loop; `options` is copied.
  MultiLoop(const ClientOptions& options, CURLSH* share);
  // Stops the loop: transfers in flight end as TransferError::aborted and their callers return.
  ~MultiLoop();
  MultiLoop(const MultiLoop&) = delete;
  MultiLoop& operator=(const MultiLoop&) = delete;

  // Runs `request` on the loop; blocks until it is done, calling `sink` on this thread. Same contract and
  // same Response as the blocking Client::perform.
  Response perform(const Request& request, const Sink& sink, const std::atomic<bool>* cancel);

  struct Core;
  struct Job;

private:
  ClientOptions m_options;
  CURLSH* m_share = nullptr;
  // Shared with callers: a caller still waiting when the client goes away keeps what it touches alive.
  std::shared_ptr<Core> m_core;
  std::thread m_thread;
};

} // namespace modelmgr::net::detail
