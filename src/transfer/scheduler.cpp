#include "transfer/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace modelmgr::transfer {

namespace {

double seconds(SchedDuration d)
{
  return std::chrono::duration<double>(d).count();
}

void earliest(std::optional<SchedTime>& wake, SchedTime t)
{
  wake = wake ? std::min(*wake, t) : t;
}

} // namespace

// ---- ByteRanges
// ---------------------------------------------------------------------------------------------

void ByteRanges::add(std::uint64_t first, std::uint64_t end)
{
  if (first >= end) {
    return;
  }
  auto it = m_ranges.upper_bound(first);
  if (it != m_ranges.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= first) {
      first = prev->first;
      end = std::max(end, prev->second);
      it = m_ranges.erase(prev);
    }
  }
  while (it != m_ranges.end() && it->first <= end) {
    end = std::max(end, it->second);
    it = m_ranges.erase(it);
  }
  m_ranges.emplace(first, end);
}

std::uint64_t ByteRanges::total() const
{
  std::uint64_t sum = 0;
  for (const auto& [a, b] : m_ranges) {
    sum += b - a;
  }
  return sum;
}

std::uint64_t ByteRanges::prefix() const
{
  if (m_ranges.empty() || m_ranges.begin()->first != 0) {
    return 0;
  }
  return m_ranges.begin()->second;
}

bool ByteRanges::contains(std::uint64_t first, std::uint64_t end) const
{
  if (first >= end) {
    return true;
  }
  auto it = m_ranges.upper_bound(first);
  if (it == m_ranges.begin()) {
    return false;
  }
  return std::prev(it)->second >= end;
}

