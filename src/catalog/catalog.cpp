// The model catalog: parsing and validating catalog TOML, merging the built-in, user and project catalogs,
// resolving "ID[:QUANT]", the offline cache state of a variant, and size drift against a Hub listing.

#include "catalog/catalog.hpp"

#include "cache/paths.hpp"
#include "cache/repo_cache.hpp"
#include "util/glob.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace modelmgr::catalog {

namespace fs = std::filesystem;

namespace {

bool valid_id(std::string_view id)
{
  if (id.empty() || id.size() > 128) {
    return false;
  }
  return std::all_of(id.begin(), id.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '.' || c == '_' || c == '-'; });
}

// Why a repo-relative path or glob is unusable, or nullopt.
std::optional<std::string> path_problem(std::string_view p)
{
  if (p.empty()) {
    return "must not be empty";
  }
  if (p.front() == '/' || p.find('\\') != std::string_view::npos) {
    return "must be a path inside the repo with '/' separators, not absolute";
  }
  std::size_t start = 0;
  while (start <= p.size()) {
    const auto end = std::min(p.find('/', start), p.size());
    if (p.substr(start, end - start) == "..") {
      return "must not contain '..'";
    }
    start = end + 1;
  }
  return std::nullopt;
}

bool is_glob(std::string_view p)
{
  return p.find_first_of("*?[") != std::string_view::npos || (!p.empty() && p.back() == '/');
}

// ---------------------------------------------------------------------------------------------------------
// The validator.

constexpr std::string_view k_model_keys[] = {"id",      "name",        "hf_repo",        "revision",
                                             "format",  "use_cases",   "files",          "context_length",
                                             "license", "description", "tokenizer_repo", "variant"};
constexpr std::string_view k_variant_keys[] = {"quantization", "file",          "size_bytes",
                                               "size_exact",   "min_ram_bytes", "default"};

const char* type_name(const toml::node& n)
{
  switch (n.type()) {
  case toml::node_type::string: return "a string";
  case toml::node_type::integer: return "an integer";
  case toml::node_type::floating_point: return "a number";
  case toml::node_type::boolean: return "a boolean";
  case toml::node_type::array: return "an array";
  case toml::node_type::table: return "a table";
  case toml::node_type::date:
  case toml::node_type::time:
  case toml::node_type::date_time: return "a date/time";
  default: return "nothing";
  }
}

class Validator {
public:
  explicit Validator(std::string file) : m_file(std::move(file)) {}

  void problem(const toml::source_region& where, std::string key, std::string message)
  {
    m_problems.push_back({m_file, static_cast<int>(where.begin.line), static_cast<int>(where.begin.column),
                          std::move(key), std::move(message)});
  }

  Catalog run(const toml::table& root, std::string_view origin)
  {
    Catalog catalog;
    for (const auto& [key, value] : root) {
      if (key.str() != "model") {
        std::string msg = "unknown top-level key; a catalog holds only [[model]] tables";
        problem(key.source(), std::string(key.str()), msg);
      }
      (void)value;
    }
    const toml::node* models = root.get("model");
    if (!models) {
      return catalog; // an empty catalog is valid (a user catalog may hold nothing yet)
    }
    const toml::array* arr = models->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      problem(models->source(), "model", "must be an array of tables: write each entry as [[model]]");
      return catalog;
    }
    std::map<std::string, int> seen; // id -> line
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const toml::table& t = *arr->get(i)->as_table();
      const std::string where = fmt::format("model[{}]", i + 1);
      std::optional<Entry> e = entry(t, where);
      if (!e) {
        continue;
      }
      e->origin = std::string(origin);
      e->line = static_cast<int>(t.source().begin.line);
      if (auto it = seen.find(e->id); it != seen.end()) {
        problem(
            t.get("id")->source(), where + ".id",
            fmt::format("duplicate id '{}', already used by the entry at line {}; give each entry its own "
                        "id (an entry of a later catalog with the same id replaces the earlier one)",
                        e->id, it->second));
        continue;
      }
      seen.emplace(e->id, e->line);
      catalog.entries.push_back(std::move(*e));
    }
    return catalog;
  }

  std::vector<CatalogProblem> take_problems() { return std::move(m_problems); }

