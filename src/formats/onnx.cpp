#include "formats/onnx.hpp"

#include "formats/detail/reader.hpp"
#include "formats/parse_error.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <set>
#include <system_error>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>

namespace modelmgr::formats {
namespace {

using detail::checked_add;
using detail::checked_mul;

// Subgraphs (If/Loop/Scan bodies) nest; protobuf already refuses messages nested deeper than 100, this
// only keeps our own recursion well inside that.
constexpr int k_max_graph_depth = 32;

struct ElementType {
  std::int32_t id;
  std::string_view name;
  std::uint32_t bits;
};

// TensorProto.DataType, including the values added after ONNX 1.12 (float8 in 1.14, int4 in 1.16, ...).
constexpr ElementType k_element_types[] = {
    {1, "float", 32},        {2, "uint8", 8},           {3, "int8", 8},          {4, "uint16", 16},
    {5, "int16", 16},        {6, "int32", 32},          {7, "int64", 64},        {8, "string", 0},
    {9, "bool", 8},          {10, "float16", 16},       {11, "double", 64},      {12, "uint32", 32},
    {13, "uint64", 64},      {14, "complex64", 64},     {15, "complex128", 128}, {16, "bfloat16", 16},
    {17, "float8e4m3fn", 8}, {18, "float8e4m3fnuz", 8}, {19, "float8e5m2", 8},   {20, "float8e5m2fnuz", 8},
    {21, "uint4", 4},        {22, "int4", 4},           {23, "float4e2m1", 4},
};

class OnnxReader {
public:
  OnnxReader(std::string name, std::uint64_t file_size) : m_name(std::move(name))
  {
    m_model.file_size = file_size;
  }

  [[noreturn]] void fail(std::string field, std::string detail) const
  {
    throw ParseError(m_name, std::move(field), 0, std::move(detail));
  }

  OnnxModel read(const onnx::ModelProto& proto)
  {
    if (!proto.has_ir_version() || proto.ir_version() < 1) {
      fail("ir_version", "missing IR version: not an ONNX model (a protobuf message of another kind?)");
    }
    if (!proto.has_graph()) {
      fail("graph", "the model has no graph: not an ONNX model");
    }
    m_model.ir_version = proto.ir_version();
    m_model.producer_name = proto.producer_name();
    m_model.producer_version = proto.producer_version();
    m_model.domain = proto.domain();
    m_model.model_version = proto.model_version();
    m_model.doc_string = proto.doc_string();
    for (const auto& op : proto.opset_import()) {
      if (op.version() < 1) {
        fail(fmt::format("opset_import '{}'", op.domain()),
             fmt::format("invalid opset version {}", op.version()));
      }
      m_model.opsets.push_back({op.domain(), op.version()});
    }
    // IR version 3 introduced opset_import; the checker requires it from then on.
    if (m_model.ir_version >= 3 && m_model.opsets.empty()) {
      fail("opset_import",
           fmt::format("IR version {} requires opset imports, the model has none", m_model.ir_version));
    }
    for (const auto& p : proto.metadata_props()) {
      m_model.metadata[p.key()] = p.value();
    }

    const auto& graph = proto.graph();
    m_model.graph_name = graph.name();
    std::set<std::string> initializer_names;
    for (const auto& t : graph.initializer()) {
      account_tensor(t, fmt::format("initializer '{}'", t.name()), true);
      initializer_names.insert(t.name());
    }
    for (const auto& s : graph.sparse_initializer()) {
      const std::string field = fmt::format("sparse initializer '{}'", s.values().name());
      account_tensor(s.values(), field + " values", true);
      account_tensor(s.indices(), field + " indices", false);
      initializer_names.insert(s.values().name());
    }
    m_model.initializer_count = static_cast<std::uint64_t>(graph.initializer_size()) +
                                static_cast<std::uint64_t>(graph.sparse_initializer_size());
    for (const auto& in : graph.input()) {
      if (initializer_names.count(in.name()) == 0) {
        m_model.inputs.push_back(value_info(in));
      }
    }
    for (const auto& out : graph.output()) {
      m_model.outputs.push_back(value_info(out));
    }
    m_model.node_count = static_cast<std::uint64_t>(graph.node_size());
    for (const auto& node : graph.node()) {
      ++m_model.op_types[node.domain().empty() ? node.op_type() : node.domain() + "." + node.op_type()];
      count_subgraphs(node, 1);
    }
    for (const auto& [type, u] : m_usage) {
      m_model.initializer_types.push_back(u);
    }
    std::stable_sort(m_model.initializer_types.begin(), m_model.initializer_types.end(),
                     [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
    return std::move(m_model);
  }

private:
  void count_subgraphs(const onnx::NodeProto& node, int depth)
  {
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) {
        count_graph(attr.g(), depth);
      }
      for (const auto& g : attr.graphs()) {
        count_graph(g, depth);
      }
    }
  }

