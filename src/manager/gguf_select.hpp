#pragma once
// GGUF files by quantization (`REPO:QUANT`, as `llama-server -hf` and `ollama pull hf.co/...` take them):
// which files of a repo listing make up one quantization. Pure functions over paths: no network, no disk.
//
// Rules (llama.cpp's `-hf` behaviour, written from its description):
//  - a model file is a `.gguf` whose file name does not contain `mmproj` or `imatrix`;
//  - a tag matches a model file when it appears in its path case-insensitively, preceded by the start, `/`,
//    `-` or `.` and followed by `-` or `.` (`Q4_K_M` matches `x-Q4_K_M.gguf` and
//    `x.q4_k_m-00001-of-00002.gguf`, not `x-Q4_K_M_L.gguf` or `x-IQ4_K_M.gguf`); the first such file in
//    listing order wins;
//  - no tag: `Q4_K_M`, else `Q8_0`, else the first model file;
//  - a split file (`<prefix>-00001-of-00003.gguf`) brings every part of its set, in part order; a part
//    missing from the listing is an error;
//  - the repo's `mmproj` GGUF (vision projector) comes along when there is one: among those in the model's
//    folder or a parent folder, the deepest, then the one whose bit width is closest to the model's.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::manager {

// `org/name:Q4_K_M` → {"org/name", "Q4_K_M"}; no `:` → {spec, nullopt}. An empty tag (`org/name:`) is a usage
// ConfigurationError.
struct RepoQuant {
  std::string repo;
  std::optional<std::string> quant;
};
RepoQuant split_repo_quant(std::string_view spec);

// True for `org/name` or `org/name:TAG` (a repo id has a `/`; a catalog id never does).
bool looks_like_repo_spec(std::string_view spec) noexcept;

// What one GGUF path says about itself.
struct GgufName {
  std::string prefix; // the path without `.gguf` and without the split suffix
  std::string quant;  // upper-cased last `-`/`.`-separated token of the file name ("" when none)
  int part = 1;       // 1-based split index
  int parts = 1;      // split count (1: not split)
  bool is_model = false;
  bool is_mmproj = false;
};
// nullopt when `path` does not end in `.gguf` (case-insensitive).
std::optional<GgufName> parse_gguf_name(std::string_view path);

struct GgufSelection {
  std::string quant;              // the tag that matched (as given, or the default that was used)
  std::vector<std::string> model; // the model file(s): one, or every split part in order
  std::optional<std::string> mmproj;
  // model then mmproj: what to download.
  std::vector<std::string> files() const;
};

// The quantizations the model files of `paths` offer, in listing order, without duplicates.
std::vector<std::string> available_quants(const std::vector<std::string>& paths);

// Picks the files of `quant` (nullopt: the default) from a repo listing. Throws MissingModelError naming
// `repo` and listing the quantizations the repo has when nothing matches (or when the repo has no GGUF), and
// when a split set is incomplete.
GgufSelection select_gguf(const std::vector<std::string>& paths, const std::optional<std::string>& quant,
                          std::string_view repo);

} // namespace modelmgr::manager