private:
  void unknown_keys(const toml::table& t, const std::string& where, std::span<const std::string_view> known)
  {
    for (const auto& [key, value] : t) {
      (void)value;
      if (std::find(known.begin(), known.end(), key.str()) != known.end()) {
        continue;
      }
      std::string message = "unknown key";
      if (auto guess = util::closest_match(key.str(), known)) {
        message += fmt::format("; did you mean '{}'?", *guess);
      } else {
        std::string list;
        for (auto k : known) {
          list += list.empty() ? "" : ", ";
          list += k;
        }
        message += fmt::format("; known keys: {}", list);
      }
      problem(key.source(), where + "." + std::string(key.str()), message);
    }
  }

  std::optional<std::string> string_key(const toml::table& t, std::string_view key, const std::string& where,
                                        bool required, const toml::source_region& owner)
  {
    const toml::node* n = t.get(key);
    if (!n) {
      if (required) {
        problem(owner, where + "." + std::string(key), fmt::format("missing required key '{}'", key));
      }
      return std::nullopt;
    }
    if (!n->is_string()) {
      problem(n->source(), where + "." + std::string(key),
              fmt::format("must be a string, not {}", type_name(*n)));
      return std::nullopt;
    }
    return std::string(n->as_string()->get());
  }

  // A positive (or non-negative) integer.
  std::optional<std::uint64_t> size_key(const toml::table& t, std::string_view key, const std::string& where,
                                        bool required, bool allow_zero, const toml::source_region& owner)
  {
    const toml::node* n = t.get(key);
    if (!n) {
      if (required) {
        problem(owner, where + "." + std::string(key),
                fmt::format("missing required key '{}' (an integer number of bytes)", key));
      }
      return std::nullopt;
    }
    if (!n->is_integer()) {
      problem(n->source(), where + "." + std::string(key),
              fmt::format("must be an integer{}, not {}",
                          key.ends_with("_bytes") ? " number of bytes (no units, no quotes)" : "",
                          type_name(*n)));
      return std::nullopt;
    }
    const std::int64_t v = n->as_integer()->get();
    if (v < 0 || (v == 0 && !allow_zero)) {
      problem(n->source(), where + "." + std::string(key),
              fmt::format("must be {} 0, not {}", allow_zero ? "at least" : "greater than", v));
      return std::nullopt;
    }
    return static_cast<std::uint64_t>(v);
  }

  std::vector<std::string> string_list(const toml::table& t, std::string_view key, const std::string& where)
  {
    std::vector<std::string> out;
    const toml::node* n = t.get(key);
    if (!n) {
      return out;
    }
    const toml::array* arr = n->as_array();
    if (!arr) {
      problem(n->source(), where + "." + std::string(key),
              fmt::format("must be an array of strings, e.g. {} = [\"...\"], not {}", key, type_name(*n)));
      return out;
    }
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const toml::node& item = *arr->get(i);
      if (!item.is_string() || item.as_string()->get().empty()) {
        problem(
            item.source(), fmt::format("{}.{}[{}]", where, key, i + 1),
            fmt::format("must be a non-empty string, not {}", item.is_string() ? "\"\"" : type_name(item)));
        continue;
      }
      out.push_back(std::string(item.as_string()->get()));
    }
    return out;
  }

  std::optional<Entry> entry(const toml::table& t, const std::string& where)
  {
    const std::size_t before = m_problems.size();
    unknown_keys(t, where, k_model_keys);
    Entry e;
    const auto& src = t.source();
    if (auto id = string_key(t, "id", where, true, src)) {
      if (!valid_id(*id)) {
        problem(
            t.get("id")->source(), where + ".id",
            fmt::format("invalid id '{}': use 1-128 characters of A-Z a-z 0-9 . _ - (the ':' separates the "
                        "quantization in ID:QUANT)",
                        *id));
      }
      e.id = *id;
    }
    e.name = string_key(t, "name", where, false, src).value_or(e.id);
    if (auto repo = string_key(t, "hf_repo", where, true, src)) {
      if (auto why = cache::repo_id_error(*repo)) {
        problem(t.get("hf_repo")->source(), where + ".hf_repo",
                fmt::format("invalid repo id '{}': {}", *repo, *why));
      }
      e.hf_repo = *repo;
    }
    if (auto rev = string_key(t, "revision", where, false, src)) {
      if (auto why = cache::revision_error(*rev)) {
        problem(t.get("revision")->source(), where + ".revision",
                fmt::format("invalid revision '{}': {}", *rev, *why));
      }
      e.revision = *rev;
    }
    if (auto format = string_key(t, "format", where, true, src)) {
      if (std::find(std::begin(k_formats), std::end(k_formats), *format) == std::end(k_formats)) {
        problem(t.get("format")->source(), where + ".format",
                fmt::format("unknown format '{}'; use gguf, safetensors or onnx", *format));
      }
      e.format = *format;
    }
    e.use_cases = string_list(t, "use_cases", where);
    e.files = string_list(t, "files", where);
    for (std::size_t i = 0; i < e.files.size(); ++i) {
      if (auto why = path_problem(e.files[i])) {
        problem(t.get("files")->source(), fmt::format("{}.files[{}]", where, i + 1),
                fmt::format("'{}' {}", e.files[i], *why));
      }
    }
    e.context_length = size_key(t, "context_length", where, false, true, src).value_or(0);
    if (auto tok = string_key(t, "tokenizer_repo", where, false, src)) {
      if (auto why = cache::repo_id_error(*tok)) {
        problem(t.get("tokenizer_repo")->source(), where + ".tokenizer_repo",
                fmt::format("invalid repo id '{}': {}", *tok, *why));
      }
      e.tokenizer_repo = *tok;
    }
    e.license = string_key(t, "license", where, false, src).value_or("");
    e.description = string_key(t, "description", where, false, src).value_or("");

    const toml::node* vn = t.get("variant");
    if (!vn) {
      problem(src, where + ".variant",
              fmt::format("entry '{}' has no variant: add at least one [[model.variant]] table with file, "
                          "size_bytes and min_ram_bytes",
                          e.id));
    } else if (!vn->is_array_of_tables()) {
      problem(vn->source(), where + ".variant",
              "must be an array of tables: write each as [[model.variant]]");
    } else {
      const toml::array& arr = *vn->as_array();
      if (arr.empty()) {
        problem(vn->source(), where + ".variant", "needs at least one [[model.variant]]");
      }
      int defaults = 0;
      std::map<std::string, int> quants;
      for (std::size_t i = 0; i < arr.size(); ++i) {
        const toml::table& vt = *arr.get(i)->as_table();
        const std::string vwhere = fmt::format("{}.variant[{}]", where, i + 1);
        unknown_keys(vt, vwhere, k_variant_keys);
        Variant v;
        const auto& vsrc = vt.source();
        v.quantization = string_key(vt, "quantization", vwhere, false, vsrc).value_or("");
        if (e.format == "gguf" && v.quantization.empty() && !vt.get("quantization")) {
          problem(vsrc, vwhere + ".quantization",
                  "missing 'quantization' (e.g. \"Q4_K_M\"): a GGUF variant needs one");
        }
        if (auto f = string_key(vt, "file", vwhere, true, vsrc)) {
          if (auto why = path_problem(*f)) {
            problem(vt.get("file")->source(), vwhere + ".file", fmt::format("'{}' {}", *f, *why));
          } else if (is_glob(*f)) {
            problem(
                vt.get("file")->source(), vwhere + ".file",
                fmt::format("'{}' must name one file, not a pattern (patterns go in the entry's files)", *f));
          }
          v.file = *f;
        }
        v.size_bytes = size_key(vt, "size_bytes", vwhere, true, false, vsrc).value_or(0);
        v.min_ram_bytes = size_key(vt, "min_ram_bytes", vwhere, true, false, vsrc).value_or(0);
        if (const toml::node* exact = vt.get("size_exact")) {
          if (!exact->is_boolean()) {
            problem(exact->source(), vwhere + ".size_exact",
                    fmt::format("must be true or false, not {}", type_name(*exact)));
          } else {
            v.size_exact = exact->as_boolean()->get();
          }
        }
        if (const toml::node* d = vt.get("default")) {
          if (!d->is_boolean()) {
            problem(d->source(), vwhere + ".default",
                    fmt::format("must be true or false, not {}", type_name(*d)));
          } else {
            v.is_default = d->as_boolean()->get();
            if (v.is_default && ++defaults == 2) {
              problem(
                  d->source(), vwhere + ".default",
                  "a second variant is marked default; mark exactly one (or none: the first is the default)");
            }
          }
        }
        const std::string q = util::to_lower(v.quantization);
        if (auto it = quants.find(q); it != quants.end()) {
          problem(
              vsrc, vwhere + ".quantization",
              fmt::format("duplicate quantization '{}' (also variant[{}]); ID:QUANT must name one variant",
                          v.quantization.empty() ? "(none)" : v.quantization, it->second));
        } else {
          quants.emplace(q, static_cast<int>(i + 1));
        }
        e.variants.push_back(std::move(v));
      }
      if (defaults == 0 && !e.variants.empty()) {
        e.variants.front().is_default = true;
      }
    }
    if (m_problems.size() != before) {
      return std::nullopt;
    }
    return e;
  }

  std::string m_file;
  std::vector<CatalogProblem> m_problems;
};

