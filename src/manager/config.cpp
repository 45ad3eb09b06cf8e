#include "manager/config.hpp"

#include "util/strings.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <system_error>
#include <tuple>

#include <fmt/format.h>
#include <fnmatch.h>
#include <toml++/toml.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

namespace modelmgr {

std::string_view to_string(VerifyLevel level) noexcept
{
  switch (level) {
  case VerifyLevel::none: return "none";
  case VerifyLevel::size: return "size";
  case VerifyLevel::sha256: return "sha256";
  case VerifyLevel::load: return "load";
  }
  return "size";
}

std::optional<VerifyLevel> parse_verify_level(std::string_view text) noexcept
{
  for (auto level : {VerifyLevel::none, VerifyLevel::size, VerifyLevel::sha256, VerifyLevel::load}) {
    if (text == to_string(level)) {
      return level;
    }
  }
  return std::nullopt;
}

const ModelSpec* ModelSetConfig::find(std::string_view id) const
{
  auto it = std::find_if(models.begin(), models.end(), [&](const ModelSpec& m) { return m.id == id; });
  return it == models.end() ? nullptr : &*it;
}

std::string ConfigProblem::format() const
{
  return util::format_located(file, line, column, where, message);
}

namespace {

std::string summarize(const std::string& file, const std::vector<ConfigProblem>& problems)
{
  std::string out = fmt::format("{}: {} problem{} in the model set configuration:", file, problems.size(),
                                problems.size() == 1 ? "" : "s");
  for (const auto& p : problems) {
    out += '\n';
    out += p.format();
  }
  return out;
}

} // namespace

InvalidConfigError::InvalidConfigError(std::string file, std::vector<ConfigProblem> problems)
    : ConfigurationError(summarize(file, problems),
                         "fix every problem listed above; the schema is described in docs/config.md"),
      m_problems(std::move(problems))
{
}

} // namespace modelmgr

