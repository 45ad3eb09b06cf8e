#include "formats/gguf.hpp"

#include "formats/detail/reader.hpp"
#include "formats/parse_error.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include <fmt/format.h>

namespace modelmgr::formats {
namespace {

using detail::checked_add;
using detail::checked_mul;
using detail::Reader;

constexpr std::uint32_t k_magic = 0x46554747;     // "GGUF" read as a little-endian u32
constexpr std::uint32_t k_max_dims = 4;           // GGML_MAX_DIMS
constexpr std::uint64_t k_max_tensor_name = 64;   // spec: "at most 64 bytes"
constexpr std::uint64_t k_max_key_length = 65535; // spec: keys are at most 2^16 - 1 bytes
constexpr std::uint64_t k_default_alignment = 32;

// Smallest on-disk size of one value of `type`; used to bound element counts by the bytes left before
// reserving anything.
std::uint64_t min_value_size(GgufValueType type) noexcept
{
  switch (type) {
  case GgufValueType::uint8:
  case GgufValueType::int8:
  case GgufValueType::boolean: return 1;
  case GgufValueType::uint16:
  case GgufValueType::int16: return 2;
  case GgufValueType::uint32:
  case GgufValueType::int32:
  case GgufValueType::float32: return 4;
  case GgufValueType::uint64:
  case GgufValueType::int64:
  case GgufValueType::float64:
  case GgufValueType::string: return 8; // the u64 length
  case GgufValueType::array: return 12; // u32 type + u64 count
  }
  return 1;
}

bool valid_value_type(std::uint32_t t) noexcept
{
  return t <= static_cast<std::uint32_t>(GgufValueType::float64);
}

class GgufParser {
public:
  GgufParser(const ByteSource& source, std::string name, const GgufParseOptions& options)
      : m_in(source, std::move(name)), m_options(options)
  {
  }

  GgufFile parse()
  {
    GgufFile file;
    file.file_size = m_in.size();
    read_header(file);
    read_metadata(file);
    apply_alignment(file);
    read_tensor_infos(file);
    place_data(file);
    return file;
  }

private:
  void read_header(GgufFile& file)
  {
    m_in.require(4, "magic");
    const auto magic = m_in.read<std::uint32_t>("magic");
    if (magic != k_magic) {
      m_in.fail("magic", 0, fmt::format("not a GGUF file (magic 0x{:08x}, expected \"GGUF\")", magic));
    }
    const auto version = m_in.read<std::uint32_t>("version");
    if (version == 1) {
      m_in.fail(
          "version", 4,
          "GGUF version 1 is not supported (it used 32-bit counts and lengths); convert the file with a "
          "current llama.cpp");
    }
    if (version != 2 && version != 3) {
      // v3 files written on a big-endian machine are byte-swapped throughout; the version shows it first.
      if (version == 0x02000000u || version == 0x03000000u) {
        m_in.fail("version", 4, "big-endian GGUF files are not supported");
      }
      m_in.fail("version", 4, fmt::format("unsupported GGUF version {} (supported: 2, 3)", version));
    }
    file.version = version;
    const std::uint64_t tensor_count_at = m_in.pos();
    m_tensor_count = m_in.read<std::uint64_t>("tensor_count");
    const std::uint64_t kv_count_at = m_in.pos();
    m_kv_count = m_in.read<std::uint64_t>("metadata_kv_count");
    // Each kv needs at least a key length, a type and a 1-byte value; each tensor info at least a name
    // length, n_dims, type and offset. Checking both now keeps reserve() below honest.
    if (m_kv_count > m_in.remaining() / (8 + 4 + 1)) {
      m_in.fail(
          "metadata_kv_count", kv_count_at,
          fmt::format("{} key/value pairs cannot fit in the {} bytes left", m_kv_count, m_in.remaining()));
    }
    if (m_tensor_count > m_in.remaining() / (8 + 4 + 4 + 8)) {
      m_in.fail(
          "tensor_count", tensor_count_at,
          fmt::format("{} tensor infos cannot fit in the {} bytes left", m_tensor_count, m_in.remaining()));
    }
  }