  void count_graph(const onnx::GraphProto& g, int depth)
  {
    if (depth > k_max_graph_depth) {
      fail("graph", fmt::format("subgraphs nested deeper than {}", k_max_graph_depth));
    }
    m_model.subgraph_node_count += static_cast<std::uint64_t>(g.node_size());
    for (const auto& node : g.node()) {
      count_subgraphs(node, depth + 1);
    }
  }

  void account_tensor(const onnx::TensorProto& t, const std::string& field, bool parameters)
  {
    std::uint64_t elements = 1;
    for (const auto d : t.dims()) {
      if (d < 0) {
        fail(field, fmt::format("negative dimension {}", d));
      }
      if (!checked_mul(elements, static_cast<std::uint64_t>(d), elements) ||
          elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail(field, "element count overflows int64");
      }
    }
    const std::int32_t type = t.data_type();
    if (type == 0) {
      fail(field, "data type is UNDEFINED");
    }
    const std::uint32_t bits = onnx_element_bits(type);
    std::uint64_t bytes = 0;
    if (type == onnx::TensorProto_DataType_STRING) {
      if (static_cast<std::uint64_t>(t.string_data_size()) != elements) {
        fail(field, fmt::format("{} strings for {} elements", t.string_data_size(), elements));
      }
      for (const auto& s : t.string_data()) {
        bytes += s.size();
      }
    } else {
      if (bits == 0) {
        fail(field, fmt::format("unknown data type {}", type));
      }
      std::uint64_t total_bits = 0;
      if (!checked_mul(elements, bits, total_bits)) {
        fail(field, "byte size overflows");
      }
      bytes = (total_bits + 7) / 8; // int4 and float4 pack two per byte, the last one padded
    }

    if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
      external(t, field, bytes);
    } else if (t.has_raw_data()) {
      if (type == onnx::TensorProto_DataType_STRING) {
        fail(field, "string tensors cannot use raw_data");
      }
      if (t.raw_data().size() != bytes) {
        fail(field, fmt::format("raw_data holds {} bytes but {} x {} needs {}", t.raw_data().size(),
                                onnx_element_type_name(type), fmt::join(t.dims(), "x"), bytes));
      }
    } else if (type != onnx::TensorProto_DataType_STRING) {
      // Typed fields: one entry per element (two floats per complex64, one int32 per float16, ...).
      const std::uint64_t stored =
          static_cast<std::uint64_t>(t.float_data_size()) + static_cast<std::uint64_t>(t.int32_data_size()) +
          static_cast<std::uint64_t>(t.int64_data_size()) + static_cast<std::uint64_t>(t.double_data_size()) +
          static_cast<std::uint64_t>(t.uint64_data_size());
      const bool complex =
          type == onnx::TensorProto_DataType_COMPLEX64 || type == onnx::TensorProto_DataType_COMPLEX128;
      const bool packed4 = bits == 4;
      std::uint64_t expected = complex ? elements * 2 : (packed4 ? (elements + 1) / 2 : elements);
      if (stored != expected) {
        fail(field, fmt::format("{} stored values for {} elements of {}", stored, elements,
                                onnx_element_type_name(type)));
      }
    }

    if (!checked_add(m_model.initializer_bytes, bytes, m_model.initializer_bytes)) {
      fail(field, "total initializer size overflows");
    }
    auto& u = m_usage[type];
    u.element_type = onnx_element_type_name(type);
    u.tensors += 1;
    u.elements += elements;
    u.bytes += bytes;
    if (parameters) {
      m_model.parameter_count += elements;
    }
  }

  static std::optional<std::uint64_t> parse_u64(const std::string& text)
  {
    std::uint64_t v = 0;
    const auto* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, v);
    if (text.empty() || r.ec != std::errc() || r.ptr != end) {
      return std::nullopt;
    }
    return v;
  }

