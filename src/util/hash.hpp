#pragma once
// Streaming SHA-256 / SHA-1 through OpenSSL EVP (uses SHA-NI where the CPU has it), and the two hashes the
// Hub names blobs by: sha256 of the content (LFS files) and the git blob sha1 ("blob <size>\0" + content).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace modelmgr::util {

enum class HashKind { sha256, sha1 };

class Hasher {
public:
  explicit Hasher(HashKind kind);
  ~Hasher();
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(std::span<const char> data);
  void update(std::string_view data) { update(std::span<const char>(data.data(), data.size())); }
  void update(const std::string& data) { update(std::string_view(data)); }
  void update(const char* data) { update(std::string_view(data)); }
  // Lower-case hex digest; the hasher cannot be updated afterwards.
  std::string hex_digest();
  HashKind kind() const noexcept { return m_kind; }

private:
  HashKind m_kind;
  struct Ctx;
  std::unique_ptr<Ctx> m_ctx;
};

// How the Hub names a blob: a 64-hex etag is the content's sha256 (LFS), a 40-hex etag the git blob sha1.
enum class EtagKind { sha256, git_sha1, opaque };
EtagKind etag_kind(std::string_view etag) noexcept;

// A hasher that produces the value to compare with `etag` for a file of `size` bytes: for git sha1 it is
// primed with the "blob <size>\0" header. Returns nullptr-like empty optional semantics via kind opaque:
// callers must check etag_kind() first.
Hasher hasher_for_etag(std::string_view etag, std::uint64_t size);

// Hashes a whole file on disk as `hasher_for_etag` would. Throws std::system_error on I/O errors.
std::string hash_file_for_etag(const std::filesystem::path& file, std::string_view etag);
std::string sha256_file(const std::filesystem::path& file);

std::string sha256_hex(std::string_view data);
std::string git_blob_sha1_hex(std::string_view content);

bool is_hex(std::string_view s) noexcept;

} // namespace modelmgr::util
