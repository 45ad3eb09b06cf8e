// Writing the model chosen by `modelmgr models select` into a project config, keeping the rest of the file
// (comments, order, formatting) as the user wrote it.

#include "manager/config.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::manager {

namespace {

std::vector<std::string> split_lines(std::string_view text)
{
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::string trim_left(const std::string& s)
{
  const auto i = s.find_first_not_of(" \t");
  return i == std::string::npos ? std::string() : s.substr(i);
}

bool starts_with_key(const std::string& trimmed, std::string_view key, char sep)
{
  if (!trimmed.starts_with(key)) {
    return false;
  }
  const auto rest = trim_left(trimmed.substr(key.size()));
  return !rest.empty() && rest.front() == sep;
}

std::string join(const std::vector<std::string>& lines)
{
  std::string out;
  for (const auto& l : lines) {
    out += l;
    out += '\n';
  }
  return out;
}

// A JSON string literal is a valid TOML basic string and a valid YAML double-quoted scalar.
std::string quoted(std::string_view spec)
{
  return nlohmann::json(std::string(spec)).dump();
}

std::string edit_toml(std::string_view text, std::string_view spec)
{
  auto lines = split_lines(text);
  const std::string value = "spec = " + quoted(spec);
  std::optional<std::size_t> header;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto t = trim_left(lines[i]);
    if (t.starts_with("[")) {
      if (header) {
        break; // the next table: [model] had no spec
      }
      if (t.starts_with("[model]")) {
        header = i;
      }
      continue;
    }
    if (header && starts_with_key(t, "spec", '=')) {
      lines[i] = value;
      return join(lines);
    }
  }
  if (header) {
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(*header) + 1, value);
    return join(lines);
  }
  // Top-level keys (cache_dir = …) must stay before the first table, or they would belong to [model]: the
  // new table goes right before the first table (or at the end when there is none).
  std::size_t first_table = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (trim_left(lines[i]).starts_with("[")) {
      first_table = i;
      break;
    }
  }
  std::vector<std::string> placed(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(first_table));
  if (first_table > 0 && !trim_left(lines[first_table - 1]).empty()) {
    placed.emplace_back();
  }
  placed.insert(placed.end(), {"[model]", value, ""});
  placed.insert(placed.end(), lines.begin() + static_cast<std::ptrdiff_t>(first_table), lines.end());
  return join(placed);
}

std::string edit_yaml(std::string_view text, std::string_view spec)
{
  auto lines = split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (!starts_with_key(lines[i], "model", ':')) {
      continue; // only a top-level (unindented) `model:`
    }
    // The block below it: indented lines (or blank/comment lines).
    for (std::size_t j = i + 1; j < lines.size(); ++j) {
      const auto t = trim_left(lines[j]);
      if (t.empty() || t.front() == '#') {
        continue;
      }
      if (t.size() == lines[j].size()) {
        break; // back at the top level
      }
      if (starts_with_key(t, "spec", ':')) {
        lines[j] = lines[j].substr(0, lines[j].size() - t.size()) + "spec: " + quoted(spec);
        return join(lines);
      }
    }
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(i) + 1, "  spec: " + quoted(spec));
    return join(lines);
  }
  std::string out(text);
  if (!out.empty() && out.back() != '\n') {
    out += '\n';
  }
  return out + "model:\n  spec: " + quoted(spec) + "\n";
}

} // namespace

std::string with_model_spec(std::string_view text, Format format, std::string_view spec,
                            std::string_view display_name)
{
  std::string out = format == Format::toml ? edit_toml(text, spec) : edit_yaml(text, spec);
  const ModelSetConfig check = parse_config(out, format, display_name);
  if (check.model_spec != std::string(spec)) {
    throw ConfigurationError(
        fmt::format("{}: could not set model.spec (the file's layout is unusual)", display_name),
        fmt::format("add it by hand: model.spec = {}", quoted(spec)));
  }
  return out;
}

} // namespace modelmgr::manager
