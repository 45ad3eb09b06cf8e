#include "formats/parse_error.hpp"

#include <fmt/format.h>

namespace modelmgr::formats {

ParseError::ParseError(std::string file, std::string field, std::uint64_t offset, std::string detail)
    : ModelManagerError(ErrorKind::checksum,
                        fmt::format("{}: {}: {} (at byte {})", file, field, detail, offset)),
      m_file(std::move(file)), m_field(std::move(field)), m_offset(offset), m_detail(std::move(detail))
{
}

} // namespace modelmgr::formats