std::string summarize(const std::string& file, const std::vector<CatalogProblem>& problems)
{
  std::string out = fmt::format("{}: {} problem{} in the model catalog:", file, problems.size(),
                                problems.size() == 1 ? "" : "s");
  for (const auto& p : problems) {
    out += '\n';
    out += p.format();
  }
  return out;
}

std::string read_text(const fs::path& path)
{
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigurationError(fmt::format("cannot read the catalog file {}", path.string()),
                             "check that the file exists and is readable");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    throw ConfigurationError(fmt::format("cannot read the catalog file {}: I/O error", path.string()));
  }
  return ss.str();
}

} // namespace

// ---------------------------------------------------------------------------------------------------------

const Entry* Catalog::find(std::string_view id) const
{
  auto it = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) { return e.id == id; });
  return it == entries.end() ? nullptr : &*it;
}

std::string CatalogProblem::format() const
{
  return util::format_located(file, line, column, key, message);
}

CatalogError::CatalogError(std::string file, std::vector<CatalogProblem> problems)
    : ConfigurationError(
          summarize(file, problems),
          "fix every problem listed above; the catalog schema is described in docs/catalog.md"),
      m_problems(std::move(problems))
{
}

Catalog parse_catalog(std::string_view text, std::string_view origin)
{
  const std::string file(origin);
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    throw CatalogError(
        file, {{file, static_cast<int>(e.source().begin.line), static_cast<int>(e.source().begin.column), "",
                fmt::format("TOML syntax error: {}", e.description())}});
  }
  Validator v(file);
  Catalog catalog = v.run(root, origin);
  auto problems = v.take_problems();
  if (!problems.empty()) {
    std::stable_sort(problems.begin(), problems.end(), [](const CatalogProblem& a, const CatalogProblem& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    });
    throw CatalogError(file, std::move(problems));
  }
  return catalog;
}

