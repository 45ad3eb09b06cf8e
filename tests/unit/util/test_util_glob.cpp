#include "util/glob.hpp"

#include <gtest/gtest.h>

using namespace modelmgr::util;

namespace {

struct Case {
  const char* path;
  const char* pattern;
  bool expected;
};

// Expected values produced by CPython's fnmatch.fnmatchcase (3.11) for the same inputs.
const Case k_python_cases[] = {
    {"data/sub/x.json", "data/*.json", true},
    {"a/b.json", "*.json", true},
    {"a/b", "a?b", true},
    {"-", "[a-]", true},
    {"b", "[a-]", false},
    {"b", "[a-c]", true},
    {"-", "[a-c]", false},
    {"]", "[]]", true},
    {"]", "[!]]", false},
    {"a", "[!]]", true},
    {"[", "[", true},
    {"[ab", "[ab", true},
    {"x", "[z-a]", false},
    {"x", "[!z-a]", true},
    {"a", "[!a]", false},
    {"/", "[!a]", true},
    {"A.json", "*.json", true},
    {"a.JSON", "*.json", false},
    {"\xc3\xa9", "?", true},
    {"ab", "a*b*", true},
    {"", "*", true},
    {"", "", true},
    {"a", "", false},
    {"-", "[-a]", true},
    {"b", "[a-c-e]", true},
    {"-", "[a-c-e]", true},
    {"d", "[a-c-e]", false},
    {"e", "[a-c-e]", true},
    {"x", "[!a-c]", true},
    {"b", "[!a-c]", false},
    {"ab", "[ab", false},
    {"aXbYc", "a*b*c", true},
    {"abc", "a*b*d", false},
    {"a/b/c", "a/**", true},
    {"\\", "[\\]", true},
    {"^", "[^]", true},
    {"a", "[^a]", true},
    {"model-00001-of-00002.safetensors", "model-*-of-*.safetensors", true},
    {"q", "[a-cx-z]", false},
    {"y", "[a-cx-z]", true},
};

} // namespace

TEST(UtilGlob, MatchesLikePythonFnmatchcase)
{
  for (const Case& c : k_python_cases) {
    EXPECT_EQ(fnmatch(c.path, c.pattern), c.expected)
        << "path '" << c.path << "' pattern '" << c.pattern << "'";
  }
}

TEST(UtilGlob, QuestionMarkMatchesOneCodePointNotOneByte)
{
  EXPECT_TRUE(fnmatch("\xf0\x9f\x98\x80.txt", "?.txt")); // one 4-byte code point
  EXPECT_FALSE(fnmatch("\xf0\x9f\x98\x80.txt", "??.txt"));
  EXPECT_TRUE(fnmatch("caf\xc3\xa9", "caf[\xc3\xa0-\xc3\xbf]"));
}

TEST(UtilGlob, ManyStarsStayFast)
{
  // A backtracking matcher would take exponential time here.
  const std::string path(2000, 'a');
  EXPECT_FALSE(fnmatch(path, "*a*a*a*a*a*a*a*a*a*a*a*a*b"));
}

TEST(UtilGlob, NormalizePattern)
{
  EXPECT_EQ(normalize_pattern("onnx/"), "onnx/*");
  EXPECT_EQ(normalize_pattern("a\\b\\"), "a/b/*");
  EXPECT_EQ(normalize_pattern("*.json"), "*.json");
  EXPECT_EQ(normalize_pattern(""), "");
}

TEST(UtilGlob, MatchesAnyNormalisesPathsAndPatterns)
{
  const std::vector<std::string> patterns{"onnx/", "*.md"};
  EXPECT_TRUE(matches_any("onnx/model.onnx", patterns));
  EXPECT_TRUE(matches_any("onnx/sub/deep.bin", patterns));
  EXPECT_TRUE(matches_any("onnx\\model.onnx", patterns));
  EXPECT_TRUE(matches_any("docs/README.md", patterns));
  EXPECT_FALSE(matches_any("onnxx/model.onnx", patterns));
  EXPECT_FALSE(matches_any("model.safetensors", patterns));
  EXPECT_FALSE(matches_any("anything", {}));
}

TEST(UtilGlob, FilterPathsKeepsIncludedAndNotExcludedInOrder)
{
  const std::vector<std::string> paths{"config.json",    "model.safetensors", "onnx/model.onnx",
                                       "tokenizer.json", "sub/extra.json",    "README.md"};
  EXPECT_EQ(filter_paths(paths, {}, {}), paths);
  EXPECT_EQ(filter_paths(paths, std::vector<std::string>{"*.json"}, {}),
            (std::vector<std::string>{"config.json", "tokenizer.json", "sub/extra.json"}));
  EXPECT_EQ(filter_paths(paths, std::vector<std::string>{"*.json"}, std::vector<std::string>{"sub/"}),
            (std::vector<std::string>{"config.json", "tokenizer.json"}));
  EXPECT_EQ(
      filter_paths(paths, {}, std::vector<std::string>{"*.onnx", "*.md"}),
      (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer.json", "sub/extra.json"}));
  EXPECT_EQ(filter_paths(paths, std::vector<std::string>{"*.JSON"}, {}), std::vector<std::string>{});
}
