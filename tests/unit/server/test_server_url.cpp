// Parsing of request targets, query strings, Range headers and repo paths for `modelmgr serve`.

#include "server/url.hpp"

#include <gtest/gtest.h>

namespace modelmgr::server {
namespace {

TEST(ServerUrl, PercentDecodeRefusesMalformedEscapesAndNul)
{
  EXPECT_EQ(percent_decode("a%20b%2Fc+d"), "a b/c+d");
  EXPECT_EQ(percent_decode("%2e%2E"), "..");
  EXPECT_FALSE(percent_decode("%zz"));
  EXPECT_FALSE(percent_decode("abc%4"));
  EXPECT_FALSE(percent_decode("abc%"));
  EXPECT_FALSE(percent_decode("a%00b"));
}

TEST(ServerUrl, PercentEncodeKeepsUnreservedAndOptionallySlash)
{
  EXPECT_EQ(percent_encode("a b/c#1", true), "a%20b/c%231");
  EXPECT_EQ(percent_encode("refs/pr/1", false), "refs%2Fpr%2F1");
}

TEST(ServerUrl, FormAndQueryValues)
{
  auto pairs = parse_form("paths=a+b&paths=c%2Fd&expand=False&bad=%zz");
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0].second, "a b");
  EXPECT_EQ(pairs[1].second, "c/d");
  EXPECT_EQ(query_value("recursive=true&expand=false", "recursive"), "true");
  EXPECT_FALSE(query_value("recursive=true", "blobs"));
  EXPECT_TRUE(truthy("True"));
  EXPECT_TRUE(truthy("1"));
  EXPECT_FALSE(truthy("false"));
}

TEST(ServerUrl, RepoPathErrorRefusesEverythingThatCouldLeaveTheSnapshot)
{
  EXPECT_FALSE(repo_path_error("config.json"));
  EXPECT_FALSE(repo_path_error("données/élan.txt"));
  EXPECT_FALSE(repo_path_error("name with spaces.txt"));
  EXPECT_FALSE(repo_path_error("a/.hidden"));
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a\\b", "..", "a/"}) {
    EXPECT_TRUE(repo_path_error(bad)) << bad;
  }
  EXPECT_TRUE(repo_path_error(std::string("a\0b", 3)));
  EXPECT_TRUE(repo_path_error("a\nb"));
}

TEST(ServerUrl, RangeParsing)
{
  ByteRange r;
  EXPECT_EQ(parse_range("", 10, r), RangeResult::none);
  ASSERT_EQ(parse_range("bytes=2-5", 10, r), RangeResult::ok);
  EXPECT_EQ(r.first, 2u);
  EXPECT_EQ(r.last, 5u);
  ASSERT_EQ(parse_range("bytes=7-", 10, r), RangeResult::ok);
  EXPECT_EQ(r.last, 9u);
  ASSERT_EQ(parse_range("bytes=5-100", 10, r), RangeResult::ok);
  EXPECT_EQ(r.last, 9u);
  ASSERT_EQ(parse_range("bytes=-3", 10, r), RangeResult::ok);
  EXPECT_EQ(r.first, 7u);
  ASSERT_EQ(parse_range("bytes=-30", 10, r), RangeResult::ok);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(parse_range("bytes=10-", 10, r), RangeResult::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-0", 0, r), RangeResult::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 10, r), RangeResult::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=5-2", 10, r), RangeResult::ignored);
  EXPECT_EQ(parse_range("bytes=0-1,3-4", 10, r), RangeResult::ignored);
  EXPECT_EQ(parse_range("items=0-1", 10, r), RangeResult::ignored);
  EXPECT_EQ(parse_range("bytes=a-b", 10, r), RangeResult::ignored);
}

