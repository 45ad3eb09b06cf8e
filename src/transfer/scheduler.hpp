#pragma once
// The transfer scheduler: every decision of the download engine, as a pure state machine. It decides which
// byte range of which file to request next and from which host, when to shorten a request in flight so an
// idle connection can take over its tail (split), when to give up on a stalled request, how long to back off
// after a failure, and how many requests each host gets (adaptive concurrency).
//
// It does no I/O, reads no clock and knows nothing of threads or sockets: the driver (today the engine's
// thread-per-connection pool, later a curl-multi loop) passes `now` into every call, reports what happened
// to each request (bytes received so far, completion, failure with a classification) and acts on the
// decisions. It is not thread-safe: the driver serialises the calls (the engine under its one mutex).
//
// Ranges. Files are not cut into fixed chunks up front: pieces are handed out from the unassigned ranges of
// a file with a size that adapts (unassigned bytes / the host's connection target, within [min_piece,
// max_piece]), or exactly `fixed_piece` (--chunk-size). Files below `small_file_size` are fetched in one
// request. When a connection is idle and nothing is unassigned, the request in flight with the most time
// left is split: it stops at a new end and its tail becomes a new request. Per file the scheduler keeps
// which byte ranges are on disk (reported by the driver), so "contiguous prefix from 0" (for the in-order
// hasher) and "ranges present" (for the resume state) come from one place. No byte is ever in two
// requests at once.
//
// Concurrency, per host and per request class (pieces of big files, whole small files):
//  * big files: the target number of connections starts at `initial_connections` and grows while the
//    host's aggregate throughput (measured over windows from the reported byte counts) keeps rising:
//    doubling while each step yields at least `grow_min_gain` more and the added connections deliver at
//    least `grow_min_efficiency` of what the existing ones do, then by a quarter after the first setback.
//    When a step does not pay (a shared bottleneck: link, disk, CPU), the target goes back to the number of
//    connections the measured throughput needs at the previous per-connection rate, and holds.
//  * small files: the number of requests in flight follows latency, not bandwidth: the same controller
//    measures completed requests per second instead of bytes, starting at `initial_small_requests`.
//  * pushback (429/503, refused or reset connections) halves the target of the request's host and class and
//    holds it; a Retry-After also keeps new requests to that host back until then.
//  * `adaptive = false` (explicit --connections / --max-workers): one fixed target per host for both
//    classes, halved on pushback and grown back by one per completed request, as before.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace modelmgr::transfer {

using SchedTime = std::chrono::steady_clock::time_point;
using SchedDuration = std::chrono::steady_clock::duration;

// Sorted, disjoint, non-adjacent half-open byte intervals [first, end).
class ByteRanges {
public:
  void add(std::uint64_t first, std::uint64_t end);
  void clear() { m_ranges.clear(); }
  bool empty() const { return m_ranges.empty(); }
  std::uint64_t total() const;
  // End of the interval that starts at 0 (0 when byte 0 is missing).
  std::uint64_t prefix() const;
  // True when every byte of [first, end) is in the set.
  bool contains(std::uint64_t first, std::uint64_t end) const;
  // True when any byte of [first, end) is in the set.
  bool intersects(std::uint64_t first, std::uint64_t end) const;
  // The gaps of [0, size) not in the set.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps(std::uint64_t size) const;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> list() const;
  bool operator==(const ByteRanges&) const = default;

private:
  std::map<std::uint64_t, std::uint64_t> m_ranges; // first -> end
};

// Grows or shrinks a number of parallel requests from measured rates (bytes/s or completions/s). Pure; used
// per host and class by the scheduler, exposed for tests.
class ConcurrencyController {
public:
  struct Options {
    bool adaptive = true;
    int initial = 4;
    int min = 1;
    int max = 64;
    SchedDuration settle = std::chrono::milliseconds(100); // after reaching a level, before measuring
    SchedDuration window = std::chrono::milliseconds(250); // shortest measurement window
    double min_window_events = 0;                          // and at least this many units counted
    double grow_min_gain = 1.15;                           // a step must give this much more in total
    double grow_min_efficiency = 0.5;                      // and the new ones this share of the old ones
    SchedDuration hold = std::chrono::seconds(5);          // after settling or a pushback
    SchedDuration max_hold = std::chrono::seconds(40);     // holds double after each failed probe
  };
  explicit ConcurrencyController(Options o);