namespace modelmgr::manager {

namespace {

// ---------------------------------------------------------------------------------------------------------
// A neutral document tree, so that YAML and TOML go through one validator and give identical results and
// messages. Positions are 1-based; 0 means unknown.

struct Pos {
  int line = 0;
  int column = 0;
};

struct Entry;

struct Node {
  enum class Kind { null, string, integer, floating, boolean, datetime, list, map };
  Kind kind = Kind::null;
  Pos pos;
  std::string text;           // scalars
  std::vector<Node> items;    // list
  std::vector<Entry> entries; // map, in document order (duplicates kept: YAML allows writing them)
};

struct Entry {
  std::string key;
  Pos key_pos;
  Node value;
};

const char* kind_name(Node::Kind kind)
{
  switch (kind) {
  case Node::Kind::null: return "nothing (null)";
  case Node::Kind::string: return "a string";
  case Node::Kind::integer: return "an integer";
  case Node::Kind::floating: return "a number";
  case Node::Kind::boolean: return "a boolean";
  case Node::Kind::datetime: return "a date/time";
  case Node::Kind::list: return "a list";
  case Node::Kind::map: return "a map";
  }
  return "a value";
}

// Deeper than any valid configuration (3 levels); guards against pathological or aliased input.
constexpr int k_max_depth = 32;

struct ParseFailure {
  Pos pos;
  std::string message;
};

// More values than any real model set has. YAML aliases (`*a`) repeat a node without repeating its text, so
// a file of a few hundred bytes can stand for billions of values ("billion laughs"); the copy below would
// never finish.
constexpr std::size_t k_max_yaml_values = 100000;

Node from_yaml(const YAML::Node& y, Pos fallback, int depth, std::size_t& values)
{
  Node node;
  const YAML::Mark mark = y.Mark();
  node.pos = mark.line >= 0 ? Pos{mark.line + 1, mark.column + 1} : fallback;
  if (depth > k_max_depth) {
    throw ParseFailure{node.pos, "YAML nesting is too deep; a model set is at most three levels deep"};
  }
  if (++values > k_max_yaml_values) {
    throw ParseFailure{node.pos, fmt::format("more than {} YAML values (aliases that repeat each other?); a "
                                             "model set is much smaller",
                                             k_max_yaml_values)};
  }
  switch (y.Type()) {
  case YAML::NodeType::Undefined:
  case YAML::NodeType::Null: node.kind = Node::Kind::null; break;
  case YAML::NodeType::Scalar:
    node.kind = Node::Kind::string;
    node.text = y.Scalar();
    break;
  case YAML::NodeType::Sequence:
    node.kind = Node::Kind::list;
    for (const auto& item : y) {
      node.items.push_back(from_yaml(item, node.pos, depth + 1, values));
    }
    break;
  case YAML::NodeType::Map:
    node.kind = Node::Kind::map;
    for (const auto& kv : y) {
      const YAML::Mark km = kv.first.Mark();
      const Pos key_pos = km.line >= 0 ? Pos{km.line + 1, km.column + 1} : node.pos;
      if (!kv.first.IsScalar()) {
        throw ParseFailure{key_pos, "keys must be plain strings; write `key: value`"};
      }
      Node value = from_yaml(kv.second, key_pos, depth + 1, values);
      if (value.kind == Node::Kind::null) {
        // yaml-cpp marks an empty value (`key:`) wherever the scanner stopped, often the next line.
        value.pos = key_pos;
      }
      node.entries.push_back(Entry{kv.first.Scalar(), key_pos, std::move(value)});
    }
    break;
  }
  return node;
}

Pos toml_pos(const toml::source_region& src)
{
  return Pos{static_cast<int>(src.begin.line), static_cast<int>(src.begin.column)};
}

Node from_toml(const toml::node& t)
{
  Node node;
  node.pos = toml_pos(t.source());
  switch (t.type()) {
  case toml::node_type::none: node.kind = Node::Kind::null; break;
  case toml::node_type::string:
    node.kind = Node::Kind::string;
    node.text = *t.value<std::string>();
    break;
  case toml::node_type::integer:
    node.kind = Node::Kind::integer;
    node.text = std::to_string(*t.value<std::int64_t>());
    break;
  case toml::node_type::floating_point: node.kind = Node::Kind::floating; break;
  case toml::node_type::boolean: node.kind = Node::Kind::boolean; break;
  case toml::node_type::date:
  case toml::node_type::time:
  case toml::node_type::date_time: node.kind = Node::Kind::datetime; break;
  case toml::node_type::array:
    node.kind = Node::Kind::list;
    for (const auto& item : *t.as_array()) {
      node.items.push_back(from_toml(item));
    }
    break;
  case toml::node_type::table:
    node.kind = Node::Kind::map;
    for (const auto& [key, value] : *t.as_table()) {
      node.entries.push_back(Entry{std::string(key.str()), toml_pos(key.source()), from_toml(value)});
    }
    // toml++ keeps tables sorted by key; report in document order instead.
    std::stable_sort(node.entries.begin(), node.entries.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.key_pos.line, a.key_pos.column) < std::tie(b.key_pos.line, b.key_pos.column);
    });
    break;
  }
  return node;
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers.

std::string join(std::span<const std::string_view> words, std::string_view sep = ", ")
{
  std::string out;
  for (auto w : words) {
    if (!out.empty()) {
      out += sep;
    }
    out += w;
  }
  return out;
}

bool is_name_char(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

// A character as it should appear in a message.
std::string show_char(char c)
{
  const auto u = static_cast<unsigned char>(c);
  if (c == ' ') {
    return "a space";
  }
  if (u < 0x20 || u >= 0x7f) {
    return fmt::format("byte 0x{:02x}", u);
  }
  return fmt::format("'{}'", c);
}

bool contains_dotdot_segment(std::string_view path)
{
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    if (path.substr(start, end - start) == "..") {
      return true;
    }
    start = end + 1;
  }
  return false;
}

// Hub pattern semantics (huggingface_hub.utils.filter_repo_objects): fnmatch where '*' also matches '/',
// and a pattern ending in '/' means everything below that folder.
bool pattern_matches(std::string pattern, const std::string& path)
{
  if (!pattern.empty() && pattern.back() == '/') {
    pattern += '*';
  }
  return ::fnmatch(pattern.c_str(), path.c_str(), 0) == 0;
}

constexpr std::array<std::string_view, 7> k_top_keys = {"cache_dir", "verify", "manifest", "models",
                                                        "model",     "server", "catalog"};
constexpr std::array<std::string_view, 1> k_selected_model_keys = {"spec"};
constexpr std::array<std::string_view, 4> k_server_keys = {"command", "host", "port", "health_path"};
constexpr std::array<std::string_view, 10> k_model_keys = {
    "id",      "repo_id",   "repo_type",      "revision", "files",
    "exclude", "local_dir", "local_dir_link", "sha256",   "description"};
constexpr std::array<std::string_view, 2> k_local_dir_links = {"copy", "hardlink"};
constexpr std::array<std::string_view, 3> k_repo_types = {"model", "dataset", "space"};
constexpr std::array<std::string_view, 4> k_verify_levels = {"none", "size", "sha256", "load"};

// ---------------------------------------------------------------------------------------------------------
// The validator: walks the neutral tree, fills a ModelSetConfig and collects every problem.

class Validator {
public:
  Validator(std::string file, Format format) : m_file(std::move(file)), m_format(format) {}

