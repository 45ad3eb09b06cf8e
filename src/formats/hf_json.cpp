#include "formats/hf_json.hpp"

#include "formats/byte_source.hpp"
#include "formats/detail/json_guard.hpp"
#include "formats/parse_error.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::formats {
namespace {

using nlohmann::json;

json parse_object(std::string_view text, const std::string& name)
{
  if (const auto deep = detail::find_excess_nesting(text, k_max_json_depth)) {
    const auto [line, column] = line_column(text, *deep);
    throw ParseError(
        name, "JSON", *deep,
        fmt::format("nested deeper than {} at line {}, column {}", k_max_json_depth, line, column));
  }
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    const std::uint64_t at = e.byte > 0 ? e.byte - 1 : 0;
    const auto [line, column] = line_column(text, at);
    throw ParseError(name, "JSON", at,
                     fmt::format("invalid JSON at line {}, column {}: {}", line, column, e.what()));
  } catch (const json::exception& e) {
    // out_of_range for a number too large for a double.
    throw ParseError(name, "JSON", 0, fmt::format("invalid JSON: {}", e.what()));
  }
  if (!root.is_object()) {
    throw ParseError(name, "JSON", 0, fmt::format("expected a JSON object, found {}", root.type_name()));
  }
  return root;
}

std::string string_or_empty(const json& obj, std::string_view key)
{
  const auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A non-negative integer (also written as an integral float, as some exporters do), else nullopt.
std::optional<std::uint64_t> uint_or_none(const json& obj, std::string_view key)
{
  const auto it = obj.find(key);
  if (it == obj.end()) {
    return std::nullopt;
  }
  if (it->is_number_unsigned()) {
    return it->get<std::uint64_t>();
  }
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (d >= 0 && d < 9.2e18 && d == static_cast<double>(static_cast<std::uint64_t>(d))) {
      return static_cast<std::uint64_t>(d);
    }
  }
  return std::nullopt;
}

} // namespace

std::pair<std::uint64_t, std::uint64_t> line_column(std::string_view text, std::uint64_t offset) noexcept
{
  std::uint64_t line = 1;
  std::uint64_t column = 1;
  const std::size_t end = static_cast<std::size_t>(std::min<std::uint64_t>(offset, text.size()));
  for (std::size_t i = 0; i < end; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

void check_json(std::string_view text, const std::string& display_name)
{
  (void)parse_object(text, display_name);
}

HfModelConfig parse_hf_config(std::string_view text, const std::string& display_name)
{
  const json root = parse_object(text, display_name);
  HfModelConfig c;
  c.model_type = string_or_empty(root, "model_type");
  if (const auto it = root.find("architectures"); it != root.end() && it->is_array()) {
    for (const auto& a : *it) {
      if (a.is_string()) {
        c.architectures.push_back(a.get<std::string>());
      }
    }
  }
  // Multimodal configs keep the language model's numbers under text_config.
  const auto text_config = root.find("text_config");
  const json& lm = text_config != root.end() && text_config->is_object() && !root.contains("hidden_size")
                       ? *text_config
                       : root;
  c.hidden_size = uint_or_none(lm, "hidden_size");
  c.num_hidden_layers = uint_or_none(lm, "num_hidden_layers");
  c.vocab_size = uint_or_none(lm, "vocab_size");
  c.max_position_embeddings = uint_or_none(lm, "max_position_embeddings");
  c.torch_dtype = string_or_empty(root, "torch_dtype");
  if (c.torch_dtype.empty()) {
    c.torch_dtype = string_or_empty(root, "dtype");
  }
  return c;
}

HfTokenizer parse_hf_tokenizer(std::string_view text, const std::string& display_name)
{
  const json root = parse_object(text, display_name);
  HfTokenizer t;
  const auto model = root.find("model");
  if (model == root.end() || !model->is_object()) {
    throw ParseError(display_name, "model", 0, "missing or not an object: not a `tokenizers` tokenizer.json");
  }
  t.model_type = string_or_empty(*model, "type");
  if (const auto vocab = model->find("vocab");
      vocab != model->end() && (vocab->is_object() || vocab->is_array())) {
    t.vocab_size = vocab->size();
  }
  if (const auto added = root.find("added_tokens"); added != root.end() && added->is_array()) {
    t.added_tokens = added->size();
  }
  return t;
}

HfTokenizerConfig parse_hf_tokenizer_config(std::string_view text, const std::string& display_name)
{
  const json root = parse_object(text, display_name);
  HfTokenizerConfig c;
  c.tokenizer_class = string_or_empty(root, "tokenizer_class");
  c.model_max_length = uint_or_none(root, "model_max_length");
  if (c.model_max_length && *c.model_max_length >= (1ull << 53)) {
    c.model_max_length.reset(); // int(1e30) in transformers: "no limit"
  }
  if (const auto it = root.find("chat_template"); it != root.end()) {
    c.has_chat_template =
        (it->is_string() && !it->get_ref<const std::string&>().empty()) || (it->is_array() && !it->empty());
  }
  return c;
}

std::string read_json_text(const ByteSource& source, const std::string& name)
{
  if (source.size() > k_max_json_file_size) {
    throw ParseError(
        name, "JSON", 0,
        fmt::format("file size {} exceeds the limit of {} bytes", source.size(), k_max_json_file_size));
  }
  std::string text(static_cast<std::size_t>(source.size()), '\0');
  source.read(0, std::as_writable_bytes(std::span<char>(text)));
  return text;
}

std::string read_json_file(const std::filesystem::path& path)
{
  const FileByteSource source(path);
  return read_json_text(source, path.filename().string());
}

} // namespace modelmgr::formats