  int target() const { return m_target; }
  int peak() const { return m_peak; }
  // `counter` is the total of the measured unit so far (monotonic). Only a saturated level (as many requests
  // in flight as the target, or work waiting for a place) is measured: with less work than the target the
  // rate says nothing about the target.
  void observe(SchedTime now, double counter, bool saturated);
  // 429/503/reset: halve and hold.
  void pushback(SchedTime now);
  // Fixed mode: a request completed; grow back by one towards the configured maximum.
  void completed();
  // Phase, for tests and diagnostics.
  bool holding() const { return m_phase == Phase::hold; }
  double last_rate() const { return m_last_rate; }

private:
  enum class Phase { base, step, hold };
  void start_window();
  void grow();
  Options m_o;
  int m_target;
  int m_peak;
  Phase m_phase = Phase::base;
  bool m_slow_start = true;
  std::optional<SchedTime> m_saturated_since;
  std::optional<SchedTime> m_window_start;
  double m_window_counter = 0;
  double m_base_rate = 0;
  int m_base_level = 0;
  double m_last_rate = 0;
  SchedTime m_hold_until{};
  SchedDuration m_hold;
};

struct SchedulerOptions {
  bool adaptive = true;
  int initial_connections = 4;     // adaptive: connections per host for big files at the start
  int initial_small_requests = 16; // adaptive: small-file requests in flight per host at the start
  int max_per_host = 64;           // connections to one host (adaptive cap, or the fixed count)
  int max_total = 64;              // requests in flight in total
  int max_per_file = 64;           // requests in flight for one file (--connections in fixed mode)
  std::uint64_t fixed_piece = 0;   // --chunk-size: cut every file at this size; 0 = adaptive pieces
  std::uint64_t min_piece = 1ull << 20;
  std::uint64_t max_piece = 64ull << 20;
  std::uint64_t small_file_size = 16ull << 20; // smaller files: one request, the small-file controller
  // Splitting: both parts get at least split_min_piece, and the request's own rate, observed for at least
  // split_min_observation, predicts more than split_min_eta for what it has left.
  std::uint64_t split_min_piece = 4ull << 20;
  SchedDuration split_min_observation = std::chrono::milliseconds(500);
  SchedDuration split_min_eta = std::chrono::seconds(2);
  SchedDuration stall_timeout{0}; // 0 = the driver detects stalls itself
  int max_retries = 5;            // consecutive failures of a range without progress
  SchedDuration retry_base = std::chrono::seconds(1);
  SchedDuration max_retry_after = std::chrono::minutes(5);
  // Controller timing (tests shorten or lengthen these).
  SchedDuration settle = std::chrono::milliseconds(100);
  SchedDuration window = std::chrono::milliseconds(250);
  SchedDuration hold = std::chrono::seconds(5);
};

using FileId = std::size_t;
using RequestId = std::uint64_t;

enum class FailureKind {
  pushback,   // 429 or 503: the server asks for less
  connection, // refused or reset connection (also pushback)
  stall,      // no bytes for the stall timeout
  transient,  // anything else worth retrying (short body, lying 206, 5xx, expired URL...)
  fatal,      // not worth retrying: the file fails
};

struct Failure {
  FailureKind kind = FailureKind::transient;
  std::optional<SchedDuration> retry_after;
};

struct FailureOutcome {
  bool give_up = false;  // the file failed (fatal, or too many attempts)
  int attempts = 0;      // consecutive failed attempts of the range
  SchedDuration wait{0}; // back-off before the range is requested again
  int target_before = 0; // the host's target for this class before and after a pushback
  int target_after = 0;
};

enum class RequestClass { big, small };

struct Assignment {
  RequestId id = 0;
  FileId file = 0;
  std::uint64_t first = 0; // inclusive
  std::uint64_t last = 0;  // inclusive
  std::string host;
  RequestClass cls = RequestClass::big;
};

struct Decision {
  enum class Kind {
    start, // send `request`
    split, // `shortened` stops at `new_end` (exclusive); `request` is its tail, to send now
    wait,  // work exists but not now (back-off, host limits): call again at `wake` or after an event
    idle,  // nothing unassigned could start: the driver may add files
    done,  // nothing unassigned and nothing in flight
  };
  Kind kind = Kind::idle;
  Assignment request;
  RequestId shortened = 0;
  std::uint64_t new_end = 0;
  std::optional<SchedTime> wake;
  // wait: some unassigned work is held back by connection limits (not only by back-off): adding files
  // would not get anything started sooner.
  bool full = false;
};

struct HostStatus {
  int big_target = 0;
  int big_peak = 0;
  int small_target = 0;
  int in_flight = 0;
};