  std::string read_string(std::string_view field,
                          std::uint64_t max_length = std::numeric_limits<std::uint64_t>::max())
  {
    const std::uint64_t at = m_in.pos();
    const auto length = m_in.read<std::uint64_t>(field);
    if (length > m_in.remaining()) {
      m_in.fail(
          field, at,
          fmt::format("string length {} exceeds the {} bytes left in the file", length, m_in.remaining()));
    }
    if (length > max_length) {
      m_in.fail(field, at, fmt::format("string length {} exceeds the limit of {}", length, max_length));
    }
    charge(length, field, at);
    return m_in.read_string_bytes(length, field);
  }

  // Accounts decoded metadata memory against the budget.
  void charge(std::uint64_t bytes, std::string_view field, std::uint64_t at)
  {
    if (!checked_add(m_memory, bytes, m_memory) || m_memory > m_options.max_metadata_memory) {
      m_in.fail(field, at,
                fmt::format("metadata needs more than the {} bytes of memory allowed",
                            m_options.max_metadata_memory));
    }
  }

  GgufValue read_value(GgufValueType type, std::uint32_t depth)
  {
    switch (type) {
    case GgufValueType::uint8: return m_in.read<std::uint8_t>("value");
    case GgufValueType::int8: return m_in.read<std::int8_t>("value");
    case GgufValueType::uint16: return m_in.read<std::uint16_t>("value");
    case GgufValueType::int16: return m_in.read<std::int16_t>("value");
    case GgufValueType::uint32: return m_in.read<std::uint32_t>("value");
    case GgufValueType::int32: return m_in.read<std::int32_t>("value");
    case GgufValueType::float32: return m_in.read<float>("value");
    case GgufValueType::uint64: return m_in.read<std::uint64_t>("value");
    case GgufValueType::int64: return m_in.read<std::int64_t>("value");
    case GgufValueType::float64: return m_in.read<double>("value");
    case GgufValueType::boolean: {
      const std::uint64_t at = m_in.pos();
      const auto b = m_in.read<std::uint8_t>("value");
      if (b > 1) {
        m_in.fail("bool value", at, fmt::format("bool must be 0 or 1, not {}", b));
      }
      return b == 1;
    }
    case GgufValueType::string: return read_string("string value");
    case GgufValueType::array: return read_array(depth + 1);
    }
    m_in.fail("value", m_in.pos(), "invalid value type"); // unreachable: types are checked when read
  }

  GgufValue read_array(std::uint32_t depth)
  {
    const std::uint64_t at = m_in.pos();
    if (depth > m_options.max_array_depth) {
      m_in.fail("array", at, fmt::format("arrays nested deeper than {}", m_options.max_array_depth));
    }
    const auto raw_type = m_in.read<std::uint32_t>("array element type");
    if (!valid_value_type(raw_type)) {
      m_in.fail("array element type", at, fmt::format("invalid value type {}", raw_type));
    }
    const auto element_type = static_cast<GgufValueType>(raw_type);
    const std::uint64_t count_at = m_in.pos();
    const auto count = m_in.read<std::uint64_t>("array length");
    if (count > m_in.remaining() / min_value_size(element_type)) {
      m_in.fail("array length", count_at,
                fmt::format("{} elements of type {} cannot fit in the {} bytes left", count,
                            to_string(element_type), m_in.remaining()));
    }
    std::uint64_t bytes = 0;
    if (!checked_mul(count, sizeof(GgufValue), bytes)) {
      bytes = std::numeric_limits<std::uint64_t>::max();
    }
    charge(bytes, "array length", count_at);
    GgufArray array;
    array.element_type = element_type;
    array.items.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
      array.items.push_back(read_value(element_type, depth));
    }
    return array;
  }

