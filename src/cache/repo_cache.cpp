#include "cache/repo_cache.hpp"

#include "util/fs.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::cache {

namespace fs = std::filesystem;

namespace {

void require_commit(std::string_view commit)
{
  if (!is_commit_hash(commit)) {
    throw std::invalid_argument("invalid commit hash '" + std::string(commit) +
                                "': expected 40 lower-case hex digits");
  }
}

void require_etag(std::string_view etag)
{
  if (auto error = etag_error(etag)) {
    throw std::invalid_argument("invalid etag '" + std::string(etag) + "': " + *error);
  }
}

// Our temp names in snapshot folders: ".<name>.<8 hex>.tmp" (util::TempFile::create_beside and the
// link temp below).
bool is_temp_name(std::string_view name)
{
  if (name.size() < 15 || name.front() != '.' || name.substr(name.size() - 4) != ".tmp") {
    return false;
  }
  const std::string_view hex = name.substr(name.size() - 12, 8);
  return name[name.size() - 13] == '.' && std::all_of(hex.begin(), hex.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool is_regular_file_following(const fs::path& path, struct stat* out = nullptr)
{
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return false;
  }
  if (out != nullptr) {
    *out = st;
  }
  return S_ISREG(st.st_mode);
}

std::optional<std::string> read_link(const fs::path& path)
{
  std::error_code ec;
  fs::path target = fs::read_symlink(path, ec);
  if (ec) {
    return std::nullopt;
  }
  return target.string();
}

} // namespace

std::optional<std::string> etag_error(std::string_view etag)
{
  if (etag.empty()) {
    return std::string("it is empty");
  }
  if (etag.size() > 255) {
    return std::string("it is longer than 255 bytes");
  }
  if (etag.front() == '.') {
    return std::string("it starts with '.'");
  }
  for (char c : etag) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                    c == '_' || c == '-' || c == '+' || c == '=';
    if (!ok) {
      return std::string("it contains a character other than [A-Za-z0-9._+=-]");
    }
  }
  return std::nullopt;
}

fs::path lock_path(const fs::path& cache_root, std::string_view repo_folder, std::string_view etag)
{
  require_etag(etag);
  return lock_dir(cache_root, repo_folder) / (std::string(etag) + ".lock");
}

fs::path lock_dir(const fs::path& cache_root, std::string_view repo_folder)
{
  return cache_root / ".locks" / std::string(repo_folder);
}

bool write_cachedir_tag_if_missing(const fs::path& dir) noexcept
{
  try {
    const fs::path tag = dir / "CACHEDIR.TAG";
    struct stat st {};
    if (::lstat(tag.c_str(), &st) == 0) {
      return false;
    }
    util::atomic_write_file(tag, k_cachedir_tag);
    return true;
  } catch (...) {
    return false;
  }
}

RepoCache::RepoCache(fs::path cache_root, RepoType type, std::string repo_id, const util::Env& env)
    : m_root(std::move(cache_root)), m_type(type), m_repo_id(std::move(repo_id)),
      m_folder(repo_folder_name(m_type, m_repo_id)),
      m_symlinks_disabled(util::env_bool(env, "HF_HUB_DISABLE_SYMLINKS"))
{
  validate_repo_id(m_repo_id);
}

RepoCache::RepoCache(const RepoCache& other)
    : m_root(other.m_root), m_type(other.m_type), m_repo_id(other.m_repo_id), m_folder(other.m_folder),
      m_symlinks_disabled(other.m_symlinks_disabled), m_symlinks_failed(other.m_symlinks_failed.load())
{
}

RepoCache& RepoCache::operator=(const RepoCache& other)
{
  if (this != &other) {
    m_root = other.m_root;
    m_type = other.m_type;
    m_repo_id = other.m_repo_id;
    m_folder = other.m_folder;
    m_symlinks_disabled = other.m_symlinks_disabled;
    m_symlinks_failed.store(other.m_symlinks_failed.load());
  }
  return *this;
}

// ---- paths ----

fs::path RepoCache::blob_path(std::string_view etag) const
{
  require_etag(etag);
  return blobs_dir() / std::string(etag);
}

fs::path RepoCache::incomplete_path(std::string_view etag) const
{
  require_etag(etag);
  return blobs_dir() / (std::string(etag) + ".modelmgr.incomplete");
}

fs::path RepoCache::resume_state_path(std::string_view etag) const
{
  require_etag(etag);
  return blobs_dir() / (std::string(etag) + ".modelmgr.state.incomplete");
}

