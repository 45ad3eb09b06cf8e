#include "cache/scan.hpp"

#include "modelmgr/errors.hpp"

#include "util/fs.hpp"
#include "util/size.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::cache {

namespace fs = std::filesystem;

namespace {

// How the scan stays fast (bench/bench_cache_scan.cpp, bench/README.md): it is bound by per-entry system
// calls and, second, by allocations, so
//   * directories are read with getdents64 into a per-thread buffer (no DIR, whose fdopendir costs an
//     fstat + fcntl and a 32 KiB allocation per folder) and d_type says what each entry is, without a stat;
//   * every per-entry call is relative to an open directory (fstatat/readlinkat/openat), so the kernel
//     resolves one path component instead of the whole path;
//   * the usual link target "../../blobs/<etag>" is resolved textually against the one listing of blobs/
//     (stat'ed once per blob): a snapshot link costs one readlinkat;
//   * stats whose result is rarely used (repo and snapshot folder times, only shown when no blob gives
//     them) are made only when needed;
//   * repos are scanned by a small thread pool, merged in directory order.
// Per cached file that leaves 1 readlinkat, per blob 1 fstatat, per folder openat + 2 getdents64 + close,
// per ref openat + read + close, and per lock file openat + flock + close (only when locks are checked).

struct Entry {
  std::string_view name; // NUL-terminated (points into Dir's name storage)
  unsigned char type;    // DT_DIR, DT_LNK, DT_REG, ... (DT_UNKNOWN resolved with fstatat)
};

// An open directory and its entries (without "." and ".."), sorted by name.
class Dir {
public:
  // Opens `name` relative to the directory `at` (AT_FDCWD for a path) and lists it. Returns nullopt with
  // errno set.
  static std::optional<Dir> open(int at, const char* name)
  {
    const int fd = ::openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      return std::nullopt;
    }
    std::optional<Dir> dir(Dir{fd});
    if (!dir->read_entries()) {
      return std::nullopt; // the destructor closes fd; errno is kept by read_entries
    }
    return dir;
  }
  Dir(Dir&& other) noexcept
      : entries(std::move(other.entries)), m_names(std::move(other.m_names)),
        m_fd(std::exchange(other.m_fd, -1))
  {
  }
  Dir& operator=(Dir&& other) noexcept
  {
    if (this != &other) {
      close();
      entries = std::move(other.entries);
      m_names = std::move(other.m_names);
      m_fd = std::exchange(other.m_fd, -1);
    }
    return *this;
  }
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  ~Dir() { close(); }
  int fd() const { return m_fd; }

  std::vector<Entry> entries;

private:
  void close() noexcept
  {
    if (m_fd >= 0) {
      const int err = errno;
      ::close(m_fd);
      errno = err;
      m_fd = -1;
    }
  }

  explicit Dir(int fd) : m_fd(fd) {}