  void read_metadata(GgufFile& file)
  {
    file.metadata.reserve(static_cast<std::size_t>(m_kv_count));
    for (std::uint64_t i = 0; i < m_kv_count; ++i) {
      const std::uint64_t at = m_in.pos();
      m_in.set_context(fmt::format("metadata {}", i));
      GgufKv kv;
      kv.offset = at;
      kv.key = read_string("key", k_max_key_length);
      if (kv.key.empty()) {
        m_in.fail("key", at, "empty key");
      }
      m_in.set_context(fmt::format("metadata {} '{}'", i, kv.key));
      if (file.key_index.count(kv.key) != 0) {
        m_in.fail("key", at, "duplicate key");
      }
      const std::uint64_t type_at = m_in.pos();
      const auto raw_type = m_in.read<std::uint32_t>("value type");
      if (!valid_value_type(raw_type)) {
        m_in.fail("value type", type_at, fmt::format("invalid value type {}", raw_type));
      }
      charge(sizeof(GgufKv) + kv.key.size(), "value", type_at);
      kv.value = read_value(static_cast<GgufValueType>(raw_type), 0);
      file.key_index.emplace(kv.key, file.metadata.size());
      file.metadata.push_back(std::move(kv));
    }
    m_in.set_context({});
  }

  void apply_alignment(GgufFile& file)
  {
    file.alignment = k_default_alignment;
    const auto it = file.key_index.find("general.alignment");
    if (it == file.key_index.end()) {
      return;
    }
    const GgufKv& kv = file.metadata[it->second];
    const auto* value = kv.value.get_if<std::uint32_t>();
    if (value == nullptr) {
      m_in.fail("general.alignment", kv.offset,
                fmt::format("must be a uint32, not {}", to_string(kv.value.type())));
    }
    if (*value == 0 || (*value & (*value - 1)) != 0) {
      m_in.fail("general.alignment", kv.offset, fmt::format("{} is not a power of two", *value));
    }
    file.alignment = *value;
  }

  void read_tensor_infos(GgufFile& file)
  {
    file.tensors.reserve(static_cast<std::size_t>(m_tensor_count));
    std::set<std::string_view> names; // views into file.tensors, whose strings no longer move once stored
    std::vector<std::uint64_t> info_offsets;
    for (std::uint64_t i = 0; i < m_tensor_count; ++i) {
      const std::uint64_t at = m_in.pos();
      m_in.set_context(fmt::format("tensor {}", i));
      GgufTensorInfo t;
      t.name = read_string("name", k_max_tensor_name);
      m_in.set_context(fmt::format("tensor {} '{}'", i, t.name));
      const std::uint64_t dims_at = m_in.pos();
      const auto n_dims = m_in.read<std::uint32_t>("n_dimensions");
      if (n_dims > k_max_dims) {
        m_in.fail("n_dimensions", dims_at, fmt::format("{} dimensions (at most {})", n_dims, k_max_dims));
      }
      t.dims.resize(n_dims);
      t.n_elements = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const std::uint64_t dim_at = m_in.pos();
        t.dims[d] = m_in.read<std::uint64_t>("dimensions");
        // ggml stores ne as int64_t.
        if (t.dims[d] > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
            !checked_mul(t.n_elements, t.dims[d], t.n_elements) ||
            t.n_elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          m_in.fail("dimensions", dim_at, "element count overflows int64");
        }
      }
      const std::uint64_t type_at = m_in.pos();
      const auto raw_type = m_in.read<std::uint32_t>("type");
      const auto traits = ggml_type_traits(raw_type);
      if (!traits) {
        m_in.fail("type", type_at, fmt::format("unknown ggml type {}", raw_type));
      }
      t.type = traits->type;
      const std::uint64_t row = n_dims == 0 ? 1 : t.dims[0];
      if (row % traits->block_size != 0) {
        m_in.fail("dimensions", dims_at,
                  fmt::format("row length {} is not a multiple of the {} block size {}", row, traits->name,
                              traits->block_size));
      }
      // n_elements < 2^63 and type_size <= 292, so this cannot overflow; check anyway for new types.
      if (!checked_mul(t.n_elements / traits->block_size, traits->type_size, t.n_bytes)) {
        m_in.fail("dimensions", dims_at, "byte size overflows");
      }
      const std::uint64_t offset_at = m_in.pos();
      t.offset = m_in.read<std::uint64_t>("offset");
      if (t.offset % file.alignment != 0) {
        m_in.fail(
            "offset", offset_at,
            fmt::format("data offset {} is not a multiple of the alignment {}", t.offset, file.alignment));
      }
      file.tensors.push_back(std::move(t));
      info_offsets.push_back(at);
    }
    for (std::size_t i = 0; i < file.tensors.size(); ++i) {
      if (!names.insert(file.tensors[i].name).second) {
        m_in.set_context(fmt::format("tensor {} '{}'", i, file.tensors[i].name));
        m_in.fail("name", info_offsets[i], "duplicate tensor name");
      }
    }
    m_info_offsets = std::move(info_offsets);
    m_in.set_context({});
  }