  ModelSetConfig run(const Node& root)
  {
    ModelSetConfig config;
    config.path = m_file;
    if (root.kind == Node::Kind::null) {
      add(Pos{1, 1}, "", "the file is empty; list the models to sync under 'models' (see docs/config.md)");
      return config;
    }
    if (root.kind != Node::Kind::map) {
      add(root.pos, "",
          fmt::format("expected a map of settings at the top level, got {}", kind_name(root.kind)));
      return config;
    }
    check_keys(root, "", k_top_keys);

    if (const Node* v = get(root, "cache_dir")) {
      config.cache_dir = non_empty_string(*v, "cache_dir");
    }
    if (const Node* v = get(root, "manifest")) {
      if (auto s = non_empty_string(*v, "manifest")) {
        config.manifest = *s;
      }
    }
    if (const Node* v = get(root, "verify")) {
      if (auto s = string_value(*v, "verify")) {
        if (auto level = parse_verify_level(*s)) {
          config.verify = *level;
        } else {
          add(v->pos, "verify", one_of_message("verify level", *s, k_verify_levels));
        }
      }
    }

    selected_model_and_server(root, config);
    if (const Node* v = get(root, "catalog")) {
      // Extra catalog files for `models` and `start` (relative to this file), after the user catalog.
      if (v->kind == Node::Kind::string) {
        if (auto c = non_empty_string(*v, "catalog")) {
          config.catalogs.push_back(*c);
        }
      } else if (v->kind == Node::Kind::list) {
        for (std::size_t i = 0; i < v->items.size(); ++i) {
          if (auto c = non_empty_string(v->items[i], fmt::format("catalog[{}]", i))) {
            config.catalogs.push_back(*c);
          }
        }
      } else {
        add(v->pos, "catalog",
            fmt::format("expected a catalog file name or a list of them, got {}", kind_name(v->kind)));
      }
    }
    const Node* models = get(root, "models");
    if (models == nullptr &&
        (config.model_spec || get(root, "server") != nullptr || get(root, "catalog") != nullptr)) {
      // A project config for `start` only (its model written by `models select`) syncs nothing else.
    } else if (models == nullptr) {
      add(root.pos, "models",
          fmt::format("missing required key; list the models to sync, e.g.\n    {}", model_example()));
    } else if (models->kind != Node::Kind::list) {
      std::string fix = m_format == Format::toml
                            ? "write each model as a [[models]] table"
                            : "write each model as a list item starting with '- id: ...'";
      add(models->pos, "models",
          fmt::format("expected a list of models, got {}; {}", kind_name(models->kind), fix));
    } else if (models->items.empty()) {
      add(models->pos, "models",
          fmt::format("no models listed; add at least one entry with 'id' and 'repo_id', e.g.\n    {}",
                      model_example()));
    } else {
      for (std::size_t i = 0; i < models->items.size(); ++i) {
        if (auto spec = model(models->items[i], fmt::format("models[{}]", i))) {
          config.models.push_back(std::move(*spec));
        }
      }
    }
    return config;
  }

  // `[model] spec = "ID[:QUANT]"` (a catalog entry, for `start`) and `[server]` (how `start` runs it).
  void selected_model_and_server(const Node& root, ModelSetConfig& config)
  {
    if (const Node* m = get(root, "model")) {
      if (m->kind != Node::Kind::map) {
        add(m->pos, "model", fmt::format("expected a map with 'spec', got {}", kind_name(m->kind)));
      } else {
        check_keys(*m, "model", k_selected_model_keys);
        if (const Node* v = get(*m, "spec")) {
          config.model_spec = non_empty_string(*v, "model.spec");
        } else {
          add(m->pos, "model.spec",
              "missing; name a catalog model, e.g. spec = \"mistral-7b-instruct-v0.3:Q4_K_M\"");
        }
      }
    }
    const Node* srv = get(root, "server");
    if (srv == nullptr) {
      return;
    }
    if (srv->kind != Node::Kind::map) {
      add(srv->pos, "server",
          fmt::format("expected a map (command, host, port, health_path), got {}", kind_name(srv->kind)));
      return;
    }
    check_keys(*srv, "server", k_server_keys);
    if (const Node* v = get(*srv, "command")) {
      config.server.command = non_empty_string(*v, "server.command");
    }
    if (const Node* v = get(*srv, "host")) {
      config.server.host = non_empty_string(*v, "server.host");
    }
    if (const Node* v = get(*srv, "health_path")) {
      if (auto s = non_empty_string(*v, "server.health_path")) {
        if (!s->starts_with('/')) {
          add(v->pos, "server.health_path", fmt::format("'{}' must start with '/', e.g. /health", *s));
        } else {
          config.server.health_path = *s;
        }
      }
    }
    if (const Node* v = get(*srv, "port")) {
      int port = 0;
      const bool number = v->kind == Node::Kind::integer || v->kind == Node::Kind::string;
      auto [end, ec] = std::from_chars(v->text.data(), v->text.data() + v->text.size(), port);
      if (!number || ec != std::errc{} || end != v->text.data() + v->text.size() || port < 1 ||
          port > 65535) {
        add(v->pos, "server.port",
            fmt::format("'{}' is not a TCP port; use a number from 1 to 65535", v->text));
      } else {
        config.server.port = port;
      }
    }
  }

