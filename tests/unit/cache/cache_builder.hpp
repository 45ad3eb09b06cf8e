#pragma once
// Hand-built Hugging Face caches for the maintenance tests (rm, prune, verify): blobs, relative snapshot
// links as huggingface_hub writes them (§4.3), refs without newline, and a listing of what is left.

#include "support/test_util.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>

namespace modelmgr::test {

class CacheBuilder {
public:
  explicit CacheBuilder(std::filesystem::path root) : m_root(std::move(root))
  {
    std::filesystem::create_directories(m_root);
  }

  const std::filesystem::path& root() const { return m_root; }
  std::filesystem::path repo(const std::string& folder) const { return m_root / folder; }

  std::filesystem::path blob(const std::string& folder, const std::string& etag,
                             const std::string& content) const
  {
    const auto p = repo(folder) / "blobs" / etag;
    write_file(p, content);
    return p;
  }

  // snapshots/<commit>/<path> → ../../(../ per folder)blobs/<etag>
  std::filesystem::path link(const std::string& folder, const std::string& commit, const std::string& path,
                             const std::string& etag) const
  {
    const auto p = repo(folder) / "snapshots" / commit / path;
    std::filesystem::create_directories(p.parent_path());
    std::string target = "../../";
    for (char c : path) {
      if (c == '/') {
        target += "../";
      }
    }
    std::filesystem::create_symlink(target + "blobs/" + etag, p);
    return p;
  }

  void ref(const std::string& folder, const std::string& name, const std::string& commit) const
  {
    write_file(repo(folder) / "refs" / name, commit);
  }

  std::filesystem::path lock_file(const std::string& folder, const std::string& etag) const
  {
    const auto p = m_root / ".locks" / folder / (etag + ".lock");
    write_file(p, "");
    return p;
  }

  // Sets atime and mtime of `p` (not following links) to `age` ago.
  static void age(const std::filesystem::path& p, std::chrono::seconds age)
  {
    const auto t = std::chrono::system_clock::now() - age;
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
    const timespec ts[2] = {{static_cast<time_t>(s), 0}, {static_cast<time_t>(s), 0}};
    ::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  }

  // Every file and link under the root, relative, sorted (directories left out). Unlike list_tree(), a
  // snapshot link is listed under its own name, not its target's.
  std::vector<std::string> files() const
  {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(m_root)) {
      if (e.is_symlink() || !e.is_directory()) {
        out.push_back(e.path().lexically_relative(m_root).string());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

private:
  std::filesystem::path m_root;
};

} // namespace modelmgr::test
