// net/http_parse: strict parsers of header values, with bounded mutation fuzzing (the pattern of
// tests/unit/formats/test_formats_fuzz.cpp): a mutated value is either accepted, and then consistent, or
// refused with nullopt; never a crash or an exception. Fixed seeds make any failure reproducible.

#include "net/http_parse.hpp"

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace modelmgr::net {
namespace {

TEST(ParseUint, AcceptsOnlyPlainDecimalNumbers)
{
  EXPECT_EQ(parse_uint("0"), 0u);
  EXPECT_EQ(parse_uint("186"), 186u);
  EXPECT_EQ(parse_uint(" 42\t"), 42u);
  EXPECT_EQ(parse_uint("18446744073709551615"), 18446744073709551615ull);
  for (const char* bad :
       {"-1", "+1", "", " ", "1e9", "0x10", "12abc", "1 2", "1.5", "18446744073709551616"}) {
    EXPECT_FALSE(parse_uint(bad)) << bad;
  }
}

TEST(ParseContentRange, AcceptsTheRangeWithATotalOrStar)
{
  EXPECT_EQ(parse_content_range("bytes 0-9/10"), std::make_pair(std::uint64_t{0}, std::uint64_t{9}));
  EXPECT_EQ(parse_content_range("bytes 5-9/*"), std::make_pair(std::uint64_t{5}, std::uint64_t{9}));
  EXPECT_EQ(parse_content_range("Bytes 1-1/3"), std::make_pair(std::uint64_t{1}, std::uint64_t{1}));
  for (const char* bad :
       {"bytes 9-5/10", "bytes -1-5/10", "bytes 0-9/9", "bytes 0-9/", "bytes 0-9/x", "bytes 0-9",
        "bytes */10", "0-9/10", "bytes 0--9/10", "bytes 0-18446744073709551616/*", "bytes 0-9/10x", ""}) {
    EXPECT_FALSE(parse_content_range(bad)) << bad;
  }
}

TEST(ParseLinkNext, FindsTheNextLinkAmongOthers)
{
  EXPECT_EQ(parse_link_next(R"(<https://h/api/x?cursor=abc>; rel="next")"), "https://h/api/x?cursor=abc");
  EXPECT_EQ(parse_link_next(R"(<https://h/p>; rel="prev", <https://h/n>; rel="next")"), "https://h/n");
  EXPECT_EQ(parse_link_next(R"(<https://h/n>; rel=next)"), "https://h/n");
  EXPECT_EQ(parse_link_next(R"(<https://h/n>; title="a, b; c"; rel="last next")"), "https://h/n");
  EXPECT_EQ(parse_link_next(R"(<https://h/n>;REL="Next")"), "https://h/n");
  EXPECT_FALSE(parse_link_next(R"(<https://h/p>; rel="prev")"));
  EXPECT_FALSE(parse_link_next(R"(<https://h/p>; rel="nextpage")"));
  EXPECT_FALSE(parse_link_next(R"(https://h/p; rel="next")"));
  EXPECT_FALSE(parse_link_next(R"(<https://h/p; rel="next")"));
  EXPECT_FALSE(parse_link_next(R"(<https://h/p>; rel="next)"));
  EXPECT_FALSE(parse_link_next(""));
}

// Mutations of a header value: the ways broken and hostile servers differ from good ones.
void mutate(std::string& s, std::mt19937_64& rng)
{
  static const std::string k_tokens[] = {"-",
                                         "/",
                                         "*",
                                         ",",
                                         ";",
                                         "<",
                                         ">",
                                         "\"",
                                         " ",
                                         "\t",
                                         "rel=",
                                         "=",
                                         "0",
                                         "9",
                                         "-1",
                                         "18446744073709551616",
                                         "next",
                                         "\\",
                                         std::string(1, '\0'),
                                         "\r\n"};
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % (n == 0 ? 1 : n)); };
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds; ++r) {
    switch (rng() % 5) {
    case 0:
      if (!s.empty()) {
        s[pick(s.size())] = static_cast<char>(rng());
      }
      break;
    case 1: s.resize(pick(s.size() + 1)); break;
    case 2: s.insert(pick(s.size() + 1), k_tokens[pick(std::size(k_tokens))]); break;
    case 3:
      if (!s.empty()) {
        s.erase(pick(s.size()), 1 + pick(4));
      }
      break;
    case 4: s += s.substr(pick(s.size() + 1)); break;
    }
  }
}

template <class Check>
void fuzz(const std::string& seed, std::uint64_t seed_value, int iterations, Check check)
{
  std::mt19937_64 rng(seed_value);
  int accepted = 0;
  int rejected = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string input = seed;
    mutate(input, rng);
    try {
      if (check(input)) {
        ++accepted;
      } else {
        ++rejected;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << i << ": exception: " << e.what();
    }
  }
  EXPECT_GT(accepted, iterations / 100);
  EXPECT_GT(rejected, iterations / 10);
  std::printf("[ fuzz     ] %d accepted, %d rejected\n", accepted, rejected);
}

TEST(HeaderFuzz, ContentRange)
{
  fuzz("bytes 1048576-2097151/3145848", 11, 20000, [](const std::string& v) {
    auto r = parse_content_range(v);
    if (r) {
      EXPECT_LE(r->first, r->second) << v;
    }
    return r.has_value();
  });
}

TEST(HeaderFuzz, LinkNext)
{
  fuzz(R"(<https://hub.example/api/models/o/m/tree/abc?recursive=true&cursor=bzoxMDAw>; rel="next")", 12,
       20000, [](const std::string& v) {
         auto r = parse_link_next(v);
         if (r) {
           // The target is what stood between one '<' and the following '>'.
           EXPECT_EQ(r->find('>'), std::string::npos) << v;
           EXPECT_NE(v.find("<" + *r + ">"), std::string::npos) << v;
         }
         return r.has_value();
       });
}

TEST(HeaderFuzz, SizeNumbers)
{
  fuzz("314572800", 13, 20000, [](const std::string& v) {
    auto r = parse_uint(v);
    if (r) {
      EXPECT_EQ(std::to_string(*r).size() <= v.size(), true) << v;
      EXPECT_EQ(v.find('-'), std::string::npos) << v;
    }
    return r.has_value();
  });
}

} // namespace
} // namespace modelmgr::net