  std::vector<ConfigProblem> take_problems()
  {
    std::stable_sort(m_problems.begin(), m_problems.end(),
                     [](const ConfigProblem& a, const ConfigProblem& b) {
                       return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                     });
    return std::move(m_problems);
  }

private:
  struct IdSeen {
    Pos pos;
    std::string where;
  };

  void add(Pos pos, std::string where, std::string message)
  {
    m_problems.push_back(ConfigProblem{m_file, pos.line, pos.column, std::move(where), std::move(message)});
  }

  static std::string path_join(std::string_view parent, std::string_view key)
  {
    return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
  }

  // `key: value` in the file's own syntax, for messages.
  std::string example(std::string_view key, std::string_view value) const
  {
    return m_format == Format::toml ? fmt::format("{} = \"{}\"", key, value)
                                    : fmt::format("{}: {}", key, value);
  }

  std::string model_example() const
  {
    return m_format == Format::toml ? "[[models]]\n    id = \"bge-m3\"\n    repo_id = \"BAAI/bge-m3\""
                                    : "models:\n      - id: bge-m3\n        repo_id: BAAI/bge-m3";
  }

  static std::string one_of_message(std::string_view what, std::string_view value,
                                    std::span<const std::string_view> allowed)
  {
    std::string out = fmt::format("unknown {} '{}'; ", what, value);
    if (auto guess = util::closest_match(util::to_lower(value), allowed)) {
      out += fmt::format("did you mean '{}'? ", *guess);
    }
    out += fmt::format("expected one of: {}", join(allowed));
    return out;
  }

  // The last entry with this key (duplicates are reported by check_keys).
  static const Node* get(const Node& map, std::string_view key)
  {
    const Node* found = nullptr;
    for (const auto& e : map.entries) {
      if (e.key == key) {
        found = &e.value;
      }
    }
    return found;
  }

  void check_keys(const Node& map, std::string_view where, std::span<const std::string_view> known)
  {
    std::map<std::string, Pos, std::less<>> seen;
    for (const auto& e : map.entries) {
      const std::string path = path_join(where, e.key);
      if (std::find(known.begin(), known.end(), e.key) == known.end()) {
        std::string message = "unknown key; ";
        if (auto guess = util::closest_match(e.key, known)) {
          message += fmt::format("did you mean '{}'?", *guess);
        } else {
          message += fmt::format("expected one of: {}", join(known));
        }
        add(e.key_pos, path, std::move(message));
      } else if (auto it = seen.find(e.key); it != seen.end()) {
        add(e.key_pos, path,
            fmt::format("duplicate key, first set at line {}; remove one of them", it->second.line));
      } else {
        seen.emplace(e.key, e.key_pos);
      }
    }
  }

  std::optional<std::string> string_value(const Node& v, const std::string& where)
  {
    if (v.kind != Node::Kind::string) {
      std::string message = fmt::format("expected a string, got {}", kind_name(v.kind));
      if (v.kind == Node::Kind::null) {
        message += "; give a value or remove the key";
      } else if (m_format == Format::toml && v.kind != Node::Kind::list && v.kind != Node::Kind::map) {
        message += "; put the value in double quotes";
      }
      add(v.pos, where, std::move(message));
      return std::nullopt;
    }
    return v.text;
  }

  std::optional<std::string> non_empty_string(const Node& v, const std::string& where)
  {
    auto s = string_value(v, where);
    if (s && s->empty()) {
      add(v.pos, where, "must not be empty; remove the key to use the default");
      return std::nullopt;
    }
    return s;
  }

  // A repo-relative file name or glob.
  std::optional<std::string> repo_path(const Node& v, const std::string& where)
  {
    auto s = string_value(v, where);
    if (!s) {
      return std::nullopt;
    }
    if (s->empty()) {
      add(v.pos, where, "empty file name or pattern; remove it");
      return std::nullopt;
    }
    if (s->front() == '/') {
      add(v.pos, where, fmt::format("'{}' is absolute; paths are relative to the repository root", *s));
      return std::nullopt;
    }
    if (contains_dotdot_segment(*s)) {
      add(v.pos, where, fmt::format("'{}' contains '..'; paths must stay inside the repository", *s));
      return std::nullopt;
    }
    return s;
  }

  std::vector<std::string> path_list(const Node& v, const std::string& where)
  {
    std::vector<std::string> out;
    if (v.kind != Node::Kind::list) {
      std::string message = fmt::format("expected a list of file names or globs, got {}", kind_name(v.kind));
      if (v.kind == Node::Kind::string) {
        message += m_format == Format::toml ? fmt::format("; write [\"{}\"]", v.text)
                                            : fmt::format("; write [\"{}\"] or a '- ' list", v.text);
      }
      add(v.pos, where, std::move(message));
      return out;
    }
    for (std::size_t i = 0; i < v.items.size(); ++i) {
      if (auto s = repo_path(v.items[i], fmt::format("{}[{}]", where, i))) {
        out.push_back(std::move(*s));
      }
    }
    return out;
  }