  void external(const onnx::TensorProto& t, const std::string& field, std::uint64_t bytes)
  {
    OnnxExternalData e;
    e.tensor = t.name();
    std::optional<std::uint64_t> length;
    for (const auto& kv : t.external_data()) {
      if (kv.key() == "location") {
        e.location = kv.value();
      } else if (kv.key() == "offset" || kv.key() == "length") {
        const auto v = parse_u64(kv.value());
        if (!v) {
          fail(field,
               fmt::format("external data {} '{}' is not a non-negative integer", kv.key(), kv.value()));
        }
        (kv.key() == "offset" ? e.offset : length.emplace()) = *v;
      }
    }
    if (e.location.empty()) {
      fail(field, "external data without a location");
    }
    // ONNX Runtime refuses locations outside the model's folder; so do we, before any path is opened.
    const std::filesystem::path loc(e.location);
    bool escapes = loc.is_absolute() || e.location.find('\\') != std::string::npos ||
                   e.location.find('\0') != std::string::npos;
    for (const auto& part : loc) {
      escapes = escapes || part == "..";
    }
    if (escapes) {
      fail(field, fmt::format("external data location '{}' is not a relative path inside the model's folder",
                              e.location));
    }
    if (length && *length != bytes) {
      fail(field, fmt::format("external data length {} but the tensor needs {} bytes", *length, bytes));
    }
    e.length = bytes;
    std::uint64_t end = 0;
    if (!checked_add(e.offset, e.length, end)) {
      fail(field, "external data offset + length overflows");
    }
    m_model.external_bytes += bytes;
    m_model.external_data.push_back(std::move(e));
  }

  static std::string describe_type(const onnx::TypeProto& type, int depth)
  {
    if (depth > 8) {
      return "...";
    }
    switch (type.value_case()) {
    case onnx::TypeProto::kTensorType:
      return fmt::format("tensor({})", onnx_element_type_name(type.tensor_type().elem_type()));
    case onnx::TypeProto::kSparseTensorType:
      return fmt::format("sparse_tensor({})", onnx_element_type_name(type.sparse_tensor_type().elem_type()));
    case onnx::TypeProto::kSequenceType:
      return fmt::format("sequence<{}>", describe_type(type.sequence_type().elem_type(), depth + 1));
    case onnx::TypeProto::kOptionalType:
      return fmt::format("optional<{}>", describe_type(type.optional_type().elem_type(), depth + 1));
    case onnx::TypeProto::kMapType:
      return fmt::format("map<{}, {}>", onnx_element_type_name(type.map_type().key_type()),
                         describe_type(type.map_type().value_type(), depth + 1));
    default: return "unknown";
    }
  }

  static OnnxValueInfo value_info(const onnx::ValueInfoProto& v)
  {
    OnnxValueInfo info;
    info.name = v.name();
    const auto& type = v.type();
    const onnx::TensorShapeProto* shape = nullptr;
    switch (type.value_case()) {
    case onnx::TypeProto::kTensorType:
      info.kind = "tensor";
      info.element_type = onnx_element_type_name(type.tensor_type().elem_type());
      shape = type.tensor_type().has_shape() ? &type.tensor_type().shape() : nullptr;
      break;
    case onnx::TypeProto::kSparseTensorType:
      info.kind = "sparse_tensor";
      info.element_type = onnx_element_type_name(type.sparse_tensor_type().elem_type());
      shape = type.sparse_tensor_type().has_shape() ? &type.sparse_tensor_type().shape() : nullptr;
      break;
    case onnx::TypeProto::kSequenceType: info.kind = "sequence"; break;
    case onnx::TypeProto::kMapType: info.kind = "map"; break;
    case onnx::TypeProto::kOptionalType: info.kind = "optional"; break;
    default: break;
    }
    if (shape == nullptr) {
      if (info.kind != "tensor" && info.kind != "sparse_tensor") {
        info.element_type = describe_type(type, 0);
      }
      return info;
    }
    info.has_shape = true;
    for (const auto& d : shape->dim()) {
      OnnxDim dim;
      if (d.has_dim_value()) {
        dim.value = d.dim_value();
      } else if (d.has_dim_param()) {
        dim.param = d.dim_param();
      }
      info.shape.push_back(std::move(dim));
    }
    return info;
  }

