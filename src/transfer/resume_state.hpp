#pragma once
// The resume state of a partial download (`blobs/<etag>.modelmgr.state.incomplete`), as pure functions:
// serialize and parse, no file access. JSON, format version 1:
//   {"format": "modelmgr-resume", "version": 1, "etag": "...", "size": N, "chunk_size": C,
//    "chunks": [[start, end, written], ...]}
// Each chunk says that `written` bytes from `start` are on disk (start <= end <= size, written <= end -
// start). What counts is the set of byte ranges present, not the layout: modelmgr writes one fully written
// chunk per present range, and reads states of any layout (including those of older versions, whose chunks
// were the fixed pieces of the download with partial `written` counts), so --connections/--chunk-size may
// change between runs. `chunk_size` is informational.

#include "transfer/scheduler.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace modelmgr::transfer {

inline constexpr int k_resume_state_version = 1;

struct ResumeState {
  std::string etag;
  std::uint64_t size = 0;
  std::uint64_t chunk_size = 0;
  ByteRanges present;
};

std::string serialize_resume_state(const ResumeState& state);

// Parses a state for the blob `etag` of `size` bytes whose temp file is `temp_size` bytes long. Returns
// nullopt (and the reason in `why`, for diagnostics) when the text is not a usable state for it: not JSON,
// another format or version, another etag or size, malformed or overlapping chunks, chunks outside the file,
// or bytes claimed beyond the end of the temp file.
std::optional<ResumeState> parse_resume_state(std::string_view text, std::string_view etag,
                                              std::uint64_t size, std::uint64_t temp_size,
                                              std::string* why = nullptr);

} // namespace modelmgr::transfer
