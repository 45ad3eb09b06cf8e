#include "hub/hub_json.hpp"

#include "modelmgr/errors.hpp"

#include "util/fs.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::hub {

namespace {

using Json = nlohmann::json;

// A tree page nests four levels (array, entry, lfs, value); revision info a few more. Deeper is not the
// Hub, and a body of 64 MiB of '[' would otherwise become 64 million nodes.
constexpr int k_max_depth = 32;
// A tree page holds at most 1000 entries of about a dozen values; revision info one value per sibling.
// The cap bounds the parsed tree of a body that passed the byte cap (about 100 bytes a value).
constexpr std::size_t k_max_values = 1'000'000;

constexpr std::string_view k_hint =
    "check HF_ENDPOINT (and any proxy or mirror in between): the server does not answer like the Hugging "
    "Face Hub";

[[noreturn]] void bad(std::string message)
{
  throw BadResponseError(std::move(message), std::string(k_hint));
}

// A JSON value for a message: short, escaped.
std::string shown(const Json& j)
{
  std::string s = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 80) {
    s = s.substr(0, 80) + "…";
  }
  return util::escape_for_terminal(s);
}

std::string kind_of(const Json& j)
{
  if (j.is_null()) {
    return "null";
  }
  if (j.is_boolean()) {
    return "a boolean";
  }
  if (j.is_number_unsigned()) {
    return "a number";
  }
  if (j.is_number_integer()) {
    return "a negative number";
  }
  if (j.is_number_float()) {
    return "a fractional number";
  }
  if (j.is_string()) {
    return "a string";
  }
  return j.is_array() ? "an array" : "an object";
}

Json parse_bounded(std::string_view body, std::string_view what, std::string_view source)
{
  bool too_deep = false;
  std::size_t values = 0;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t event, Json&) {
    if (depth > k_max_depth) {
      too_deep = true;
      return false;
    }
    if (event == Json::parse_event_t::value || event == Json::parse_event_t::object_start ||
        event == Json::parse_event_t::array_start) {
      if (++values > k_max_values) {
        return false;
      }
    }
    return true;
  };
  Json j;
  try {
    j = Json::parse(body.begin(), body.end(), cb);
  } catch (const Json::parse_error& e) {
    // e.what() quotes the server's bytes ("last read: …"): give the offset only.
    bad(fmt::format("malformed JSON in the {} from {} (at byte {} of {})", what, source, e.byte,
                    body.size()));
  } catch (const Json::exception&) {
    // out_of_range: a number such as 1e999 that no double holds (found by the fuzzer).
    bad(fmt::format("malformed JSON in the {} from {} (a number out of range)", what, source));
  }
  if (too_deep) {
    bad(fmt::format("the {} from {} nests deeper than {} levels", what, source, k_max_depth));
  }
  if (values > k_max_values) {
    bad(fmt::format("the {} from {} has more than {} JSON values", what, source, k_max_values));
  }
  return j;
}

