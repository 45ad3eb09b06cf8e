#include "formats/safetensors.hpp"

#include "formats/detail/json_guard.hpp"
#include "formats/detail/reader.hpp"
#include "formats/parse_error.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include <fmt/format.h>

namespace modelmgr::formats {
namespace {

using detail::checked_add;
using detail::checked_mul;
using nlohmann::json;

struct DtypeEntry {
  SafetensorsDtype dtype;
  std::string_view name;
  std::uint32_t bits;
};

constexpr std::array k_dtypes{
    DtypeEntry{SafetensorsDtype::boolean, "BOOL", 8},    DtypeEntry{SafetensorsDtype::u8, "U8", 8},
    DtypeEntry{SafetensorsDtype::i8, "I8", 8},           DtypeEntry{SafetensorsDtype::f8_e5m2, "F8_E5M2", 8},
    DtypeEntry{SafetensorsDtype::f8_e4m3, "F8_E4M3", 8}, DtypeEntry{SafetensorsDtype::f8_e8m0, "F8_E8M0", 8},
    DtypeEntry{SafetensorsDtype::i16, "I16", 16},        DtypeEntry{SafetensorsDtype::u16, "U16", 16},
    DtypeEntry{SafetensorsDtype::f16, "F16", 16},        DtypeEntry{SafetensorsDtype::bf16, "BF16", 16},
    DtypeEntry{SafetensorsDtype::i32, "I32", 32},        DtypeEntry{SafetensorsDtype::u32, "U32", 32},
    DtypeEntry{SafetensorsDtype::f32, "F32", 32},        DtypeEntry{SafetensorsDtype::c64, "C64", 64},
    DtypeEntry{SafetensorsDtype::f64, "F64", 64},        DtypeEntry{SafetensorsDtype::i64, "I64", 64},
    DtypeEntry{SafetensorsDtype::u64, "U64", 64},        DtypeEntry{SafetensorsDtype::f4, "F4", 4},
    DtypeEntry{SafetensorsDtype::f6_e2m3, "F6_E2M3", 6}, DtypeEntry{SafetensorsDtype::f6_e3m2, "F6_E3M2", 6},
};

constexpr std::string_view k_metadata_key = "__metadata__";

// Byte offset of a key in the header text, for error messages; falls back to the header start. Only used
// on the error path.
std::uint64_t key_offset(std::string_view header, std::string_view key)
{
  const std::string quoted = fmt::format("\"{}\"", key);
  const auto at = header.find(quoted);
  return 8 + (at == std::string_view::npos ? 0 : at);
}

class SafetensorsParser {
public:
  SafetensorsParser(const ByteSource& source, std::string name, const SafetensorsParseOptions& options)
      : m_source(source), m_name(std::move(name)), m_options(options)
  {
  }

  SafetensorsFile parse()
  {
    SafetensorsFile file;
    file.file_size = m_source.size();
    detail::Reader in(m_source, m_name);
    const std::uint64_t n = in.read<std::uint64_t>("header length");
    if (n == 0) {
      fail("header length", 0, "header length is 0");
    }
    if (n > m_options.max_header_size) {
      fail("header length", 0,
           fmt::format("header length {} exceeds the limit of {} bytes", n, m_options.max_header_size));
    }
    if (n > in.remaining()) {
      fail("header length", 0,
           fmt::format("header length {} exceeds the {} bytes after it (file size {})", n, in.remaining(),
                       file.file_size));
    }
    file.header_size = n;
    file.data_offset = 8 + n;
    m_header = in.read_string_bytes(n, "header");
    if (m_header.front() != '{') {
      fail("header", 8, "JSON header does not start with '{'");
    }
    if (const auto deep = detail::find_excess_nesting(m_header, m_options.max_json_depth)) {
      fail("header", 8 + *deep, fmt::format("JSON nested deeper than {}", m_options.max_json_depth));
    }
    const json root = parse_json();
    if (!root.is_object()) {
      fail("header", 8, "JSON header is not an object");
    }

    const std::uint64_t data_size = file.file_size - file.data_offset;
    for (const auto& [key, value] : root.items()) {
      if (key == k_metadata_key) {
        read_metadata(value, file);
      } else {
        file.tensors.push_back(read_tensor(key, value, file.data_offset, data_size));
      }
    }
    check_coverage(file, data_size);
    return file;
  }

private:
  [[noreturn]] void fail(std::string_view field, std::uint64_t offset, std::string detail) const
  {
    throw ParseError(m_name, std::string(field), offset, std::move(detail));
  }

