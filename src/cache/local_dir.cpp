#include "cache/local_dir.hpp"

#include "cache/paths.hpp"
#include "cache/repo_cache.hpp"
#include "util/lock.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace modelmgr::cache {

namespace fs = std::filesystem;

namespace {

// Python's repr(float): the shortest text that round-trips, always with a "." for integral values.
std::string python_float_repr(double value)
{
  std::string text = fmt::format("{}", value);
  if (text.find_first_of(".eEn") == std::string::npos) {
    text += ".0";
  }
  return text;
}

fs::path download_dir(const fs::path& local_dir)
{
  return local_dir_metadata_root(local_dir) / "download";
}

} // namespace

fs::path local_dir_metadata_root(const fs::path& local_dir)
{
  return local_dir / ".cache" / "huggingface";
}

void ensure_local_dir_metadata(const fs::path& local_dir)
{
  const fs::path root = local_dir_metadata_root(local_dir);
  util::create_directories(root);
  const fs::path gitignore = root / ".gitignore";
  struct stat st {};
  if (::lstat(gitignore.c_str(), &st) != 0) {
    try {
      util::atomic_write_file(gitignore, "*");
    } catch (const std::system_error&) {
      // Cosmetic, as in Python: a read-only folder still serves downloads already there.
    }
  }
  write_cachedir_tag_if_missing(root);
}

fs::path local_file_path(const fs::path& local_dir, std::string_view repo_path)
{
  const fs::path relative = util::safe_relative_path(repo_path);
  auto it = relative.begin();
  if (*it == ".cache" && ++it != relative.end() && *it == "huggingface") {
    throw std::invalid_argument("unsafe file path '" + std::string(repo_path) +
                                "': it is inside the local folder's metadata directory .cache/huggingface");
  }
  return local_dir / relative;
}

fs::path local_metadata_path(const fs::path& local_dir, std::string_view repo_path)
{
  return download_dir(local_dir) / (util::safe_relative_path(repo_path).string() + ".metadata");
}

fs::path local_lock_path(const fs::path& local_dir, std::string_view repo_path)
{
  return download_dir(local_dir) / (util::safe_relative_path(repo_path).string() + ".lock");
}

fs::path local_tree_cache_path(const fs::path& local_dir, std::string_view commit)
{
  if (!is_commit_hash(commit)) {
    throw std::invalid_argument("invalid commit hash '" + std::string(commit) +
                                "': expected 40 lower-case hex digits");
  }
  return local_dir_metadata_root(local_dir) / "trees" / (std::string(commit) + ".json");
}

std::string format_local_metadata(std::string_view commit, std::string_view etag, double timestamp)
{
  return std::string(commit) + "\n" + std::string(etag) + "\n" + python_float_repr(timestamp) + "\n";
}

std::optional<LocalFileMetadata> parse_local_metadata(std::string_view text)
{
  std::string_view lines[3];
  for (auto& line : lines) {
    if (text.empty()) {
      return std::nullopt;
    }
    const std::size_t eol = text.find('\n');
    line = util::trim(text.substr(0, eol));
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
  }
  const std::string number(lines[2]);
  if (number.empty()) {
    return std::nullopt;
  }
  char* end = nullptr;
  errno = 0;
  const double timestamp = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || errno == ERANGE || !std::isfinite(timestamp)) {
    return std::nullopt;
  }
  return LocalFileMetadata{std::string(lines[0]), std::string(lines[1]), timestamp};
}

std::optional<LocalFileMetadata> read_local_metadata(const fs::path& local_dir, std::string_view repo_path)
{
  const fs::path file = local_file_path(local_dir, repo_path);
  const fs::path metadata_path = local_metadata_path(local_dir, repo_path);
  util::create_directories(metadata_path.parent_path());
  // Python writes the metadata in place under this lock: reading without it could see a half-written
  // file, call it corrupt and delete it.
  util::FileLock lock(local_lock_path(local_dir, repo_path));
  lock.lock();
  const auto text = util::read_file_if_exists(metadata_path);
  if (!text) {
    return std::nullopt;
  }
  auto metadata = parse_local_metadata(*text);
  if (!metadata) {
    ::unlink(metadata_path.c_str());
    return std::nullopt;
  }
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return std::nullopt;
    }
    throw util::make_fs_error(errno, "stat", file);
  }
  // mtime may be coarser than time.time(): Python allows one second of slack.
  const double mtime = static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9;
  if (mtime - 1 <= metadata->timestamp) {
    return metadata;
  }
  return std::nullopt;
}

void write_local_metadata(const fs::path& local_dir, std::string_view repo_path, std::string_view commit,
                          std::string_view etag, util::SystemTime now)
{
  const fs::path metadata_path = local_metadata_path(local_dir, repo_path);
  ensure_local_dir_metadata(local_dir);
  util::create_directories(metadata_path.parent_path());
  util::FileLock lock(local_lock_path(local_dir, repo_path));
  lock.lock();
  util::atomic_write_file(metadata_path, format_local_metadata(commit, etag, util::to_unix_seconds(now)));
}

util::LinkMethod export_file(const fs::path& source, const fs::path& local_dir, std::string_view repo_path,
                             ExportMode mode)
{
  const fs::path target = local_file_path(local_dir, repo_path);
  util::create_directories(target.parent_path());
  if (mode == ExportMode::hardlink) {
    return util::hardlink_or_copy(source, target);
  }
  return util::clone_or_copy(source, target);
}

void write_local_tree_cache(const fs::path& local_dir, std::string_view commit,
                            const std::vector<TreeFile>& files)
{
  const fs::path path = local_tree_cache_path(local_dir, commit);
  util::create_directories(path.parent_path());
  util::atomic_write_file(path, tree_cache_json(files));
}

std::optional<std::vector<TreeFile>> read_local_tree_cache(const fs::path& local_dir, std::string_view commit)
{
  std::optional<std::string> text;
  try {
    text = util::read_file_if_exists(local_tree_cache_path(local_dir, commit));
  } catch (const std::system_error&) {
    return std::nullopt;
  }
  if (!text) {
    return std::nullopt;
  }
  return parse_tree_cache_json(*text);
}

} // namespace modelmgr::cache
