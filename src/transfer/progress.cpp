#include "modelmgr/progress.hpp"

namespace modelmgr {

const char* to_string(EventType type) noexcept
{
  switch (type) {
  case EventType::planned: return "planned";
  case EventType::cached: return "cached";
  case EventType::started: return "started";
  case EventType::bytes: return "bytes";
  case EventType::verifying: return "verifying";
  case EventType::retrying: return "retrying";
  case EventType::stalled: return "stalled";
  case EventType::waiting_lock: return "waiting_lock";
  case EventType::done: return "done";
  case EventType::failed: return "failed";
  }
  return "bytes";
}

} // namespace modelmgr