Catalog load_catalog_file(const fs::path& path)
{
  return parse_catalog(read_text(path), path.string());
}

Catalog builtin_catalog()
{
  return parse_catalog(builtin_catalog_text(), "built-in");
}

fs::path user_catalog_path(const util::Env& env)
{
  if (auto xdg = env.get_nonempty("XDG_CONFIG_HOME")) {
    return fs::path(*xdg) / "modelmgr" / "catalog.toml";
  }
  return fs::path(util::expand_user("~", env)) / ".config" / "modelmgr" / "catalog.toml";
}

void merge_catalog(Catalog& base, Catalog overlay)
{
  for (auto& e : overlay.entries) {
    auto it =
        std::find_if(base.entries.begin(), base.entries.end(), [&](const Entry& b) { return b.id == e.id; });
    if (it != base.entries.end()) {
      *it = std::move(e);
    } else {
      base.entries.push_back(std::move(e));
    }
  }
}

Catalog load_catalog(const util::Env& env, const std::vector<fs::path>& project_catalogs)
{
  Catalog catalog = builtin_catalog();
  const fs::path user = user_catalog_path(env);
  std::error_code ec;
  if (fs::is_regular_file(user, ec)) {
    merge_catalog(catalog, load_catalog_file(user));
  }
  for (const auto& p : project_catalogs) {
    merge_catalog(catalog, load_catalog_file(p));
  }
  return catalog;
}

