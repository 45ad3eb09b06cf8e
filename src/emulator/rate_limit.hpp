#pragma once
// A token bucket shared by many senders, on an injected clock: the emulator's total rate cap (a link that
// all connections share). Pure; thread safety is the caller's (the emulator holds a mutex around it).

#include <chrono>
#include <cstdint>

namespace modelmgr::emulator {

class TokenBucket {
public:
  using Clock = std::chrono::steady_clock;

  // `bytes_per_sec` > 0. `burst`: how much idle time may be saved up and spent at once.
  TokenBucket(std::uint64_t bytes_per_sec, Clock::duration burst);

  // Reserves `n` bytes at `now`; returns when they may be sent. Reservations are served in the order they
  // are made, so senders sharing the bucket interleave fairly, and over any interval of length T no more
  // than rate × (T + burst) bytes become due.
  Clock::time_point reserve(std::uint64_t n, Clock::time_point now);

  std::uint64_t rate() const noexcept { return m_rate; }

private:
  std::uint64_t m_rate;
  Clock::duration m_burst;
  Clock::time_point m_next{}; // when the bytes reserved so far are all sent at the rate
  bool m_started = false;
};

} // namespace modelmgr::emulator