  std::map<std::string, std::string> sha256_map(const Node& v, const std::string& where)
  {
    std::map<std::string, std::string> out;
    if (v.kind != Node::Kind::map) {
      add(v.pos, where,
          fmt::format("expected a map of file name to sha256, got {}; e.g. {}", kind_name(v.kind),
                      m_format == Format::toml ? "sha256 = { \"model.safetensors\" = \"<64 hex digits>\" }"
                                               : "sha256: { model.safetensors: <64 hex digits> }"));
      return out;
    }
    std::map<std::string, int, std::less<>> seen;
    for (const auto& e : v.entries) {
      const std::string path = fmt::format("{}[\"{}\"]", where, e.key);
      if (auto it = seen.find(e.key); it != seen.end()) {
        add(e.key_pos, path,
            fmt::format("duplicate key, first set at line {}; remove one of them", it->second));
        continue;
      }
      seen.emplace(e.key, e.key_pos.line);
      Node key_node;
      key_node.kind = Node::Kind::string;
      key_node.pos = e.key_pos;
      key_node.text = e.key;
      auto file = repo_path(key_node, path);
      if (file && file->find_first_of("*?[") != std::string::npos) {
        add(e.key_pos, path, "a pin needs an exact file name, not a glob");
        file.reset();
      }
      auto hash = string_value(e.value, path);
      if (!file || !hash) {
        continue;
      }
      if (auto problem = sha256_problem(*hash)) {
        add(e.value.pos, path, *problem);
        continue;
      }
      out.emplace(*file, util::to_lower(*hash));
    }
    return out;
  }

