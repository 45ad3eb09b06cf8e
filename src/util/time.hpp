#pragma once
// Time formatting and parsing: ISO-8601 UTC stamps (lock holder info, logs), "3 days ago" as the Python
// cache scan prints it, and durations such as "30d" for prune/clean thresholds.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace modelmgr::util {

using SystemTime = std::chrono::system_clock::time_point;

// Returns `t` as "2025-01-31T12:34:56Z" (UTC, whole seconds).
std::string format_iso8601_utc(SystemTime t);
// Returns the time of "YYYY-MM-DDTHH:MM:SS[.fff]Z" (also "+00:00"), or nullopt for anything else.
std::optional<SystemTime> parse_iso8601_utc(std::string_view text);

// Returns how long ago `then` was as huggingface_hub's `_format_timesince` words it: "a few seconds ago"
// under 20 s (and for future times), else "<n> <unit>[s] ago" with n rounded half-to-even, switching units at
// 60 seconds, 60 minutes, 24 hours, 6 days, 6 weeks, 11 months (30 days each), then years (365 days).
std::string format_time_ago(SystemTime then, SystemTime now = std::chrono::system_clock::now());

// Returns the duration of "30d", "12h", "10m", "45s", "2w" or a concatenation such as "1h30m" (units s, m, h,
// d, w; case-insensitive; "0" alone is accepted). Throws std::invalid_argument naming the text on junk,
// a missing unit or overflow.
std::chrono::seconds parse_duration(std::string_view text);
// Returns `d` in the largest units that divide it exactly: "30d", "1h30m", "45s", "0s".
std::string format_duration(std::chrono::seconds d);

// Returns `t` as seconds since the UNIX epoch with sub-second precision (Python's time.time()).
double to_unix_seconds(SystemTime t);
// Returns the time point for `seconds` since the epoch (microsecond precision).
SystemTime from_unix_seconds(double seconds);

} // namespace modelmgr::util
