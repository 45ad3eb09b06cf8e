#include "util/fs.hpp"

#include <array>
#include <cerrno>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace modelmgr::util {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t k_name_max = 255;
constexpr int k_create_attempts = 16;

// Closes `fd` retrying nothing: on Linux the descriptor is gone even when close() reports EINTR.
void close_quietly(int fd) noexcept
{
  if (fd >= 0) {
    ::close(fd);
  }
}

fs::path parent_or_dot(const fs::path& p)
{
  fs::path parent = p.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// Keeps a generated temp name within NAME_MAX: a Hub file name can already be 255 bytes long.
std::string clip_name(std::string_view name, std::size_t room)
{
  if (name.size() <= room) {
    return std::string(name);
  }
  return std::string(name.substr(0, room));
}

void write_all(int fd, std::string_view data, const fs::path& path)
{
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw make_fs_error(errno, "write", path);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Escapes bytes that would garble an error message (control characters in a hostile file name).
std::string printable(std::string_view s)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

int open_temp_exclusive(const fs::path& dir, std::string_view prefix, std::string_view suffix, fs::path& out)
{
  for (int attempt = 0; attempt < k_create_attempts; ++attempt) {
    fs::path candidate = dir / (std::string(prefix) + random_hex(8) + std::string(suffix));
    int fd = ::open(candidate.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd >= 0) {
      out = std::move(candidate);
      return fd;
    }
    if (errno != EEXIST) {
      throw make_fs_error(errno, "create temporary file", candidate);
    }
  }
  throw make_fs_error(EEXIST, "create temporary file", dir / (std::string(prefix) + "*"));
}

void copy_fd_contents(int in, int out, const fs::path& src, const fs::path& dst)
{
  // copy_file_range lets btrfs/XFS share extents and avoids a trip through user space; it is refused
  // across filesystems on older kernels and by some filesystems, hence the read/write fallback.
  bool use_range = true;
  std::array<char, 1 << 16> buf{};
  for (;;) {
    if (use_range) {
      ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
      if (n > 0) {
        continue;
      }
      if (n == 0) {
        return;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP || errno == EPERM) {
        use_range = false;
        continue;
      }
      throw make_fs_error(errno, "copy to", dst);
    }
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw make_fs_error(errno, "read", src);
    }
    if (n == 0) {
      return;
    }
    write_all(out, std::string_view(buf.data(), static_cast<std::size_t>(n)), dst);
  }
}

} // namespace

std::system_error make_fs_error(int err, std::string_view what, const fs::path& path)
{
  return std::system_error(err, std::generic_category(), std::string(what) + " '" + path.string() + "'");
}

std::string random_hex(std::size_t chars)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string bytes((chars + 1) / 2, '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    got += static_cast<std::size_t>(n);
  }
  std::string hex;
  hex.reserve(chars + 1);
  for (unsigned char b : bytes) {
    hex += digits[b >> 4];
    hex += digits[b & 0xf];
  }
  hex.resize(chars);
  return hex;
}

mode_t default_file_mode(const fs::path& dir)
{
  fs::path probe;
  int fd = open_temp_exclusive(dir, ".modelmgr-mode.", ".tmp", probe);
  struct stat st {};
  int rc = ::fstat(fd, &st);
  int err = errno;
  close_quietly(fd);
  ::unlink(probe.c_str());
  if (rc != 0) {
    throw make_fs_error(err, "stat", probe);
  }
  return st.st_mode & 07777;
}

// ---- TempFile ----

TempFile TempFile::create(const fs::path& dir, std::string_view prefix, std::string_view suffix)
{
  fs::path path;
  int fd = open_temp_exclusive(dir, prefix, suffix, path);
  return TempFile(std::move(path), fd);
}

TempFile TempFile::create_beside(const fs::path& target)
{
  const std::string name = target.filename().string();
  // "." + name + "." + 8 hex + ".tmp" must fit in NAME_MAX.
  const std::string prefix = "." + clip_name(name, k_name_max - 14) + ".";
  return create(parent_or_dot(target), prefix, ".tmp");
}

TempFile::TempFile(TempFile&& other) noexcept
    : m_path(std::move(other.m_path)), m_fd(std::exchange(other.m_fd, -1)),
      m_owned(std::exchange(other.m_owned, false))
{
}

TempFile& TempFile::operator=(TempFile&& other) noexcept
{
  if (this != &other) {
    discard();
    m_path = std::move(other.m_path);
    m_fd = std::exchange(other.m_fd, -1);
    m_owned = std::exchange(other.m_owned, false);
  }
  return *this;
}

TempFile::~TempFile()
{
  discard();
}

void TempFile::discard() noexcept
{
  close_quietly(std::exchange(m_fd, -1));
  if (m_owned && !m_path.empty()) {
    ::unlink(m_path.c_str());
  }
  m_owned = false;
}

