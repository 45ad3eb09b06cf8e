#include "formats/load_check.hpp"

#include "formats/hf_json.hpp"
#include "formats/parse_error.hpp"

#include <array>
#include <cstring>
#include <new>
#include <system_error>

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace modelmgr::formats {
namespace {

constexpr std::uint32_t k_gguf_magic = 0x46554747; // "GGUF"

bool ends_with(std::string_view s, std::string_view suffix)
{
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string join_names(const std::vector<std::string>& names)
{
  std::string out;
  for (const auto& n : names) {
    out += (out.empty() ? "" : ", ") + n;
  }
  return out;
}

std::string gguf_summary(const GgufFile& f, const GgufModelInfo& info)
{
  std::string s = fmt::format("GGUF v{}", f.version);
  if (!info.architecture.empty()) {
    s += " " + info.architecture;
  }
  s += fmt::format(", {} parameters", format_parameter_count(info.parameter_count));
  if (!info.quantization.empty()) {
    s += ", " + info.quantization;
  }
  return s + fmt::format(", {} tensors", f.tensors.size());
}

std::string safetensors_summary(const SafetensorsFile& f)
{
  std::vector<std::string> dtypes;
  for (const auto& u : f.dtype_histogram()) {
    dtypes.emplace_back(to_string(u.dtype));
  }
  return fmt::format("safetensors, {} parameters{}, {} tensors", format_parameter_count(f.parameter_count()),
                     dtypes.empty() ? "" : ", " + fmt::format("{}", fmt::join(dtypes, "+")),
                     f.tensors.size());
}

std::string onnx_summary(const OnnxModel& m)
{
  std::string s = fmt::format("ONNX IR {}", m.ir_version);
  if (const auto opset = m.default_opset()) {
    s += fmt::format(", opset {}", *opset);
  }
  s += fmt::format(", {} parameters in {} initializers, {} nodes", format_parameter_count(m.parameter_count),
                   m.initializer_count, m.node_count);
  if (!m.external_data.empty()) {
    s += fmt::format(", external data in {}", join_names(m.external_files()));
  }
  return s;
}

std::string config_summary(const HfModelConfig& c)
{
  std::vector<std::string> parts;
  if (!c.model_type.empty()) {
    parts.push_back(c.architectures.empty()
                        ? c.model_type
                        : fmt::format("{} ({})", c.model_type, join_names(c.architectures)));
  }
  if (c.num_hidden_layers) {
    parts.push_back(fmt::format("{} layers", *c.num_hidden_layers));
  }
  if (c.hidden_size) {
    parts.push_back(fmt::format("hidden size {}", *c.hidden_size));
  }
  if (c.max_position_embeddings) {
    parts.push_back(fmt::format("context {}", *c.max_position_embeddings));
  }
  if (c.vocab_size) {
    parts.push_back(fmt::format("vocabulary {}", *c.vocab_size));
  }
  if (!c.torch_dtype.empty()) {
    parts.push_back(c.torch_dtype);
  }
  return fmt::format("model config: {}", parts.empty() ? std::string("no known keys") : join_names(parts));
}

std::string tokenizer_summary(const HfTokenizer& t)
{
  std::string s = fmt::format("tokenizer: {}", t.model_type.empty() ? "unknown model" : t.model_type);
  if (t.vocab_size) {
    s += fmt::format(", {} tokens", *t.vocab_size);
  }
  return s + fmt::format(", {} added", t.added_tokens);
}

std::string tokenizer_config_summary(const HfTokenizerConfig& c)
{
  std::vector<std::string> parts;
  if (!c.tokenizer_class.empty()) {
    parts.push_back(c.tokenizer_class);
  }
  if (c.model_max_length) {
    parts.push_back(fmt::format("max length {}", *c.model_max_length));
  }
  parts.emplace_back(c.has_chat_template ? "chat template" : "no chat template");
  return fmt::format("tokenizer config: {}", join_names(parts));
}

// Parses `source` as `format` into `out`; `directory` (may be null) is where shards and external data live.
void parse_into(const ByteSource& source, const std::string& name, const std::filesystem::path* directory,
                InspectedFile& out)
{
  auto& c = out.check;
  switch (c.format) {
  case FileFormat::unknown: c.summary = "not a model, tokenizer or config file: not checked"; return;
  case FileFormat::gguf: {
    out.gguf = parse_gguf(source, name);
    out.gguf_info = describe_gguf(*out.gguf);
    c.parameter_count = out.gguf_info->parameter_count;
    c.summary = gguf_summary(*out.gguf, *out.gguf_info);
    return;
  }
  case FileFormat::safetensors:
    out.safetensors = parse_safetensors(source, name);
    c.parameter_count = out.safetensors->parameter_count();
    c.summary = safetensors_summary(*out.safetensors);
    return;
  case FileFormat::safetensors_index: {
    out.index = parse_safetensors_index(read_json_text(source, name), name);
    const auto shards = out.index->shards();
    c.summary = fmt::format("safetensors index, {} tensors in {} shards", out.index->weight_map.size(),
                            shards.size());
    if (directory == nullptr) {
      c.notes.emplace_back("shards not checked (no folder)");
      return;
    }
    out.shards = check_sharded_model(*out.index, *directory);
    c.parameter_count = out.shards->parameter_count;
    c.summary += fmt::format(", {} parameters", format_parameter_count(c.parameter_count));
    c.notes = out.shards->notes;
    if (!out.shards->problems.empty()) {
      c.ok = false;
      c.error = fmt::format("{}: {}", name, join_names(out.shards->problems));
    }
    return;
  }
  case FileFormat::onnx: {
    out.onnx = parse_onnx(source, name);
    c.parameter_count = out.onnx->parameter_count;
    c.summary = onnx_summary(*out.onnx);
    if (out.onnx->external_data.empty()) {
      return;
    }
    if (directory == nullptr) {
      c.notes.emplace_back("external data not checked (no folder)");
      return;
    }
    const auto problems = check_onnx_external_data(*out.onnx, *directory);
    if (!problems.empty()) {
      c.ok = false;
      c.error = fmt::format("{}: {}", name, join_names(problems));
    }
    return;
  }
  case FileFormat::hf_config:
    out.config = parse_hf_config(read_json_text(source, name), name);
    c.summary = config_summary(*out.config);
    return;
  case FileFormat::hf_tokenizer:
    out.tokenizer = parse_hf_tokenizer(read_json_text(source, name), name);
    c.summary = tokenizer_summary(*out.tokenizer);
    return;
  case FileFormat::hf_tokenizer_config:
    out.tokenizer_config = parse_hf_tokenizer_config(read_json_text(source, name), name);
    c.summary = tokenizer_config_summary(*out.tokenizer_config);
    return;
  case FileFormat::json:
    check_json(read_json_text(source, name), name);
    c.summary = "JSON object";
    return;
  }
}

// Runs parse_into() and turns every failure except bad_alloc into a verdict.
void run_checks(const ByteSource& source, const std::string& name, const std::filesystem::path* directory,
                InspectedFile& out)
{
  try {
    parse_into(source, name, directory, out);
  } catch (const ParseError& e) {
    out.check.ok = false;
    out.check.error = e.what();
  } catch (const std::system_error& e) {
    out.check.ok = false;
    out.check.error = fmt::format("{}: {}", name, e.what());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    out.check.ok = false;
    out.check.error = fmt::format("{}: {}", name, e.what());
  }
  if (!out.check.ok) {
    out.check.summary = fmt::format("{} file that does not load", to_string(out.check.format));
  }
}

std::array<std::byte, 16> read_head(const ByteSource& source, std::size_t& n)
{
  std::array<std::byte, 16> head{};
  n = static_cast<std::size_t>(std::min<std::uint64_t>(source.size(), head.size()));
  source.read(0, std::span<std::byte>(head.data(), n));
  return head;
}

} // namespace

std::string_view to_string(FileFormat format) noexcept
{
  switch (format) {
  case FileFormat::unknown: return "unknown";
  case FileFormat::gguf: return "gguf";
  case FileFormat::safetensors: return "safetensors";
  case FileFormat::safetensors_index: return "safetensors-index";
  case FileFormat::onnx: return "onnx";
  case FileFormat::hf_config: return "config.json";
  case FileFormat::hf_tokenizer: return "tokenizer.json";
  case FileFormat::hf_tokenizer_config: return "tokenizer_config.json";
  case FileFormat::json: return "json";
  }
  return "unknown";
}

bool is_weight_format(FileFormat format) noexcept
{
  return format == FileFormat::gguf || format == FileFormat::safetensors || format == FileFormat::onnx;
}

FileFormat detect_format(std::span<const std::byte> head, std::string_view file_name) noexcept
{
  if (head.size() >= 4) {
    std::uint32_t magic = 0;
    std::memcpy(&magic, head.data(), 4);
    if (magic == k_gguf_magic) {
      return FileFormat::gguf;
    }
  }
  if (head.size() >= 9 && head[8] == std::byte{'{'}) {
    std::uint64_t n = 0;
    std::memcpy(&n, head.data(), 8);
    if (n >= 2 && n <= (100ull << 20)) {
      return FileFormat::safetensors;
    }
  }
  const std::string_view name = file_name.substr(file_name.find_last_of('/') + 1);
  if (ends_with(name, ".gguf")) {
    return FileFormat::gguf;
  }
  if (ends_with(name, ".safetensors")) {
    return FileFormat::safetensors;
  }
  if (ends_with(name, ".onnx")) {
    return FileFormat::onnx;
  }
  if (ends_with(name, ".safetensors.index.json")) {
    return FileFormat::safetensors_index;
  }
  if (name == "config.json") {
    return FileFormat::hf_config;
  }
  if (name == "tokenizer.json") {
    return FileFormat::hf_tokenizer;
  }
  if (name == "tokenizer_config.json") {
    return FileFormat::hf_tokenizer_config;
  }
  if (ends_with(name, ".json")) {
    return FileFormat::json;
  }
  return FileFormat::unknown;
}

FileFormat detect_format(const std::filesystem::path& path) noexcept
{
  try {
    const FileByteSource source(path);
    std::size_t n = 0;
    const auto head = read_head(source, n);
    return detect_format(std::span<const std::byte>(head.data(), n), path.filename().string());
  } catch (...) {
    return FileFormat::unknown;
  }
}

InspectedFile inspect_file(const std::filesystem::path& path)
{
  InspectedFile out;
  out.path = path;
  const std::string name = path.filename().string();
  try {
    const FileByteSource source(path);
    out.file_size = source.size();
    std::size_t n = 0;
    const auto head = read_head(source, n);
    out.check.format = detect_format(std::span<const std::byte>(head.data(), n), name);
    const auto directory = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    run_checks(source, name, &directory, out);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    // Cannot open or read the first bytes: not loadable, whatever it was meant to be.
    out.check.format = detect_format(std::span<const std::byte>(), name);
    out.check.ok = false;
    out.check.error = e.what();
  }
  return out;
}

LoadCheck check_loadable(const std::filesystem::path& path)
{
  return inspect_file(path).check;
}

LoadCheck check_loadable(const ByteSource& source, std::string_view file_name)
{
  InspectedFile out;
  const std::string name(file_name);
  try {
    std::size_t n = 0;
    const auto head = read_head(source, n);
    out.check.format = detect_format(std::span<const std::byte>(head.data(), n), name);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    out.check.ok = false;
    out.check.error = e.what();
    return out.check;
  }
  run_checks(source, name, nullptr, out);
  return out.check;
}

std::string format_parameter_count(std::uint64_t n)
{
  struct Unit {
    double scale;
    const char* suffix;
  };
  static constexpr Unit k_units[] = {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
  for (const auto& u : k_units) {
    if (static_cast<double>(n) >= u.scale * 0.9995) {
      const double v = static_cast<double>(n) / u.scale;
      const int decimals = v >= 99.95 ? 0 : (v >= 9.995 ? 1 : 2);
      return fmt::format("{:.{}f} {}", v, decimals, u.suffix);
    }
  }
  return std::to_string(n);
}

} // namespace modelmgr::formats