  void place_data(GgufFile& file)
  {
    const std::uint64_t end_of_infos = m_in.pos();
    std::uint64_t data = 0;
    if (!checked_add(end_of_infos, file.alignment - 1, data)) {
      m_in.fail("data section", end_of_infos, "offset overflows");
    }
    data -= data % file.alignment;
    // A file without tensors may end right after its metadata; one with tensors must hold the padding.
    if (data > file.file_size && !file.tensors.empty()) {
      m_in.fail("data section", end_of_infos,
                fmt::format("aligned data start {} exceeds file size {}", data, file.file_size));
    }
    file.data_offset = data;

    struct Range {
      std::uint64_t begin;
      std::uint64_t end;
      std::size_t index;
    };
    std::vector<Range> ranges;
    ranges.reserve(file.tensors.size());
    for (std::size_t i = 0; i < file.tensors.size(); ++i) {
      auto& t = file.tensors[i];
      m_in.set_context(fmt::format("tensor {} '{}'", i, t.name));
      std::uint64_t end = 0;
      if (!checked_add(data, t.offset, t.file_offset) || !checked_add(t.file_offset, t.n_bytes, end) ||
          end > file.file_size) {
        m_in.fail("", m_info_offsets[i],
                  fmt::format("data range [{}, {}) exceeds file size {}", t.file_offset,
                              t.file_offset + t.n_bytes, file.file_size));
      }
      if (t.n_bytes > 0) {
        ranges.push_back({t.file_offset, end, i});
      }
    }
    std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    for (std::size_t k = 1; k < ranges.size(); ++k) {
      if (ranges[k].begin < ranges[k - 1].end) {
        const auto& a = file.tensors[ranges[k - 1].index];
        const auto& b = file.tensors[ranges[k].index];
        m_in.set_context(fmt::format("tensor {} '{}'", ranges[k].index, b.name));
        m_in.fail("", m_info_offsets[ranges[k].index],
                  fmt::format("data range [{}, {}) overlaps tensor '{}' at [{}, {})", ranges[k].begin,
                              ranges[k].end, a.name, ranges[k - 1].begin, ranges[k - 1].end));
      }
    }
    m_in.set_context({});
  }

  Reader m_in;
  const GgufParseOptions& m_options;
  std::uint64_t m_tensor_count = 0;
  std::uint64_t m_kv_count = 0;
  std::uint64_t m_memory = 0;
  std::vector<std::uint64_t> m_info_offsets;
};

std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) noexcept
{
  std::uint64_t r = 0;
  return checked_mul(a, b, r) ? r : std::numeric_limits<std::uint64_t>::max();
}

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept
{
  std::uint64_t r = 0;
  return checked_add(a, b, r) ? r : std::numeric_limits<std::uint64_t>::max();
}

// A scalar, or the maximum of a per-layer array, of non-negative integers.
std::optional<std::uint64_t> uint_or_max(const GgufValue* v, std::vector<std::uint64_t>* per_layer = nullptr)
{
  if (v == nullptr) {
    return std::nullopt;
  }
  if (const auto* array = v->as_array()) {
    std::optional<std::uint64_t> best;
    for (const auto& item : array->items) {
      const auto n = item.as_uint();
      if (!n) {
        return std::nullopt;
      }
      if (per_layer != nullptr) {
        per_layer->push_back(*n);
      }
      best = std::max(best.value_or(0), *n);
    }
    return best;
  }
  return v->as_uint();
}

} // namespace

