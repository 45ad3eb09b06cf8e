#include "util/hash.hpp"

#include <array>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

namespace modelmgr::util {

struct Hasher::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx()
  {
    if (md) {
      EVP_MD_CTX_free(md);
    }
  }
};

Hasher::Hasher(HashKind kind) : m_kind(kind), m_ctx(std::make_unique<Ctx>())
{
  m_ctx->md = EVP_MD_CTX_new();
  if (!m_ctx->md ||
      EVP_DigestInit_ex(m_ctx->md, kind == HashKind::sha256 ? EVP_sha256() : EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot initialise digest");
  }
}

Hasher::~Hasher() = default;
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;

void Hasher::update(std::span<const char> data)
{
  if (!data.empty()) {
    EVP_DigestUpdate(m_ctx->md, data.data(), data.size());
  }
}

std::string Hasher::hex_digest()
{
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(m_ctx->md, out.data(), &len);
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(digits[out[i] >> 4]);
    hex.push_back(digits[out[i] & 0xf]);
  }
  return hex;
}

bool is_hex(std::string_view s) noexcept
{
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return !s.empty();
}

EtagKind etag_kind(std::string_view etag) noexcept
{
  if (etag.size() == 64 && is_hex(etag)) {
    return EtagKind::sha256;
  }
  if (etag.size() == 40 && is_hex(etag)) {
    return EtagKind::git_sha1;
  }
  return EtagKind::opaque;
}

Hasher hasher_for_etag(std::string_view etag, std::uint64_t size)
{
  if (etag_kind(etag) == EtagKind::git_sha1) {
    Hasher h(HashKind::sha1);
    std::string header = "blob " + std::to_string(size);
    header.push_back('\0');
    h.update(header);
    return h;
  }
  return Hasher(HashKind::sha256);
}

namespace {
void hash_fd_into(const std::filesystem::path& file, Hasher& h, std::uint64_t* size_out, bool size_only)
{
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(), "cannot open " + file.string());
  }
  std::vector<char> buf(size_only ? 0 : 4 << 20);
  std::uint64_t total = 0;
  if (size_only) {
    total = std::filesystem::file_size(file);
  } else {
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "cannot read " + file.string());
      }
      if (n == 0) {
        break;
      }
      h.update(std::span<const char>(buf.data(), static_cast<size_t>(n)));
      total += static_cast<std::uint64_t>(n);
    }
  }
  ::close(fd);
  if (size_out) {
    *size_out = total;
  }
}
} // namespace

std::string hash_file_for_etag(const std::filesystem::path& file, std::string_view etag)
{
  std::uint64_t size = std::filesystem::file_size(file);
  Hasher h = hasher_for_etag(etag, size);
  hash_fd_into(file, h, nullptr, false);
  return h.hex_digest();
}

std::string sha256_file(const std::filesystem::path& file)
{
  Hasher h(HashKind::sha256);
  hash_fd_into(file, h, nullptr, false);
  return h.hex_digest();
}

std::string sha256_hex(std::string_view data)
{
  Hasher h(HashKind::sha256);
  h.update(data);
  return h.hex_digest();
}

std::string git_blob_sha1_hex(std::string_view content)
{
  Hasher h = hasher_for_etag(std::string(40, '0'), content.size());
  h.update(content);
  return h.hex_digest();
}

} // namespace modelmgr::util
