#pragma once
// Filesystem primitives the cache is built on: atomic replacement of files (temp beside the target, fsync,
// rename, fsync of the directory), RAII temp files, relative symlink targets, free space, hard links with
// a copy fallback, and validation of untrusted repo-relative paths.
//
// Error convention (util/ and cache/): I/O failures throw std::system_error whose message names the
// operation and the path; malformed *input* (a hostile file name, a junk size string) throws
// std::invalid_argument with the reason; "not there" is an empty std::optional, never an exception.

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>

#include <sys/types.h>

namespace modelmgr::util {

// Returns `chars` random lower-case hex digits from the kernel CSPRNG. Throws std::system_error.
std::string random_hex(std::size_t chars);

// Returns the system_error that describes errno `err` for `what` on `path` ("open '/x/y': Permission
// denied").
std::system_error make_fs_error(int err, std::string_view what, const std::filesystem::path& path);

// Returns the permissions a new regular file gets in `dir` (0666 minus umask or default ACL), learned by
// creating and deleting a probe file (umask() itself is process-global and racy). Throws std::system_error.
mode_t default_file_mode(const std::filesystem::path& dir);

// A uniquely named file created with O_EXCL (mode 0666 & ~umask) that is deleted by the destructor unless
// committed or released. Not thread-safe; movable.
class TempFile {
public:
  // Creates `<dir>/<prefix><8 hex><suffix>`. Throws std::system_error.
  static TempFile create(const std::filesystem::path& dir, std::string_view prefix, std::string_view suffix);
  // Creates `.<name>.<8 hex>.tmp` beside `target` (hidden, so half-written files never look real).
  static TempFile create_beside(const std::filesystem::path& target);

  TempFile(TempFile&& other) noexcept;
  TempFile& operator=(TempFile&& other) noexcept;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();

  // Returns the temp file's path.
  const std::filesystem::path& path() const noexcept { return m_path; }
  // Returns the open descriptor, or -1 after close()/commit().
  int fd() const noexcept { return m_fd; }
  // Writes all of `data` at the current offset. Throws std::system_error (ENOSPC included).
  void write(std::string_view data);
  // Flushes data and metadata to stable storage. Throws std::system_error.
  void sync();
  // Closes the descriptor (the file stays until commit or destruction). Throws std::system_error.
  void close();
  // fsyncs, closes, renames over `target` and fsyncs the target's directory. Throws std::system_error;
  // the temp file is still deleted by the destructor if the rename failed.
  void commit(const std::filesystem::path& target);
  // Hands the file over to the caller: the destructor still closes the descriptor but no longer deletes the
  // file. Returns its path.
  std::filesystem::path release() noexcept;

private:
  TempFile(std::filesystem::path path, int fd) : m_path(std::move(path)), m_fd(fd) {}
  void discard() noexcept;

  std::filesystem::path m_path;
  int m_fd = -1;
  bool m_owned = true;
};

// Replaces `path` with `content` atomically: temp `.<name>.<8 hex>.tmp` beside it, write, fsync, rename,
// fsync the directory. The parent directory must exist. A symlink at `path` is replaced, not followed.
// Throws std::system_error; the temp file is removed on any failure.
void atomic_write_file(const std::filesystem::path& path, std::string_view content);
// Creates `dir` and its parents (no-op when it exists). Throws std::system_error naming the folder.
void create_directories(const std::filesystem::path& dir);

// Folders whose entries changed (renames into place) and need an fsync to make that durable, synced once
// each by flush() instead of once per file: a pull of 1,500 small files otherwise spends most of its time
// in directory fsyncs. Thread-safe. Losing a rename in a crash is harmless (the file is fetched again);
// what must never happen, garbage under a final name, is prevented by fsyncing the file before the rename.
class DirSyncBatch {
public:
  DirSyncBatch() = default;
  DirSyncBatch(const DirSyncBatch&) = delete;
  DirSyncBatch& operator=(const DirSyncBatch&) = delete;
  ~DirSyncBatch();
  void add(const std::filesystem::path& dir);
  // fsyncs every folder added since the last flush. Throws std::system_error (after trying all of them).
  void flush();

private:
  std::mutex m_mutex;
  std::set<std::filesystem::path> m_dirs;
};

// Returns the whole content of `path`. Throws std::system_error (ENOENT included).
std::string read_file(const std::filesystem::path& path);
// Returns the content of `path`, or nullopt if it does not exist. Throws std::system_error on other errors.
std::optional<std::string> read_file_if_exists(const std::filesystem::path& path);

// fsyncs a directory so that entries created or renamed in it survive a crash. Throws std::system_error.
void fsync_dir(const std::filesystem::path& dir);

// Returns the relative path to write into a symlink placed in `link_dir` that points at `target`
// (lexical, both made absolute first); `target` itself when no relative path exists.
std::filesystem::path relative_path_from(const std::filesystem::path& link_dir,
                                         const std::filesystem::path& target);

// Returns the bytes available to an unprivileged user on the filesystem that holds (or would hold) `path`,
// walking up to the nearest existing ancestor. Throws std::system_error.
std::uint64_t free_space(const std::filesystem::path& path);

// Makes the file written through `fd` durable under its final name, the one commit path of every final
// file: fsync `fd`, close it (checked: NFS reports deferred write errors there), rename `temp` over
// `target`, then fsync the target's folder (or leave that to `dir_sync`). `fd` is closed in every case.
// Throws std::system_error naming the step and the path; `temp` is left in place when it was not renamed.
void commit_fd(int fd, const std::filesystem::path& temp, const std::filesystem::path& target,
               DirSyncBatch* dir_sync = nullptr);

enum class LinkMethod { hardlink, reflink, copy };
// Makes `dst` a hard link to `src` (else a full copy, fsynced) and puts it in place atomically via a temp
// name + rename, replacing an existing `dst`. Returns which method was used. Throws std::system_error.
LinkMethod hardlink_or_copy(const std::filesystem::path& src, const std::filesystem::path& dst);
// Makes `dst` an independent file with the content of `src`, atomically (temp beside `dst`, fsync,
// checked close, rename): a reflink (FICLONE: shared extents, copy-on-write, instant) where the filesystem
// supports it, else a copy. Never shares the inode: writing to `dst` cannot change `src`. Returns
// reflink or copy. Throws std::system_error.
LinkMethod clone_or_copy(const std::filesystem::path& src, const std::filesystem::path& dst);
// Copies `src` to `dst` atomically (temp + fsync + rename), never linking. Throws std::system_error.
void copy_file_atomic(const std::filesystem::path& src, const std::filesystem::path& dst);

// Returns why `repo_path` (a file name from the Hub: untrusted) cannot be used as a relative path under a
// local directory, or nullopt if it is safe. Rejected: empty, NUL, absolute, a Windows drive prefix,
// backslashes, empty / "." / ".." segments, a trailing "/", segments over 255 bytes.
std::optional<std::string> relative_path_error(std::string_view repo_path);
// Returns `repo_path` as a relative std::filesystem::path of its "/"-separated segments. Throws
// std::invalid_argument naming the path and the reason when relative_path_error() reports one.
std::filesystem::path safe_relative_path(std::string_view repo_path);

} // namespace modelmgr::util