std::string_view to_string(GgufValueType type) noexcept
{
  switch (type) {
  case GgufValueType::uint8: return "uint8";
  case GgufValueType::int8: return "int8";
  case GgufValueType::uint16: return "uint16";
  case GgufValueType::int16: return "int16";
  case GgufValueType::uint32: return "uint32";
  case GgufValueType::int32: return "int32";
  case GgufValueType::float32: return "float32";
  case GgufValueType::boolean: return "bool";
  case GgufValueType::string: return "string";
  case GgufValueType::array: return "array";
  case GgufValueType::uint64: return "uint64";
  case GgufValueType::int64: return "int64";
  case GgufValueType::float64: return "float64";
  }
  return "unknown";
}

bool GgufArray::operator==(const GgufArray& other) const
{
  return element_type == other.element_type && items == other.items;
}

std::optional<std::uint64_t> GgufValue::as_uint() const noexcept
{
  return std::visit(
      [](const auto& v) -> std::optional<std::uint64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if (v < 0) {
            return std::nullopt;
          }
          return static_cast<std::uint64_t>(v);
        } else {
          return std::nullopt;
        }
      },
      m_data);
}

std::optional<std::int64_t> GgufValue::as_int() const noexcept
{
  return std::visit(
      [](const auto& v) -> std::optional<std::int64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_same_v<T, std::uint64_t>) {
            if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
              return std::nullopt;
            }
          }
          return static_cast<std::int64_t>(v);
        } else {
          return std::nullopt;
        }
      },
      m_data);
}

std::optional<double> GgufValue::as_double() const noexcept
{
  return std::visit(
      [](const auto& v) -> std::optional<double> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
          return static_cast<double>(v);
        } else {
          return std::nullopt;
        }
      },
      m_data);
}