  std::string m_name;
  OnnxModel m_model;
  std::map<std::int32_t, OnnxInitializerUsage> m_usage;
};

} // namespace

std::string OnnxDim::to_string() const
{
  if (value) {
    return std::to_string(*value);
  }
  return param.empty() ? "?" : param;
}

std::string OnnxValueInfo::shape_string() const
{
  if (!has_shape) {
    return "?";
  }
  std::vector<std::string> dims;
  for (const auto& d : shape) {
    dims.push_back(d.to_string());
  }
  return fmt::format("[{}]", fmt::join(dims, ", "));
}

std::optional<std::int64_t> OnnxModel::default_opset() const noexcept
{
  for (const auto& op : opsets) {
    if (op.domain.empty() || op.domain == "ai.onnx") {
      return op.version;
    }
  }
  return std::nullopt;
}

std::vector<std::string> OnnxModel::external_files() const
{
  std::set<std::string> files;
  for (const auto& e : external_data) {
    files.insert(e.location);
  }
  return {files.begin(), files.end()};
}

std::string onnx_element_type_name(std::int32_t data_type)
{
  for (const auto& e : k_element_types) {
    if (e.id == data_type) {
      return std::string(e.name);
    }
  }
  return data_type == 0 ? "undefined" : fmt::format("type {}", data_type);
}

std::uint32_t onnx_element_bits(std::int32_t data_type) noexcept
{
  for (const auto& e : k_element_types) {
    if (e.id == data_type) {
      return e.bits;
    }
  }
  return 0;
}

OnnxModel parse_onnx(const ByteSource& source, std::string display_name, const OnnxParseOptions& options)
{
  const std::uint64_t size = source.size();
  const std::uint64_t limit = std::min<std::uint64_t>(options.max_file_size, std::numeric_limits<int>::max());
  if (size > limit) {
    throw ParseError(
        display_name, "model", 0,
        fmt::format("file size {} exceeds the limit of {} bytes for one protobuf message; larger "
                    "ONNX models keep their weights in external-data files",
                    size, limit));
  }
  if (size == 0) {
    throw ParseError(display_name, "model", 0, "empty file: not an ONNX model");
  }
  // Parsing from one buffer (rather than a stream) lets protobuf bound every length by the bytes present
  // before it reserves anything.
  std::string bytes(static_cast<std::size_t>(size), '\0');
  source.read(0, std::as_writable_bytes(std::span<char>(bytes)));
  onnx::ModelProto proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw ParseError(
        display_name, "model", 0,
        "not a valid ONNX protobuf message (ModelProto): the file is truncated, corrupt or not ONNX");
  }
  bytes = std::string(); // the message holds its own copy of the weights
  return OnnxReader(std::move(display_name), size).read(proto);
}

OnnxModel parse_onnx_file(const std::filesystem::path& path, const OnnxParseOptions& options)
{
  const FileByteSource source(path);
  auto model = parse_onnx(source, path.filename().string(), options);
  const auto problems = check_onnx_external_data(model, path.parent_path());
  if (!problems.empty()) {
    throw ParseError(path.filename().string(), "external data", 0, problems.front());
  }
  return model;
}

std::vector<std::string> check_onnx_external_data(const OnnxModel& model,
                                                  const std::filesystem::path& directory)
{
  std::vector<std::string> problems;
  std::map<std::string, std::optional<std::uint64_t>> sizes; // location → size, nullopt when missing
  for (const auto& e : model.external_data) {
    auto it = sizes.find(e.location);
    if (it == sizes.end()) {
      std::error_code ec;
      const auto path = directory / e.location;
      std::optional<std::uint64_t> size;
      if (std::filesystem::is_regular_file(path, ec)) {
        const auto n = std::filesystem::file_size(path, ec);
        if (!ec) {
          size = n;
        }
      }
      it = sizes.emplace(e.location, size).first;
      if (!size) {
        problems.push_back(
            fmt::format("external data file '{}' (for initializer '{}') is missing next to the model",
                        e.location, e.tensor));
      }
    }
    if (!it->second) {
      continue;
    }
    if (e.offset > *it->second || e.length > *it->second - e.offset) {
      problems.push_back(
          fmt::format("initializer '{}': external data range [{}, {}) exceeds the size {} of '{}'", e.tensor,
                      e.offset, e.offset + e.length, *it->second, e.location));
    }
  }
  return problems;
}

} // namespace modelmgr::formats