bool ByteRanges::intersects(std::uint64_t first, std::uint64_t end) const
{
  if (first >= end) {
    return false;
  }
  auto it = m_ranges.upper_bound(first);
  if (it != m_ranges.begin() && std::prev(it)->second > first) {
    return true;
  }
  return it != m_ranges.end() && it->first < end;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> ByteRanges::gaps(std::uint64_t size) const
{
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  std::uint64_t at = 0;
  for (const auto& [a, b] : m_ranges) {
    if (a >= size) {
      break;
    }
    if (a > at) {
      out.emplace_back(at, a);
    }
    at = std::max(at, b);
  }
  if (at < size) {
    out.emplace_back(at, size);
  }
  return out;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> ByteRanges::list() const
{
  return {m_ranges.begin(), m_ranges.end()};
}

// ---- ConcurrencyController
// ----------------------------------------------------------------------------------

ConcurrencyController::ConcurrencyController(Options o)
    : m_o(o), m_target(std::clamp(o.initial, o.min, std::max(o.min, o.max))), m_peak(m_target), m_hold(o.hold)
{
}

void ConcurrencyController::start_window()
{
  m_saturated_since.reset();
  m_window_start.reset();
}

void ConcurrencyController::grow()
{
  const int next = m_slow_start ? m_target * 2 : m_target + std::max(1, m_target / 4);
  const int grown = std::min(m_o.max, next);
  start_window();
  if (grown == m_target) {
    // At the cap: nothing to probe.
    m_phase = Phase::hold;
    return;
  }
  m_target = grown;
  m_peak = std::max(m_peak, m_target);
  m_phase = Phase::step;
}

void ConcurrencyController::observe(SchedTime now, double counter, bool saturated)
{
  if (!m_o.adaptive) {
    return;
  }
  if (m_phase == Phase::hold) {
    if (now < m_hold_until) {
      return;
    }
    // Probe again: measure where we are, then one (additive) step up.
    m_phase = Phase::base;
    start_window();
  }
  if (!saturated) {
    start_window();
    return;
  }
  if (!m_saturated_since) {
    m_saturated_since = now;
  }
  if (!m_window_start) {
    // New connections need a moment (handshakes, slow start) before their rate means anything.
    if (now - *m_saturated_since < m_o.settle) {
      return;
    }
    m_window_start = now;
    m_window_counter = counter;
    return;
  }
  const SchedDuration elapsed = now - *m_window_start;
  const double events = counter - m_window_counter;
  if (elapsed < m_o.window || events < m_o.min_window_events || elapsed.count() <= 0) {
    return;
  }
  const double rate = events / seconds(elapsed);
  m_last_rate = rate;
  if (m_phase == Phase::base) {
    m_base_rate = rate;
    m_base_level = m_target;
    grow();
    return;
  }
  // Phase::step: the level went from m_base_level to m_target; did it pay?
  const double per_connection = m_base_level > 0 ? m_base_rate / m_base_level : 0;
  const double gain = m_base_rate > 0 ? rate / m_base_rate : (rate > 0 ? 1e9 : 1);
  const double added = static_cast<double>(m_target - m_base_level);
  const double efficiency = per_connection > 0 && added > 0 ? (rate - m_base_rate) / (per_connection * added)
                                                            : (rate > m_base_rate ? 1 : 0);
  if (gain >= m_o.grow_min_gain && efficiency >= m_o.grow_min_efficiency) {
    m_base_rate = rate;
    m_base_level = m_target;
    m_hold = m_o.hold;
    grow();
    return;
  }
  // A shared bottleneck: keep as many connections as the measured rate needs at the old per-connection
  // rate (no more than before the step when the step made things worse), and hold.
  int settled = m_base_level;
  if (per_connection > 0) {
    const double needed = std::ceil(rate / per_connection - 1e-9);
    settled = static_cast<int>(std::clamp<double>(needed, m_base_level, m_target));
  }
  m_target = std::clamp(settled, m_o.min, m_o.max);
  m_slow_start = false;
  m_phase = Phase::hold;
  m_hold_until = now + m_hold;
  m_hold = std::min(m_hold * 2, m_o.max_hold);
  start_window();
}

void ConcurrencyController::pushback(SchedTime now)
{
  m_target = std::max(m_o.min, m_target / 2);
  if (!m_o.adaptive) {
    return;
  }
  m_slow_start = false;
  m_phase = Phase::hold;
  m_hold_until = now + m_o.hold;
  start_window();
}

void ConcurrencyController::completed()
{
  if (!m_o.adaptive) {
    m_target = std::min(m_o.max, m_target + 1);
    m_peak = std::max(m_peak, m_target);
  }
}

// ---- Scheduler
// ----------------------------------------------------------------------------------------------

Scheduler::Scheduler(SchedulerOptions options) : m_o(options)
{
  m_o.max_per_host = std::max(1, m_o.max_per_host);
  m_o.max_total = std::max(1, m_o.max_total);
  m_o.max_per_file = std::max(1, m_o.max_per_file);
  m_o.min_piece = std::max<std::uint64_t>(1, m_o.min_piece);
  m_o.max_piece = std::max(m_o.min_piece, m_o.max_piece);
}

Scheduler::Host& Scheduler::host(const std::string& name)
{
  auto it = m_hosts.find(name);
  if (it != m_hosts.end()) {
    return it->second;
  }
  ConcurrencyController::Options big;
  big.adaptive = m_o.adaptive;
  big.max = m_o.max_per_host;
  big.initial = m_o.adaptive ? m_o.initial_connections : m_o.max_per_host;
  big.settle = m_o.settle;
  big.window = m_o.window;
  big.hold = m_o.hold;
  ConcurrencyController::Options small = big;
  small.initial = m_o.adaptive ? m_o.initial_small_requests : m_o.max_per_host;
  // A rate of completions needs a few of them to mean anything. Small requests need no warm-up (no slow
  // start worth the name for a few KiB) and their rate settles within a few round trips, so their steps are
  // shorter: a 1,500-file snapshot is over in a couple of seconds, and a ramp paced like the big files'
  // (0.35 s a step) would spend most of it below the level the latency asks for.
  small.min_window_events = 8;
  small.settle = m_o.settle / 2;
  small.window = m_o.window / 2;
  return m_hosts.emplace(name, Host{ConcurrencyController(big), ConcurrencyController(small)}).first->second;
}

const Scheduler::Host* Scheduler::find_host(const std::string& name) const
{
  auto it = m_hosts.find(name);
  return it == m_hosts.end() ? nullptr : &it->second;
}

ConcurrencyController& Scheduler::controller(Host& h, RequestClass cls)
{
  // Fixed mode: one count per host for everything, as --max-workers always meant.
  return m_o.adaptive && cls == RequestClass::small ? h.small : h.big;
}

int& Scheduler::class_in_flight(Host& h, RequestClass cls)
{
  return cls == RequestClass::small ? h.in_flight_small : h.in_flight_big;
}

bool Scheduler::host_has_room(Host& h, RequestClass cls) const
{
  const int total = h.in_flight_big + h.in_flight_small;
  if (!m_o.adaptive) {
    return total < h.big.target();
  }
  const int in_class = cls == RequestClass::small ? h.in_flight_small : h.in_flight_big;
  const int target = cls == RequestClass::small ? h.small.target() : h.big.target();
  return in_class < target && total < m_o.max_per_host;
}

bool Scheduler::demand(const std::string& name, RequestClass cls) const
{
  // Files yet to be added are small ones first (the driver orders them), and small files would be waiting
  // for a place; a big file's controller only counts what it can see.
  if (m_backlog && cls == RequestClass::small) {
    return true;
  }
  for (FileId fid = m_first_open; fid < m_files.size(); ++fid) {
    const File& f = m_files[fid];
    if (!f.failed && !f.unassigned.empty() && f.cls == cls && f.host == name) {
      return true;
    }
  }
  return false;
}

void Scheduler::observe_hosts(SchedTime now)
{
  for (auto& [name, h] : m_hosts) {
    // A level with fewer requests than its target but work waiting (they just completed, the next ones are
    // about to start) counts as saturated; without work waiting it says nothing about the target.
    const bool big = h.in_flight_big >= h.big.target() || demand(name, RequestClass::big);
    const bool small = h.in_flight_small >= h.small.target() || demand(name, RequestClass::small);
    h.big.observe(now, h.bytes, big);
    h.small.observe(now, h.completed, small);
  }
}

FileId Scheduler::add_file(std::uint64_t size, std::string host_name, const ByteRanges& present)
{
  File f;
  f.size = size;
  f.host = std::move(host_name);
  f.cls = size < m_o.small_file_size ? RequestClass::small : RequestClass::big;
  for (const auto& [a, b] : present.list()) {
    f.present.add(std::min(a, size), std::min(b, size));
  }
  for (const auto& [a, b] : f.present.gaps(size)) {
    f.unassigned.emplace(a, Pending{b, 0, {}});
  }
  host(f.host);
  m_files.push_back(std::move(f));
  return m_files.size() - 1;
}

void Scheduler::set_host(FileId fid, const std::string& name)
{
  File& f = m_files.at(fid);
  if (f.host == name || f.cls == RequestClass::small) {
    return;
  }
  if (!m_hosts.contains(name)) {
    // Same servers behind a redirect: keep what was learnt about them.
    Host copy = host(f.host);
    copy.in_flight_big = 0;
    copy.in_flight_small = 0;
    copy.not_before = {};
    m_hosts.emplace(name, std::move(copy));
  }
  Host& from = host(f.host);
  Host& to = host(name);
  for (auto& [id, r] : m_requests) {
    if (r.file == fid && r.host == f.host) {
      --class_in_flight(from, r.cls);
      ++class_in_flight(to, r.cls);
      r.host = name;
    }
  }
  f.host = name;
}

std::uint64_t Scheduler::piece_size(const File& f, std::uint64_t unassigned_total)
{
  if (m_o.fixed_piece > 0) {
    return m_o.fixed_piece;
  }
  if (f.cls == RequestClass::small) {
    return std::numeric_limits<std::uint64_t>::max();
  }
  const int target = std::max(1, host(f.host).big.target());
  return std::clamp<std::uint64_t>(unassigned_total / static_cast<std::uint64_t>(target), m_o.min_piece,
                                   m_o.max_piece);
}

Assignment Scheduler::begin(RequestId id, FileId fid, std::uint64_t first, std::uint64_t end, int failures,
                            SchedTime now)
{
  File& f = m_files[fid];
  Request r;
  r.file = fid;
  r.host = f.host;
  r.cls = f.cls;
  r.first = first;
  r.end = end;
  r.failures = failures;
  r.started = now;
  r.last_bytes = now;
  ++f.in_flight;
  ++class_in_flight(host(f.host), f.cls);
  ++m_in_flight_total;
  m_requests.emplace(id, r);
  return Assignment{id, fid, first, end - 1, f.host, f.cls};
}

void Scheduler::finish(Request& r)
{
  --m_files[r.file].in_flight;
  --class_in_flight(host(r.host), r.cls);
  --m_in_flight_total;
}

Decision Scheduler::next(SchedTime now)
{
  observe_hosts(now);
  std::optional<SchedTime> wake;
  bool any_unassigned = false;
  bool full = false;
  // Files before the cursor have nothing unassigned (a failure or restart moves the cursor back).
  while (m_first_open < m_files.size() &&
         (m_files[m_first_open].failed || m_files[m_first_open].unassigned.empty())) {
    ++m_first_open;
  }
  for (FileId fid = m_first_open; fid < m_files.size(); ++fid) {
    File& f = m_files[fid];
    if (f.failed || f.unassigned.empty()) {
      continue;
    }
    any_unassigned = true;
    if (m_in_flight_total >= m_o.max_total || f.in_flight >= m_o.max_per_file) {
      full = true;
      continue;
    }
    Host& h = host(f.host);
    if (!host_has_room(h, f.cls)) {
      full = true;
      continue;
    }
    if (h.not_before > now) {
      earliest(wake, h.not_before);
      continue;
    }
    std::uint64_t unassigned_total = 0;
    for (const auto& [first, p] : f.unassigned) {
      unassigned_total += p.end - first;
    }
    for (auto it = f.unassigned.begin(); it != f.unassigned.end(); ++it) {
      const std::uint64_t first = it->first;
      const Pending p = it->second;
      if (p.not_before > now) {
        earliest(wake, p.not_before);
        continue;
      }
      const std::uint64_t piece = piece_size(f, unassigned_total);
      std::uint64_t end = p.end - first > piece ? first + piece : p.end;
      // No crumbs: a remainder smaller than the smallest piece goes with this one.
      if (m_o.fixed_piece == 0 && p.end - end < m_o.min_piece) {
        end = p.end;
      }
      f.unassigned.erase(it);
      if (end < p.end) {
        f.unassigned.emplace(end, p);
      }
      Decision d;
      d.kind = Decision::Kind::start;
      d.request = begin(m_next_id++, fid, first, end, p.failures, now);
      return d;
    }
  }
  if (auto split = try_split(now)) {
    return *split;
  }
  Decision d;
  if (any_unassigned) {
    d.kind = Decision::Kind::wait;
    d.wake = wake;
    d.full = full;
  } else {
    d.kind = m_in_flight_total > 0 ? Decision::Kind::idle : Decision::Kind::done;
  }
  return d;
}

std::optional<Decision> Scheduler::try_split(SchedTime now)
{
  if (m_in_flight_total >= m_o.max_total) {
    return std::nullopt;
  }
  RequestId best = 0;
  double best_eta = 0;
  for (auto& [id, r] : m_requests) {
    const File& f = m_files[r.file];
    if (f.failed || f.in_flight >= m_o.max_per_file || !host_has_room(host(r.host), r.cls)) {
      continue;
    }
    const std::uint64_t remaining = r.end - (r.first + r.received);
    if (remaining < 2 * m_o.split_min_piece) {
      continue;
    }
    // Only a request that will clearly take long at its own measured rate: splitting a fast one costs a new
    // request and whatever its connection already had in flight.
    const SchedDuration observed = now - r.started;
    if (observed < m_o.split_min_observation || observed.count() <= 0) {
      continue;
    }
    const double rate = static_cast<double>(r.received) / seconds(observed);
    const double eta = rate > 0 ? static_cast<double>(remaining) / rate : 1e18;
    if (eta > seconds(m_o.split_min_eta) && eta > best_eta) {
      best = id;
      best_eta = eta;
    }
  }
  if (best == 0) {
    return std::nullopt;
  }
  Request& r = m_requests.at(best);
  const std::uint64_t pos = r.first + r.received;
  const std::uint64_t old_end = r.end;
  const std::uint64_t mid = (old_end - (old_end - pos) / 2) & ~std::uint64_t{0xffff};
  if (mid <= pos || mid >= old_end) {
    return std::nullopt;
  }
  r.end = mid;
  const int failures = r.failures;
  const FileId fid = r.file;
  Decision d;
  d.kind = Decision::Kind::split;
  d.shortened = best;
  d.new_end = mid;
  d.request = begin(m_next_id++, fid, mid, old_end, failures, now);
  return d;
}

void Scheduler::undo_split(RequestId tail)
{
  auto it = m_requests.find(tail);
  if (it == m_requests.end()) {
    throw std::logic_error("Scheduler::undo_split: unknown request");
  }
  Request t = it->second;
  finish(it->second);
  m_requests.erase(it);
  for (auto& [id, r] : m_requests) {
    if (r.file == t.file && r.end == t.first) {
      r.end = t.end;
      return;
    }
  }
  m_files[t.file].unassigned.emplace(t.first, Pending{t.end, t.failures, {}});
  m_first_open = std::min(m_first_open, t.file);
}

void Scheduler::on_progress(RequestId id, std::uint64_t received, SchedTime now)
{
  auto it = m_requests.find(id);
  if (it == m_requests.end()) {
    return;
  }
  Request& r = it->second;
  received = std::min(received, r.end - r.first);
  if (received <= r.received) {
    return;
  }
  m_files[r.file].present.add(r.first + r.received, r.first + received);
  if (r.cls == RequestClass::big) {
    host(r.host).bytes += static_cast<double>(received - r.received);
  }
  r.received = received;
  r.last_bytes = now;
}

void Scheduler::on_complete(RequestId id, SchedTime now)
{
  auto it = m_requests.find(id);
  if (it == m_requests.end()) {
    return;
  }
  on_progress(id, it->second.end - it->second.first, now);
  Request& r = it->second;
  Host& h = host(r.host);
  if (r.cls == RequestClass::small) {
    h.completed += 1;
  }
  controller(h, r.cls).completed();
  finish(r);
  m_requests.erase(it);
  observe_hosts(now);
}

SchedDuration Scheduler::backoff(int failures, RequestId id) const
{
  const int step = std::clamp(failures - 1, 0, 3);
  // Deterministic jitter (0.8–1.2) so that ranges failing together do not come back together.
  const double jitter = 0.8 + 0.4 * static_cast<double>((id * 2654435761u) % 1000) / 1000.0;
  return std::chrono::duration_cast<SchedDuration>(m_o.retry_base * (1 << step) * jitter);
}

FailureOutcome Scheduler::on_failed(RequestId id, std::uint64_t received, const Failure& failure,
                                    SchedTime now)
{
  auto it = m_requests.find(id);
  if (it == m_requests.end()) {
    throw std::logic_error("Scheduler::on_failed: unknown request");
  }
  on_progress(id, received, now);
  const Request r = it->second;
  finish(it->second);
  m_requests.erase(it);

  FailureOutcome out;
  const bool progressed = r.received > 0;
  out.attempts = progressed ? 1 : r.failures + 1;
  Host& h = host(r.host);
  ConcurrencyController& ctl = controller(h, r.cls);
  out.target_before = ctl.target();
  if (failure.kind == FailureKind::pushback || failure.kind == FailureKind::connection) {
    ctl.pushback(now);
  }
  out.target_after = ctl.target();
  std::optional<SchedDuration> retry_after;
  if (failure.retry_after) {
    retry_after = std::min(*failure.retry_after, m_o.max_retry_after);
    h.not_before = std::max(h.not_before, now + *retry_after);
  }
  File& f = m_files[r.file];
  const std::uint64_t pos = r.first + r.received;
  if (failure.kind == FailureKind::fatal || out.attempts > m_o.max_retries) {
    out.give_up = true;
    fail_file(r.file);
    return out;
  }
  out.wait = retry_after.value_or(progressed ? SchedDuration{0} : backoff(out.attempts, id));
  if (pos < r.end && !f.failed) {
    f.unassigned.emplace(pos, Pending{r.end, out.attempts, now + out.wait});
    m_first_open = std::min(m_first_open, r.file);
  }
  return out;
}

std::vector<RequestId> Scheduler::stalled(SchedTime now)
{
  std::vector<RequestId> out;
  if (m_o.stall_timeout.count() <= 0) {
    return out;
  }
  for (auto& [id, r] : m_requests) {
    if (!r.stall_reported && now - r.last_bytes >= m_o.stall_timeout) {
      r.stall_reported = true;
      out.push_back(id);
    }
  }
  return out;
}

void Scheduler::fail_file(FileId fid)
{
  File& f = m_files.at(fid);
  f.failed = true;
  f.unassigned.clear();
}

void Scheduler::restart_file(FileId fid)
{
  File& f = m_files.at(fid);
  if (f.in_flight > 0) {
    throw std::logic_error("Scheduler::restart_file: requests in flight");
  }
  f.present.clear();
  f.unassigned.clear();
  f.failed = false;
  if (f.size > 0) {
    f.unassigned.emplace(0, Pending{f.size, 0, {}});
  }
  m_first_open = std::min(m_first_open, fid);
}

const ByteRanges& Scheduler::present(FileId fid) const
{
  return m_files.at(fid).present;
}

bool Scheduler::complete(FileId fid) const
{
  const File& f = m_files.at(fid);
  return f.present.contains(0, f.size);
}

int Scheduler::in_flight(FileId fid) const
{
  return m_files.at(fid).in_flight;
}

int Scheduler::wanted_requests() const
{
  std::map<std::string, std::pair<bool, bool>> work; // host -> (big, small)
  for (const auto& f : m_files) {
    if (f.failed || (f.unassigned.empty() && f.in_flight == 0)) {
      continue;
    }
    auto& w = work[f.host];
    (f.cls == RequestClass::small ? w.second : w.first) = true;
  }
  int sum = 0;
  for (const auto& [name, w] : work) {
    const Host* h = find_host(name);
    if (!h) {
      continue;
    }
    if (!m_o.adaptive) {
      sum += h->big.target();
      continue;
    }
    const int want = (w.first ? h->big.target() : 0) + (w.second ? h->small.target() : 0);
    sum += std::min(want, m_o.max_per_host);
  }
  // Requests moved to another host by a redirect still run.
  return std::min(m_o.max_total, std::max(sum, m_in_flight_total));
}

HostStatus Scheduler::host_status(const std::string& name) const
{
  HostStatus s;
  if (const Host* h = find_host(name)) {
    s.big_target = h->big.target();
    s.big_peak = h->big.peak();
    s.small_target = m_o.adaptive ? h->small.target() : h->big.target();
    s.in_flight = h->in_flight_big + h->in_flight_small;
  }
  return s;
}

std::uint64_t Scheduler::request_end(RequestId id) const
{
  auto it = m_requests.find(id);
  return it == m_requests.end() ? 0 : it->second.end;
}

} // namespace modelmgr::transfer