// ---------------------------------------------------------------------------------------------------------

const Variant& default_variant(const Entry& entry)
{
  for (const auto& v : entry.variants) {
    if (v.is_default) {
      return v;
    }
  }
  return entry.variants.front();
}

std::vector<std::string> close_ids(const Catalog& catalog, std::string_view id, std::size_t max)
{
  const std::string want = util::to_lower(id);
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (const auto& e : catalog.entries) {
    const std::string have = util::to_lower(e.id);
    std::size_t d = util::edit_distance(want, have);
    const bool related =
        !want.empty() && (have.find(want) != std::string::npos || want.find(have) != std::string::npos);
    if (related) {
      d = std::min<std::size_t>(d, 1);
    }
    // Close enough: within a third of the longer id, or one contains the other.
    if (related || d * 3 <= std::max(want.size(), have.size())) {
      scored.emplace_back(d, e.id);
    }
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& [d, s] : scored) {
    (void)d;
    if (out.size() == max) {
      break;
    }
    out.push_back(std::move(s));
  }
  return out;
}

Selection resolve(const Catalog& catalog, std::string_view spec)
{
  const auto colon = spec.rfind(':');
  const std::string_view id = colon == std::string_view::npos ? spec : spec.substr(0, colon);
  const std::optional<std::string_view> quant =
      colon == std::string_view::npos ? std::nullopt : std::optional(spec.substr(colon + 1));
  const Entry* entry = catalog.find(id);
  if (!entry) {
    for (const auto& e : catalog.entries) {
      if (util::to_lower(e.id) == util::to_lower(id)) {
        entry = &e;
        break;
      }
    }
  }
  if (!entry) {
    const auto near = close_ids(catalog, id);
    std::string message = fmt::format("unknown model '{}': no catalog entry has that id", id);
    if (!near.empty()) {
      message += "; did you mean ";
      for (std::size_t i = 0; i < near.size(); ++i) {
        message += fmt::format("{}'{}'", i == 0 ? "" : (i + 1 == near.size() ? " or " : ", "), near[i]);
      }
      message += "?";
    }
    throw ConfigurationError(message, "`modelmgr models list` shows every id and quantization",
                             ErrorKind::usage);
  }
  if (!quant || quant->empty()) {
    return {entry, &default_variant(*entry)};
  }
  for (const auto& v : entry->variants) {
    if (util::to_lower(v.quantization) == util::to_lower(*quant)) {
      return {entry, &v};
    }
  }
  std::string list;
  for (const auto& v : entry->variants) {
    list += list.empty() ? "" : ", ";
    list += v.quantization.empty() ? "(none)" : v.quantization;
  }
  throw ConfigurationError(
      fmt::format("model '{}' has no quantization '{}'; it has: {}", entry->id, *quant, list),
      fmt::format("use {}:QUANT with one of those, or just {} for the default ({})", entry->id, entry->id,
                  default_variant(*entry).quantization),
      ErrorKind::usage);
}