bool is_hex(std::string_view s) noexcept
{
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Context for messages about one tree entry.
struct EntryContext {
  std::string_view source;
  std::size_t index;
  const std::string* path; // once known

  std::string where() const
  {
    if (path) {
      return fmt::format("tree listing from {}: entry {} ('{}')", source, index,
                         util::escape_for_terminal(*path));
    }
    return fmt::format("tree listing from {}: entry {}", source, index);
  }
};

const Json* field(const Json& obj, const char* name)
{
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

std::string required_string(const Json& obj, const char* name, const EntryContext& ctx)
{
  const Json* v = field(obj, name);
  if (!v) {
    bad(fmt::format("{}: no '{}' field", ctx.where(), name));
  }
  if (!v->is_string()) {
    bad(fmt::format("{}: '{}' is {} ({}), expected a string", ctx.where(), name, kind_of(*v), shown(*v)));
  }
  return v->get<std::string>();
}

std::uint64_t required_size(const Json& obj, const char* name, const EntryContext& ctx)
{
  const Json* v = field(obj, name);
  if (!v) {
    bad(fmt::format("{}: no '{}' field", ctx.where(), name));
  }
  if (!v->is_number_unsigned()) {
    bad(fmt::format("{}: '{}' is {} ({}), expected a size in bytes", ctx.where(), name, kind_of(*v),
                    shown(*v)));
  }
  const auto size = v->get<std::uint64_t>();
  if (size > k_max_file_size) {
    bad(fmt::format("{}: '{}' is {} bytes, more than any file the Hub stores", ctx.where(), name, size));
  }
  return size;
}

std::string required_hash(const Json& obj, const char* name, std::initializer_list<std::size_t> lengths,
                          const EntryContext& ctx)
{
  std::string h = required_string(obj, name, ctx);
  const bool length_ok = std::find(lengths.begin(), lengths.end(), h.size()) != lengths.end();
  if (!length_ok || !is_hex(h)) {
    bad(fmt::format("{}: '{}' is '{}', expected a lower-case hex hash", ctx.where(), name,
                    util::escape_for_terminal(h.substr(0, 80))));
  }
  return h;
}

} // namespace

std::string unsafe_name_reason(std::string_view path)
{
  if (auto err = util::relative_path_error(path)) {
    return *err;
  }
  if (util::has_terminal_controls(path)) {
    return "contains control characters or invalid UTF-8";
  }
  return {};
}

RevisionInfo parse_revision_info(std::string_view body, std::string_view source)
{
  const Json j = parse_bounded(body, "revision info", source);
  if (!j.is_object()) {
    bad(fmt::format("the revision info from {} is {}, expected an object", source, kind_of(j)));
  }
  RevisionInfo info;
  const Json* sha = field(j, "sha");
  if (!sha || !sha->is_string()) {
    bad(fmt::format("the revision info from {} has no 'sha' string{}", source,
                    sha ? fmt::format(" ('sha' is {})", kind_of(*sha)) : ""));
  }
  info.sha = sha->get<std::string>();
  if (info.sha.size() != 40 || !is_hex(info.sha)) {
    bad(fmt::format("the revision info from {} names an invalid commit '{}' (expected 40 hex digits)", source,
                    util::escape_for_terminal(info.sha.substr(0, 80))));
  }
  if (const Json* p = field(j, "private"); p && !p->is_null()) {
    if (!p->is_boolean()) {
      bad(fmt::format("the revision info from {}: 'private' is {}, expected true or false", source,
                      kind_of(*p)));
    }
    info.is_private = p->get<bool>();
  }
  if (const Json* g = field(j, "gated"); g && !g->is_null()) {
    // The Hub sends false or "auto" / "manual".
    if (g->is_string()) {
      info.gated = util::escape_for_terminal(g->get<std::string>());
    } else if (!g->is_boolean()) {
      bad(fmt::format("the revision info from {}: 'gated' is {}, expected false or a string", source,
                      kind_of(*g)));
    }
  }
  return info;
}

std::vector<cache::TreeFile> parse_tree_page(std::string_view body, std::string_view source)
{
  const Json j = parse_bounded(body, "tree listing", source);
  if (!j.is_array()) {
    bad(fmt::format("the tree listing from {} is {}, expected an array", source, kind_of(j)));
  }
  std::vector<cache::TreeFile> files;
  std::size_t index = 0;
  for (const auto& e : j) {
    EntryContext ctx{source, index++, nullptr};
    if (!e.is_object()) {
      bad(fmt::format("{}: is {}, expected an object", ctx.where(), kind_of(e)));
    }
    const std::string type = required_string(e, "type", ctx);
    if (type != "file") {
      continue; // "directory", and kinds this client does not know
    }
    cache::TreeFile f;
    f.path = required_string(e, "path", ctx);
    if (auto why = unsafe_name_reason(f.path); !why.empty()) {
      bad(fmt::format("{}: unsafe file name '{}': {}", ctx.where(), util::escape_for_terminal(f.path), why));
    }
    ctx.path = &f.path;
    f.size = required_size(e, "size", ctx);
    f.blob_id = required_hash(e, "oid", {40, 64}, ctx);
    if (const Json* lfs = field(e, "lfs"); lfs && !lfs->is_null()) {
      if (!lfs->is_object()) {
        bad(fmt::format("{}: 'lfs' is {}, expected an object", ctx.where(), kind_of(*lfs)));
      }
      f.lfs_sha256 = required_hash(*lfs, "oid", {64}, ctx);
      f.lfs_size = field(*lfs, "size") ? required_size(*lfs, "size", ctx) : f.size;
    }
    if (const Json* xet = field(e, "xetHash"); xet && !xet->is_null()) {
      if (!xet->is_string()) {
        bad(fmt::format("{}: 'xetHash' is {}, expected a string", ctx.where(), kind_of(*xet)));
      }
      f.xet_hash = xet->get<std::string>();
    }
    files.push_back(std::move(f));
  }
  return files;
}

} // namespace modelmgr::hub
