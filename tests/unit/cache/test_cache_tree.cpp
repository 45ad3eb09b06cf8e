#include "cache/tree.hpp"

#include <gtest/gtest.h>

using namespace modelmgr::cache;

namespace {

std::vector<TreeFile> sample_files()
{
  TreeFile config{"config.json", 519, "1f2e3d", std::nullopt, std::nullopt, std::nullopt};
  TreeFile model{"model.safetensors", 1234, "aa11", "e3b0c4", 1234, "x9"};
  TreeFile unicode{"sub/caf\xc3\xa9 \xf0\x9f\x98\x80.txt", 0, "e69de2", "ff00", std::nullopt, std::nullopt};
  // Deliberately unsorted: the writer sorts by path.
  return {unicode, model, config};
}

// Produced by Python 3.11: json.dumps({"format_version": 1, "files": {...sorted...}}, indent=1), the
// exact call huggingface_hub/_tree_cache.py makes (json.dump to the file, no trailing newline).
const char* const k_python_text = "{\n"
                                  " \"format_version\": 1,\n"
                                  " \"files\": {\n"
                                  "  \"config.json\": {\n"
                                  "   \"size\": 519,\n"
                                  "   \"blob_id\": \"1f2e3d\"\n"
                                  "  },\n"
                                  "  \"model.safetensors\": {\n"
                                  "   \"size\": 1234,\n"
                                  "   \"blob_id\": \"aa11\",\n"
                                  "   \"lfs_sha256\": \"e3b0c4\",\n"
                                  "   \"lfs_size\": 1234,\n"
                                  "   \"xet_hash\": \"x9\"\n"
                                  "  },\n"
                                  "  \"sub/caf\\u00e9 \\ud83d\\ude00.txt\": {\n"
                                  "   \"size\": 0,\n"
                                  "   \"blob_id\": \"e69de2\",\n"
                                  "   \"lfs_sha256\": \"ff00\",\n"
                                  "   \"lfs_size\": null\n"
                                  "  }\n"
                                  " }\n"
                                  "}";

} // namespace

TEST(CacheTree, EtagPrefersLfsSha256)
{
  TreeFile plain{"a", 1, "sha1", std::nullopt, std::nullopt, std::nullopt};
  TreeFile lfs{"b", 1, "sha1", "sha256", 1, std::nullopt};
  EXPECT_EQ(plain.etag(), "sha1");
  EXPECT_EQ(lfs.etag(), "sha256");
}

TEST(CacheTree, JsonMatchesPythonByteForByte)
{
  EXPECT_EQ(tree_cache_json(sample_files()), k_python_text);
  EXPECT_EQ(tree_cache_json({}), "{\n \"format_version\": 1,\n \"files\": {}\n}");
}

TEST(CacheTree, ParseRoundTripsAndSorts)
{
  auto parsed = parse_tree_cache_json(k_python_text);
  ASSERT_TRUE(parsed.has_value());
  auto expected = sample_files();
  std::sort(expected.begin(), expected.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  EXPECT_EQ(*parsed, expected);
}

TEST(CacheTree, ParseRejectsUnknownVersionsAndBadShapes)
{
  for (const char* bad :
       {"", "not json", "[]", "{\"files\": {}}", "{\"format_version\": 2, \"files\": {}}",
        "{\"format_version\": \"1\", \"files\": {}}", "{\"format_version\": 1, \"files\": []}",
        "{\"format_version\": 1, \"files\": {\"a\": {\"size\": 1}}}",
        "{\"format_version\": 1, \"files\": {\"a\": {\"size\": -1, \"blob_id\": \"x\"}}}",
        "{\"format_version\": 1, \"files\": {\"a\": {\"size\": 1, \"blob_id\": \"x\", \"lfs_sha256\": "
        "5}}}"}) {
    EXPECT_FALSE(parse_tree_cache_json(bad).has_value()) << bad;
  }
  auto ok =
      parse_tree_cache_json("{\"format_version\": 1, \"files\": {\"a\": {\"size\": 1, \"blob_id\": \"x\", "
                            "\"lfs_sha256\": null, \"future_key\": true}}}");
  ASSERT_TRUE(ok.has_value());
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_FALSE((*ok)[0].lfs_sha256.has_value());
}

TEST(CacheTree, DuplicatePathsKeepTheLastLikeADict)
{
  TreeFile first{"a", 1, "one", std::nullopt, std::nullopt, std::nullopt};
  TreeFile second{"a", 2, "two", std::nullopt, std::nullopt, std::nullopt};
  auto parsed = parse_tree_cache_json(tree_cache_json({first, second}));
  ASSERT_TRUE(parsed.has_value());
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].blob_id, "two");
}
