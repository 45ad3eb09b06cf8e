#pragma once
// ONNX model reader: the facts of a ModelProto (IR and opset versions, producer, graph inputs/outputs,
// initializers and their sizes, external-data files, node count), parsed with Debian's libonnx_proto
// (protobuf). Format: https://github.com/onnx/onnx/blob/main/docs/IR.md and onnx/onnx.proto.
//
// A protobuf message cannot exceed 2 GiB, so larger models keep their weights in external-data files next
// to the .onnx; those are checked (relative path inside the model's folder, file present, offset + length
// inside it) by parse_onnx_file(), or by check_onnx_external_data() for a model read from another source.
// The whole message is parsed into memory (weights included), so peak memory is about twice the file.

#include "formats/byte_source.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::formats {

struct OnnxParseOptions {
  // Files larger than this are refused before reading (protobuf's own hard limit is 2 GiB - 1).
  std::uint64_t max_file_size = (2ull << 30) - 1;
};

// One dimension of a tensor shape: a number, a symbolic name ("batch"), or unknown.
struct OnnxDim {
  std::optional<std::int64_t> value;
  std::string param;
  // "3", "batch" or "?".
  std::string to_string() const;
};

// A graph input or output.
struct OnnxValueInfo {
  std::string name;
  // "tensor", "sequence", "map", "optional", "sparse_tensor" or "unknown".
  std::string kind = "unknown";
  // For tensors: the element type ("float", "int64", ...); for other kinds a description such as
  // "sequence<tensor(float)>".
  std::string element_type;
  bool has_shape = false;           // false: rank unknown
  std::vector<OnnxDim> shape;       // outermost first
  std::string shape_string() const; // "[batch, 3, 224, 224]", or "?" without a shape
};

struct OnnxOpset {
  std::string domain; // "" is the default ONNX domain ("ai.onnx")
  std::int64_t version = 0;
};

// An initializer whose bytes live in another file (TensorProto.data_location = EXTERNAL).
struct OnnxExternalData {
  std::string tensor;
  std::string location;     // relative to the model's folder
  std::uint64_t offset = 0; // "offset" key, default 0
  std::uint64_t length = 0; // "length" key, or the tensor's byte size when absent
};

struct OnnxInitializerUsage {
  std::string element_type;
  std::uint64_t tensors = 0;
  std::uint64_t elements = 0;
  std::uint64_t bytes = 0;
};

struct OnnxModel {
  std::uint64_t file_size = 0;
  std::int64_t ir_version = 0;
  std::vector<OnnxOpset> opsets;
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  std::int64_t model_version = 0;
  std::string doc_string;
  std::string graph_name;
  // Graph inputs that are not initializers (IR < 4 lists every initializer as an input too).
  std::vector<OnnxValueInfo> inputs;
  std::vector<OnnxValueInfo> outputs;
  std::uint64_t initializer_count = 0; // dense and sparse
  std::uint64_t initializer_bytes = 0; // in the file and in external files
  std::uint64_t parameter_count = 0;   // elements of all initializers
  std::uint64_t external_bytes = 0;
  std::vector<OnnxExternalData> external_data;
  std::vector<OnnxInitializerUsage> initializer_types; // most bytes first
  std::uint64_t node_count = 0;                        // main graph
  std::uint64_t subgraph_node_count = 0;               // inside If/Loop/Scan bodies, recursively
  std::map<std::string, std::uint64_t> op_types;       // main graph: op type → nodes
  std::map<std::string, std::string> metadata;         // metadata_props

  // Version of the default domain's opset, if imported.
  std::optional<std::int64_t> default_opset() const noexcept;
  // Distinct external files, sorted.
  std::vector<std::string> external_files() const;
};

// Name of a TensorProto.DataType ("float", "bfloat16", ...), or "type <n>" for unknown values.
std::string onnx_element_type_name(std::int32_t data_type);
// Bits per element of a TensorProto.DataType, or 0 for strings and unknown types.
std::uint32_t onnx_element_bits(std::int32_t data_type) noexcept;

// Throws ParseError for a file that is not a valid ONNX model (not protobuf, truncated, missing the graph
// or IR version, inconsistent initializers, unsafe external-data paths) and std::system_error for I/O.
// External files are not opened.
OnnxModel parse_onnx(const ByteSource& source, std::string display_name,
                     const OnnxParseOptions& options = {});
// parse_onnx() plus check_onnx_external_data() against the file's folder; the first problem is thrown.
OnnxModel parse_onnx_file(const std::filesystem::path& path, const OnnxParseOptions& options = {});
// Every external-data problem (missing file, range past its end), as messages; empty when all is well.
std::vector<std::string> check_onnx_external_data(const OnnxModel& model,
                                                  const std::filesystem::path& directory);

} // namespace modelmgr::formats