class Scheduler {
public:
  explicit Scheduler(SchedulerOptions options);

  // A file to fetch: `present` are the byte ranges already on disk (resume). Files are served in the order
  // they were added.
  FileId add_file(std::uint64_t size, std::string host, const ByteRanges& present = {});
  // Where the file's bytes come from now (e.g. the CDN after a redirect). Requests in flight move with it; a
  // host seen for the first time inherits the old host's controllers, so a redirect does not restart the
  // ramp-up. Small files stay on the host they were added with: their controller measures the whole
  // exchange, redirects included, and a request moving to another host would free its place on the first.
  void set_host(FileId file, const std::string& host);

  Decision next(SchedTime now);
  // The driver has more files to add (it opens them lazily): counts as small-file work waiting.
  void set_backlog(bool more_files) { m_backlog = more_files; }
  // The driver could not apply a split (the request had already passed the new end): merge the tail back.
  void undo_split(RequestId tail);

  // Bytes [first, first + received) of the request are on disk (`received` only grows).
  void on_progress(RequestId id, std::uint64_t received, SchedTime now);
  // The request got all its bytes (up to its current end).
  void on_complete(RequestId id, SchedTime now);
  // The request ended early; `received` bytes from its start are on disk and count.
  FailureOutcome on_failed(RequestId id, std::uint64_t received, const Failure& failure, SchedTime now);
  // Requests without bytes for stall_timeout (each reported once): the driver cancels them and then reports
  // them with FailureKind::stall.
  std::vector<RequestId> stalled(SchedTime now);

  // The file stops (failed elsewhere, e.g. disk or hash): nothing more is started for it.
  void fail_file(FileId file);
  // Everything of the file again (a hash mismatch); only with no request in flight for it.
  void restart_file(FileId file);

  const ByteRanges& present(FileId file) const;
  std::uint64_t contiguous_prefix(FileId file) const { return present(file).prefix(); }
  bool complete(FileId file) const;
  int in_flight(FileId file) const;
  int in_flight_total() const { return m_in_flight_total; }
  // Requests the driver should be able to run at once now (sum of the targets of hosts with work).
  int wanted_requests() const;
  HostStatus host_status(const std::string& host) const;
  // The current end (exclusive) of a request in flight.
  std::uint64_t request_end(RequestId id) const;
  const SchedulerOptions& options() const { return m_o; }

private:
  struct Pending {
    std::uint64_t end = 0;
    int failures = 0;
    SchedTime not_before{};
  };
  struct File {
    std::uint64_t size = 0;
    std::string host;
    RequestClass cls = RequestClass::big;
    ByteRanges present;
    std::map<std::uint64_t, Pending> unassigned; // first -> range
    int in_flight = 0;
    bool failed = false;
  };
  struct Request {
    FileId file = 0;
    std::string host;
    RequestClass cls = RequestClass::big;
    std::uint64_t first = 0;
    std::uint64_t end = 0; // exclusive, current
    std::uint64_t received = 0;
    int failures = 0;
    SchedTime started{};
    SchedTime last_bytes{};
    bool stall_reported = false;
  };
  struct Host {
    ConcurrencyController big;
    ConcurrencyController small;
    int in_flight_big = 0;
    int in_flight_small = 0;
    double bytes = 0;     // big-file bytes received (controller counter)
    double completed = 0; // small-file requests completed (controller counter)
    SchedTime not_before{};
  };

  Host& host(const std::string& name);
  const Host* find_host(const std::string& name) const;
  ConcurrencyController& controller(Host& h, RequestClass cls);
  int& class_in_flight(Host& h, RequestClass cls);
  bool host_has_room(Host& h, RequestClass cls) const;
  void observe_hosts(SchedTime now);
  bool demand(const std::string& host, RequestClass cls) const;
  std::uint64_t piece_size(const File& f, std::uint64_t unassigned_total);
  Assignment begin(RequestId id, FileId fid, std::uint64_t first, std::uint64_t end, int failures,
                   SchedTime now);
  void finish(Request& r);
  std::optional<Decision> try_split(SchedTime now);
  SchedDuration backoff(int failures, RequestId id) const;

  SchedulerOptions m_o;
  std::vector<File> m_files;
  std::map<RequestId, Request> m_requests;
  std::map<std::string, Host> m_hosts;
  FileId m_first_open = 0;
  bool m_backlog = false;
  RequestId m_next_id = 1;
  int m_in_flight_total = 0;
};

} // namespace modelmgr::transfer