  bool read_entries()
  {
    // 32 KiB holds a few hundred entries: most folders take one call plus the one that returns 0.
    thread_local std::vector<std::uint64_t> buf(32 * 1024 / sizeof(std::uint64_t));
    char* const base = reinterpret_cast<char*>(buf.data());
    const std::size_t cap = buf.size() * sizeof(std::uint64_t);
    struct Raw {
      std::size_t offset;
      std::size_t size;
      unsigned char type;
    };
    std::vector<Raw> raw;
    for (;;) {
      const ssize_t n = ::getdents64(m_fd, base, cap);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return false;
      }
      if (n == 0) {
        break;
      }
      for (std::size_t pos = 0; pos < static_cast<std::size_t>(n);) {
        unsigned short reclen = 0;
        unsigned char type = DT_UNKNOWN;
        std::memcpy(&reclen, base + pos + offsetof(struct dirent64, d_reclen), sizeof(reclen));
        std::memcpy(&type, base + pos + offsetof(struct dirent64, d_type), sizeof(type));
        const char* n_ptr = base + pos + offsetof(struct dirent64, d_name);
        pos += reclen;
        if (n_ptr[0] == '.' && (n_ptr[1] == '\0' || (n_ptr[1] == '.' && n_ptr[2] == '\0'))) {
          continue;
        }
        const std::size_t len = std::strlen(n_ptr);
        raw.push_back({m_names.size(), len, type});
        m_names.insert(m_names.end(), n_ptr, n_ptr + len + 1); // with the NUL: names go to *at() calls
      }
    }
    entries.reserve(raw.size());
    for (const auto& r : raw) {
      Entry e{std::string_view(m_names.data() + r.offset, r.size), r.type};
      if (e.type == DT_UNKNOWN) {
        // Some filesystems (XFS without ftype, some FUSE) do not fill d_type.
        struct stat st {};
        if (::fstatat(m_fd, e.name.data(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
          e.type = S_ISDIR(st.st_mode)   ? DT_DIR
                   : S_ISLNK(st.st_mode) ? DT_LNK
                   : S_ISREG(st.st_mode) ? DT_REG
                                         : DT_UNKNOWN;
        }
      }
      entries.push_back(e);
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
    return true;
  }

  // Entry names, each followed by a NUL. A vector, not a string: moving a Dir must not move the bytes
  // (a short string would be copied into the new object and the views would dangle).
  std::vector<char> m_names;
  int m_fd = -1;
};

// Owns a descriptor opened with openat (or -1).
class Fd {
public:
  explicit Fd(int fd) : m_fd(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd()
  {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
  }
  int get() const { return m_fd; }

private:
  int m_fd;
};

util::SystemTime to_time(const timespec& ts)
{
  return util::SystemTime(std::chrono::duration_cast<util::SystemTime::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

bool ends_with(std::string_view s, std::string_view suffix)
{
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_hex8(std::string_view s)
{
  return s.size() == 8 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// "<anything>.<8 hex>.tmp": Python >= 1.18 writes refs as refs/<name>.<8hex>.tmp then renames; modelmgr
// writes ".<name>.<8hex>.tmp" beside links and refs (util::TempFile::create_beside).
bool is_hex_tmp_name(std::string_view name)
{
  return name.size() > 13 && ends_with(name, ".tmp") && name[name.size() - 13] == '.' &&
         is_hex8(name.substr(name.size() - 12, 8));
}

// Any hidden ".*.tmp" (ours, other tools') or the hex pattern above.
bool is_temp_name(std::string_view name)
{
  return (name.size() > 5 && name.front() == '.' && ends_with(name, ".tmp")) || is_hex_tmp_name(name);
}

std::string join(std::string_view dir, std::string_view name)
{
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out.append(dir);
  out += '/';
  out.append(name);
  return out;
}

// Returns `dir` + "/" + `target` with "." and ".." segments of `target` folded, as
// (fs::path(dir) / target).lexically_normal() would give for the `dir`s the scan builds (from the
// normalised root and entry names, so without "." or ".." of their own). String surgery instead of
// lexically_normal: that one allocates a path per segment.
std::string join_relative(std::string_view dir, std::string_view target)
{
  std::string out(dir);
  std::size_t pos = 0;
  while (pos <= target.size()) {
    std::size_t end = target.find('/', pos);
    if (end == std::string_view::npos) {
      end = target.size();
    }
    const std::string_view seg = target.substr(pos, end - pos);
    if (seg == "..") {
      const std::size_t slash = out.rfind('/');
      const std::string_view last =
          slash == std::string::npos ? std::string_view(out) : std::string_view(out).substr(slash + 1);
      if (slash == std::string::npos || slash == 0 || last == "..") {
        // Climbing above a relative root or "/": rare enough to leave to the general algorithm.
        return (fs::path(dir) / target).lexically_normal().native();
      }
      out.resize(slash);
    } else if (!seg.empty() && seg != ".") {
      out += '/';
      out += seg;
    }
    pos = end + 1;
  }
  return out;
}

std::string_view trim(std::string_view s)
{
  const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && ws(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && ws(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

struct InodeKey {
  dev_t dev;
  ino_t ino;
  bool operator==(const InodeKey&) const = default;
};
struct InodeHash {
  std::size_t operator()(const InodeKey& k) const noexcept
  {
    return std::hash<std::uint64_t>{}(static_cast<std::uint64_t>(k.ino) * 1000003u ^
                                      static_cast<std::uint64_t>(k.dev));
  }
};

struct BlobStat {
  InodeKey key;
  std::uint64_t size = 0;
  util::SystemTime atime{};
  util::SystemTime mtime{};
};

BlobStat to_blob_stat(const struct stat& st)
{
  return {{st.st_dev, st.st_ino},
          static_cast<std::uint64_t>(st.st_size),
          to_time(st.st_atim),
          to_time(st.st_mtim)};
}

std::string fmt_errno(std::string_view what)
{
  return std::string(what) + ": " + std::strerror(errno);
}

// Records a stale_lock problem if nobody holds `name` (in the directory `dir_fd`; `path` for the report).
// A shared non-blocking flock on a fresh descriptor succeeds only when no process holds it exclusively
// (Python's filelock, hf-hub and modelmgr all lock exclusively); it never blocks a holder and the file is
// left in place. close() drops our shared lock (nothing else shares the open file description), so no
// LOCK_UN call is needed.
void check_lock(std::vector<CacheProblem>& problems, const std::string& repo, int dir_fd, const char* name,
                const std::string& path)
{
  const int fd = ::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    return; // gone, or not a regular file we can judge
  }
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    problems.push_back(
        {ProblemKind::stale_lock, fs::path(path), repo, "lock file not held by any process", 0});
  }
  ::close(fd);
}

class RepoScanner {
public:
  RepoScanner(std::vector<CacheProblem>& problems, CachedRepo& repo, int root_fd, const ScanOptions& options)
      : m_problems(problems), m_repo(repo), m_dir(repo.path.native()), m_check_locks(options.check_locks),
        m_list_files(options.list_files),
        m_fd(::openat(root_fd, repo.folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC))
  {
    // Children are opened relative to the repo folder; should it not open, by path (each then reports why).
    m_at = m_fd.get() >= 0 ? m_fd.get() : AT_FDCWD;
    m_prefix = m_fd.get() >= 0 ? std::string() : m_dir + "/";
  }

  void run()
  {
    // blobs/ first: targets of well-formed links are then found in its listing without a stat per link.
    scan_blobs_dir();
    scan_refs(m_at, m_prefix + "refs", m_dir + "/refs", "");
    scan_snapshots();
    check_blobs();
    check_refs();
    totals();
  }

private:
  struct Blob {
    BlobStat stat;
    bool referenced = false;
  };
  struct LocalBlob {
    std::string_view name; // in m_blobs_dir
    std::uint32_t id;
  };

  void problem(ProblemKind kind, std::string path, std::string message, std::uint64_t size = 0)
  {
    m_problems.push_back({kind, fs::path(std::move(path)), m_repo.folder, std::move(message), size});
  }

  // Returns the id of the blob with this inode, registering it on first sight: links to one inode (through
  // two names, hard links) are one blob, counted once.
  std::uint32_t blob_id(const BlobStat& b)
  {
    const auto [it, inserted] = m_ids.try_emplace(b.key, static_cast<std::uint32_t>(m_blobs.size()));
    if (inserted) {
      m_blobs.push_back({b});
    }
    return it->second;
  }

  std::optional<std::uint32_t> local_blob(std::string_view name) const
  {
    const auto it = std::lower_bound(m_local.begin(), m_local.end(), name,
                                     [](const LocalBlob& b, std::string_view n) { return b.name < n; });
    if (it != m_local.end() && it->name == name) {
      return it->id;
    }
    return std::nullopt;
  }

  void scan_blobs_dir()
  {
    const std::string blobs = m_dir + "/blobs";
    m_blobs_dir = Dir::open(m_at, (m_prefix + "blobs").c_str());
    if (!m_blobs_dir) {
      if (errno != ENOENT) {
        problem(ProblemKind::io_error, blobs, fmt_errno("cannot list"));
      }
      return;
    }
    const int fd = m_blobs_dir->fd();
    m_local.reserve(m_blobs_dir->entries.size());
    for (const auto& e : m_blobs_dir->entries) {
      if (ends_with(e.name, ".lock")) {
        // hf-hub 0.x locks blobs/<etag>.lock.
        if (m_check_locks) {
          check_lock(m_problems, m_repo.folder, fd, e.name.data(), join(blobs, e.name));
        }
        continue;
      }
      struct stat st {};
      if (::fstatat(fd, e.name.data(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        problem(ProblemKind::io_error, join(blobs, e.name), fmt_errno("cannot stat"));
        continue;
      }
      if (ends_with(e.name, ".incomplete") || is_temp_name(e.name)) {
        problem(ProblemKind::temp_file, join(blobs, e.name),
                "leftover temporary file of an interrupted download", static_cast<std::uint64_t>(st.st_size));
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        problem(ProblemKind::not_a_directory, join(blobs, e.name), "unexpected non-file entry in blobs/");
        continue;
      }
      m_local.push_back({e.name, blob_id(to_blob_stat(st))});
    }
  }

  void scan_refs(int at, const std::string& name, const std::string& dir, const std::string& prefix)
  {
    auto d = Dir::open(at, name.c_str());
    if (!d) {
      if (errno == ENOTDIR) {
        problem(ProblemKind::not_a_directory, dir, "refs is a file, expected a folder");
      } else if (errno != ENOENT) {
        problem(ProblemKind::io_error, dir, fmt_errno("cannot list"));
      }
      return;
    }
    for (const auto& e : d->entries) {
      std::string p = join(dir, e.name);
      if (e.type == DT_DIR) {
        scan_refs(d->fd(), std::string(e.name), p, prefix + std::string(e.name) + "/");
        continue;
      }
      if (is_temp_name(e.name)) {
        const auto size = entry_size(d->fd(), e.name);
        problem(ProblemKind::temp_file, std::move(p), "leftover temporary ref file", size);
        continue;
      }
      std::string content;
      int err = 0;
      const char* what = "open";
      if (!read_small_file(d->fd(), e.name, content, err, what)) {
        if (err == ENOENT || err == ENOTDIR) {
          continue; // raced with a rename
        }
        problem(ProblemKind::bad_ref, p,
                std::string("cannot read ref: ") + util::make_fs_error(err, what, p).what());
        continue;
      }
      const std::string_view commit = trim(content);
      if (!is_commit_hash(commit)) {
        problem(ProblemKind::bad_ref, std::move(p), "ref does not hold a 40-hex commit hash");
        continue;
      }
      m_repo.refs[prefix + std::string(e.name)] = std::string(commit);
    }
  }

  // Reads the file `name` of `dir_fd` into `out`. On failure returns false with `err` and `what` ("open" or
  // "read") set.
  static bool read_small_file(int dir_fd, std::string_view name, std::string& out, int& err,
                              const char*& what)
  {
    const int fd = ::openat(dir_fd, name.data(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      what = "open";
      return false;
    }
    Fd guard(fd);
    // A ref is 40 bytes: one read returns all of it. Reading on until read() returns 0 would cost a system
    // call per ref for nothing, so a short read ends the loop; a file that fills the buffer is read on.
    char buf[512];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        err = errno;
        what = "read";
        return false;
      }
      out.append(buf, static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < sizeof(buf)) {
        return true;
      }
    }
  }

  void scan_snapshots()
  {
    const std::string snapshots = m_dir + "/snapshots";
    auto dir = Dir::open(m_at, (m_prefix + "snapshots").c_str());
    if (!dir) {
      if (errno == ENOENT) {
        problem(ProblemKind::bad_layout, snapshots, "repo has no snapshots/ folder");
      } else if (errno == ENOTDIR) {
        problem(ProblemKind::not_a_directory, snapshots, "snapshots is a file, expected a folder");
      } else {
        problem(ProblemKind::io_error, snapshots, fmt_errno("cannot list"));
      }
      return;
    }
    m_repo.revisions.reserve(dir->entries.size());
    for (const auto& e : dir->entries) {
      std::string p = join(snapshots, e.name);
      if (e.type != DT_DIR) {
        if (is_temp_name(e.name)) {
          const auto size = entry_size(dir->fd(), e.name);
          problem(ProblemKind::temp_file, std::move(p), "leftover temporary file", size);
        } else {
          problem(ProblemKind::not_a_directory, std::move(p),
                  "file directly inside snapshots/, expected a commit folder");
        }
        continue;
      }
      CachedRevision rev;
      rev.commit = e.name;
      std::vector<std::uint32_t> ids;
      walk_snapshot(dir->fd(), e.name, p, "", 2, rev, ids);
      if (ids.empty()) {
        // Without files the folder's own time is all there is (otherwise totals() takes the blobs').
        struct stat st {};
        if (::fstatat(dir->fd(), e.name.data(), &st, 0) == 0) {
          rev.last_modified = to_time(st.st_mtim);
        }
      }
      rev.path = std::move(p);
      m_rev_ids.push_back(std::move(ids));
      m_repo.revisions.push_back(std::move(rev));
    }
  }

  // Walks `name` (opened relative to `parent_fd`; its path is `dir`, `depth` folders below the repo
  // folder), collecting files into `rev` and their blob ids into `ids`.
  void walk_snapshot(int parent_fd, std::string_view name, const std::string& dir, const std::string& prefix,
                     int depth, CachedRevision& rev, std::vector<std::uint32_t>& ids)
  {
    auto d = Dir::open(parent_fd, name.data());
    if (!d) {
      problem(ProblemKind::io_error, dir, fmt_errno("cannot list"));
      return;
    }
    for (const auto& e : d->entries) {
      if (e.type == DT_DIR) {
        walk_snapshot(d->fd(), e.name, join(dir, e.name), prefix + std::string(e.name) + "/", depth + 1, rev,
                      ids);
        continue;
      }
      if (is_temp_name(e.name)) {
        const auto size = entry_size(d->fd(), e.name);
        problem(ProblemKind::temp_file, join(dir, e.name), "leftover temporary file", size);
        continue;
      }
      std::optional<std::uint32_t> id;
      std::string blob_path;
      if (e.type == DT_LNK) {
        id = resolve_link(d->fd(), dir, e.name, depth, m_list_files ? &blob_path : nullptr);
        if (!id) {
          continue;
        }
      } else {
        // Symlink-less cache (HF_HUB_DISABLE_SYMLINKS, Windows without developer mode): the entry is its
        // own blob (§4.4).
        struct stat st {};
        if (::fstatat(d->fd(), e.name.data(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
          problem(ProblemKind::io_error, join(dir, e.name), fmt_errno("cannot stat"));
          continue;
        }
        if (!S_ISREG(st.st_mode)) {
          continue; // fifo, socket: not something a client writes
        }
        id = blob_id(to_blob_stat(st));
      }
      Blob& blob = m_blobs[*id];
      blob.referenced = true;
      ids.push_back(*id);
      if (!m_list_files) {
        continue;
      }
      CachedFile& f = rev.files.emplace_back();
      f.path.reserve(prefix.size() + e.name.size());
      f.path.append(prefix).append(e.name);
      f.size = blob.stat.size;
      f.last_accessed = blob.stat.atime;
      f.last_modified = blob.stat.mtime;
      f.file_path = join(dir, e.name);
      f.blob_path = blob_path.empty() ? f.file_path : fs::path(std::move(blob_path));
    }
  }

  // Returns the name of the blob that `target` names from a folder `depth` levels below the repo folder,
  // when it is the usual "../../blobs/<name>" (with as many "../" as `depth`), else nullopt.
  static std::optional<std::string_view> blobs_relative_name(std::string_view target, int depth)
  {
    for (int i = 0; i < depth; ++i) {
      if (!target.starts_with("../")) {
        return std::nullopt;
      }
      target.remove_prefix(3);
    }
    if (!target.starts_with("blobs/")) {
      return std::nullopt;
    }
    target.remove_prefix(6);
    if (target.empty() || target == "." || target == ".." || target.find('/') != std::string_view::npos) {
      return std::nullopt;
    }
    return target;
  }

  // Returns the blob that the snapshot symlink `name` (in `dir`, open as `dir_fd`) points at, and its path
  // in `*want_blob_path` if not null; or nullopt after recording a problem.
  std::optional<std::uint32_t> resolve_link(int dir_fd, const std::string& dir, std::string_view name,
                                            int depth, std::string* want_blob_path)
  {
    char buf[PATH_MAX];
    const ssize_t n = ::readlinkat(dir_fd, name.data(), buf, sizeof(buf));
    if (n < 0 || static_cast<std::size_t>(n) >= sizeof(buf)) {
      problem(ProblemKind::io_error, join(dir, name), fmt_errno("cannot read link"));
      return std::nullopt;
    }
    const std::string_view target(buf, static_cast<std::size_t>(n));
    // Lexical resolution: a target naming an entry of the blobs/ listing costs no further system call;
    // anything else (absolute targets, links to links, missing blobs) falls back to stat().
    if (const auto blob = blobs_relative_name(target, depth)) {
      if (const auto id = local_blob(*blob)) {
        if (want_blob_path != nullptr) {
          *want_blob_path = m_dir + "/blobs/" + std::string(*blob);
        }
        return id;
      }
    }
    std::string scratch;
    std::string& blob_path = want_blob_path != nullptr ? *want_blob_path : scratch;
    blob_path =
        target.front() == '/' ? fs::path(target).lexically_normal().native() : join_relative(dir, target);
    // e.g. "../../blobs/<name>" from another depth, or through "./": still an entry of the listing.
    if (std::string_view rest(blob_path); rest.size() > m_dir.size() + 7 && rest.starts_with(m_dir) &&
                                          rest.substr(m_dir.size(), 7) == "/blobs/") {
      rest.remove_prefix(m_dir.size() + 7);
      if (rest.find('/') == std::string_view::npos) {
        if (const auto id = local_blob(rest)) {
          return id;
        }
      }
    }
    struct stat st {};
    if (::fstatat(dir_fd, name.data(), &st, 0) != 0) {
      problem(ProblemKind::broken_symlink, join(dir, name),
              "blob missing (broken symlink to " + std::string(target) + ")");
      return std::nullopt;
    }
    if (!S_ISREG(st.st_mode)) {
      problem(ProblemKind::broken_symlink, join(dir, name), "symlink does not point to a regular file");
      return std::nullopt;
    }
    return blob_id(to_blob_stat(st));
  }

  void check_blobs()
  {
    const std::string blobs = m_dir + "/blobs";
    for (const auto& b : m_local) {
      const Blob& blob = m_blobs[b.id];
      if (!blob.referenced) {
        problem(ProblemKind::orphan_blob, join(blobs, b.name), "blob not referenced by any snapshot",
                blob.stat.size);
      }
    }
  }

  void check_refs()
  {
    std::map<std::string_view, CachedRevision*> by_commit;
    for (auto& r : m_repo.revisions) {
      by_commit[r.commit] = &r;
    }
    for (const auto& [name, commit] : m_repo.refs) {
      if (auto it = by_commit.find(commit); it != by_commit.end()) {
        it->second->refs.push_back(name);
        continue;
      }
      // Python writes refs/<rev> together with .no_exist/<commit>/<file> when a file is absent at that
      // commit, so a ref without a snapshot is legitimate when the .no_exist folder exists.
      struct stat st {};
      if (::fstatat(m_at, (m_prefix + ".no_exist/" + commit).c_str(), &st, 0) == 0) {
        continue;
      }
      problem(ProblemKind::missing_snapshot, m_dir + "/refs/" + name,
              "ref '" + name + "' points to commit " + commit + " which has no snapshot");
    }
  }

  void totals()
  {
    // Distinct blobs per revision and per repo, by id: `stamp` holds the last revision (+1) that counted
    // a blob, `in_repo` whether the repo did.
    std::vector<std::uint32_t> stamp(m_blobs.size(), 0);
    std::vector<bool> in_repo(m_blobs.size(), false);
    std::size_t repo_count = 0;
    for (std::size_t i = 0; i < m_repo.revisions.size(); ++i) {
      auto& rev = m_repo.revisions[i];
      const auto mark = static_cast<std::uint32_t>(i + 1);
      std::size_t count = 0;
      for (const auto id : m_rev_ids[i]) {
        const BlobStat& b = m_blobs[id].stat;
        if (stamp[id] != mark) {
          stamp[id] = mark;
          ++count;
          rev.size_on_disk += b.size;
          rev.last_modified = count == 1 ? b.mtime : std::max(rev.last_modified, b.mtime);
        }
        if (!in_repo[id]) {
          in_repo[id] = true;
          ++repo_count;
          m_repo.size_on_disk += b.size;
          m_repo.last_accessed = repo_count == 1 ? b.atime : std::max(m_repo.last_accessed, b.atime);
          m_repo.last_modified = repo_count == 1 ? b.mtime : std::max(m_repo.last_modified, b.mtime);
        }
      }
      rev.nb_files = count;
      std::sort(rev.refs.begin(), rev.refs.end());
      std::sort(rev.files.begin(), rev.files.end(),
                [](const CachedFile& a, const CachedFile& b) { return a.path < b.path; });
    }
    m_repo.nb_files = repo_count;
    if (repo_count == 0) {
      // No blob to date the repo: the folder's own times (as huggingface_hub does for an empty repo).
      struct stat st {};
      const int rc = m_fd.get() >= 0 ? ::fstat(m_fd.get(), &st) : ::stat(m_dir.c_str(), &st);
      if (rc == 0) {
        m_repo.last_accessed = to_time(st.st_atim);
        m_repo.last_modified = to_time(st.st_mtim);
      }
    }
  }

  static std::uint64_t entry_size(int dir_fd, std::string_view name)
  {
    struct stat st {};
    return ::fstatat(dir_fd, name.data(), &st, AT_SYMLINK_NOFOLLOW) == 0
               ? static_cast<std::uint64_t>(st.st_size)
               : 0;
  }

  std::vector<CacheProblem>& m_problems;
  CachedRepo& m_repo;
  const std::string m_dir; // the repo folder's path
  const bool m_check_locks;
  const bool m_list_files;
  Fd m_fd;              // the repo folder, or -1
  int m_at = AT_FDCWD;  // m_fd, or AT_FDCWD when it did not open
  std::string m_prefix; // "" with m_fd, else m_dir + "/"
  std::optional<Dir> m_blobs_dir;
  std::vector<LocalBlob> m_local; // regular files of blobs/, sorted by name
  std::vector<Blob> m_blobs;      // by id
  std::unordered_map<InodeKey, std::uint32_t, InodeHash> m_ids;
  std::vector<std::vector<std::uint32_t>> m_rev_ids; // per revision, the blob id of each file
};

void scan_locks(int at, const std::string& name, const std::string& dir, const std::string& folder,
                std::vector<CacheProblem>& problems)
{
  auto d = Dir::open(at, name.c_str());
  if (!d) {
    return;
  }
  for (const auto& e : d->entries) {
    if (e.type == DT_DIR) {
      scan_locks(d->fd(), std::string(e.name), join(dir, e.name),
                 folder.empty() ? std::string(e.name) : folder, problems);
    } else if (e.type != DT_LNK && ends_with(e.name, ".lock")) {
      // (a symlink is never judged: O_NOFOLLOW would refuse to open it)
      check_lock(problems, folder, d->fd(), e.name.data(), join(dir, e.name));
    }
  }
}

// Upper bound of the scan pool; with more the threads mostly contend on directory locks in the kernel.
constexpr unsigned k_max_scan_threads = 4;
// Below this many repos per thread, starting threads costs more than it saves.
constexpr std::size_t k_min_slots_per_thread = 8;

bool is_ignored_root_entry(std::string_view name)
{
  return name == "CACHEDIR.TAG" || name == "version.txt" || name == ".DS_Store" || name == "Thumbs.db" ||
         name == "desktop.ini";
}

// fs::path's operator< (component by component) on the normalised paths the scan builds, without
// walking components: "/" sorts before every other character.
bool path_less(const fs::path& a, const fs::path& b)
{
  const std::string& x = a.native();
  const std::string& y = b.native();
  const auto [ix, iy] = std::mismatch(x.begin(), x.end(), y.begin(), y.end());
  if (ix == x.end() || iy == y.end()) {
    return ix == x.end() && iy != y.end(); // a proper prefix sorts first
  }
  if (*ix == '/' || *iy == '/') {
    return *ix == '/';
  }
  return static_cast<unsigned char>(*ix) < static_cast<unsigned char>(*iy);
}

} // namespace

std::string_view to_string(ProblemKind kind) noexcept
{
  switch (kind) {
  case ProblemKind::broken_symlink: return "broken_symlink";
  case ProblemKind::missing_snapshot: return "missing_snapshot";
  case ProblemKind::bad_ref: return "bad_ref";
  case ProblemKind::orphan_blob: return "orphan_blob";
  case ProblemKind::temp_file: return "temp_file";
  case ProblemKind::stale_lock: return "stale_lock";
  case ProblemKind::not_a_directory: return "not_a_directory";
  case ProblemKind::bad_folder_name: return "bad_folder_name";
  case ProblemKind::bad_layout: return "bad_layout";
  case ProblemKind::io_error: return "io_error";
  }
  return "unknown";
}

std::string CachedRepo::display_id() const
{
  return std::string(to_string(type)) + "/" + repo_id;
}

std::size_t CacheInfo::revision_count() const
{
  std::size_t n = 0;
  for (const auto& r : repos) {
    n += r.revisions.size();
  }
  return n;
}

CacheInfo scan_cache(const fs::path& root_in, const ScanOptions& options)
{
  CacheInfo info;
  // Normalised once so that every path built below compares equal to lexically resolved link targets.
  fs::path root = root_in.lexically_normal();
  if (root.has_relative_path() && !root.has_filename()) {
    root = root.parent_path();
  }
  info.root = root;
  const std::string root_s = root.string();
  auto root_dir = Dir::open(AT_FDCWD, root_s.c_str());
  if (!root_dir) {
    if (errno == ENOENT) {
      return info;
    }
    throw util::make_fs_error(errno, "list cache directory", root);
  }
  info.exists = true;
  const int root_fd = root_dir->fd();

  // One slot per unit of work, in directory order, each with its own problem list: repos (and the lock
  // folders of .locks/) are independent, so they are scanned by a small pool, and merging the slots in
  // order keeps the result identical to a sequential scan.
  struct Slot {
    std::optional<CachedRepo> repo;
    std::string locks_name; // a folder of .locks/ to probe, when not a repo
    std::vector<CacheProblem> problems;
  };
  std::vector<Slot> slots;
  slots.reserve(root_dir->entries.size());
  std::optional<Dir> locks_dir;
  const std::string locks_path = root_s + "/.locks";
  for (const auto& e : root_dir->entries) {
    if (e.name == ".locks") {
      if (!options.check_locks) {
        continue;
      }
      locks_dir = Dir::open(root_fd, ".locks");
      if (!locks_dir) {
        continue;
      }
      for (const auto& l : locks_dir->entries) {
        Slot& slot = slots.emplace_back();
        if (l.type == DT_DIR) {
          slot.locks_name = l.name;
        } else if (l.type != DT_LNK && ends_with(l.name, ".lock")) {
          check_lock(slot.problems, "", locks_dir->fd(), l.name.data(), join(locks_path, l.name));
        }
      }
      continue;
    }
    if (is_ignored_root_entry(e.name)) {
      continue;
    }
    Slot& slot = slots.emplace_back();
    std::string p = join(root_s, e.name);
    // A symlinked repo folder is followed (people move big repos to other disks that way).
    bool is_dir = e.type == DT_DIR;
    if (e.type == DT_LNK) {
      struct stat st {};
      is_dir = ::fstatat(root_fd, e.name.data(), &st, 0) == 0 && S_ISDIR(st.st_mode);
    }
    if (!is_dir) {
      slot.problems.push_back(
          {ProblemKind::not_a_directory, fs::path(std::move(p)), "", "unexpected file in the cache root", 0});
      continue;
    }
    const auto folder = parse_repo_folder_name(e.name);
    if (!folder) {
      slot.problems.push_back({ProblemKind::bad_folder_name, fs::path(std::move(p)), "",
                               "folder name is not <models|datasets|spaces>--<repo id>", 0});
      continue;
    }
    CachedRepo& repo = slot.repo.emplace();
    repo.repo_id = folder->repo_id;
    repo.type = folder->type;
    repo.folder = e.name;
    repo.path = std::move(p);
  }

  std::atomic<std::size_t> next{0};
  const auto worker = [&] {
    for (std::size_t i = next.fetch_add(1); i < slots.size(); i = next.fetch_add(1)) {
      Slot& slot = slots[i];
      if (slot.repo) {
        RepoScanner(slot.problems, *slot.repo, root_fd, options).run();
      } else if (!slot.locks_name.empty()) {
        scan_locks(locks_dir->fd(), slot.locks_name, join(locks_path, slot.locks_name), slot.locks_name,
                   slot.problems);
      }
      // Problems are reported sorted by path. Every path of a slot is under its own entry of the root (or
      // of .locks/), and the slots are in the order of those entries, so sorting each slot here sorts the
      // whole list once the slots are concatenated (in parallel, and without comparing long common
      // prefixes across 1,000s of problems).
      std::stable_sort(
          slot.problems.begin(), slot.problems.end(),
          [](const CacheProblem& a, const CacheProblem& b) { return path_less(a.path, b.path); });
    }
  };
  // The scan is syscall-bound; a few threads overlap the kernel's per-call work (and any disk waits on a
  // cold cache). Small caches are not worth a thread start.
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const unsigned threads =
      slots.size() < k_min_slots_per_thread
          ? 1u
          : std::min({hw, k_max_scan_threads, static_cast<unsigned>(slots.size() / k_min_slots_per_thread)});
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    pool.emplace_back(worker);
  }
  worker();
  for (auto& t : pool) {
    t.join();
  }

  std::size_t n_problems = 0;
  for (const auto& slot : slots) {
    n_problems += slot.problems.size();
  }
  info.problems.reserve(n_problems);
  for (auto& slot : slots) {
    std::move(slot.problems.begin(), slot.problems.end(), std::back_inserter(info.problems));
    if (slot.repo) {
      info.size_on_disk += slot.repo->size_on_disk;
      info.repos.push_back(std::move(*slot.repo));
    }
  }
  return info;
}

// ---- selection ----

namespace {

[[noreturn]] void bad_filter(std::string_view expr, std::string_view why)
{
  throw ConfigurationError("invalid filter '" + std::string(expr) + "': " + std::string(why),
                           "examples: size>1GB, size<100M, accessed>30d, modified<7d, type=model",
                           ErrorKind::usage);
}

std::string lower(std::string_view s)
{
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

template <typename T> bool compare(T lhs, RepoFilter::Op op, T rhs)
{
  switch (op) {
  case RepoFilter::Op::lt: return lhs < rhs;
  case RepoFilter::Op::le: return lhs <= rhs;
  case RepoFilter::Op::gt: return lhs > rhs;
  case RepoFilter::Op::ge: return lhs >= rhs;
  case RepoFilter::Op::eq: return lhs == rhs;
  case RepoFilter::Op::ne: return lhs != rhs;
  }
  return false;
}

} // namespace

RepoFilter parse_repo_filter(std::string_view expr)
{
  const std::string_view text = trim(expr);
  const std::size_t op_pos = text.find_first_of("<>=!");
  if (op_pos == std::string_view::npos) {
    bad_filter(expr, "expected <field><op><value> with an operator among < <= > >= = !=");
  }
  const std::string field = lower(trim(text.substr(0, op_pos)));
  std::string_view rest = text.substr(op_pos);
  RepoFilter f;
  if (rest.starts_with("<=")) {
    f.op = RepoFilter::Op::le;
    rest.remove_prefix(2);
  } else if (rest.starts_with(">=")) {
    f.op = RepoFilter::Op::ge;
    rest.remove_prefix(2);
  } else if (rest.starts_with("!=")) {
    f.op = RepoFilter::Op::ne;
    rest.remove_prefix(2);
  } else if (rest.starts_with("==")) {
    f.op = RepoFilter::Op::eq;
    rest.remove_prefix(2);
  } else if (rest.starts_with("<")) {
    f.op = RepoFilter::Op::lt;
    rest.remove_prefix(1);
  } else if (rest.starts_with(">")) {
    f.op = RepoFilter::Op::gt;
    rest.remove_prefix(1);
  } else if (rest.starts_with("=")) {
    f.op = RepoFilter::Op::eq;
    rest.remove_prefix(1);
  } else {
    bad_filter(expr, "unknown operator");
  }
  const std::string_view value = trim(rest);
  if (value.empty()) {
    bad_filter(expr, "missing value");
  }
  if (field == "size") {
    f.field = RepoFilter::Field::size;
    try {
      f.bytes = util::parse_size(value);
    } catch (const std::invalid_argument& e) {
      bad_filter(expr, e.what());
    }
  } else if (field == "accessed" || field == "modified") {
    f.field = field == "accessed" ? RepoFilter::Field::accessed : RepoFilter::Field::modified;
    try {
      f.age = util::parse_duration(value);
    } catch (const std::invalid_argument& e) {
      bad_filter(expr, e.what());
    }
  } else if (field == "type") {
    f.field = RepoFilter::Field::type;
    if (f.op != RepoFilter::Op::eq && f.op != RepoFilter::Op::ne) {
      bad_filter(expr, "type only supports = and !=");
    }
    const auto type = parse_repo_type(lower(value));
    if (!type) {
      bad_filter(expr, "type must be model, dataset or space");
    }
    f.type = *type;
  } else {
    bad_filter(expr, "unknown field '" + field + "' (size, accessed, modified, type)");
  }
  return f;
}

bool matches(const RepoFilter& filter, const CachedRepo& repo, util::SystemTime now)
{
  switch (filter.field) {
  case RepoFilter::Field::size: return compare(repo.size_on_disk, filter.op, filter.bytes);
  case RepoFilter::Field::accessed:
  case RepoFilter::Field::modified: {
    const auto t = filter.field == RepoFilter::Field::accessed ? repo.last_accessed : repo.last_modified;
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - t);
    return compare(age, filter.op, filter.age);
  }
  case RepoFilter::Field::type: return compare(repo.type, filter.op, filter.type);
  }
  return false;
}

RepoSort parse_repo_sort(std::string_view spec)
{
  const std::string text = lower(trim(spec));
  const std::size_t colon = text.find(':');
  const std::string key = text.substr(0, colon);
  RepoSort s;
  if (key == "name") {
    s.key = RepoSort::Key::name;
  } else if (key == "size") {
    s.key = RepoSort::Key::size;
  } else if (key == "accessed") {
    s.key = RepoSort::Key::accessed;
  } else if (key == "modified") {
    s.key = RepoSort::Key::modified;
  } else {
    throw ConfigurationError("invalid sort '" + std::string(spec) + "': unknown key '" + key + "'",
                             "use size, accessed, modified or name, optionally with :asc or :desc",
                             ErrorKind::usage);
  }
  s.descending = s.key != RepoSort::Key::name;
  if (colon != std::string::npos) {
    const std::string dir = text.substr(colon + 1);
    if (dir == "asc") {
      s.descending = false;
    } else if (dir == "desc") {
      s.descending = true;
    } else {
      throw ConfigurationError("invalid sort '" + std::string(spec) + "': direction must be asc or desc", {},
                               ErrorKind::usage);
    }
  }
  return s;
}

std::vector<const CachedRepo*> select_repos(const CacheInfo& info, const std::vector<RepoFilter>& filters,
                                            const RepoSort& sort, util::SystemTime now)
{
  std::vector<const CachedRepo*> out;
  for (const auto& r : info.repos) {
    if (std::all_of(filters.begin(), filters.end(),
                    [&](const RepoFilter& f) { return matches(f, r, now); })) {
      out.push_back(&r);
    }
  }
  const auto less = [&](const CachedRepo* pa, const CachedRepo* pb) {
    const CachedRepo& a = *pa;
    const CachedRepo& b = *pb;
    switch (sort.key) {
    case RepoSort::Key::size:
      if (a.size_on_disk != b.size_on_disk) {
        return sort.descending ? a.size_on_disk > b.size_on_disk : a.size_on_disk < b.size_on_disk;
      }
      break;
    case RepoSort::Key::accessed:
      if (a.last_accessed != b.last_accessed) {
        return sort.descending ? a.last_accessed > b.last_accessed : a.last_accessed < b.last_accessed;
      }
      break;
    case RepoSort::Key::modified:
      if (a.last_modified != b.last_modified) {
        return sort.descending ? a.last_modified > b.last_modified : a.last_modified < b.last_modified;
      }
      break;
    case RepoSort::Key::name: {
      const auto ia = a.display_id();
      const auto ib = b.display_id();
      if (ia != ib) {
        return sort.descending ? ia > ib : ia < ib;
      }
      break;
    }
    }
    return a.display_id() < b.display_id();
  };
  std::sort(out.begin(), out.end(), less);
  return out;
}

} // namespace modelmgr::cache