  json parse_json()
  {
    // The parser callback sees every top-level key: nlohmann keeps the last of duplicate keys silently,
    // and the format forbids them (two parsers could disagree on which tensor a name means).
    std::set<std::string> seen;
    const json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::key && depth == 1) {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!seen.insert(key).second) {
          fail(fmt::format("tensor '{}'", key), key_offset(m_header, key), "duplicate key in JSON header");
        }
      }
      return true;
    };
    try {
      return json::parse(m_header, on_event);
    } catch (const json::parse_error& e) {
      // e.byte is 1-based within the header.
      fail("header", 8 + (e.byte > 0 ? e.byte - 1 : 0), fmt::format("invalid JSON: {}", e.what()));
    } catch (const json::exception& e) {
      // Not only parse_error: a number literal too large for a double throws out_of_range (406).
      fail("header", 8, fmt::format("invalid JSON: {}", e.what()));
    }
  }

  void read_metadata(const json& value, SafetensorsFile& file)
  {
    const std::uint64_t at = key_offset(m_header, k_metadata_key);
    if (!value.is_object()) {
      fail(k_metadata_key, at, "must be an object of strings");
    }
    for (const auto& [k, v] : value.items()) {
      if (!v.is_string()) {
        fail(fmt::format("{} '{}'", k_metadata_key, k), at,
             fmt::format("value must be a string, not {}", v.type_name()));
      }
      file.metadata.emplace(k, v.get<std::string>());
    }
  }

  std::uint64_t read_uint(const json& v, std::string_view field, std::string_view key) const
  {
    if (!v.is_number_unsigned()) {
      fail(field, key_offset(m_header, key),
           fmt::format("expected a non-negative integer, got {}", v.dump()));
    }
    return v.get<std::uint64_t>();
  }

  SafetensorsTensor read_tensor(const std::string& name, const json& value, std::uint64_t data_offset,
                                std::uint64_t data_size) const
  {
    const std::string field = fmt::format("tensor '{}'", name);
    // Errors point at the tensor's key; finding it scans the header, so only do that when failing.
    const auto fail_here = [&](std::string detail) {
      fail(field, key_offset(m_header, name), std::move(detail));
    };
    if (!value.is_object()) {
      fail_here("entry is not an object");
    }
    SafetensorsTensor t;
    t.name = name;

    const auto dtype_it = value.find("dtype");
    if (dtype_it == value.end() || !dtype_it->is_string()) {
      fail_here("missing or non-string 'dtype'");
    }
    const auto dtype = safetensors_dtype_from_string(dtype_it->get_ref<const std::string&>());
    if (!dtype) {
      fail_here(fmt::format("unknown dtype '{}'", dtype_it->get_ref<const std::string&>()));
    }
    t.dtype = *dtype;

    const auto shape_it = value.find("shape");
    if (shape_it == value.end() || !shape_it->is_array()) {
      fail_here("missing or non-array 'shape'");
    }
    t.n_elements = 1;
    t.shape.reserve(shape_it->size()); // bounded: the JSON array already exists in memory
    for (const auto& d : *shape_it) {
      const std::uint64_t dim = read_uint(d, field + " shape", name);
      if (!checked_mul(t.n_elements, dim, t.n_elements)) {
        fail_here("element count overflows");
      }
      t.shape.push_back(dim);
    }

    const auto offsets_it = value.find("data_offsets");
    if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      fail_here("'data_offsets' must be an array [begin, end]");
    }
    t.begin = read_uint((*offsets_it)[0], field + " data_offsets", name);
    t.end = read_uint((*offsets_it)[1], field + " data_offsets", name);
    if (t.end < t.begin) {
      fail_here(fmt::format("data_offsets [{}, {}) end before they begin", t.begin, t.end));
    }
    if (t.end > data_size) {
      fail_here(fmt::format("data range [{}, {}) exceeds the data section of {} bytes (file size {})",
                            t.begin, t.end, data_size, data_offset + data_size));
    }
    std::uint64_t bits = 0;
    if (!checked_mul(t.n_elements, bits_per_element(t.dtype), bits) || bits % 8 != 0) {
      fail_here(fmt::format("{} elements of {} do not fill whole bytes", t.n_elements, to_string(t.dtype)));
    }
    if (bits / 8 != t.n_bytes()) {
      fail_here(fmt::format("data_offsets [{}, {}) hold {} bytes but {} x {} needs {}", t.begin, t.end,
                            t.n_bytes(), to_string(t.dtype), fmt::join(t.shape, "x"), bits / 8));
    }
    t.file_offset = data_offset + t.begin;
    return t;
  }

  void check_coverage(SafetensorsFile& file, std::uint64_t data_size) const
  {
    std::sort(file.tensors.begin(), file.tensors.end(), [](const auto& a, const auto& b) {
      return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
    });
    std::uint64_t cursor = 0;
    const SafetensorsTensor* previous = nullptr;
    for (const auto& t : file.tensors) {
      const std::string field = fmt::format("tensor '{}'", t.name);
      if (t.begin < cursor) {
        fail(field, key_offset(m_header, t.name),
             fmt::format("data range [{}, {}) overlaps tensor '{}' ending at {}", t.begin, t.end,
                         previous != nullptr ? previous->name : "", cursor));
      }
      if (t.begin > cursor) {
        fail(field, key_offset(m_header, t.name),
             fmt::format("hole in the data section: bytes [{}, {}) belong to no tensor", cursor, t.begin));
      }
      cursor = t.end;
      previous = &t;
    }
    if (cursor != data_size) {
      fail("data section", file.data_offset + cursor,
           fmt::format("bytes [{}, {}) of the data section belong to no tensor", cursor, data_size));
    }
  }

  const ByteSource& m_source;
  std::string m_name;
  const SafetensorsParseOptions& m_options;
  std::string m_header;
};

