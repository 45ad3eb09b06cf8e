// cache::verify_blobs (`modelmgr cache verify`): blobs named by sha256 and by git blob sha1 are re-hashed;
// a truncated and a byte-flipped blob are both reported in one pass (with the snapshot files using them),
// intact blobs and names that are no hash are not.

#include "cache/verify.hpp"
#include "cache_builder.hpp"
#include "util/hash.hpp"

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace modelmgr::cache {
namespace {

namespace fs = std::filesystem;
using test::CacheBuilder;
using test::TempDir;
using test::write_file;

const std::string k_c1 = std::string(40, 'a');
const std::string k_f = "models--org--name";

TEST(VerifyTest, ReportsTruncatedAndFlippedBlobsTogether)
{
  TempDir tmp;
  CacheBuilder cb(tmp.path() / "hub");
  const std::string weights(100000, 'w');
  const std::string config = "{\"hidden\": 64}\n";
  const std::string readme = "# readme\n";
  const std::string e_weights = util::sha256_hex(weights);
  const std::string e_config = util::git_blob_sha1_hex(config);
  const std::string e_readme = util::git_blob_sha1_hex(readme);
  cb.blob(k_f, e_weights, weights);
  cb.blob(k_f, e_config, config);
  cb.blob(k_f, e_readme, readme);
  cb.blob(k_f, "not-a-hash", "x");
  cb.link(k_f, k_c1, "model.bin", e_weights);
  cb.link(k_f, k_c1, "config.json", e_config);
  cb.link(k_f, k_c1, "sub/config.json", e_config);
  cb.link(k_f, k_c1, "README.md", e_readme);
  cb.link(k_f, k_c1, "odd", "not-a-hash");
  cb.ref(k_f, "main", k_c1);

  // Truncate the LFS blob, flip one byte of the git blob.
  fs::resize_file(cb.repo(k_f) / "blobs" / e_weights, 5000);
  std::string flipped = config;
  flipped[3] ^= 0x20;
  write_file(cb.repo(k_f) / "blobs" / e_config, flipped);

  const auto info = scan_cache(cb.root());
  ASSERT_EQ(info.repos.size(), 1u);
  const auto report = verify_blobs(info, {&info.repos[0]}, 2);
  EXPECT_EQ(report.blobs_checked, 3u);
  EXPECT_EQ(report.blobs_skipped, 1u);
  ASSERT_EQ(report.corrupt.size(), 2u);
  const auto& by_name = [&](const std::string& etag) -> const CorruptBlob& {
    return report.corrupt[0].etag == etag ? report.corrupt[0] : report.corrupt[1];
  };
  const auto& w = by_name(e_weights);
  EXPECT_EQ(w.etag, e_weights);
  EXPECT_EQ(w.reason, "sha256 mismatch");
  EXPECT_EQ(w.actual, util::sha256_hex(weights.substr(0, 5000)));
  ASSERT_EQ(w.users.size(), 1u);
  EXPECT_EQ(w.users[0].path, "model.bin");
  EXPECT_EQ(w.users[0].commit, k_c1);
  const auto& c = by_name(e_config);
  EXPECT_EQ(c.etag, e_config);
  EXPECT_EQ(c.reason, "git sha1 mismatch");
  ASSERT_EQ(c.users.size(), 2u);
  EXPECT_EQ(c.users[0].path, "config.json");
  EXPECT_EQ(c.users[1].path, "sub/config.json");
}

TEST(VerifyTest, IntactCacheAndOrphansChecked)
{
  TempDir tmp;
  CacheBuilder cb(tmp.path() / "hub");
  const std::string a = "alpha";
  cb.blob(k_f, util::sha256_hex(a), a);
  cb.link(k_f, k_c1, "a", util::sha256_hex(a));
  cb.blob(k_f, util::git_blob_sha1_hex("orphan"), "0rphan"); // corrupt orphan
  const auto info = scan_cache(cb.root());
  const auto report = verify_blobs(info, {&info.repos[0]}, 1);
  EXPECT_EQ(report.blobs_checked, 2u);
  ASSERT_EQ(report.corrupt.size(), 1u);
  EXPECT_TRUE(report.corrupt[0].users.empty());
}

} // namespace
} // namespace modelmgr::cache
