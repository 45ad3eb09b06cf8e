// `modelmgr inspect PATH|REPO[/FILE]`: what a model file is and whether it would load (GGUF, safetensors,
// ONNX, the HF JSON files), and `modelmgr bench-load PATH|REPO`: mmap versus read() load speed. Both take
// a file, a folder (every inspectable file below it) or a repo id looked up in the HF cache, offline.
// The parsing and measuring are library calls (formats/load_check.hpp, formats/load_bench.hpp); this file
// resolves the target and renders.

#include "modelmgr/errors.hpp"

#include "cache/paths.hpp"
#include "cache/repo_cache.hpp"
#include "cli/cache_maint.hpp"
#include "cli/catalog_cli.hpp"
#include "cli/cli.hpp"
#include "formats/load_bench.hpp"
#include "formats/load_check.hpp"
#include "util/env.hpp"
#include "util/size.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
namespace fm = modelmgr::formats;

// Without --all-metadata: arrays show this many items, strings this many characters, tensors this many.
constexpr std::size_t k_array_items = 8;
constexpr std::size_t k_string_chars = 120;
constexpr std::size_t k_tensor_rows = 10;

struct TargetArgs {
  std::string target;
  std::string cache_dir;
  std::string revision = "main";
};

struct InspectArgs : TargetArgs {
  bool all_metadata = false;
};

struct BenchArgs : TargetArgs {
  bool keep_cache = false;
  std::string block = "8MiB";
};

struct Target {
  std::vector<fs::path> files;
  fs::path base; // files are shown relative to it
  std::string repo_id;
  std::string commit;
};

bool hidden(const fs::path& p)
{
  const auto name = p.filename().string();
  return !name.empty() && name.front() == '.';
}