bool plain_file_name(std::string_view name)
{
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of("/\\") == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

} // namespace

std::string_view to_string(SafetensorsDtype dtype) noexcept
{
  for (const auto& e : k_dtypes) {
    if (e.dtype == dtype) {
      return e.name;
    }
  }
  return "unknown";
}

std::optional<SafetensorsDtype> safetensors_dtype_from_string(std::string_view name) noexcept
{
  for (const auto& e : k_dtypes) {
    if (e.name == name) {
      return e.dtype;
    }
  }
  return std::nullopt;
}

std::uint32_t bits_per_element(SafetensorsDtype dtype) noexcept
{
  for (const auto& e : k_dtypes) {
    if (e.dtype == dtype) {
      return e.bits;
    }
  }
  return 0;
}

const SafetensorsTensor* SafetensorsFile::find_tensor(std::string_view name) const noexcept
{
  for (const auto& t : tensors) {
    if (t.name == name) {
      return &t;
    }
  }
  return nullptr;
}

std::uint64_t SafetensorsFile::parameter_count() const noexcept
{
  std::uint64_t total = 0;
  for (const auto& t : tensors) {
    // Cannot overflow in a valid file: every tensor has at least 1/2 byte per element within the file.
    if (!checked_add(total, t.n_elements, total)) {
      return std::numeric_limits<std::uint64_t>::max();
    }
  }
  return total;
}

std::vector<SafetensorsDtypeUsage> SafetensorsFile::dtype_histogram() const
{
  std::map<SafetensorsDtype, SafetensorsDtypeUsage> by_dtype;
  for (const auto& t : tensors) {
    auto& u = by_dtype[t.dtype];
    u.dtype = t.dtype;
    u.tensors += 1;
    u.elements += t.n_elements;
    u.bytes += t.n_bytes();
  }
  std::vector<SafetensorsDtypeUsage> out;
  for (const auto& [dtype, u] : by_dtype) {
    out.push_back(u);
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  return out;
}

SafetensorsFile parse_safetensors(const ByteSource& source, std::string display_name,
                                  const SafetensorsParseOptions& options)
{
  return SafetensorsParser(source, std::move(display_name), options).parse();
}

SafetensorsFile parse_safetensors_file(const std::filesystem::path& path,
                                       const SafetensorsParseOptions& options)
{
  const FileByteSource source(path);
  return parse_safetensors(source, path.filename().string(), options);
}

std::vector<std::string> SafetensorsIndex::shards() const
{
  std::set<std::string> names;
  for (const auto& [tensor, shard] : weight_map) {
    names.insert(shard);
  }
  return {names.begin(), names.end()};
}

SafetensorsIndex parse_safetensors_index(std::string_view text, std::string display_name)
{
  constexpr std::uint32_t k_max_depth = 16;
  if (const auto deep = detail::find_excess_nesting(text, k_max_depth)) {
    throw ParseError(display_name, "index", *deep, fmt::format("JSON nested deeper than {}", k_max_depth));
  }
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw ParseError(display_name, "index", e.byte > 0 ? e.byte - 1 : 0,
                     fmt::format("invalid JSON: {}", e.what()));
  } catch (const json::exception& e) {
    // out_of_range for a number too large for a double (found by tests/fuzz/fuzz_formats.cpp).
    throw ParseError(display_name, "index", 0, fmt::format("invalid JSON: {}", e.what()));
  }
  if (!root.is_object()) {
    throw ParseError(display_name, "index", 0, "not a JSON object");
  }
  SafetensorsIndex index;
  if (const auto meta = root.find("metadata"); meta != root.end() && meta->is_object()) {
    if (const auto total = meta->find("total_size"); total != meta->end()) {
      // Some exporters write it as a float (e.g. 1.4e10); accept integral values in either form.
      if (total->is_number_unsigned()) {
        index.total_size = total->get<std::uint64_t>();
      } else if (total->is_number_float() && total->get<double>() >= 0 && total->get<double>() < 1.8e19 &&
                 total->get<double>() ==
                     static_cast<double>(static_cast<std::uint64_t>(total->get<double>()))) {
        index.total_size = static_cast<std::uint64_t>(total->get<double>());
      } else {
        throw ParseError(display_name, "metadata.total_size", 0,
                         fmt::format("expected a non-negative integer, got {}", total->dump()));
      }
    }
  }
  const auto map = root.find("weight_map");
  if (map == root.end() || !map->is_object()) {
    throw ParseError(display_name, "weight_map", 0, "missing or not an object");
  }
  for (const auto& [tensor, shard] : map->items()) {
    if (!shard.is_string()) {
      throw ParseError(display_name, fmt::format("weight_map '{}'", tensor), 0, "shard name is not a string");
    }
    const auto& name = shard.get_ref<const std::string&>();
    if (!plain_file_name(name)) {
      throw ParseError(display_name, fmt::format("weight_map '{}'", tensor), 0,
                       fmt::format("shard '{}' is not a plain file name", name));
    }
    index.weight_map.emplace(tensor, name);
  }
  return index;
}

