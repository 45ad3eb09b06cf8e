#pragma once
// Progress events: how long-running library work reports what it does. The library never prints; the CLI
// renders these as terminal bars, plain log lines or JSON lines. Observers must be thread-safe: events
// arrive from the download threads.

#include <cstdint>
#include <string>

namespace modelmgr {

enum class EventType {
  planned,      // a file will be downloaded: total = its size, current = bytes already present (resume)
  cached,       // a file is already in the cache: nothing to download
  started,      // the first request for a file is being sent
  bytes,        // current = bytes of the file present so far (throttled, about 10 per second per file)
  verifying,    // all bytes are there; the hash is being finished and checked
  retrying,     // a transient failure; attempt = the attempt about to start, message = why
  stalled,      // no data for the stall timeout: the connection is dropped and the range retried
  waiting_lock, // another process holds the file's lock; message says who
  done,         // verified and placed in the cache
  failed,       // message says why
};

const char* to_string(EventType type) noexcept;

struct ProgressEvent {
  EventType type = EventType::bytes;
  std::string repo_id;
  std::string path; // file path inside the repo
  std::uint64_t total = 0;
  std::uint64_t current = 0;
  int attempt = 0;
  std::string message;
};

class ProgressObserver {
public:
  virtual ~ProgressObserver() = default;
  virtual void on_event(const ProgressEvent& event) = 0;
};

} // namespace modelmgr
