#include "util/time.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <limits>
#include <stdexcept>

namespace modelmgr::util {

namespace {

bool parse_digits(std::string_view text, std::size_t pos, std::size_t count, int& out)
{
  if (pos + count > text.size()) {
    return false;
  }
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return false;
    }
    value = value * 10 + (text[i] - '0');
  }
  out = value;
  return true;
}

std::int64_t unit_seconds(char unit)
{
  switch (unit) {
  case 's': return 1;
  case 'm': return 60;
  case 'h': return 3600;
  case 'd': return 86400;
  case 'w': return 7 * 86400;
  default: return 0;
  }
}

} // namespace

std::string format_iso8601_utc(SystemTime t)
{
  const std::time_t secs = std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

std::optional<SystemTime> parse_iso8601_utc(std::string_view text)
{
  std::tm tm{};
  int year = 0;
  int month = 0;
  int day = 0;
  int hour = 0;
  int minute = 0;
  int second = 0;
  if (!parse_digits(text, 0, 4, year) || text.size() < 20 || text[4] != '-' ||
      !parse_digits(text, 5, 2, month) || text[7] != '-' || !parse_digits(text, 8, 2, day) ||
      (text[10] != 'T' && text[10] != ' ') || !parse_digits(text, 11, 2, hour) || text[13] != ':' ||
      !parse_digits(text, 14, 2, minute) || text[16] != ':' || !parse_digits(text, 17, 2, second)) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  std::chrono::microseconds fraction{0};
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::int64_t micros = 0;
    int digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 6) {
        micros = micros * 10 + (text[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) {
      return std::nullopt;
    }
    for (; digits < 6; ++digits) {
      micros *= 10;
    }
    fraction = std::chrono::microseconds(micros);
  }
  const std::string_view zone = text.substr(pos);
  if (zone != "Z" && zone != "+00:00") {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t secs = ::timegm(&tm);
  return std::chrono::system_clock::from_time_t(secs) + fraction;
}

std::string format_time_ago(SystemTime then, SystemTime now)
{
  struct Chunk {
    const char* label;
    double divider;
    std::optional<double> max_value;
  };
  static const std::array<Chunk, 7> chunks{{
      {"second", 1, 60},
      {"minute", 60, 60},
      {"hour", 3600, 24},
      {"day", 86400, 6},
      {"week", 7 * 86400, 6},
      {"month", 30 * 86400, 11},
      {"year", 365 * 86400, std::nullopt},
  }};
  const double delta = std::chrono::duration<double>(now - then).count();
  if (delta < 20) {
    return "a few seconds ago";
  }
  double value = 0;
  const char* label = "";
  for (const Chunk& chunk : chunks) {
    // nearbyint rounds half to even in the default rounding mode, as Python's round() does.
    value = std::nearbyint(delta / chunk.divider);
    label = chunk.label;
    if (chunk.max_value && value <= *chunk.max_value) {
      break;
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f %s%s ago", value, label, value > 1 ? "s" : "");
  return buf;
}

std::chrono::seconds parse_duration(std::string_view text)
{
  const std::string quoted = "'" + std::string(text) + "'";
  std::string_view s = text;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  if (s.empty()) {
    throw std::invalid_argument("invalid duration " + quoted + ": empty (expected e.g. 30d, 12h, 10m, 45s)");
  }
  if (s == "0") {
    return std::chrono::seconds(0);
  }
  std::int64_t total = 0;
  std::size_t pos = 0;
  while (pos < s.size()) {
    if (s[pos] < '0' || s[pos] > '9') {
      throw std::invalid_argument("invalid duration " + quoted + ": expected a number at '" +
                                  std::string(s.substr(pos)) + "' (e.g. 30d, 12h, 10m, 45s)");
    }
    std::int64_t number = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (number > (std::numeric_limits<std::int64_t>::max() - 9) / 10) {
        throw std::invalid_argument("invalid duration " + quoted + ": too large");
      }
      number = number * 10 + (s[pos] - '0');
      ++pos;
    }
    if (pos == s.size()) {
      throw std::invalid_argument("invalid duration " + quoted + ": missing unit after " +
                                  std::to_string(number) + " (s, m, h, d or w)");
    }
    char unit = s[pos];
    if (unit >= 'A' && unit <= 'Z') {
      unit = static_cast<char>(unit - 'A' + 'a');
    }
    const std::int64_t factor = unit_seconds(unit);
    if (factor == 0) {
      throw std::invalid_argument("invalid duration " + quoted + ": unknown unit '" + std::string(1, s[pos]) +
                                  "' (s, m, h, d or w)");
    }
    ++pos;
    if (number > std::numeric_limits<std::int64_t>::max() / factor ||
        total > std::numeric_limits<std::int64_t>::max() - number * factor) {
      throw std::invalid_argument("invalid duration " + quoted + ": too large");
    }
    total += number * factor;
  }
  return std::chrono::seconds(total);
}

std::string format_duration(std::chrono::seconds d)
{
  std::int64_t s = d.count();
  if (s == 0) {
    return "0s";
  }
  std::string out;
  if (s < 0) {
    out = "-";
    s = -s;
  }
  static constexpr std::array<std::pair<std::int64_t, char>, 4> units{
      {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}}};
  for (const auto& [size, unit] : units) {
    if (s >= size) {
      out += std::to_string(s / size);
      out += unit;
      s %= size;
    }
  }
  return out;
}

double to_unix_seconds(SystemTime t)
{
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

SystemTime from_unix_seconds(double seconds)
{
  const auto micros = std::chrono::microseconds(static_cast<std::int64_t>(std::llround(seconds * 1e6)));
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(micros));
}

} // namespace modelmgr::util
