// libFuzzer target for the format readers; not in the default build. With clang:
//   CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DMODELMGR_FUZZ=ON && cmake --build build-fuzz --target
//   fuzz_formats build-fuzz/tests/fuzz_formats -max_len=65536 -rss_limit_mb=512 corpus/
// (seed the corpus with a byte 0..6 followed by a real file, e.g. 3 + a libonnx-testdata model.onnx)
// or by hand:
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -DONNX_ML=1 -DONNX_NAMESPACE=onnx \
//     -I include -I src tests/fuzz/fuzz_formats.cpp src/formats/*.cpp -lfmt -lonnx_proto -lprotobuf -o
//     fuzz_formats
// The first input byte picks the reader, so one corpus covers GGUF, safetensors, the shard index, ONNX,
// the HF JSON files and check_loadable() (which must never throw).
// Any outcome other than success or ParseError (crash, leak, sanitizer report, > rss limit) is a finding.

#include "formats/gguf.hpp"
#include "formats/hf_json.hpp"
#include "formats/load_check.hpp"
#include "formats/onnx.hpp"
#include "formats/parse_error.hpp"
#include "formats/safetensors.hpp"

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  using namespace modelmgr::formats;
  if (size == 0) {
    return 0;
  }
  const std::span<const std::byte> body(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  try {
    const std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());
    switch (data[0] % 7) {
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
    case 2: (void)parse_safetensors_index(text, "fuzz.index.json"); break;
    case 3: {
      const MemoryByteSource src(body);
      (void)parse_onnx(src, "fuzz.onnx");
      break;
    }
    case 4: (void)parse_hf_tokenizer(text, "tokenizer.json"); break;
    case 5: (void)parse_hf_config(text, "config.json"); break;
    default: {
      // Never throws: every outcome is a value. Bytes pick the name, so detection by name is covered too.
      static constexpr const char* k_names[] = {"a.gguf",      "a.safetensors",         "a.onnx",
                                                "config.json", "tokenizer_config.json", "x.bin"};
      const MemoryByteSource src(body);
      (void)check_loadable(src, k_names[size % std::size(k_names)]);
      break;
    }
    }
  } catch (const ParseError&) {
  }
  return 0;
}
