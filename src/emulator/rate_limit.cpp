#include "emulator/rate_limit.hpp"

#include <algorithm>
#include <stdexcept>

namespace modelmgr::emulator {

TokenBucket::TokenBucket(std::uint64_t bytes_per_sec, Clock::duration burst)
    : m_rate(bytes_per_sec), m_burst(burst)
{
  if (bytes_per_sec == 0) {
    throw std::invalid_argument("TokenBucket: the rate must be > 0");
  }
}

TokenBucket::Clock::time_point TokenBucket::reserve(std::uint64_t n, Clock::time_point now)
{
  if (!m_started || m_next < now - m_burst) {
    m_next = now - m_burst;
    m_started = true;
  }
  const Clock::time_point due = std::max(m_next, now);
  m_next += std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<long double>(static_cast<long double>(n) / static_cast<long double>(m_rate)));
  return due;
}

} // namespace modelmgr::emulator
