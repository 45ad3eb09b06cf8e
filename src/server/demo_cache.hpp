#pragma once
// The demo of `modelmgr serve --demo` and scripts/run.sh: the stand-in default model set (generated files
// of BAAI/bge-m3, BAAI/bge-reranker-v2-m3, google/siglip-base-patch16-224,
// Qdrant/bm42-all-minilm-l6-v2-attentions; see emulator/repo_model.hpp) written once into a cache folder,
// which the real `serve` then serves. No test emulator is involved.

#include <cstdint>
#include <filesystem>

namespace modelmgr::server {

struct DemoCacheResult {
  std::size_t repos = 0;
  std::size_t files_written = 0; // 0 when the cache already held every file
  std::uint64_t bytes_written = 0;
};

// Writes the demo repos into the cache at `root` (created if missing): blobs (each written to a temp file,
// fsynced, renamed), snapshot links, refs/main and trees/<commit>.json, exactly as a pull would leave them.
// Files already present with the right size are kept, so a second call writes nothing. Throws
// std::system_error naming the path on I/O errors.
DemoCacheResult write_demo_cache(const std::filesystem::path& root);

// Where the demo cache lives when no --cache-dir is given: $XDG_CACHE_HOME/modelmgr/demo-hub, else
// ~/.cache/modelmgr/demo-hub (never the real Hugging Face cache).
std::filesystem::path default_demo_cache_dir();

} // namespace modelmgr::server