  static std::optional<std::string> sha256_problem(std::string_view hash)
  {
    if (util::to_lower(hash.substr(0, 7)) == "sha256:") {
      return fmt::format("'{}' has a 'sha256:' prefix; write only the 64 hex digits", hash);
    }
    if (hash.size() != 64) {
      return fmt::format("'{}' is {} characters long; a sha256 is exactly 64 hex digits", hash, hash.size());
    }
    auto bad = std::find_if_not(hash.begin(), hash.end(),
                                [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
    if (bad != hash.end()) {
      return fmt::format("'{}' contains {}; a sha256 is exactly 64 hex digits (0-9, a-f)", hash,
                         show_char(*bad));
    }
    return std::nullopt;
  }

  std::optional<ModelSpec> model(const Node& m, const std::string& where)
  {
    if (m.kind != Node::Kind::map) {
      add(m.pos, where,
          fmt::format("expected a model (a map with 'id' and 'repo_id'), got {}", kind_name(m.kind)));
      return std::nullopt;
    }
    const std::size_t problems_before = m_problems.size();
    check_keys(m, where, k_model_keys);

    ModelSpec spec;
    spec.source_line = m.pos.line;

    const Node* id = get(m, "id");
    if (id == nullptr) {
      add(m.pos, where,
          fmt::format("missing required key 'id'; add a short unique name, e.g. {}",
                      example("id", "bge-m3")));
    } else if (auto s = string_value(*id, path_join(where, "id"))) {
      check_id(*s, *id, where);
      spec.id = *s;
    }

    const Node* repo = get(m, "repo_id");
    if (repo == nullptr) {
      add(m.pos, where,
          fmt::format("missing required key 'repo_id'; add the Hub repository, e.g. {}",
                      example("repo_id", "BAAI/bge-m3")));
    } else if (auto s = string_value(*repo, path_join(where, "repo_id"))) {
      if (auto why = repo_id_problem(*s)) {
        add(repo->pos, path_join(where, "repo_id"), fmt::format("invalid repo id '{}': {}", *s, *why));
      }
      spec.repo_id = *s;
    }

    if (const Node* v = get(m, "repo_type")) {
      if (auto s = string_value(*v, path_join(where, "repo_type"))) {
        if (std::find(k_repo_types.begin(), k_repo_types.end(), *s) == k_repo_types.end()) {
          add(v->pos, path_join(where, "repo_type"), one_of_message("repo type", *s, k_repo_types));
        }
        spec.repo_type = *s;
      }
    }
    if (const Node* v = get(m, "revision")) {
      if (auto s = non_empty_string(*v, path_join(where, "revision"))) {
        auto bad = std::find_if(s->begin(), s->end(),
                                [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
        if (bad != s->end()) {
          add(v->pos, path_join(where, "revision"),
              fmt::format("'{}' contains {}; a revision is a branch, tag or commit sha", *s,
                          show_char(*bad)));
        }
        spec.revision = *s;
      }
    }
    if (const Node* v = get(m, "files")) {
      spec.files = path_list(*v, path_join(where, "files"));
      if (v->kind == Node::Kind::list && v->items.empty()) {
        add(v->pos, path_join(where, "files"),
            "empty list selects nothing; list file names or globs, or remove the key for the whole "
            "repository");
      }
    }
    if (const Node* v = get(m, "exclude")) {
      spec.exclude = path_list(*v, path_join(where, "exclude"));
    }
    if (const Node* v = get(m, "local_dir")) {
      spec.local_dir = non_empty_string(*v, path_join(where, "local_dir"));
    }
    if (const Node* v = get(m, "local_dir_link")) {
      if (auto s = string_value(*v, path_join(where, "local_dir_link"))) {
        if (std::find(k_local_dir_links.begin(), k_local_dir_links.end(), *s) == k_local_dir_links.end()) {
          add(v->pos, path_join(where, "local_dir_link"),
              one_of_message("local_dir_link", *s, k_local_dir_links));
        }
        spec.local_dir_hardlink = *s == "hardlink";
      }
    }
    if (const Node* v = get(m, "description")) {
      if (auto s = string_value(*v, path_join(where, "description"))) {
        spec.description = *s;
      }
    }
    if (const Node* v = get(m, "sha256")) {
      spec.sha256 = sha256_map(*v, path_join(where, "sha256"));
      check_pins_selected(spec, *v, path_join(where, "sha256"));
    }

    if (m_problems.size() != problems_before) {
      return std::nullopt;
    }
    return spec;
  }

  void check_id(const std::string& id, const Node& node, const std::string& where)
  {
    const std::string path = path_join(where, "id");
    if (id.empty()) {
      add(node.pos, path, fmt::format("must not be empty; e.g. {}", example("id", "bge-m3")));
      return;
    }
    auto bad = std::find_if_not(id.begin(), id.end(), is_name_char);
    if (bad != id.end()) {
      add(node.pos, path,
          fmt::format("'{}' contains {}; ids may use only letters, digits, '.', '_' and '-'", id,
                      show_char(*bad)));
      return;
    }
    if (auto it = m_ids.find(id); it != m_ids.end()) {
      add(node.pos, path,
          fmt::format("duplicate id '{}', already used by {} at line {}; give each model its own id", id,
                      it->second.where, it->second.pos.line));
      return;
    }
    m_ids.emplace(id, IdSeen{node.pos, where});
  }

  // A pinned hash for a file the model never downloads is certainly a mistake.
  void check_pins_selected(const ModelSpec& spec, const Node& sha_node, const std::string& where)
  {
    for (const auto& [file, hash] : spec.sha256) {
      Pos pos = sha_node.pos;
      for (const auto& e : sha_node.entries) {
        if (e.key == file) {
          pos = e.key_pos;
        }
      }
      const std::string path = fmt::format("{}[\"{}\"]", where, file);
      if (!spec.files.empty() &&
          std::none_of(spec.files.begin(), spec.files.end(),
                       [&](const std::string& p) { return pattern_matches(p, file); })) {
        add(pos, path, "pinned file is not selected by 'files'; add it to 'files' or remove the pin");
        continue;
      }
      for (const auto& p : spec.exclude) {
        if (pattern_matches(p, file)) {
          add(pos, path,
              fmt::format("pinned file is excluded by '{}'; narrow 'exclude' or remove the pin", p));
          break;
        }
      }
    }
  }

  std::string m_file;
  Format m_format;
  std::vector<ConfigProblem> m_problems;
  std::map<std::string, IdSeen, std::less<>> m_ids;
};

[[noreturn]] void throw_single(std::string_view display_name, Pos pos, std::string message)
{
  std::vector<ConfigProblem> problems;
  problems.push_back(ConfigProblem{std::string(display_name), pos.line, pos.column, "", std::move(message)});
  throw InvalidConfigError(std::string(display_name), std::move(problems));
}

// Which documents a YAML stream holds, from the parser's events (no nodes built): whether a document's root
// is more than an empty value, and where it starts.
class DocumentScan : public YAML::EventHandler {
public:
  void OnDocumentStart(const YAML::Mark& mark) override
  {
    start = mark;
    content = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { null_mark = mark; }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { content = true; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override
  {
    content = true;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override
  {
    content = true;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override
  {
    content = true;
  }
  void OnMapEnd() override {}

  YAML::Mark start;
  YAML::Mark null_mark;
  bool content = false;
};

Pos yaml_pos(const YAML::Mark& mark)
{
  return mark.line >= 0 ? Pos{mark.line + 1, mark.column + 1} : Pos{};
}

Node parse_yaml(std::string_view text, std::string_view display_name)
{
  try {
    // Not YAML::LoadAll: in yaml-cpp 0.7 it never returns on some malformed files (a ',' outside a [ ] or
    // { } list, found by tests/unit/manager/test_config_fuzz.cpp; jbeder/yaml-cpp#1040, fixed upstream by
    // #1319): the parser stops consuming input and LoadAll collects empty documents until memory runs out.
    // So the documents are counted here with a bounded loop, and the first one is loaded on its own.
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    DocumentScan scan;
    bool first_has_content = false;
    for (int document = 0; document < 2 && parser.HandleNextDocument(scan); ++document) {
      if (document == 0) {
        first_has_content = scan.content;
      } else if (scan.content) {
        throw_single(display_name, yaml_pos(scan.start),
                     "a second YAML document ('---') starts here; keep one document per file");
      } else if (!first_has_content) {
        // Two empty documents in a row: the parser is stuck on a character it cannot place.
        const Pos pos = yaml_pos(scan.null_mark);
        const auto at = static_cast<std::size_t>(std::max(0, scan.null_mark.pos));
        throw_single(
            display_name, pos,
            fmt::format("YAML syntax error: unexpected {}; check indentation, quotes and brackets at "
                        "or just before this point",
                        at < text.size() ? show_char(text[at]) : "end of file"));
      }
    }
    std::size_t values = 0;
    return from_yaml(YAML::Load(std::string(text)), Pos{1, 1}, 0, values);
  } catch (const YAML::Exception& e) {
    throw_single(
        display_name, yaml_pos(e.mark),
        fmt::format(
            "YAML syntax error: {}; check indentation, quotes and brackets at or just before this point",
            e.msg));
  } catch (const ParseFailure& f) {
    throw_single(display_name, f.pos, f.message);
  }
}

Node parse_toml(std::string_view text, std::string_view display_name)
{
  try {
    const toml::table table = toml::parse(text, display_name);
    return from_toml(table);
  } catch (const toml::parse_error& e) {
    throw_single(display_name, toml_pos(e.source()), fmt::format("TOML syntax error: {}", e.description()));
  }
}

bool is_file(const std::filesystem::path& p)
{
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

} // namespace

std::optional<std::string> repo_id_problem(std::string_view repo_id)
{
  if (repo_id.empty()) {
    return "it is empty; expected 'name' or 'namespace/name', e.g. 'BAAI/bge-m3'";
  }
  if (repo_id.starts_with("https://") || repo_id.starts_with("http://") || repo_id.starts_with("hf://")) {
    return "it looks like a URL; write only 'namespace/name', e.g. 'BAAI/bge-m3'";
  }
  if (std::count(repo_id.begin(), repo_id.end(), '/') > 1) {
    return "it has more than one '/'; expected 'name' or 'namespace/name'";
  }
  const std::size_t slash = repo_id.find('/');
  if (slash != std::string_view::npos && slash == 0) {
    return "the namespace before '/' is empty; expected 'namespace/name' or just 'name'";
  }
  if (slash != std::string_view::npos && slash + 1 == repo_id.size()) {
    return "the name after '/' is empty; expected 'namespace/name'";
  }
  for (char c : repo_id) {
    if (c != '/' && !is_name_char(c)) {
      return fmt::format("it contains {}; only letters, digits, '-', '_' and '.' are allowed", show_char(c));
    }
  }
  for (std::string_view bad : {"--", ".."}) {
    if (repo_id.find(bad) != std::string_view::npos) {
      return fmt::format("it contains '{}', which the Hub forbids", bad);
    }
  }
  const std::string_view parts[] = {slash == std::string_view::npos ? std::string_view{}
                                                                    : repo_id.substr(0, slash),
                                    slash == std::string_view::npos ? repo_id : repo_id.substr(slash + 1)};
  for (auto part : parts) {
    if (part.empty()) {
      continue;
    }
    for (char edge : {part.front(), part.back()}) {
      if (edge == '-' || edge == '.') {
        return fmt::format("'{}' starts or ends with '{}'; names cannot start or end with '-' or '.'", part,
                           edge);
      }
    }
  }
  if (parts[1].size() > 96) {
    return fmt::format("the name is {} characters long; the Hub allows at most 96", parts[1].size());
  }
  if (repo_id.ends_with(".git")) {
    return "it ends with '.git'; drop the suffix";
  }
  return std::nullopt;
}

Format detect_format(const std::filesystem::path& path, std::string_view text)
{
  const std::string ext = util::to_lower(path.extension().string());
  if (ext == ".yaml" || ext == ".yml") {
    return Format::yaml;
  }
  if (ext == ".toml") {
    return Format::toml;
  }
  // Sniff the first line that is neither blank nor a comment.
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const std::size_t first = line.find_first_not_of(" \t\r\xEF\xBB\xBF");
    if (first == std::string_view::npos || line[first] == '#') {
      continue;
    }
    line = line.substr(first);
    if (line.starts_with("---")) {
      return Format::yaml;
    }
    if (line.front() == '[') {
      return Format::toml;
    }
    const std::size_t eq = line.find('=');
    const std::size_t colon = line.find(':');
    return eq != std::string_view::npos && (colon == std::string_view::npos || eq < colon) ? Format::toml
                                                                                           : Format::yaml;
  }
  return Format::yaml;
}

ModelSetConfig parse_config(std::string_view text, Format format, std::string_view display_name)
{
  const Node root = format == Format::toml ? parse_toml(text, display_name) : parse_yaml(text, display_name);
  Validator validator{std::string(display_name), format};
  ModelSetConfig config = validator.run(root);
  std::vector<ConfigProblem> problems = validator.take_problems();
  if (!problems.empty()) {
    throw InvalidConfigError(std::string(display_name), std::move(problems));
  }
  return config;
}

ModelSetConfig load_config(const std::filesystem::path& path)
{
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigurationError(
        fmt::format("cannot read model set configuration {}: it is a directory", path.string()),
        "pass the YAML or TOML file itself");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw ConfigurationError(
        fmt::format("cannot read model set configuration {}: {}", path.string(), std::strerror(err)),
        "check the path; without one, modelmgr looks for config/model_manager/models.yaml, modelmgr.yaml or "
        "modelmgr.toml");
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    const int err = errno;
    throw ConfigurationError(
        fmt::format("cannot read model set configuration {}: {}", path.string(), std::strerror(err)));
  }
  const std::string text = std::move(buffer).str();
  ModelSetConfig config = parse_config(text, detect_format(path, text), path.string());
  config.path = path;
  return config;
}

std::optional<std::filesystem::path> find_default_config(const std::filesystem::path& cwd,
                                                         const GetEnv& getenv, std::string* note)
{
  struct Candidate {
    std::string_view full;
    std::string_view minimal;
  };
  static constexpr std::array<Candidate, 3> k_candidates = {{
      {"config/model_manager/models.yaml", "config/model_manager/models.minimal.yaml"},
      {"modelmgr.yaml", "modelmgr.minimal.yaml"},
      {"modelmgr.toml", "modelmgr.minimal.toml"},
  }};
  constexpr const char* k_env = "CI_MINIMAL_MODELS";

  if (note != nullptr) {
    note->clear();
  }
  std::optional<std::string> raw = getenv ? getenv(k_env) : std::nullopt;
  bool minimal = false;
  if (raw) {
    const std::string v = util::to_lower(*raw);
    if (v == "true" || v == "1" || v == "yes") {
      minimal = true;
    } else if (!(v.empty() || v == "false" || v == "0" || v == "no")) {
      throw ConfigurationError(fmt::format("{}='{}' is not a boolean", k_env, *raw),
                               fmt::format("set {} to true, 1 or yes for the minimal model set; "
                                           "unset it (or false, 0, no) for the full set",
                                           k_env));
    }
  }

  // The full set is found first, so that the minimal one is always the variant of the set in use; a
  // minimal file without its full sibling is ignored.
  for (const auto& c : k_candidates) {
    const std::filesystem::path full = cwd / c.full;
    if (!is_file(full)) {
      continue;
    }
    if (!minimal) {
      return full;
    }
    const std::filesystem::path small = cwd / c.minimal;
    if (!is_file(small)) {
      throw ConfigurationError(
          fmt::format("{}={} asks for the minimal model set, but {} does not exist", k_env, *raw,
                      small.string()),
          fmt::format("create {} with a small subset of {}, or unset {} to use the full set", small.string(),
                      full.string(), k_env));
    }
    if (note != nullptr) {
      *note = fmt::format("using {} instead of {} because {}={}", small.string(), full.string(), k_env, *raw);
    }
    return small;
  }
  return std::nullopt;
}

std::vector<ModelSpec> select_models(const ModelSetConfig& config, const std::vector<std::string>& ids)
{
  if (ids.empty()) {
    return config.models;
  }
  std::vector<ModelSpec> out;
  std::vector<std::string_view> known;
  for (const auto& m : config.models) {
    known.push_back(m.id);
  }
  std::vector<std::string> unknown;
  for (const auto& id : ids) {
    if (std::any_of(out.begin(), out.end(), [&](const ModelSpec& m) { return m.id == id; })) {
      continue;
    }
    if (const ModelSpec* spec = config.find(id)) {
      out.push_back(*spec);
    } else if (std::find(unknown.begin(), unknown.end(), id) == unknown.end()) {
      unknown.push_back(id);
    }
  }
  if (unknown.empty()) {
    return out;
  }
  std::string message = fmt::format("unknown model id{} ", unknown.size() == 1 ? "" : "s");
  for (std::size_t i = 0; i < unknown.size(); ++i) {
    message += fmt::format("{}'{}'", i == 0 ? "" : ", ", unknown[i]);
    if (auto guess = util::closest_match(unknown[i], known)) {
      message += fmt::format(" (did you mean '{}'?)", *guess);
    }
  }
  message += fmt::format("; known ids in {}: {}", config.path.string(), join(known));
  throw ConfigurationError(std::move(message), fmt::format("pick ids from that list, or add the model to {}",
                                                           config.path.string()));
}

} // namespace modelmgr::manager