const GgufValue* GgufFile::find(std::string_view key) const noexcept
{
  const auto it = key_index.find(key);
  return it == key_index.end() ? nullptr : &metadata[it->second].value;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const noexcept
{
  for (const auto& t : tensors) {
    if (t.name == name) {
      return &t;
    }
  }
  return nullptr;
}

GgufFile parse_gguf(const ByteSource& source, std::string display_name, const GgufParseOptions& options)
{
  return GgufParser(source, std::move(display_name), options).parse();
}

GgufFile parse_gguf_file(const std::filesystem::path& path, const GgufParseOptions& options)
{
  const FileByteSource source(path);
  return parse_gguf(source, path.filename().string(), options);
}

GgufModelInfo describe_gguf(const GgufFile& file)
{
  GgufModelInfo info;
  if (const auto* v = file.find("general.architecture"); v != nullptr && v->as_string() != nullptr) {
    info.architecture = *v->as_string();
  }
  if (const auto* v = file.find("general.name"); v != nullptr && v->as_string() != nullptr) {
    info.name = *v->as_string();
  }
  if (const auto* v = file.find("tokenizer.ggml.model"); v != nullptr && v->as_string() != nullptr) {
    info.tokenizer_model = *v->as_string();
  }
  if (const auto* v = file.find("tokenizer.ggml.tokens"); v != nullptr && v->as_array() != nullptr) {
    info.vocab_size = v->as_array()->items.size();
  }
  if (const auto* v = file.find("general.file_type"); v != nullptr) {
    if (const auto n = v->as_uint(); n && *n <= std::numeric_limits<std::uint32_t>::max()) {
      info.file_type = static_cast<std::uint32_t>(*n);
    }
  }

  std::map<GgmlType, GgufTypeUsage> usage;
  for (const auto& t : file.tensors) {
    info.parameter_count = saturating_add(info.parameter_count, t.n_elements);
    info.tensor_bytes = saturating_add(info.tensor_bytes, t.n_bytes);
    auto& u = usage[t.type];
    u.type = t.type;
    u.tensors += 1;
    u.elements = saturating_add(u.elements, t.n_elements);
    u.bytes = saturating_add(u.bytes, t.n_bytes);
  }
  for (const auto& [type, u] : usage) {
    info.types.push_back(u);
  }
  std::stable_sort(info.types.begin(), info.types.end(),
                   [](const GgufTypeUsage& a, const GgufTypeUsage& b) { return a.bytes > b.bytes; });
  if (info.file_type) {
    if (const auto name = llama_file_type_name(*info.file_type)) {
      info.quantization = std::string(*name);
    }
  }
  if (info.quantization.empty() && !info.types.empty()) {
    info.quantization = std::string(to_string(info.types.front().type));
  }

  const std::string& arch = info.architecture;
  if (!arch.empty()) {
    auto key = [&](std::string_view suffix) { return file.find(arch + "." + std::string(suffix)); };
    info.context_length = uint_or_max(key("context_length"));
    info.embedding_length = uint_or_max(key("embedding_length"));
    info.block_count = uint_or_max(key("block_count"));
    info.head_count = uint_or_max(key("attention.head_count"));
    const auto* kv = key("attention.head_count_kv");
    info.head_count_kv =
        uint_or_max(kv, kv != nullptr && kv->as_array() != nullptr ? &info.head_count_kv_per_layer : nullptr);
    if (!info.head_count_kv) {
      info.head_count_kv_per_layer.clear();
      info.head_count_kv = info.head_count; // no grouped-query attention: one KV head per query head
    }
    info.key_length = uint_or_max(key("attention.key_length"));
    info.value_length = uint_or_max(key("attention.value_length"));
    if (info.embedding_length && info.head_count && *info.head_count > 0) {
      const std::uint64_t per_head = *info.embedding_length / *info.head_count;
      if (!info.key_length) {
        info.key_length = per_head;
      }
      if (!info.value_length) {
        info.value_length = per_head;
      }
    }
  }
  return info;
}

std::uint64_t estimate_kv_cache_bytes(const GgufModelInfo& info, std::uint64_t context_length,
                                      std::uint64_t bytes_per_element)
{
  if (!info.key_length || !info.value_length) {
    return 0;
  }
  std::uint64_t kv_heads = 0; // summed over layers
  if (!info.head_count_kv_per_layer.empty()) {
    for (const auto n : info.head_count_kv_per_layer) {
      kv_heads = saturating_add(kv_heads, n);
    }
  } else if (info.block_count && info.head_count_kv) {
    kv_heads = saturating_mul(*info.block_count, *info.head_count_kv);
  }
  const std::uint64_t per_token =
      saturating_mul(kv_heads, saturating_add(*info.key_length, *info.value_length));
  return saturating_mul(saturating_mul(per_token, context_length), bytes_per_element);
}

std::uint64_t RamEstimate::total() const noexcept
{
  return saturating_add(saturating_add(weights, kv_cache), overhead);
}

RamEstimate estimate_ram(const GgufModelInfo& info, std::uint64_t context_length,
                         std::uint64_t bytes_per_element)
{
  constexpr std::uint64_t k_fallback_context = 4096;
  constexpr std::uint64_t k_runtime = 64ull << 20; // process, tokenizer, graph metadata
  constexpr std::uint64_t k_batch = 512;           // llama.cpp's default n_batch / n_ubatch
  if (context_length == 0) {
    context_length = info.context_length.value_or(k_fallback_context);
  }
  RamEstimate r;
  r.weights = info.tensor_bytes;
  r.kv_cache = estimate_kv_cache_bytes(info, context_length, bytes_per_element);
  // Compute buffers scale with one batch: f32 logits over the vocabulary plus a handful (8) of f32
  // activation tensors of the embedding width.
  const std::uint64_t logits = saturating_mul(saturating_mul(k_batch, info.vocab_size.value_or(0)), 4);
  const std::uint64_t activations =
      saturating_mul(saturating_mul(k_batch, info.embedding_length.value_or(0)), 4 * 8);
  r.overhead = saturating_add(k_runtime, saturating_add(logits, activations));
  return r;
}

std::uint64_t estimate_ram_bytes(const GgufModelInfo& info, std::uint64_t context_length,
                                 std::uint64_t bytes_per_element)
{
  return estimate_ram(info, context_length, bytes_per_element).total();
}

} // namespace modelmgr::formats
