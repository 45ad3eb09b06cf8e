#include "formats/writers.hpp"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include <fmt/format.h>

namespace modelmgr::formats {
namespace {

class ByteSink {
public:
  template <class T> void put(T value)
  {
    static_assert(std::is_arithmetic_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&value); // little-endian host, see detail/reader.hpp
    m_bytes.insert(m_bytes.end(), p, p + sizeof(T));
  }
  void put_string(std::string_view s)
  {
    put<std::uint64_t>(s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    m_bytes.insert(m_bytes.end(), p, p + s.size());
  }
  void pad_to(std::uint64_t alignment)
  {
    while (m_bytes.size() % alignment != 0) {
      m_bytes.push_back(std::byte{0});
    }
  }
  std::vector<std::byte>& bytes() { return m_bytes; }

private:
  std::vector<std::byte> m_bytes;
};

void put_value(ByteSink& out, const GgufValue& value);

void put_payload(ByteSink& out, const GgufValue& value)
{
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          out.put_string(v);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          out.put<std::uint32_t>(static_cast<std::uint32_t>(v.element_type));
          out.put<std::uint64_t>(v.items.size());
          for (const auto& item : v.items) {
            if (item.type() != v.element_type) {
              throw std::invalid_argument("GGUF array elements must all have the array's element type");
            }
            put_payload(out, item);
          }
        } else if constexpr (std::is_same_v<T, bool>) {
          out.put<std::uint8_t>(v ? 1 : 0);
        } else {
          out.put<T>(v);
        }
      },
      value.data());
}

void put_value(ByteSink& out, const GgufValue& value)
{
  out.put<std::uint32_t>(static_cast<std::uint32_t>(value.type()));
  put_payload(out, value);
}

std::uint64_t align_up(std::uint64_t n, std::uint64_t alignment)
{
  return (n + alignment - 1) / alignment * alignment;
}

} // namespace

GgufWriter::GgufWriter(std::uint32_t alignment, std::uint32_t version)
    : m_alignment(alignment), m_version(version)
{
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    throw std::invalid_argument("GGUF alignment must be a power of two");
  }
  if (version != 2 && version != 3) {
    throw std::invalid_argument("GgufWriter writes versions 2 and 3 only");
  }
}

