#include "server/cache_view.hpp"

#include "cache/repo_cache.hpp"
#include "server/url.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::server {

namespace fs = std::filesystem;

namespace {

constexpr int k_dir_flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

std::system_error io_error(int err, std::string_view what, const fs::path& where)
{
  return std::system_error(err, std::generic_category(), fmt::format("{} {}", what, where.string()));
}

// openat(dir, name) as a directory, never through a symlink; -1 when it is not one (or missing).
int open_dir_at(int dir_fd, const char* name)
{
  return ::openat(dir_fd, name, k_dir_flags);
}

std::shared_ptr<FileHandle> handle(int fd)
{
  return std::make_shared<FileHandle>(fd);
}

bool is_temp_name(std::string_view name)
{
  // Our own and Python's temp names beside links and refs: ".<name>.<hex>.tmp", "<name>.<hex>.tmp".
  return name.ends_with(".tmp") || name.ends_with(".incomplete") || name.ends_with(".lock");
}

// A git blob sha1 of a whole open file, remembered per (device, inode, size, mtime): copies in snapshot
// folders (HF_HUB_DISABLE_SYMLINKS) have no etag on disk.
std::string git_sha1_of(int fd, const struct stat& st)
{
  static std::mutex mutex;
  static std::map<std::tuple<dev_t, ino_t, off_t, long, long>, std::string> memo;
  auto key = std::make_tuple(st.st_dev, st.st_ino, st.st_size, static_cast<long>(st.st_mtim.tv_sec),
                             static_cast<long>(st.st_mtim.tv_nsec));
  {
    std::lock_guard lock(mutex);
    if (auto it = memo.find(key); it != memo.end()) {
      return it->second;
    }
  }
  util::Hasher hasher(util::HashKind::sha1);
  hasher.update(fmt::format("blob {}", st.st_size));
  hasher.update(std::string_view("\0", 1));
  std::vector<char> buf(1 << 20);
  off_t offset = 0;
  while (true) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "read a snapshot file to hash it");
    }
    if (n == 0) {
      break;
    }
    hasher.update(std::span<const char>(buf.data(), static_cast<std::size_t>(n)));
    offset += n;
  }
  std::string sha = hasher.hex_digest();
  std::lock_guard lock(mutex);
  if (memo.size() >= 4096) {
    memo.clear(); // bounded memory; a re-hash is only a cost
  }
  memo.emplace(key, sha);
  return sha;
}

CachedFile from_tree(const cache::TreeFile& t)
{
  CachedFile f;
  f.path = t.path;
  f.size = t.lfs_size.value_or(t.size);
  f.blob_id = t.blob_id;
  f.lfs_sha256 = t.lfs_sha256;
  if (f.lfs_sha256) {
    f.pointer_size = lfs_pointer_text(*f.lfs_sha256, f.size).size();
  }
  f.xet_hash = t.xet_hash;
  return f;
}

// Sets the hashes of a file named by its blob `etag`.
void describe_by_etag(CachedFile& f, const std::string& etag, std::uint64_t size)
{
  f.size = size;
  if (util::etag_kind(etag) == util::EtagKind::sha256) {
    f.lfs_sha256 = etag;
    std::string pointer = lfs_pointer_text(etag, size);
    f.pointer_size = pointer.size();
    f.blob_id = util::git_blob_sha1_hex(pointer);
  } else {
    f.lfs_sha256.reset();
    f.blob_id = etag;
  }
}

std::vector<std::string> split_path(std::string_view path)
{
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto pos = path.find('/', start);
    out.emplace_back(
        path.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) {
      return out;
    }
    start = pos + 1;
  }
}

} // namespace

std::string lfs_pointer_text(std::string_view sha256, std::uint64_t size)
{
  return fmt::format("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n", sha256, size);
}

// ---- RepoView ----

RepoView::RepoView(fs::path repo_dir, std::shared_ptr<FileHandle> repo_fd, cache::RepoType type,
                   std::string repo_id)
    : m_dir(std::move(repo_dir)), m_fd(std::move(repo_fd)), m_type(type), m_repo_id(std::move(repo_id))
{
}