void TempFile::write(std::string_view data)
{
  if (m_fd < 0) {
    throw make_fs_error(EBADF, "write", m_path);
  }
  write_all(m_fd, data, m_path);
}

void TempFile::sync()
{
  if (m_fd >= 0 && ::fsync(m_fd) != 0) {
    throw make_fs_error(errno, "fsync", m_path);
  }
}

void TempFile::close()
{
  if (m_fd >= 0) {
    int fd = std::exchange(m_fd, -1);
    // close() can report a deferred write error (NFS): that is a failed write, not a detail.
    if (::close(fd) != 0 && errno != EINTR) {
      throw make_fs_error(errno, "close", m_path);
    }
  }
}

void TempFile::commit(const fs::path& target)
{
  commit_fd(std::exchange(m_fd, -1), m_path, target);
  m_owned = false;
}

void commit_fd(int fd, const fs::path& temp, const fs::path& target, DirSyncBatch* dir_sync)
{
  if (::fsync(fd) != 0) {
    const int err = errno;
    close_quietly(fd);
    throw make_fs_error(err, "fsync", temp);
  }
  // close() can report a deferred write error (NFS): that is a failed write, not a detail. EINTR leaves
  // the descriptor closed on Linux and the data was already synced above.
  if (::close(fd) != 0 && errno != EINTR) {
    throw make_fs_error(errno, "close", temp);
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    throw make_fs_error(errno, "rename '" + temp.string() + "' to", target);
  }
  if (dir_sync != nullptr) {
    dir_sync->add(parent_or_dot(target));
  } else {
    fsync_dir(parent_or_dot(target));
  }
}

fs::path TempFile::release() noexcept
{
  m_owned = false;
  return m_path;
}

// ---- whole files ----

void atomic_write_file(const fs::path& path, std::string_view content)
{
  TempFile tmp = TempFile::create_beside(path);
  tmp.write(content);
  tmp.commit(path);
}

std::optional<std::string> read_file_if_exists(const fs::path& path)
{
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return std::nullopt;
    }
    throw make_fs_error(errno, "open", path);
  }
  std::string out;
  std::array<char, 1 << 14> buf{};
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int err = errno;
      close_quietly(fd);
      throw make_fs_error(err, "read", path);
    }
    if (n == 0) {
      break;
    }
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  close_quietly(fd);
  return out;
}

std::string read_file(const fs::path& path)
{
  auto content = read_file_if_exists(path);
  if (!content) {
    throw make_fs_error(ENOENT, "open", path);
  }
  return std::move(*content);
}

void fsync_dir(const fs::path& dir)
{
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw make_fs_error(errno, "open directory", dir);
  }
  int rc = ::fsync(fd);
  int err = errno;
  close_quietly(fd);
  // Some filesystems (FUSE, old NFS clients) cannot sync a directory: nothing more can be done there.
  if (rc != 0 && err != EINVAL && err != ENOTSUP && err != EROFS) {
    throw make_fs_error(err, "fsync directory", dir);
  }
}

fs::path relative_path_from(const fs::path& link_dir, const fs::path& target)
{
  const fs::path dir = fs::absolute(link_dir).lexically_normal();
  const fs::path abs_target = fs::absolute(target).lexically_normal();
  fs::path rel = abs_target.lexically_relative(dir);
  return rel.empty() ? abs_target : rel;
}

std::uint64_t free_space(const fs::path& path)
{
  fs::path p = fs::absolute(path).lexically_normal();
  for (;;) {
    struct statvfs st {};
    if (::statvfs(p.c_str(), &st) == 0) {
      return static_cast<std::uint64_t>(st.f_bavail) * static_cast<std::uint64_t>(st.f_frsize);
    }
    const int err = errno;
    const fs::path parent = p.parent_path();
    if ((err != ENOENT && err != ENOTDIR) || parent == p || parent.empty()) {
      throw make_fs_error(err, "statvfs", p);
    }
    p = parent;
  }
}

void copy_file_atomic(const fs::path& src, const fs::path& dst)
{
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    throw make_fs_error(errno, "open", src);
  }
  try {
    TempFile tmp = TempFile::create_beside(dst);
    copy_fd_contents(in, tmp.fd(), src, tmp.path());
    tmp.commit(dst);
  } catch (...) {
    close_quietly(in);
    throw;
  }
  close_quietly(in);
}

