#pragma once
// The download locks of a cache (`.locks/<repo folder>/<etag>.lock`, hub-protocol.md §4.3) and whether
// someone holds them right now: for `modelmgr cache locks`, to see which process a download waits for.

#include "util/lock.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace modelmgr::cache {

struct LockInfo {
  std::filesystem::path path;
  std::string repo; // repo folder name ("models--org--name")
  std::string etag; // the file name without ".lock"
  bool held = false;
  std::optional<util::LockHolder> holder; // what the holder wrote (modelmgr does; Python does not)
};

// Returns every lock file under <root>/.locks, sorted by path, probing each with a non-blocking shared
// flock (never blocks a holder, never deletes). A missing .locks folder gives an empty list.
std::vector<LockInfo> list_locks(const std::filesystem::path& root);

} // namespace modelmgr::cache
