// The emulator's repo model: generated content, files with lazily cached hashes, commits and revisions.

#include "emulator/repo_model.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace modelmgr::emulator {

namespace {

constexpr std::uint64_t k_golden = 0x9E3779B97F4A7C15ull;

inline std::uint64_t mix64(std::uint64_t z) noexcept
{
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Word `index` of stream `seed`: splitmix64 evaluated at an arbitrary position, so any offset can be
// produced without generating what precedes it.
inline std::uint64_t word_at(std::uint64_t base, std::uint64_t index) noexcept
{
  return mix64(base + (index + 1) * k_golden);
}

// Hashing a 300 MiB generated file takes ~0.3 s; tests create many emulators with the same default repos,
// so results are shared process-wide, keyed by everything that determines the content.
struct HashSlot {
  std::once_flag sha256_once;
  std::once_flag sha1_once;
  std::string sha256;
  std::string sha1;
};

std::shared_ptr<HashSlot> hash_slot_for(const FileSpec& spec)
{
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<HashSlot>> slots;
  std::string key = fmt::format("{}:{}:{}", spec.generated_size, spec.seed, util::sha256_hex(spec.content));
  std::lock_guard lock(mutex);
  auto& slot = slots[key];
  if (!slot) {
    slot = std::make_shared<HashSlot>();
  }
  return slot;
}

std::string hash_content(const RepoFile& file, util::HashKind kind)
{
  util::Hasher hasher(kind);
  if (kind == util::HashKind::sha1) {
    std::string header = fmt::format("blob {}", file.size());
    header.push_back('\0');
    hasher.update(header);
  }
  constexpr std::size_t k_block = 1 << 20;
  std::vector<char> buffer(k_block);
  for (std::uint64_t offset = 0; offset < file.size();) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(k_block, file.size() - offset));
    file.read(offset, std::span<char>(buffer.data(), n));
    hasher.update(std::span<const char>(buffer.data(), n));
    offset += n;
  }
  return hasher.hex_digest();
}

bool is_hex_string(std::string_view s)
{
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

} // namespace

void generate_bytes(std::uint64_t seed, std::uint64_t offset, std::span<char> out)
{
  const std::uint64_t base = mix64(seed ^ 0x6D6F64656C6D6772ull);
  char* dst = out.data();
  std::size_t remaining = out.size();
  std::uint64_t index = offset / 8;
  // Leading partial word.
  if (auto skip = static_cast<std::size_t>(offset % 8); skip != 0 && remaining > 0) {
    std::uint64_t w = word_at(base, index++);
    char bytes[8];
    std::memcpy(bytes, &w, 8);
    std::size_t n = std::min<std::size_t>(8 - skip, remaining);
    std::memcpy(dst, bytes + skip, n);
    dst += n;
    remaining -= n;
  }
  // Whole words: the hot loop (memcpy keeps it alias-safe and compiles to a plain store).
  while (remaining >= 8) {
    std::uint64_t w = word_at(base, index++);
    std::memcpy(dst, &w, 8);
    dst += 8;
    remaining -= 8;
  }
  if (remaining > 0) {
    std::uint64_t w = word_at(base, index);
    std::memcpy(dst, &w, remaining);
  }
}

FileSpec FileSpec::text(std::string path, std::string content, std::optional<bool> lfs)
{
  FileSpec spec;
  spec.path = std::move(path);
  spec.content = std::move(content);
  spec.lfs = lfs;
  return spec;
}

FileSpec FileSpec::generated(std::string path, std::uint64_t size, std::uint64_t seed,
                             std::optional<bool> lfs, std::string prefix)
{
  if (size == 0 || prefix.size() > size) {
    throw std::invalid_argument("FileSpec::generated: size must be > 0 and >= the prefix size");
  }
  FileSpec spec;
  spec.path = std::move(path);
  spec.content = std::move(prefix);
  spec.generated_size = size;
  spec.seed = seed;
  spec.lfs = lfs;
  return spec;
}

RepoFile::RepoFile(FileSpec spec) : m_spec(std::move(spec))
{
  if (m_spec.path.empty() || m_spec.path.front() == '/' || m_spec.path.back() == '/') {
    throw std::invalid_argument(fmt::format("bad repo file path '{}'", m_spec.path));
  }
  if (m_spec.generated_size > 0 && m_spec.content.size() > m_spec.generated_size) {
    throw std::invalid_argument(fmt::format("{}: literal prefix longer than generated size", m_spec.path));
  }
  m_size = m_spec.generated_size > 0 ? m_spec.generated_size : m_spec.content.size();
  m_lfs = m_spec.lfs.value_or(m_spec.generated_size > 0 || m_size > k_default_lfs_threshold);
}