fs::path RepoCache::snapshot_dir(std::string_view commit) const
{
  require_commit(commit);
  return snapshots_dir() / std::string(commit);
}

fs::path RepoCache::snapshot_file(std::string_view commit, std::string_view repo_path) const
{
  return snapshot_dir(commit) / util::safe_relative_path(repo_path);
}

fs::path RepoCache::ref_path(std::string_view revision) const
{
  if (auto error = revision_error(revision)) {
    throw std::invalid_argument("invalid revision '" + std::string(revision) + "': " + *error);
  }
  return refs_dir() / util::safe_relative_path(revision);
}

fs::path RepoCache::no_exist_path(std::string_view commit, std::string_view repo_path) const
{
  require_commit(commit);
  return no_exist_dir() / std::string(commit) / util::safe_relative_path(repo_path);
}

fs::path RepoCache::lock_path(std::string_view etag) const
{
  return cache::lock_path(m_root, m_folder, etag);
}

fs::path RepoCache::tree_cache_path(std::string_view commit) const
{
  require_commit(commit);
  return trees_dir() / (std::string(commit) + ".json");
}

// ---- layout ----

void RepoCache::ensure_layout() const
{
  util::create_directories(blobs_dir());
  util::create_directories(snapshots_dir());
  util::create_directories(refs_dir());
}

// ---- refs ----

std::optional<std::string> RepoCache::read_ref(std::string_view revision) const
{
  const auto content = util::read_file_if_exists(ref_path(revision));
  if (!content) {
    return std::nullopt;
  }
  const std::string_view commit = util::trim(*content);
  if (!is_commit_hash(commit)) {
    return std::nullopt;
  }
  return std::string(commit);
}

bool RepoCache::write_ref(std::string_view revision, std::string_view commit) const
{
  require_commit(commit);
  const fs::path path = ref_path(revision);
  if (is_commit_hash(revision)) {
    return false;
  }
  // Compare raw bytes: a ref holding "<sha>\n" (written by another tool) is rewritten, since Python reads
  // refs unstripped and would miss the snapshot offline.
  if (const auto existing = util::read_file_if_exists(path); existing && *existing == commit) {
    return false;
  }
  util::create_directories(path.parent_path());
  util::atomic_write_file(path, commit);
  return true;
}

std::optional<std::string> RepoCache::resolve_offline(std::string_view revision) const
{
  if (is_commit_hash(revision)) {
    return std::string(revision);
  }
  if (revision_error(revision)) {
    return std::nullopt;
  }
  return read_ref(revision);
}

// ---- blobs ----

bool RepoCache::has_blob(std::string_view etag, std::optional<std::uint64_t> expected_size) const
{
  struct stat st {};
  if (!is_regular_file_following(blob_path(etag), &st)) {
    return false;
  }
  return !expected_size || static_cast<std::uint64_t>(st.st_size) == *expected_size;
}

int RepoCache::open_incomplete(std::string_view etag) const
{
  const fs::path temp = incomplete_path(etag);
  const int fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) {
      throw util::make_fs_error(
          err, "refusing to write through a symbolic link planted at the temporary file", temp);
    }
    throw util::make_fs_error(err, "create", temp);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw util::make_fs_error(err, "stat", temp);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw util::make_fs_error(EINVAL, "refusing to use the temporary file (not a regular file)", temp);
  }
  return fd;
}

std::optional<std::uint64_t> RepoCache::adopt_foreign_incomplete(std::string_view etag,
                                                                 std::uint64_t expected_size) const
{
  require_etag(etag);
  const fs::path foreign = blobs_dir() / (std::string(etag) + ".incomplete");
  struct stat st {};
  if (::lstat(foreign.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return std::nullopt;
    }
    throw util::make_fs_error(errno, "stat", foreign);
  }
  struct stat ours {};
  const bool keep = S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) <= expected_size &&
                    ::lstat(resume_state_path(etag).c_str(), &ours) != 0;
  if (!keep) {
    // unlink() removes a symlink itself, never its target.
    if (::unlink(foreign.c_str()) != 0 && errno != ENOENT) {
      throw util::make_fs_error(errno, "remove", foreign);
    }
    return std::nullopt;
  }
  const fs::path temp = incomplete_path(etag);
  if (::rename(foreign.c_str(), temp.c_str()) != 0) {
    throw util::make_fs_error(errno, "rename '" + foreign.string() + "' to", temp);
  }
  return static_cast<std::uint64_t>(st.st_size);
}

mode_t RepoCache::default_blob_mode() const
{
  util::create_directories(blobs_dir());
  return util::default_file_mode(blobs_dir());
}