std::string spec_of(const Entry& entry, const Variant& variant)
{
  if (variant.quantization.empty()) {
    return entry.id;
  }
  return entry.id + ":" + variant.quantization;
}

std::vector<std::string> variant_patterns(const Entry& entry, const Variant& variant)
{
  std::vector<std::string> out{variant.file};
  for (const auto& f : entry.files) {
    if (std::find(out.begin(), out.end(), f) == out.end()) {
      out.push_back(f);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------

CacheState variant_cache_state(const Entry& entry, const Variant& variant, const fs::path& cache_root,
                               const util::Env& env)
{
  CacheState state;
  cache::RepoCache rc(cache_root, cache::RepoType::model, entry.hf_repo, env);
  try {
    state.commit = rc.resolve_offline(entry.revision);
  } catch (const std::exception&) {
    state.commit.reset(); // an unreadable ref counts as not cached
  }
  if (!state.commit) {
    state.missing = variant_patterns(entry, variant);
    return state;
  }
  state.snapshot = rc.snapshot_dir(*state.commit);
  std::vector<std::string> wanted{variant.file};
  const auto tree = rc.read_tree_cache(*state.commit);
  std::vector<std::string> tree_paths;
  if (tree) {
    for (const auto& f : *tree) {
      tree_paths.push_back(f.path);
    }
  }
  for (const auto& extra : entry.files) {
    if (tree) {
      const std::vector<std::string> pattern{extra};
      for (const auto& p : util::filter_paths(tree_paths, pattern, {})) {
        wanted.push_back(p);
      }
    } else if (!is_glob(extra)) {
      wanted.push_back(extra);
    }
  }
  for (const auto& p : wanted) {
    bool present = false;
    try {
      // The weights file itself must be there; an extra marked .no_exist does not exist on the Hub.
      present = rc.has_snapshot_file(*state.commit, p) ||
                (p != variant.file && rc.is_marked_no_exist(*state.commit, p));
    } catch (const std::exception&) {
      present = false;
    }
    if (!present && std::find(state.missing.begin(), state.missing.end(), p) == state.missing.end()) {
      state.missing.push_back(p);
    }
  }
  state.complete = state.missing.empty();
  return state;
}

std::vector<SizeCheck> compare_sizes(const Entry& entry, const std::vector<cache::TreeFile>& hub_files)
{
  std::vector<SizeCheck> out;
  for (const auto& v : entry.variants) {
    SizeCheck c;
    c.quantization = v.quantization;
    c.path = v.file;
    c.catalog_size = v.size_bytes;
    for (const auto& f : hub_files) {
      if (f.path == v.file) {
        c.hub_size = f.lfs_size.value_or(f.size);
        break;
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<cache::Pin> revision_pins(const Catalog& catalog)
{
  std::vector<cache::Pin> pins;
  for (const auto& e : catalog.entries) {
    if (cache::is_commit_hash(e.revision)) {
      pins.push_back({cache::RepoType::model, e.hf_repo, e.revision, false});
    }
  }
  return pins;
}

void note_newer_uploads(std::vector<SizeCheck>& checks, const std::vector<cache::TreeFile>& pinned_files,
                        const std::string& main_commit, const std::vector<cache::TreeFile>& main_files)
{
  const auto find = [](const std::vector<cache::TreeFile>& files, const std::string& path) {
    const auto it = std::find_if(files.begin(), files.end(), [&](const auto& f) { return f.path == path; });
    return it == files.end() ? nullptr : &*it;
  };
  for (auto& c : checks) {
    const cache::TreeFile* pinned = find(pinned_files, c.path);
    const cache::TreeFile* now = find(main_files, c.path);
    if (pinned == nullptr || (now != nullptr && now->etag() == pinned->etag())) {
      continue; // a drift already, or the same bytes on main
    }
    c.newer =
        SizeCheck::Newer{main_commit, now ? std::optional(now->lfs_size.value_or(now->size)) : std::nullopt};
  }
}

} // namespace modelmgr::catalog