void RepoFile::read(std::uint64_t offset, std::span<char> out) const
{
  if (offset > m_size || out.size() > m_size - offset) {
    throw std::out_of_range(fmt::format("{}: read past the end", m_spec.path));
  }
  std::size_t done = 0;
  if (offset < m_spec.content.size()) {
    done = std::min<std::size_t>(out.size(), m_spec.content.size() - offset);
    std::memcpy(out.data(), m_spec.content.data() + offset, done);
  }
  if (done < out.size()) {
    generate_bytes(m_spec.seed, offset + done, out.subspan(done));
  }
}

std::string RepoFile::read(std::uint64_t offset, std::size_t length) const
{
  std::string out(length, '\0');
  read(offset, std::span<char>(out.data(), out.size()));
  return out;
}

const std::string& RepoFile::sha256() const
{
  std::call_once(m_sha256_once, [this] {
    if (!is_generated()) {
      m_sha256 = util::sha256_hex(m_spec.content);
      return;
    }
    auto slot = hash_slot_for(m_spec);
    std::call_once(slot->sha256_once, [&] { slot->sha256 = hash_content(*this, util::HashKind::sha256); });
    m_sha256 = slot->sha256;
  });
  return m_sha256;
}

const std::string& RepoFile::git_sha1() const
{
  std::call_once(m_sha1_once, [this] {
    if (!is_generated()) {
      m_sha1 = util::git_blob_sha1_hex(m_spec.content);
      return;
    }
    auto slot = hash_slot_for(m_spec);
    std::call_once(slot->sha1_once, [&] { slot->sha1 = hash_content(*this, util::HashKind::sha1); });
    m_sha1 = slot->sha1;
  });
  return m_sha1;
}

std::string RepoFile::lfs_pointer() const
{
  return fmt::format("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n", sha256(),
                     m_size);
}

const std::string& RepoFile::blob_id() const
{
  std::call_once(m_blob_once,
                 [this] { m_blob_id = m_lfs ? util::git_blob_sha1_hex(lfs_pointer()) : git_sha1(); });
  return m_blob_id;
}

std::shared_ptr<const RepoFile> Commit::find(std::string_view path) const
{
  auto it = std::lower_bound(files.begin(), files.end(), path,
                             [](const auto& file, std::string_view p) { return file->path() < p; });
  if (it != files.end() && (*it)->path() == path) {
    return *it;
  }
  return nullptr;
}

const Commit* Repo::commit(std::string_view sha) const
{
  for (const auto& c : commits) {
    if (c.sha == sha) {
      return &c;
    }
  }
  return nullptr;
}

const Commit* Repo::resolve(std::string_view revision) const
{
  auto by_sha = [&](const std::string& sha) { return commit(sha); };
  if (auto it = branches.find(std::string(revision)); it != branches.end()) {
    return by_sha(it->second);
  }
  if (auto it = tags.find(std::string(revision)); it != tags.end()) {
    return by_sha(it->second);
  }
  if (revision.starts_with("refs/heads/")) {
    if (auto it = branches.find(std::string(revision.substr(11))); it != branches.end()) {
      return by_sha(it->second);
    }
  }
  if (revision.starts_with("refs/tags/")) {
    if (auto it = tags.find(std::string(revision.substr(10))); it != tags.end()) {
      return by_sha(it->second);
    }
  }
  if (revision.starts_with("refs/pr/")) {
    auto number = revision.substr(8);
    if (!number.empty() &&
        std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      if (auto it = pull_requests.find(std::stoi(std::string(number))); it != pull_requests.end()) {
        return by_sha(it->second);
      }
    }
    return nullptr;
  }
  // A full sha or a unique short prefix (the Hub accepts both; >= 7 hex like git's default abbreviation).
  if (revision.size() >= 7 && revision.size() <= 40 && is_hex_string(revision)) {
    const Commit* found = nullptr;
    for (const auto& c : commits) {
      if (c.sha.starts_with(revision)) {
        if (found) {
          return nullptr; // ambiguous
        }
        found = &c;
      }
    }
    return found;
  }
  return nullptr;
}

std::shared_ptr<const RepoFile> Repo::file(std::string_view path, std::string_view revision) const
{
  const Commit* c = resolve(revision);
  return c ? c->find(path) : nullptr;
}

std::string Repo::url_prefix() const
{
  if (type == "dataset") {
    return "datasets/";
  }
  if (type == "space") {
    return "spaces/";
  }
  return "";
}

std::string derived_commit_sha(std::string_view repo_id, std::size_t index)
{
  return util::git_blob_sha1_hex(fmt::format("modelmgr-emulator commit {} #{}", repo_id, index));
}

} // namespace modelmgr::emulator