TEST(ServerUrl, ApiTargets)
{
  auto r = parse_target("/api/models/org/name");
  EXPECT_EQ(r.kind, RouteKind::repo_info);
  EXPECT_EQ(r.repo_id, "org/name");
  EXPECT_TRUE(r.rest.empty());

  r = parse_target("/api/models/gpt2/revision/main?blobs=true");
  EXPECT_EQ(r.kind, RouteKind::repo_info);
  EXPECT_EQ(r.repo_id, "gpt2");
  EXPECT_EQ(r.rest, std::vector<std::string>{"main"});
  EXPECT_EQ(r.query, "blobs=true");

  r = parse_target("/api/datasets/org/data/tree/refs%2Fpr%2F1/sub%2Fdir?recursive=true");
  EXPECT_EQ(r.kind, RouteKind::tree);
  EXPECT_EQ(r.type, cache::RepoType::dataset);
  EXPECT_EQ(r.rest, (std::vector<std::string>{"refs/pr/1", "sub/dir"}));

  EXPECT_EQ(parse_target("/api/models/org/name/paths-info/main").kind, RouteKind::paths_info);
  EXPECT_EQ(parse_target("/api/models/org/name/refs").kind, RouteKind::refs);
  EXPECT_EQ(parse_target("/api/models/org/name/discussions").kind, RouteKind::not_found);
  EXPECT_EQ(parse_target("/api/model/org/name").kind, RouteKind::not_found);
  EXPECT_EQ(parse_target("/api/models/org/na..me").kind, RouteKind::bad_request);
  EXPECT_EQ(parse_target("/api/models/..%2F..%2Fetc").kind, RouteKind::bad_request);
}

TEST(ServerUrl, ResolveTargets)
{
  auto r = parse_target("/org/name/resolve/main/sub/file%20name.bin");
  EXPECT_EQ(r.kind, RouteKind::resolve);
  EXPECT_EQ(r.type, cache::RepoType::model);
  EXPECT_EQ(r.repo_id, "org/name");
  EXPECT_EQ(r.rest, (std::vector<std::string>{"main", "sub", "file name.bin"}));

  r = parse_target("/datasets/org/data/resolve/v1.0/train.csv");
  EXPECT_EQ(r.type, cache::RepoType::dataset);
  EXPECT_EQ(r.repo_id, "org/data");

  r = parse_target("/gpt2/resolve/main/config.json");
  EXPECT_EQ(r.kind, RouteKind::resolve);
  EXPECT_EQ(r.repo_id, "gpt2");

  // Traversal in the file part decodes into segments the handler refuses (repo_path_error); a NUL is
  // refused here already.
  r = parse_target("/org/name/resolve/main/%2e%2e/%2e%2e/x");
  EXPECT_EQ(r.rest, (std::vector<std::string>{"main", "..", "..", "x"}));
  EXPECT_EQ(parse_target("/org/name/resolve/main/a%00b").kind, RouteKind::bad_request);
  EXPECT_EQ(parse_target("org/name/resolve/main/x").kind, RouteKind::bad_request);
  EXPECT_EQ(parse_target("/org/name/blob/main/x").kind, RouteKind::not_found);
  EXPECT_EQ(parse_target("/").kind, RouteKind::not_found);
}

TEST(ServerUrl, RevisionSplitsShortestFirst)
{
  auto splits = revision_splits({"refs", "pr", "1", "a.txt"});
  ASSERT_EQ(splits.size(), 4u);
  EXPECT_EQ(splits[0], (std::pair<std::string, std::string>{"refs", "pr/1/a.txt"}));
  EXPECT_EQ(splits[2], (std::pair<std::string, std::string>{"refs/pr/1", "a.txt"}));
  EXPECT_EQ(splits[3], (std::pair<std::string, std::string>{"refs/pr/1/a.txt", ""}));
}

TEST(ServerUrl, SafeHostRefusesHeaderInjection)
{
  EXPECT_EQ(safe_host("127.0.0.1:8080"), "127.0.0.1:8080");
  EXPECT_EQ(safe_host("[::1]:80"), "[::1]:80");
  EXPECT_FALSE(safe_host("evil\r\nX: y"));
  EXPECT_FALSE(safe_host("a/b"));
  EXPECT_FALSE(safe_host(""));
}

} // namespace
} // namespace modelmgr::server