void GgufWriter::add(std::string key, GgufValue value)
{
  if (std::any_of(m_metadata.begin(), m_metadata.end(), [&](const auto& kv) { return kv.first == key; })) {
    throw std::invalid_argument(fmt::format("duplicate GGUF key '{}'", key));
  }
  m_metadata.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::add_tensor(std::string name, std::vector<std::uint64_t> dims, GgmlType type,
                            std::vector<std::byte> data)
{
  const auto traits = ggml_type_traits(static_cast<std::uint32_t>(type));
  if (!traits || dims.size() > 4) {
    throw std::invalid_argument(fmt::format("tensor '{}': bad type or more than 4 dims", name));
  }
  std::uint64_t n = 1;
  for (const auto d : dims) {
    n *= d;
  }
  const std::uint64_t row = dims.empty() ? 1 : dims[0];
  if (row % traits->block_size != 0) {
    throw std::invalid_argument(
        fmt::format("tensor '{}': row {} not a multiple of {}", name, row, traits->block_size));
  }
  const std::uint64_t n_bytes = n / traits->block_size * traits->type_size;
  if (!data.empty() && data.size() != n_bytes) {
    throw std::invalid_argument(
        fmt::format("tensor '{}': {} data bytes, expected {}", name, data.size(), n_bytes));
  }
  const std::uint64_t offset = align_up(m_data_size, m_alignment);
  m_data_size = offset + n_bytes;
  m_tensors.push_back({std::move(name), std::move(dims), type, offset, n_bytes, std::move(data)});
}

std::vector<std::byte> GgufWriter::header() const
{
  const bool add_alignment =
      m_alignment != 32 && std::none_of(m_metadata.begin(), m_metadata.end(),
                                        [](const auto& kv) { return kv.first == "general.alignment"; });
  ByteSink out;
  out.put<std::uint32_t>(0x46554747); // "GGUF"
  out.put<std::uint32_t>(m_version);
  out.put<std::uint64_t>(m_tensors.size());
  out.put<std::uint64_t>(m_metadata.size() + (add_alignment ? 1 : 0));
  for (const auto& [key, value] : m_metadata) {
    out.put_string(key);
    put_value(out, value);
  }
  if (add_alignment) {
    out.put_string("general.alignment");
    put_value(out, GgufValue(m_alignment));
  }
  for (const auto& t : m_tensors) {
    out.put_string(t.name);
    out.put<std::uint32_t>(static_cast<std::uint32_t>(t.dims.size()));
    for (const auto d : t.dims) {
      out.put<std::uint64_t>(d);
    }
    out.put<std::uint32_t>(static_cast<std::uint32_t>(t.type));
    out.put<std::uint64_t>(t.offset);
  }
  out.pad_to(m_alignment);
  return std::move(out.bytes());
}

std::uint64_t GgufWriter::data_offset() const
{
  return header().size();
}

std::uint64_t GgufWriter::file_size() const
{
  return data_offset() + align_up(m_data_size, m_alignment);
}

std::vector<std::byte> GgufWriter::build() const
{
  std::vector<std::byte> out = header();
  const std::size_t base = out.size();
  out.resize(base + align_up(m_data_size, m_alignment));
  for (const auto& t : m_tensors) {
    if (!t.data.empty()) {
      std::memcpy(out.data() + base + t.offset, t.data.data(), t.data.size());
    }
  }
  return out;
}

void SafetensorsWriter::add_metadata(std::string key, std::string value)
{
  if (std::any_of(m_metadata.begin(), m_metadata.end(), [&](const auto& kv) { return kv.first == key; })) {
    throw std::invalid_argument(fmt::format("duplicate metadata key '{}'", key));
  }
  m_metadata.emplace_back(std::move(key), std::move(value));
}

void SafetensorsWriter::add_tensor(std::string name, SafetensorsDtype dtype, std::vector<std::uint64_t> shape,
                                   std::vector<std::byte> data)
{
  if (name == "__metadata__" ||
      std::any_of(m_tensors.begin(), m_tensors.end(), [&](const auto& t) { return t.name == name; })) {
    throw std::invalid_argument(fmt::format("duplicate or reserved tensor name '{}'", name));
  }
  std::uint64_t n = 1;
  for (const auto d : shape) {
    n *= d;
  }
  const std::uint64_t bits = n * bits_per_element(dtype);
  if (bits % 8 != 0) {
    throw std::invalid_argument(fmt::format("tensor '{}': {} bits do not fill whole bytes", name, bits));
  }
  if (!data.empty() && data.size() != bits / 8) {
    throw std::invalid_argument(
        fmt::format("tensor '{}': {} data bytes, expected {}", name, data.size(), bits / 8));
  }
  const std::uint64_t begin = m_data_size;
  m_data_size += bits / 8;
  m_tensors.push_back({std::move(name), dtype, std::move(shape), begin, m_data_size, std::move(data)});
}

std::string SafetensorsWriter::header_json() const
{
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!m_metadata.empty()) {
    auto& meta = root["__metadata__"];
    meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : m_metadata) {
      meta[k] = v;
    }
  }
  for (const auto& t : m_tensors) {
    auto& entry = root[t.name];
    entry["dtype"] = std::string(to_string(t.dtype));
    entry["shape"] = t.shape;
    entry["data_offsets"] = {t.begin, t.end};
  }
  return root.dump();
}

std::vector<std::byte> SafetensorsWriter::header() const
{
  std::string json = header_json();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::vector<std::byte> out(8 + json.size());
  const std::uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

std::uint64_t SafetensorsWriter::file_size() const
{
  return header().size() + m_data_size;
}

std::vector<std::byte> SafetensorsWriter::build() const
{
  std::vector<std::byte> out = header();
  const std::size_t base = out.size();
  out.resize(base + m_data_size);
  for (const auto& t : m_tensors) {
    if (!t.data.empty()) {
      std::memcpy(out.data() + base + t.begin, t.data.data(), t.data.size());
    }
  }
  return out;
}

} // namespace modelmgr::formats
