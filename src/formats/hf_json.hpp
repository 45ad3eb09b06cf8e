#pragma once
// Readers of the JSON files that come with Hugging Face models: config.json (transformers model
// configuration), tokenizer.json (the `tokenizers` library's serialized tokenizer) and
// tokenizer_config.json. Only the facts modelmgr shows are extracted; every other key is ignored. Errors
// are ParseErrors whose detail names the line and column.

#include "formats/byte_source.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::formats {

struct HfModelConfig {
  std::string model_type;                 // "llama", "bert", ...
  std::vector<std::string> architectures; // "LlamaForCausalLM", ...
  std::optional<std::uint64_t> hidden_size;
  std::optional<std::uint64_t> num_hidden_layers;
  std::optional<std::uint64_t> vocab_size;
  std::optional<std::uint64_t> max_position_embeddings;
  std::string torch_dtype; // "bfloat16", ... (newer files call it "dtype")
};

struct HfTokenizer {
  std::string model_type;                  // "BPE", "WordPiece", "Unigram", "WordLevel"
  std::optional<std::uint64_t> vocab_size; // entries of model.vocab
  std::uint64_t added_tokens = 0;
};

struct HfTokenizerConfig {
  std::string tokenizer_class;
  // Absent, or transformers' "no limit" placeholder (1e30): nullopt.
  std::optional<std::uint64_t> model_max_length;
  bool has_chat_template = false;
};

// Limits for any JSON file read here.
inline constexpr std::uint64_t k_max_json_file_size = 512ull << 20; // tokenizer.json files reach ~30 MB
inline constexpr std::uint32_t k_max_json_depth = 64;

// Parses `text` as JSON and checks it is an object; throws ParseError "invalid JSON at line L, column C:
// ..." otherwise. `display_name` names the file in errors. Used by the readers below and for any .json.
void check_json(std::string_view text, const std::string& display_name);

HfModelConfig parse_hf_config(std::string_view text, const std::string& display_name);
HfTokenizer parse_hf_tokenizer(std::string_view text, const std::string& display_name);
HfTokenizerConfig parse_hf_tokenizer_config(std::string_view text, const std::string& display_name);

// Reads a whole JSON file (at most k_max_json_file_size bytes). Throws ParseError / std::system_error.
std::string read_json_file(const std::filesystem::path& path);
// The whole text of a JSON source, refusing one over the size limit (ParseError naming `name`).
std::string read_json_text(const ByteSource& source, const std::string& name);

// Line and column (both 1-based) of byte `offset` in `text`.
std::pair<std::uint64_t, std::uint64_t> line_column(std::string_view text, std::uint64_t offset) noexcept;

} // namespace modelmgr::formats