SafetensorsIndex parse_safetensors_index_file(const std::filesystem::path& path)
{
  constexpr std::uint64_t k_max_index_size = 100ull << 20; // real indexes are well under 1 MiB
  const FileByteSource source(path);
  const std::string name = path.filename().string();
  if (source.size() > k_max_index_size) {
    throw ParseError(name, "index", 0,
                     fmt::format("file size {} exceeds the limit of {}", source.size(), k_max_index_size));
  }
  std::string text(static_cast<std::size_t>(source.size()), '\0');
  source.read(0, std::as_writable_bytes(std::span<char>(text)));
  return parse_safetensors_index(text, name);
}

ShardCheckResult check_sharded_model(const SafetensorsIndex& index, const std::filesystem::path& directory,
                                     const SafetensorsParseOptions& options)
{
  ShardCheckResult result;
  std::map<std::string, std::vector<std::string>> tensors_by_shard;
  for (const auto& [tensor, shard] : index.weight_map) {
    tensors_by_shard[shard].push_back(tensor);
  }
  std::uint64_t all_bytes = 0; // every tensor in every listed shard, as total_size counts them
  bool all_parsed = true;
  for (const auto& [shard, tensors] : tensors_by_shard) {
    const auto path = directory / shard;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      result.problems.push_back(fmt::format("{}: shard listed in the index is missing", shard));
      all_parsed = false;
      continue;
    }
    SafetensorsFile file;
    try {
      file = parse_safetensors_file(path, options);
    } catch (const ParseError& e) {
      result.problems.push_back(e.what());
      all_parsed = false;
      continue;
    } catch (const std::system_error& e) {
      result.problems.push_back(fmt::format("{}: {}", shard, e.what()));
      all_parsed = false;
      continue;
    }
    std::set<std::string_view> listed(tensors.begin(), tensors.end());
    for (const auto& name : tensors) {
      const auto* t = file.find_tensor(name);
      if (t == nullptr) {
        result.problems.push_back(
            fmt::format("{}: tensor '{}' listed in the index is not in the shard", shard, name));
        continue;
      }
      result.parameter_count += t->n_elements;
      result.tensor_bytes += t->n_bytes();
    }
    std::size_t unlisted = 0;
    for (const auto& t : file.tensors) {
      all_bytes += t.n_bytes();
      if (listed.count(t.name) == 0) {
        ++unlisted;
      }
    }
    if (unlisted > 0) {
      result.notes.push_back(fmt::format("{}: {} tensor(s) not listed in the index", shard, unlisted));
    }
  }
  if (all_parsed && index.total_size && *index.total_size != all_bytes) {
    // Loaders do not check total_size and some exporters count it differently: worth saying, not failing.
    result.notes.push_back(
        fmt::format("index metadata.total_size is {} but the shards hold {} bytes of tensors",
                    *index.total_size, all_bytes));
  }
  return result;
}

} // namespace modelmgr::formats
