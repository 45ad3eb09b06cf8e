#pragma once
// Writers for small, valid GGUF v3 and safetensors files, following the published formats. They exist for
// tests, benchmarks and the hub emulator (which serves such files), not for exporting real models: they
// build bytes in memory and leave writing them to the caller.

#include "formats/ggml_types.hpp"
#include "formats/gguf.hpp"
#include "formats/safetensors.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace modelmgr::formats {

class GgufWriter {
public:
  // `alignment` must be a power of two; when it is not the default 32, the writer adds general.alignment.
  // `version` may be 2 or 3 (the layouts are identical for little-endian files).
  explicit GgufWriter(std::uint32_t alignment = 32, std::uint32_t version = 3);

  // Metadata in insertion order. Throws std::invalid_argument on a duplicate key.
  void add(std::string key, GgufValue value);
  // A tensor; `dims` ne[0] first. `data` must be empty (zeros are written) or exactly the tensor's byte
  // size. Throws std::invalid_argument for more than 4 dims, a row not a multiple of the block size, or a
  // wrong data size. Tensors are laid out in order, each at an aligned offset.
  void add_tensor(std::string name, std::vector<std::uint64_t> dims, GgmlType type,
                  std::vector<std::byte> data = {});

  // Magic to the end of the padding before the data section.
  std::vector<std::byte> header() const;
  // Where the data section starts, and the size of the whole file (data padded to the alignment).
  std::uint64_t data_offset() const;
  std::uint64_t file_size() const;
  // The whole file; tensors without data are zeros.
  std::vector<std::byte> build() const;

private:
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    GgmlType type;
    std::uint64_t offset; // in the data section
    std::uint64_t n_bytes;
    std::vector<std::byte> data;
  };
  std::uint32_t m_alignment;
  std::uint32_t m_version;
  std::vector<std::pair<std::string, GgufValue>> m_metadata;
  std::vector<Tensor> m_tensors;
  std::uint64_t m_data_size = 0;
};

class SafetensorsWriter {
public:
  // "__metadata__" entries. Throws std::invalid_argument on a duplicate key.
  void add_metadata(std::string key, std::string value);
  // A tensor laid out after the previous one. `data` must be empty (zeros) or exactly its byte size.
  // Throws std::invalid_argument for a duplicate or reserved name, a wrong data size, or a shape whose bits
  // do not fill whole bytes.
  void add_tensor(std::string name, SafetensorsDtype dtype, std::vector<std::uint64_t> shape,
                  std::vector<std::byte> data = {});

  // Compact JSON: "__metadata__" first (when present), then tensors in insertion order; not padded.
  std::string header_json() const;
  // The 8-byte length plus the JSON, padded with spaces so the data section starts 8-byte aligned, as the
  // reference implementation does.
  std::vector<std::byte> header() const;
  std::uint64_t file_size() const;
  std::vector<std::byte> build() const;

private:
  struct Tensor {
    std::string name;
    SafetensorsDtype dtype;
    std::vector<std::uint64_t> shape;
    std::uint64_t begin;
    std::uint64_t end;
    std::vector<std::byte> data;
  };
  std::vector<std::pair<std::string, std::string>> m_metadata;
  std::vector<Tensor> m_tensors;
  std::uint64_t m_data_size = 0;
};

} // namespace modelmgr::formats