fs::path RepoCache::commit_blob(int fd, const fs::path& temp_path, std::string_view etag,
                                util::DirSyncBatch* dir_sync, std::optional<mode_t> mode) const
{
  fs::path target;
  try {
    target = blob_path(etag);
    // The writer may have created the temp with 0600 (mkstemp) or under another umask: blobs get the mode
    // a plain new file gets here, so a shared cache stays readable by the group when the umask says so.
    if (!mode) {
      mode = default_blob_mode();
    }
    if (::fchmod(fd, *mode) != 0) {
      throw util::make_fs_error(errno, "chmod", temp_path);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  util::commit_fd(fd, temp_path, target, dir_sync);
  return target;
}

// ---- snapshots ----

LinkKind RepoCache::link_snapshot(std::string_view commit, std::string_view repo_path, std::string_view etag,
                                  util::DirSyncBatch* dir_sync) const
{
  const fs::path blob = blob_path(etag);
  const fs::path link = snapshot_file(commit, repo_path);
  if (!is_regular_file_following(blob)) {
    throw util::make_fs_error(ENOENT, "link snapshot file to missing blob", blob);
  }
  const fs::path dir = link.parent_path();
  util::create_directories(dir);
  if (!m_symlinks_disabled && !m_symlinks_failed.load()) {
    // Relative so that the cache can be moved or mounted elsewhere: ../../blobs/<etag> plus one "../" per
    // sub-folder of repo_path.
    const fs::path target = util::relative_path_from(dir, blob);
    if (read_link(link) == target.string()) {
      return LinkKind::symlink;
    }
    const std::string prefix = "." + link.filename().string().substr(0, 241) + ".";
    for (int attempt = 0; attempt < 16; ++attempt) {
      const fs::path tmp = dir / (prefix + util::random_hex(8) + ".tmp");
      if (::symlink(target.c_str(), tmp.c_str()) != 0) {
        if (errno == EEXIST) {
          continue;
        }
        // EPERM/EOPNOTSUPP on FAT, some FUSE and SMB mounts: remember and copy from now on.
        m_symlinks_failed.store(true);
        break;
      }
      if (::rename(tmp.c_str(), link.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw util::make_fs_error(err, "rename '" + tmp.string() + "' to", link);
      }
      if (dir_sync) {
        dir_sync->add(dir);
      } else {
        util::fsync_dir(dir);
      }
      return LinkKind::symlink;
    }
  }
  util::copy_file_atomic(blob, link);
  return LinkKind::copy;
}

bool RepoCache::has_snapshot_file(std::string_view commit, std::string_view repo_path) const
{
  return is_regular_file_following(snapshot_file(commit, repo_path));
}

std::vector<std::string> RepoCache::snapshot_files(std::string_view commit) const
{
  const fs::path root = snapshot_dir(commit);
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return out;
  }
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) {
    throw util::make_fs_error(ec.value(), "list", root);
  }
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) {
      throw util::make_fs_error(ec.value(), "list", root);
    }
    const fs::directory_entry& entry = *it;
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) {
      continue;
    }
    if (is_temp_name(entry.path().filename().string())) {
      continue;
    }
    out.push_back(entry.path().lexically_relative(root).generic_string());
  }
  if (ec) {
    throw util::make_fs_error(ec.value(), "list", root);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- .no_exist ----

void RepoCache::mark_no_exist(std::string_view commit, std::string_view repo_path) const
{
  const fs::path marker = no_exist_path(commit, repo_path);
  util::create_directories(marker.parent_path());
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0) {
    throw util::make_fs_error(errno, "create", marker);
  }
  ::close(fd);
}

bool RepoCache::is_marked_no_exist(std::string_view commit, std::string_view repo_path) const
{
  struct stat st {};
  return ::lstat(no_exist_path(commit, repo_path).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// ---- tree cache ----

void RepoCache::write_tree_cache(std::string_view commit, const std::vector<TreeFile>& files) const
{
  const fs::path path = tree_cache_path(commit);
  util::create_directories(path.parent_path());
  util::atomic_write_file(path, tree_cache_json(files));
}

std::optional<std::vector<TreeFile>> RepoCache::read_tree_cache(std::string_view commit) const
{
  std::optional<std::string> text;
  try {
    text = util::read_file_if_exists(tree_cache_path(commit));
  } catch (const std::system_error&) {
    return std::nullopt;
  }
  if (!text) {
    return std::nullopt;
  }
  return parse_tree_cache_json(*text);
}

} // namespace modelmgr::cache
