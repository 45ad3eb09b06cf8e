#pragma once
// The one error type of the format readers. Parsing reports failures by exception rather than an
// expected-style result: the readers descend through nested values where every read can fail, and a
// single throw keeps that code linear; callers catch once per file. ParseError derives from
// ModelManagerError (kind checksum) so that, left uncaught, it still maps to a documented exit code: a file
// that does not parse is corrupt or not what it claims to be.

#include "modelmgr/errors.hpp"

#include <cstdint>
#include <string>

namespace modelmgr::formats {

class ParseError : public ModelManagerError {
public:
  // `file` is the display name of the file, `field` names what was being read (e.g. "tensor 12
  // 'blk.0.attn_q.weight'"), `offset` is the byte offset in the file where that field starts.
  ParseError(std::string file, std::string field, std::uint64_t offset, std::string detail);

  const std::string& file() const noexcept { return m_file; }
  const std::string& field() const noexcept { return m_field; }
  std::uint64_t offset() const noexcept { return m_offset; }
  // The reason alone, without file, field and offset.
  const std::string& detail() const noexcept { return m_detail; }

private:
  std::string m_file;
  std::string m_field;
  std::uint64_t m_offset;
  std::string m_detail;
};

} // namespace modelmgr::formats