LinkMethod clone_or_copy(const fs::path& src, const fs::path& dst)
{
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    throw make_fs_error(errno, "open", src);
  }
  LinkMethod method = LinkMethod::copy;
  try {
    TempFile tmp = TempFile::create_beside(dst);
    // FICLONE shares the extents copy-on-write (btrfs, XFS, bcachefs): no space, no time, and a write to
    // either file later gets its own blocks. Refused across filesystems and where unsupported: copy then.
    if (::ioctl(tmp.fd(), FICLONE, in) == 0) {
      method = LinkMethod::reflink;
    } else {
      copy_fd_contents(in, tmp.fd(), src, tmp.path());
    }
    tmp.commit(dst);
  } catch (...) {
    close_quietly(in);
    throw;
  }
  close_quietly(in);
  return method;
}

LinkMethod hardlink_or_copy(const fs::path& src, const fs::path& dst)
{
  const std::string prefix = "." + clip_name(dst.filename().string(), k_name_max - 14) + ".";
  const fs::path dir = parent_or_dot(dst);
  for (int attempt = 0; attempt < k_create_attempts; ++attempt) {
    const fs::path tmp = dir / (prefix + random_hex(8) + ".tmp");
    if (::link(src.c_str(), tmp.c_str()) != 0) {
      const int err = errno;
      if (err == EEXIST) {
        continue;
      }
      // Cross-device, no hard links on this filesystem, link-count limit, or fs.protected_hardlinks.
      if (err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP || err == EACCES) {
        copy_file_atomic(src, dst);
        return LinkMethod::copy;
      }
      throw make_fs_error(err, "link '" + src.string() + "' to", tmp);
    }
    if (::rename(tmp.c_str(), dst.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      throw make_fs_error(err, "rename '" + tmp.string() + "' to", dst);
    }
    // rename() between two links of the same inode succeeds without doing anything (POSIX), which
    // happens when dst already was a link to src: the temp name would be left behind.
    ::unlink(tmp.c_str());
    fsync_dir(dir);
    return LinkMethod::hardlink;
  }
  throw make_fs_error(EEXIST, "create temporary link beside", dst);
}

// ---- untrusted relative paths ----

std::optional<std::string> relative_path_error(std::string_view repo_path)
{
  if (repo_path.empty()) {
    return "is empty";
  }
  if (repo_path.find('\0') != std::string_view::npos) {
    return "contains a NUL byte";
  }
  if (repo_path.find('\\') != std::string_view::npos) {
    // A separator on Windows: "a\..\..\x" would escape there, and the same cache may be shared.
    return "contains a backslash";
  }
  if (repo_path.front() == '/') {
    return "is absolute";
  }
  if (repo_path.size() >= 2 && repo_path[1] == ':' &&
      ((repo_path[0] >= 'A' && repo_path[0] <= 'Z') || (repo_path[0] >= 'a' && repo_path[0] <= 'z'))) {
    return "starts with a drive letter";
  }
  if (repo_path.back() == '/') {
    return "ends with '/'";
  }
  std::size_t start = 0;
  while (start <= repo_path.size()) {
    std::size_t end = repo_path.find('/', start);
    if (end == std::string_view::npos) {
      end = repo_path.size();
    }
    const std::string_view segment = repo_path.substr(start, end - start);
    if (segment.empty()) {
      return "has an empty segment";
    }
    if (segment == ".") {
      return "has a '.' segment";
    }
    if (segment == "..") {
      return "has a '..' segment";
    }
    if (segment.size() > k_name_max) {
      return "has a segment longer than 255 bytes";
    }
    start = end + 1;
  }
  return std::nullopt;
}

fs::path safe_relative_path(std::string_view repo_path)
{
  if (auto error = relative_path_error(repo_path)) {
    throw std::invalid_argument("unsafe file path '" + printable(repo_path) + "': " + *error);
  }
  fs::path out;
  std::size_t start = 0;
  while (start < repo_path.size()) {
    std::size_t end = repo_path.find('/', start);
    if (end == std::string_view::npos) {
      end = repo_path.size();
    }
    out /= fs::path(std::string(repo_path.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

void create_directories(const std::filesystem::path& dir)
{
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw make_fs_error(ec.value(), "create directory", dir);
  }
}

DirSyncBatch::~DirSyncBatch()
{
  try {
    flush();
  } catch (const std::exception&) {
    // Best effort from a destructor; callers that care call flush() themselves.
  }
}

void DirSyncBatch::add(const fs::path& dir)
{
  std::lock_guard lock(m_mutex);
  m_dirs.insert(dir);
}

void DirSyncBatch::flush()
{
  std::set<fs::path> dirs;
  {
    std::lock_guard lock(m_mutex);
    dirs.swap(m_dirs);
  }
  std::optional<std::system_error> first;
  for (const auto& d : dirs) {
    try {
      fsync_dir(d);
    } catch (const std::system_error& e) {
      if (!first) {
        first = e;
      }
    }
  }
  if (first) {
    throw *first;
  }
}

} // namespace modelmgr::util
