// libFuzzer target for the format readers; not built by CMake. Build and run by hand:
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I include -I src \
//     tests/fuzz/fuzz_formats.cpp src/formats/*.cpp -lfmt -o fuzz_formats
//   ./fuzz_formats -max_len=65536 -rss_limit_mb=512 corpus/
// The first input byte picks the reader, so one corpus covers GGUF, safetensors and the shard index.
// Any outcome other than success or ParseError (crash, leak, sanitizer report, > rss limit) is a finding.

#include "formats/gguf.hpp"
#include "formats/parse_error.hpp"
#include "formats/safetensors.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  using namespace modelmgr::formats;
  if (size == 0) {
    return 0;
  }
  const std::span<const std::byte> body(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  try {
    switch (data[0] % 3) {
    case 0: {
      const MemoryByteSource src(body);
      (void)estimate_ram(describe_gguf(parse_gguf(src, "fuzz.gguf")));
      break;
    }
    case 1: {
      const MemoryByteSource src(body);
      (void)parse_safetensors(src, "fuzz.safetensors").dtype_histogram();
      break;
    }
    default:
      (void)parse_safetensors_index(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()),
                                    "fuzz.index.json");
      break;
    }
  } catch (const ParseError&) {
  }
  return 0;
}
