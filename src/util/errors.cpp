#include "modelmgr/errors.hpp"

namespace modelmgr {

int exit_code_for(ErrorKind kind) noexcept
{
  switch (kind) {
  case ErrorKind::internal: return 1;
  case ErrorKind::usage: return 2;
  case ErrorKind::config: return 2;
  case ErrorKind::not_found: return 3;
  case ErrorKind::auth: return 4;
  case ErrorKind::checksum: return 5;
  case ErrorKind::network: return 6;
  case ErrorKind::bad_response: return 6; // the network class: the remote side failed
  case ErrorKind::disk: return 7;
  case ErrorKind::locked: return 8;
  case ErrorKind::interrupted: return 130;
  }
  return 1;
}

const char* to_string(ErrorKind kind) noexcept
{
  switch (kind) {
  case ErrorKind::internal: return "internal";
  case ErrorKind::usage: return "usage";
  case ErrorKind::config: return "config";
  case ErrorKind::not_found: return "not_found";
  case ErrorKind::auth: return "auth";
  case ErrorKind::checksum: return "checksum";
  case ErrorKind::network: return "network";
  case ErrorKind::bad_response: return "bad_response";
  case ErrorKind::disk: return "disk";
  case ErrorKind::locked: return "locked";
  case ErrorKind::interrupted: return "interrupted";
  }
  return "internal";
}

} // namespace modelmgr
