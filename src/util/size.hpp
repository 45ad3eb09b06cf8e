#pragma once
// Byte sizes and transfer rates as people write them ("50M", "1.5GB", "10MiB/s") and as the Python cache
// scan prints them ("42.2K", "3.4G").

#include <cstdint>
#include <string>
#include <string_view>

namespace modelmgr::util {

// Returns the byte count of `text`: a non-negative decimal number (optional fraction), optional spaces,
// and an optional case-insensitive unit. K, M, G, T, P, E (with or without a trailing B) are DECIMAL
// powers of 1000, as on the Hub and in `hf cache` output; Ki, Mi, ... (with or without B) are binary
// powers of 1024. "B" or no unit means bytes. The result is rounded down to whole bytes; a fraction
// without a unit is an error. Examples: "1000" = 1000, "512k" = 512000, "50M" = 50'000'000,
// "1.5GB" = 1'500'000'000, "10MiB" = 10'485'760.
// Throws std::invalid_argument naming the text and the problem (junk, unknown unit, overflow).
std::uint64_t parse_size(std::string_view text);

// Returns bytes per second for a rate: a size as parse_size() takes it, optionally followed by "/s"
// ("10M", "10MB/s", "1.5MiB/s"). Throws std::invalid_argument.
std::uint64_t parse_rate(std::string_view text);

// Returns `bytes` as huggingface_hub's `_format_size` does: decimal units, one decimal, no space, no "B":
// "0.0", "999.0", "42.2K", "3.4G", "1.0T".
std::string format_size(std::uint64_t bytes);

// Returns `bytes` in binary units with one decimal and a space: "512 B", "1.5 KiB", "3.4 GiB".
std::string format_bytes_iec(std::uint64_t bytes);

} // namespace modelmgr::util