std::optional<std::string> RepoView::resolve(std::string_view revision) const
{
  if (revision.empty() || cache::revision_error(revision)) {
    return std::nullopt;
  }
  cache::RepoCache rc(m_dir.parent_path(), m_type, m_repo_id, util::MapEnv{});
  if (cache::is_commit_hash(revision)) {
    struct stat st {};
    std::string snap = "snapshots/" + std::string(revision);
    std::string tree = "trees/" + std::string(revision) + ".json";
    if (::fstatat(m_fd->fd(), snap.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
      return std::string(revision);
    }
    if (::fstatat(m_fd->fd(), tree.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
      return std::string(revision);
    }
    return std::nullopt;
  }
  // A ref that is a folder ("refs" of refs/pr/1) or unreadable is no ref.
  auto read_ref = [&rc](std::string_view name) -> std::optional<std::string> {
    try {
      return rc.read_ref(name);
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  if (auto commit = read_ref(revision)) {
    return commit;
  }
  for (std::string_view prefix : {"refs/heads/", "refs/tags/"}) {
    if (revision.starts_with(prefix) && revision.size() > prefix.size()) {
      if (auto commit = read_ref(revision.substr(prefix.size()))) {
        return commit;
      }
    }
  }
  // A short commit: a unique prefix of a snapshot folder name.
  if (revision.size() >= 7 && revision.size() < 40 && util::is_hex(revision) &&
      util::to_lower(revision) == revision) {
    std::optional<std::string> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(m_dir / "snapshots", ec)) {
      std::string name = entry.path().filename().string();
      if (cache::is_commit_hash(name) && name.starts_with(revision)) {
        if (found) {
          return std::nullopt; // ambiguous
        }
        found = name;
      }
    }
    return found;
  }
  return std::nullopt;
}

int RepoView::open_blobs_dir() const
{
  return open_dir_at(m_fd->fd(), "blobs");
}

std::optional<std::string> RepoView::link_etag(int dir_fd, const std::string& name, std::size_t depth) const
{
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return std::nullopt;
  }
  if (S_ISREG(st.st_mode)) {
    return std::string();
  }
  if (!S_ISLNK(st.st_mode)) {
    return std::nullopt;
  }
  char buf[4096];
  ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) {
    return std::nullopt;
  }
  std::string_view target(buf, static_cast<std::size_t>(n));
  // Exactly "../" × (depth + 2) + "blobs/<etag>": snapshots/<commit>/<dirs…>/<name> → <repo>/blobs/<etag>.
  for (std::size_t i = 0; i < depth + 2; ++i) {
    if (!target.starts_with("../")) {
      return std::nullopt;
    }
    target.remove_prefix(3);
  }
  if (!target.starts_with("blobs/")) {
    return std::nullopt;
  }
  target.remove_prefix(6);
  if (cache::etag_error(target)) {
    return std::nullopt;
  }
  return std::string(target);
}

std::optional<CachedFile> RepoView::describe_present(int dir_fd, const std::string& name, std::size_t depth,
                                                     const std::string& path,
                                                     const std::map<std::string, CachedFile>* listing) const
{
  auto etag = link_etag(dir_fd, name, depth);
  if (!etag) {
    return std::nullopt;
  }
  CachedFile f;
  f.path = path;
  const CachedFile* listed = nullptr;
  if (listing) {
    if (auto it = listing->find(path); it != listing->end()) {
      listed = &it->second;
    }
  }
  struct stat st {};
  if (etag->empty()) {
    // A copy: its size is on disk, its hashes in the listing (or computed on open).
    int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      return std::nullopt;
    }
    FileHandle h(fd);
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      return std::nullopt;
    }
    if (listed && listed->size == static_cast<std::uint64_t>(st.st_size)) {
      f = *listed;
    } else {
      describe_by_etag(f, git_sha1_of(fd, st), static_cast<std::uint64_t>(st.st_size));
    }
  } else {
    int blobs = open_blobs_dir();
    if (blobs < 0) {
      return std::nullopt;
    }
    FileHandle b(blobs);
    if (::fstatat(blobs, etag->c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      return std::nullopt;
    }
    describe_by_etag(f, *etag, static_cast<std::uint64_t>(st.st_size));
    if (listed && listed->etag() == *etag) {
      f.xet_hash = listed->xet_hash;
    }
  }
  f.present = true;
  return f;
}

std::vector<CachedFile> RepoView::files(std::string_view commit) const
{
  std::map<std::string, CachedFile> out;
  cache::RepoCache rc(m_dir.parent_path(), m_type, m_repo_id, util::MapEnv{});
  std::optional<std::map<std::string, CachedFile>> listing;
  if (cache::is_commit_hash(commit)) {
    if (auto tree = rc.read_tree_cache(commit)) {
      listing.emplace();
      for (const auto& t : *tree) {
        if (repo_path_error(t.path)) {
          continue;
        }
        listing->emplace(t.path, from_tree(t));
      }
      out = *listing;
    }
  } else {
    return {};
  }
  // Walk snapshots/<commit>/ with descriptors (no symlinked folder is ever entered).
  std::string snap = "snapshots/" + std::string(commit);
  int root = ::openat(m_fd->fd(), snap.c_str(), k_dir_flags);
  if (root >= 0) {
    struct Frame {
      int fd;
      std::string prefix;
      std::size_t depth;
    };
    std::vector<Frame> stack{{root, "", 0}};
    while (!stack.empty()) {
      Frame frame = stack.back();
      stack.pop_back();
      DIR* dir = ::fdopendir(frame.fd);
      if (!dir) {
        ::close(frame.fd);
        continue;
      }
      while (auto* ent = ::readdir(dir)) {
        std::string name = ent->d_name;
        if (name == "." || name == ".." || is_temp_name(name)) {
          continue;
        }
        std::string path = frame.prefix + name;
        int sub = open_dir_at(::dirfd(dir), name.c_str());
        if (sub >= 0) {
          stack.push_back({sub, path + "/", frame.depth + 1});
          continue;
        }
        if (auto f = describe_present(::dirfd(dir), name, frame.depth, path, listing ? &*listing : nullptr)) {
          out[path] = std::move(*f);
        }
      }
      ::closedir(dir);
    }
  }
  std::vector<CachedFile> result;
  result.reserve(out.size());
  for (auto& [path, f] : out) {
    result.push_back(std::move(f));
  }
  return result;
}

