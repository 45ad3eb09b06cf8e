#include "cache/locks.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace modelmgr::cache {

namespace fs = std::filesystem;

namespace {

// A shared non-blocking flock succeeds unless someone holds the lock exclusively, which is how every
// client locks (Python's filelock, hf-hub, modelmgr).
bool is_held(const fs::path& p)
{
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    return false;
  }
  bool held = false;
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd, LOCK_UN);
  } else {
    held = errno == EWOULDBLOCK;
  }
  ::close(fd);
  return held;
}

} // namespace

std::vector<LockInfo> list_locks(const fs::path& root)
{
  std::vector<LockInfo> out;
  std::error_code ec;
  const fs::path locks = root / ".locks";
  for (auto it = fs::recursive_directory_iterator(locks, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != ".lock" || !it->is_regular_file(ec)) {
      continue;
    }
    LockInfo info;
    info.path = p;
    const fs::path rel = p.lexically_relative(locks);
    info.repo = rel.begin()->string();
    info.etag = p.stem().string();
    info.held = is_held(p);
    if (info.held) {
      info.holder = util::read_holder(p);
    }
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const LockInfo& a, const LockInfo& b) { return a.path < b.path; });
  return out;
}

} // namespace modelmgr::cache