// Every file below `dir` that `keep` accepts, sorted; hidden folders (.git, .cache) are skipped.
std::vector<fs::path> files_below(const fs::path& dir, bool weights_only)
{
  std::vector<fs::path> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    throw ConfigurationError(fmt::format("cannot list {}: {}", dir.string(), ec.message()),
                             "check the path and its permissions", ErrorKind::disk);
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      break;
    }
    if (hidden(it->path())) {
      if (it->is_directory(ec)) {
        it.disable_recursion_pending();
      }
      continue;
    }
    if (!it->is_regular_file(ec)) { // follows snapshot symlinks to their blobs
      continue;
    }
    const auto format = fm::detect_format(it->path());
    if (weights_only ? fm::is_weight_format(format) : format != fm::FileFormat::unknown) {
      out.push_back(it->path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The files of a cached repo worth inspecting: weights, shard indexes and the HF JSONs at the top.
std::vector<fs::path> main_files(const fs::path& snapshot, bool weights_only)
{
  std::vector<fs::path> out;
  for (const auto& p : files_below(snapshot, weights_only)) {
    const auto format = fm::detect_format(p);
    const bool top = p.parent_path() == snapshot;
    if (fm::is_weight_format(format) || format == fm::FileFormat::safetensors_index ||
        (top && (format == fm::FileFormat::hf_config || format == fm::FileFormat::hf_tokenizer ||
                 format == fm::FileFormat::hf_tokenizer_config))) {
      out.push_back(p);
    }
  }
  return out;
}

Target resolve_target(const TargetArgs& args, bool weights_only)
{
  Target t;
  std::error_code ec;
  const fs::path path(args.target);
  if (fs::exists(path, ec)) {
    if (fs::is_directory(path, ec)) {
      t.base = path;
      t.files = files_below(path, weights_only);
      if (t.files.empty()) {
        throw MissingModelError(
            fmt::format("no {} files under {}",
                        weights_only ? "GGUF, safetensors or ONNX" : "GGUF, safetensors, ONNX or JSON",
                        path.string()),
            "pass a model file or a folder that holds one");
      }
    } else {
      t.base = path.parent_path();
      t.files.push_back(path);
    }
    return t;
  }

  const fs::path root = cache_root_for(args.cache_dir);
  // A catalog model: "ID" or "ID:QUANT" (`modelmgr models list`), inspected where it is cached.
  if (args.target.find('/') == std::string::npos) {
    const catalog::Catalog cat = load_effective_catalog({});
    std::optional<catalog::Selection> sel;
    try {
      sel = catalog::resolve(cat, args.target);
    } catch (const ConfigurationError&) {
      if (args.target.find(':') != std::string::npos) {
        throw; // an id with a quantization is meant for the catalog: its error says what is wrong
      }
    }
    if (sel) {
      const auto state = catalog::variant_cache_state(*sel->entry, *sel->variant, root, util::Env::process());
      const std::string spec = catalog::spec_of(*sel->entry, *sel->variant);
      if (!state.complete || state.snapshot.empty()) {
        throw MissingModelError(
            fmt::format("catalog model {} is not in the cache at {}", spec, root.string()),
            fmt::format("download it first: modelmgr models download {}", spec));
      }
      t.repo_id = sel->entry->hf_repo;
      t.commit = state.commit.value_or("");
      t.base = state.snapshot;
      t.files = sel->variant->file.empty() ? main_files(t.base, weights_only)
                                           : std::vector<fs::path>{t.base / sel->variant->file};
      return t;
    }
  }

  // A repo id, optionally followed by a file path inside the repo: "org/name", "org/name/sub/file", "gpt2".
  std::vector<std::string> parts;
  for (std::size_t start = 0; start <= args.target.size();) {
    const auto slash = args.target.find('/', start);
    parts.push_back(
        args.target.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) {
      break;
    }
    start = slash + 1;
  }
  for (std::size_t n : {std::size_t{2}, std::size_t{1}}) {
    if (parts.size() < n) {
      continue;
    }
    std::string repo_id = parts[0];
    if (n == 2) {
      repo_id += "/" + parts[1];
    }
    if (cache::repo_id_error(repo_id)) {
      continue;
    }
    const cache::RepoCache rc(root, cache::RepoType::model, repo_id);
    if (!fs::is_directory(rc.repo_dir(), ec)) {
      continue;
    }
    std::optional<std::string> commit = rc.resolve_offline(args.revision);
    if (!commit && args.revision == "main") {
      // No ref (e.g. pulled by commit): one snapshot is unambiguous.
      std::vector<std::string> snapshots;
      for (const auto& e : fs::directory_iterator(rc.snapshots_dir(), ec)) {
        snapshots.push_back(e.path().filename().string());
      }
      if (snapshots.size() == 1 && cache::is_commit_hash(snapshots.front())) {
        commit = snapshots.front();
      }
    }
    if (!commit || !fs::is_directory(rc.snapshot_dir(*commit), ec)) {
      throw MissingModelError(
          fmt::format("revision '{}' of {} is not in the cache at {}", args.revision, repo_id, root.string()),
          fmt::format("download it first: modelmgr pull {} --revision {}", repo_id, args.revision));
    }
    t.repo_id = repo_id;
    t.commit = *commit;
    t.base = rc.snapshot_dir(*commit);
    std::string file;
    for (std::size_t i = n; i < parts.size(); ++i) {
      file += (file.empty() ? "" : "/") + parts[i];
    }
    if (!file.empty()) {
      const fs::path p = t.base / file;
      if (!fs::exists(p, ec)) {
        throw MissingModelError(
            fmt::format("{} is not in the cached snapshot {} of {}", file, *commit, repo_id),
            fmt::format("download it first: modelmgr pull {} {}", repo_id, file));
      }
      t.files = fs::is_directory(p, ec) ? files_below(p, weights_only) : std::vector<fs::path>{p};
    } else {
      t.files = main_files(t.base, weights_only);
    }
    if (t.files.empty()) {
      throw MissingModelError(fmt::format("the cached snapshot {} of {} holds no {} files", *commit, repo_id,
                                          weights_only ? "weight" : "inspectable"),
                              fmt::format("download the weights first: modelmgr pull {}", repo_id));
    }
    return t;
  }
  throw MissingModelError(
      fmt::format("'{}' is neither a file nor a model in the cache at {}", args.target, root.string()),
      "check the path, or download the model first: modelmgr pull REPO");
}

std::string relative_name(const fs::path& p, const fs::path& base)
{
  if (base.empty()) {
    return p.string();
  }
  const auto rel = p.lexically_relative(base);
  return rel.empty() ? p.string() : rel.string();
}

// ---------------------------------------------------------------------------------------------------------
// inspect: rendering

std::string shorten(const std::string& s, bool all)
{
  if (all || s.size() <= k_string_chars) {
    return s;
  }
  return fmt::format("{}... ({} characters)", s.substr(0, k_string_chars), s.size());
}

std::string gguf_value_text(const fm::GgufValue& v, bool all, int depth = 0)
{
  if (const auto* s = v.as_string()) {
    return json(shorten(*s, all)).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  if (const auto* a = v.as_array()) {
    const std::size_t shown = all ? a->items.size() : std::min(a->items.size(), k_array_items);
    std::vector<std::string> items;
    for (std::size_t i = 0; i < shown; ++i) {
      items.push_back(gguf_value_text(a->items[i], all, depth + 1));
    }
    const std::string more =
        shown < a->items.size() ? fmt::format(", ... {} more", a->items.size() - shown) : "";
    return fmt::format("[{} x {}] [{}{}]", fm::to_string(a->element_type), a->items.size(),
                       fmt::join(items, ", "), more);
  }
  if (const auto b = v.get_if<bool>()) {
    return *b ? "true" : "false";
  }
  if (const auto i = v.as_int()) {
    return std::to_string(*i);
  }
  if (const auto u = v.as_uint()) {
    return std::to_string(*u);
  }
  if (const auto d = v.as_double()) {
    return fmt::format("{}", *d);
  }
  return "?";
}

json gguf_value_json(const fm::GgufValue& v, bool all)
{
  if (const auto* s = v.as_string()) {
    return shorten(*s, all);
  }
  if (const auto* a = v.as_array()) {
    json items = json::array();
    const std::size_t shown = all ? a->items.size() : std::min(a->items.size(), k_array_items);
    for (std::size_t i = 0; i < shown; ++i) {
      items.push_back(gguf_value_json(a->items[i], all));
    }
    if (shown == a->items.size()) {
      return items;
    }
    return {{"type", "array"},
            {"element_type", fm::to_string(a->element_type)},
            {"length", a->items.size()},
            {"head", std::move(items)}};
  }
  if (const auto b = v.get_if<bool>()) {
    return *b;
  }
  if (const auto i = v.as_int()) {
    return *i;
  }
  if (const auto u = v.as_uint()) {
    return *u;
  }
  if (const auto d = v.as_double()) {
    return *d;
  }
  return nullptr;
}

template <class T> json opt(const std::optional<T>& v)
{
  return v ? json(*v) : json(nullptr);
}

json details_json(const fm::InspectedFile& f, bool all)
{
  json j = json::object();
  if (f.gguf && f.gguf_info) {
    const auto& g = *f.gguf;
    const auto& info = *f.gguf_info;
    json types = json::array();
    for (const auto& u : info.types) {
      types.push_back({{"type", fm::to_string(u.type)},
                       {"tensors", u.tensors},
                       {"elements", u.elements},
                       {"bytes", u.bytes}});
    }
    json metadata = json::object();
    for (const auto& kv : g.metadata) {
      metadata[kv.key] = gguf_value_json(kv.value, all);
    }
    j = {{"version", g.version},
         {"architecture", info.architecture},
         {"name", info.name},
         {"file_type", opt(info.file_type)},
         {"quantization", info.quantization},
         {"context_length", opt(info.context_length)},
         {"embedding_length", opt(info.embedding_length)},
         {"block_count", opt(info.block_count)},
         {"tokenizer_model", info.tokenizer_model},
         {"vocab_size", opt(info.vocab_size)},
         {"tensor_count", g.tensors.size()},
         {"tensor_bytes", info.tensor_bytes},
         {"alignment", g.alignment},
         {"data_offset", g.data_offset},
         {"tensor_types", std::move(types)},
         {"ram_estimate", fm::estimate_ram(info).total()},
         {"metadata", std::move(metadata)}};
    if (all) {
      json tensors = json::array();
      for (const auto& t : g.tensors) {
        tensors.push_back({{"name", t.name},
                           {"type", fm::to_string(t.type)},
                           {"dims", t.dims},
                           {"offset", t.file_offset},
                           {"bytes", t.n_bytes}});
      }
      j["tensors"] = std::move(tensors);
    }
  } else if (f.safetensors) {
    const auto& s = *f.safetensors;
    json dtypes = json::array();
    for (const auto& u : s.dtype_histogram()) {
      dtypes.push_back({{"dtype", fm::to_string(u.dtype)},
                        {"tensors", u.tensors},
                        {"elements", u.elements},
                        {"bytes", u.bytes}});
    }
    json tensors = json::array();
    const std::size_t shown = all ? s.tensors.size() : std::min(s.tensors.size(), k_tensor_rows);
    for (std::size_t i = 0; i < shown; ++i) {
      const auto& t = s.tensors[i];
      tensors.push_back(
          {{"name", t.name}, {"dtype", fm::to_string(t.dtype)}, {"shape", t.shape}, {"bytes", t.n_bytes()}});
    }
    j = {{"tensor_count", s.tensors.size()},
         {"header_size", s.header_size},
         {"metadata", s.metadata},
         {"dtypes", std::move(dtypes)},
         {"tensors", std::move(tensors)}};
  } else if (f.index) {
    j = {{"tensor_count", f.index->weight_map.size()},
         {"shards", f.index->shards()},
         {"total_size", opt(f.index->total_size)}};
    if (f.shards) {
      j["tensor_bytes"] = f.shards->tensor_bytes;
      j["problems"] = f.shards->problems;
    }
  } else if (f.onnx) {
    const auto& m = *f.onnx;
    const auto io = [](const std::vector<fm::OnnxValueInfo>& v) {
      json out = json::array();
      for (const auto& x : v) {
        json shape = nullptr;
        if (x.has_shape) {
          shape = json::array();
          for (const auto& d : x.shape) {
            shape.push_back(d.value ? json(*d.value) : (d.param.empty() ? json(nullptr) : json(d.param)));
          }
        }
        out.push_back(
            {{"name", x.name}, {"kind", x.kind}, {"element_type", x.element_type}, {"shape", shape}});
      }
      return out;
    };
    json opsets = json::array();
    for (const auto& o : m.opsets) {
      opsets.push_back({{"domain", o.domain}, {"version", o.version}});
    }
    json types = json::array();
    for (const auto& u : m.initializer_types) {
      types.push_back({{"element_type", u.element_type},
                       {"tensors", u.tensors},
                       {"elements", u.elements},
                       {"bytes", u.bytes}});
    }
    j = {{"ir_version", m.ir_version},
         {"opset_imports", std::move(opsets)},
         {"opset", opt(m.default_opset())},
         {"producer_name", m.producer_name},
         {"producer_version", m.producer_version},
         {"graph_name", m.graph_name},
         {"inputs", io(m.inputs)},
         {"outputs", io(m.outputs)},
         {"initializer_count", m.initializer_count},
         {"initializer_bytes", m.initializer_bytes},
         {"initializer_types", std::move(types)},
         {"external_data_files", m.external_files()},
         {"external_bytes", m.external_bytes},
         {"node_count", m.node_count},
         {"subgraph_node_count", m.subgraph_node_count},
         {"op_types", m.op_types},
         {"metadata", m.metadata}};
  } else if (f.config) {
    const auto& c = *f.config;
    j = {{"model_type", c.model_type},        {"architectures", c.architectures},
         {"hidden_size", opt(c.hidden_size)}, {"num_hidden_layers", opt(c.num_hidden_layers)},
         {"vocab_size", opt(c.vocab_size)},   {"max_position_embeddings", opt(c.max_position_embeddings)},
         {"torch_dtype", c.torch_dtype}};
  } else if (f.tokenizer) {
    j = {{"model_type", f.tokenizer->model_type},
         {"vocab_size", opt(f.tokenizer->vocab_size)},
         {"added_tokens", f.tokenizer->added_tokens}};
  } else if (f.tokenizer_config) {
    j = {{"tokenizer_class", f.tokenizer_config->tokenizer_class},
         {"model_max_length", opt(f.tokenizer_config->model_max_length)},
         {"chat_template", f.tokenizer_config->has_chat_template}};
  }
  return j;
}

void line(std::string_view label, const std::string& value)
{
  fmt::print("  {:<16} {}\n", label, value);
}

void print_gguf(const fm::GgufFile& g, const fm::GgufModelInfo& info, bool all)
{
  line("architecture", info.architecture.empty() ? "-" : info.architecture);
  if (!info.name.empty()) {
    line("name", info.name);
  }
  line("parameters", fm::format_parameter_count(info.parameter_count));
  line("file type", info.quantization.empty() ? "-" : info.quantization);
  std::vector<std::string> types;
  for (const auto& u : info.types) {
    types.push_back(
        fmt::format("{} x{} ({})", fm::to_string(u.type), u.tensors, util::format_bytes_iec(u.bytes)));
  }
  line("tensor types", fmt::format("{}", fmt::join(types, ", ")));
  line("context length", info.context_length ? std::to_string(*info.context_length) : "-");
  std::string tok = info.tokenizer_model.empty() ? "-" : info.tokenizer_model;
  if (info.vocab_size) {
    tok += fmt::format(" ({} tokens)", *info.vocab_size);
  }
  line("tokenizer", tok);
  line("tensors",
       fmt::format("{} ({} of data)", g.tensors.size(), util::format_bytes_iec(info.tensor_bytes)));
  line("RAM estimate", fmt::format("{} (weights + KV cache at the trained context + overhead)",
                                   util::format_bytes_iec(fm::estimate_ram(info).total())));
  fmt::print("  metadata ({} keys){}\n", g.metadata.size(),
             all ? "" : ", long values abbreviated (--all-metadata)");
  for (const auto& kv : g.metadata) {
    fmt::print("    {} = {}\n", kv.key, gguf_value_text(kv.value, all));
  }
  if (all) {
    fmt::print("  tensor infos\n");
    for (const auto& t : g.tensors) {
      fmt::print("    {}  {}  [{}]  at {}\n", t.name, fm::to_string(t.type), fmt::join(t.dims, ", "),
                 t.file_offset);
    }
  }
}

void print_safetensors(const fm::SafetensorsFile& s, bool all)
{
  line("parameters", fm::format_parameter_count(s.parameter_count()));
  std::vector<std::string> dtypes;
  for (const auto& u : s.dtype_histogram()) {
    dtypes.push_back(
        fmt::format("{} x{} ({})", fm::to_string(u.dtype), u.tensors, util::format_bytes_iec(u.bytes)));
  }
  line("dtypes", dtypes.empty() ? "-" : fmt::format("{}", fmt::join(dtypes, ", ")));
  line("tensors", std::to_string(s.tensors.size()));
  for (const auto& [k, v] : s.metadata) {
    line("metadata", fmt::format("{} = {}", k, shorten(v, all)));
  }
  const std::size_t shown = all ? s.tensors.size() : std::min(s.tensors.size(), k_tensor_rows);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& t = s.tensors[i];
    fmt::print("    {}  {}  [{}]\n", t.name, fm::to_string(t.dtype), fmt::join(t.shape, ", "));
  }
  if (shown < s.tensors.size()) {
    fmt::print("    ... {} more tensors (--all-metadata lists them)\n", s.tensors.size() - shown);
  }
}

void print_onnx(const fm::OnnxModel& m)
{
  line("IR version", std::to_string(m.ir_version));
  std::vector<std::string> opsets;
  for (const auto& o : m.opsets) {
    opsets.push_back(fmt::format("{} {}", o.domain.empty() ? "ai.onnx" : o.domain, o.version));
  }
  line("opsets", opsets.empty() ? "-" : fmt::format("{}", fmt::join(opsets, ", ")));
  if (!m.producer_name.empty()) {
    line("producer", fmt::format("{} {}", m.producer_name, m.producer_version));
  }
  line("graph", m.graph_name.empty() ? "-" : m.graph_name);
  for (const auto& in : m.inputs) {
    line("input", fmt::format("{}: {} {}", in.name, in.element_type, in.shape_string()));
  }
  for (const auto& out : m.outputs) {
    line("output", fmt::format("{}: {} {}", out.name, out.element_type, out.shape_string()));
  }
  line("parameters", fm::format_parameter_count(m.parameter_count));
  std::vector<std::string> types;
  for (const auto& u : m.initializer_types) {
    types.push_back(fmt::format("{} x{}", u.element_type, u.tensors));
  }
  line("initializers",
       fmt::format("{} ({}){}", m.initializer_count, util::format_bytes_iec(m.initializer_bytes),
                   types.empty() ? "" : fmt::format(": {}", fmt::join(types, ", "))));
  if (!m.external_data.empty()) {
    line("external data", fmt::format("{} in {}", util::format_bytes_iec(m.external_bytes),
                                      fmt::join(m.external_files(), ", ")));
  }
  std::vector<std::pair<std::string, std::uint64_t>> ops(m.op_types.begin(), m.op_types.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> top;
  for (std::size_t i = 0; i < ops.size() && i < 6; ++i) {
    top.push_back(fmt::format("{} {}", ops[i].first, ops[i].second));
  }
  line("nodes",
       fmt::format("{}{}{}", m.node_count,
                   m.subgraph_node_count > 0 ? fmt::format(" (+{} in subgraphs)", m.subgraph_node_count) : "",
                   top.empty() ? "" : fmt::format(": {}", fmt::join(top, ", "))));
}

void print_file(const fm::InspectedFile& f, const std::string& name, bool all)
{
  const auto& c = f.check;
  fmt::print("{}  ({}, {})\n", name, fm::to_string(c.format), util::format_bytes_iec(f.file_size));
  if (c.ok) {
    if (f.gguf && f.gguf_info) {
      print_gguf(*f.gguf, *f.gguf_info, all);
    } else if (f.safetensors) {
      print_safetensors(*f.safetensors, all);
    } else if (f.onnx) {
      print_onnx(*f.onnx);
    } else {
      line("summary", c.summary);
    }
  }
  for (const auto& n : c.notes) {
    line("note", n);
  }
  line("load check", c.ok ? "ok" : "FAILED: " + c.error);
}

void run_inspect(const InspectArgs& args, const GlobalOptions& global)
{
  const Target target = resolve_target(args, false);
  std::vector<fm::InspectedFile> results;
  for (const auto& p : target.files) {
    results.push_back(fm::inspect_file(p));
  }
  if (target.files.size() == 1 && results.front().check.format == fm::FileFormat::unknown &&
      results.front().check.ok) {
    throw ConfigurationError(
        fmt::format("{} is not a file modelmgr can inspect", target.files.front().string()),
        "inspect takes GGUF, safetensors (and their index), ONNX and JSON files, a folder or a cached repo "
        "id",
        ErrorKind::usage);
  }
  std::uint64_t parameters = 0;
  std::size_t weight_files = 0;
  std::vector<std::string> failed;
  for (const auto& r : results) {
    if (fm::is_weight_format(r.check.format)) {
      parameters += r.check.parameter_count;
      ++weight_files;
    }
    if (!r.check.ok) {
      failed.push_back(r.check.error);
    }
  }

  if (global.json) {
    json files = json::array();
    for (const auto& r : results) {
      files.push_back({{"path", r.path.string()},
                       {"name", relative_name(r.path, target.base)},
                       {"format", fm::to_string(r.check.format)},
                       {"size", r.file_size},
                       {"ok", r.check.ok},
                       {"error", r.check.ok ? json(nullptr) : json(r.check.error)},
                       {"parameter_count", r.check.parameter_count},
                       {"summary", r.check.summary},
                       {"notes", r.check.notes},
                       {"details", details_json(r, args.all_metadata)}});
    }
    json out = {{"target", args.target},
                {"repo_id", target.repo_id.empty() ? json(nullptr) : json(target.repo_id)},
                {"commit", target.commit.empty() ? json(nullptr) : json(target.commit)},
                {"ok", failed.empty()},
                {"parameter_count", parameters},
                {"weight_files", weight_files},
                {"files", std::move(files)}};
    fmt::print("{}\n", out.dump(-1, ' ', false, json::error_handler_t::replace));
  } else {
    if (!target.repo_id.empty()) {
      fmt::print("{} @ {} ({})\n\n", target.repo_id, target.commit.substr(0, 12), target.base.string());
    }
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (i > 0) {
        fmt::print("\n");
      }
      print_file(results[i], relative_name(results[i].path, target.base), args.all_metadata);
    }
    if (results.size() > 1) {
      fmt::print("\n{} files, {} with weights, {} parameters in total; {}\n", results.size(), weight_files,
                 fm::format_parameter_count(parameters),
                 failed.empty() ? "all load" : fmt::format("{} do not load", failed.size()));
    }
  }
  std::fflush(stdout);
  if (!failed.empty()) {
    // checksum: like a hash mismatch, the bytes on disk are not the model they claim to be, and the fix is
    // the same (check the hash, download again); ParseError uses this kind too.
    throw BadChecksumError(
        failed.size() == 1 ? failed.front()
                           : fmt::format("{} of {} files do not load; first: {}", failed.size(),
                                         results.size(), failed.front()),
        target.repo_id.empty()
            ? "the file is truncated, corrupt or not what its name says; download it again"
            : fmt::format("check the hashes with `modelmgr cache verify {}` and download it again",
                          target.repo_id));
  }
}

// ---------------------------------------------------------------------------------------------------------
// bench-load

json pass_json(const fm::LoadBenchPass& p)
{
  return {{"bytes", p.bytes},
          {"pages", p.pages},
          {"seconds", p.seconds},
          {"first_tensor_seconds", opt(p.first_tensor_seconds)},
          {"gb_per_s", p.gb_per_s()},
          {"resident_before", p.resident_before},
          {"cache_dropped", p.cache_dropped},
          {"checksum", p.checksum}};
}

std::string duration_text(double seconds)
{
  return seconds < 1 ? fmt::format("{:.2f} ms", seconds * 1e3) : fmt::format("{:.2f} s", seconds);
}

std::string pass_text(std::string_view method, const fm::LoadBenchPass& p)
{
  return fmt::format("  {:<5} {:>10}  {:>7.2f} GB/s  first tensor after {}  (cached before: {:.0f}%)", method,
                     duration_text(p.seconds), p.gb_per_s(),
                     p.first_tensor_seconds ? duration_text(*p.first_tensor_seconds) : std::string("-"),
                     p.resident_before * 100);
}

void run_bench(const BenchArgs& args, const GlobalOptions& global)
{
  fm::LoadBenchOptions options;
  options.drop_cache = !args.keep_cache;
  options.read_block = parse_size_option("--block", args.block);
  if (options.read_block < 4096 || options.read_block > (1ull << 30)) {
    throw ConfigurationError(fmt::format("--block {} is outside 4 KiB .. 1 GiB", args.block), "",
                             ErrorKind::usage);
  }
  options.cancelled = [] { return cancel_flag().load(); };
  const Target target = resolve_target(args, true);
  if (target.files.size() == 1 && !fm::is_weight_format(fm::detect_format(target.files.front())) &&
      !global.quiet) {
    fmt::print(stderr,
               "modelmgr: note: {} is not a GGUF, safetensors or ONNX file; timing its bytes anyway\n",
               target.files.front().string());
  }
  std::vector<fm::LoadBenchFile> results;
  fm::LoadBenchPass mmap_total;
  fm::LoadBenchPass read_total;
  for (const auto& p : target.files) {
    if (!global.json && !global.quiet) {
      fmt::print(stderr, "measuring {} ...\n", relative_name(p, target.base));
    }
    auto r = fm::bench_load_file(p, options);
    if (r.mmap.checksum != r.read.checksum) {
      throw ModelManagerError(
          ErrorKind::disk,
          fmt::format("{}: mmap and read() saw different bytes (the file changed while measured?)",
                      p.string()),
          "run bench-load again when nothing writes the file");
    }
    for (const auto& pair : {std::pair{&mmap_total, &r.mmap}, std::pair{&read_total, &r.read}}) {
      pair.first->bytes += pair.second->bytes;
      pair.first->pages += pair.second->pages;
      pair.first->seconds += pair.second->seconds;
    }
    results.push_back(std::move(r));
  }
  const double ratio = read_total.gb_per_s() > 0 ? mmap_total.gb_per_s() / read_total.gb_per_s() : 0;
  const std::string cache_mode = options.drop_cache ? "fadvise_dontneed" : "none";
  if (global.json) {
    json files = json::array();
    for (const auto& r : results) {
      files.push_back({{"path", r.path.string()},
                       {"name", relative_name(r.path, target.base)},
                       {"format", fm::to_string(r.format)},
                       {"size", r.file_size},
                       {"first_tensor", r.first_tensor.empty() ? json(nullptr) : json(r.first_tensor)},
                       {"first_tensor_end", r.first_tensor_end},
                       {"mmap", pass_json(r.mmap)},
                       {"read", pass_json(r.read)},
                       {"mmap_to_read_ratio", r.ratio()}});
    }
    json out = {{"target", args.target},
                {"repo_id", target.repo_id.empty() ? json(nullptr) : json(target.repo_id)},
                {"order", {"mmap", "read"}},
                {"cache_drop", cache_mode},
                {"read_block", options.read_block},
                {"page_step", 4096},
                {"files", std::move(files)},
                {"total",
                 {{"bytes", mmap_total.bytes},
                  {"mmap_seconds", mmap_total.seconds},
                  {"read_seconds", read_total.seconds},
                  {"mmap_gb_per_s", mmap_total.gb_per_s()},
                  {"read_gb_per_s", read_total.gb_per_s()},
                  {"mmap_to_read_ratio", ratio}}}};
    fmt::print("{}\n", out.dump());
    return;
  }
  for (const auto& r : results) {
    fmt::print("{}  ({}, {})\n", relative_name(r.path, target.base), fm::to_string(r.format),
               util::format_bytes_iec(r.file_size));
    if (!r.first_tensor.empty()) {
      fmt::print("  first tensor '{}' ends at byte {}\n", r.first_tensor, r.first_tensor_end);
    }
    fmt::print("{}\n{}\n", pass_text("mmap", r.mmap), pass_text("read", r.read));
    fmt::print("  mmap/read throughput: {:.2f}x\n", r.ratio());
  }
  if (results.size() > 1) {
    fmt::print("\ntotal {}: mmap {:.2f} GB/s, read {:.2f} GB/s, mmap/read {:.2f}x\n",
               util::format_bytes_iec(mmap_total.bytes), mmap_total.gb_per_s(), read_total.gb_per_s(), ratio);
  }
  fmt::print(
      "\nmmap touches one byte per 4 KiB page; read() uses {} blocks. Passes run mmap first, then read; {}\n",
      util::format_bytes_iec(options.read_block),
      options.drop_cache
          ? "the file's page cache is dropped (posix_fadvise DONTNEED) before each pass."
          : "the page cache is kept (--keep-cache): the second pass may be served from memory.");
}

void add_target_options(CLI::App* cmd, TargetArgs& args)
{
  cmd->add_option(
         "target", args.target,
         "A file, a folder, a catalog model (ID[:QUANT]) or a repo id (org/name[/file]) in the HF cache")
      ->required();
  cmd->add_option("--cache-dir", args.cache_dir,
                  "Cache directory (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)");
  cmd->add_option("--revision", args.revision, "Revision of a cached repo (default: main)");
}

} // namespace

void set_inspect_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand(
      "inspect", "Show what a model file holds (GGUF, safetensors, ONNX, HF JSON) and check that it loads");
  add_target_options(cmd, *args);
  cmd->add_flag("--all-metadata", args->all_metadata, "Show long metadata arrays and every tensor in full");
  cmd->callback([args, &global, &exit_code] {
    run_inspect(*args, global);
    exit_code = 0;
  });
}

void set_bench_load_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<BenchArgs>();
  auto* cmd =
      app.add_subcommand("bench-load", "Time loading weight files: mmap and touch every page vs. read()");
  add_target_options(cmd, *args);
  cmd->add_flag("--keep-cache", args->keep_cache, "Do not drop the file's page cache before each pass");
  cmd->add_option("--block", args->block, "read() block size (default 8MiB)");
  cmd->callback([args, &global, &exit_code] {
    run_bench(*args, global);
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