std::optional<OpenedFile> RepoView::open(std::string_view commit, std::string_view path) const
{
  if (!cache::is_commit_hash(commit)) {
    return std::nullopt;
  }
  auto segs = split_path(path);
  std::string snap = "snapshots/" + std::string(commit);
  int dir = ::openat(m_fd->fd(), snap.c_str(), k_dir_flags);
  if (dir < 0) {
    return std::nullopt;
  }
  auto dir_handle = handle(dir);
  for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
    int sub = open_dir_at(dir_handle->fd(), segs[i].c_str());
    if (sub < 0) {
      return std::nullopt;
    }
    dir_handle = handle(sub);
  }
  const std::string& name = segs.back();
  auto etag = link_etag(dir_handle->fd(), name, segs.size() - 1);
  if (!etag) {
    return std::nullopt;
  }
  OpenedFile opened;
  opened.info.path = std::string(path);
  int fd = -1;
  if (etag->empty()) {
    fd = ::openat(dir_handle->fd(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  } else {
    int blobs = open_blobs_dir();
    if (blobs < 0) {
      return std::nullopt;
    }
    FileHandle b(blobs);
    fd = ::openat(blobs, etag->c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    opened.from_blob = true;
  }
  if (fd < 0) {
    return std::nullopt;
  }
  opened.file = handle(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (etag->empty()) {
    // A copy: prefer the listing's hashes when its size agrees, else hash the bytes.
    cache::RepoCache rc(m_dir.parent_path(), m_type, m_repo_id, util::MapEnv{});
    bool described = false;
    if (auto tree = rc.read_tree_cache(commit)) {
      for (const auto& t : *tree) {
        if (t.path == path && t.lfs_size.value_or(t.size) == size) {
          opened.info = from_tree(t);
          described = true;
          break;
        }
      }
    }
    if (!described) {
      describe_by_etag(opened.info, git_sha1_of(fd, st), size);
    }
  } else {
    describe_by_etag(opened.info, *etag, size);
  }
  opened.info.present = true;
  return opened;
}

bool RepoView::marked_missing(std::string_view commit, std::string_view path) const
{
  if (!cache::is_commit_hash(commit)) {
    return false;
  }
  std::string rel = ".no_exist/" + std::string(commit) + "/" + std::string(path);
  struct stat st {};
  return ::fstatat(m_fd->fd(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

std::vector<NamedRef> RepoView::refs() const
{
  std::vector<NamedRef> out;
  std::error_code ec;
  const fs::path refs = m_dir / "refs";
  fs::recursive_directory_iterator it(refs, ec), end;
  cache::RepoCache rc(m_dir.parent_path(), m_type, m_repo_id, util::MapEnv{});
  for (; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) {
      continue;
    }
    std::string name = it->path().lexically_relative(refs).generic_string();
    if (name.empty() || is_temp_name(name) || name.find("/.") != std::string::npos || name.starts_with(".")) {
      continue;
    }
    if (auto commit = rc.read_ref(name)) {
      out.push_back({name, *commit});
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::chrono::system_clock::time_point RepoView::last_modified(std::string_view commit) const
{
  struct stat st {};
  std::string snap = "snapshots/" + std::string(commit);
  if (cache::is_commit_hash(commit) && ::fstatat(m_fd->fd(), snap.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec));
  }
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

// ---- CacheView ----

CacheView::CacheView(fs::path root) : m_root(std::move(root))
{
  int fd = ::open(m_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    throw io_error(errno, "cannot open the cache folder", m_root);
  }
  m_fd = handle(fd);
}

std::optional<RepoView> CacheView::repo(cache::RepoType type, std::string_view repo_id) const
{
  if (cache::repo_id_error(repo_id)) {
    return std::nullopt;
  }
  std::string folder = cache::repo_folder_name(type, repo_id);
  int fd = open_dir_at(m_fd->fd(), folder.c_str());
  if (fd < 0) {
    return std::nullopt;
  }
  return RepoView(m_root / folder, handle(fd), type, std::string(repo_id));
}

} // namespace modelmgr::server
