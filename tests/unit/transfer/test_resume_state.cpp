// transfer/resume_state: the resume file's format, as pure functions (round trip and every rejection).

#include "transfer/resume_state.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

namespace modelmgr::transfer {
namespace {

const std::string k_etag = "a3f1c2d4e5b60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00";
constexpr std::uint64_t k_size = 100'000;

std::string v1(const std::string& chunks, const std::string& etag = k_etag, std::uint64_t size = k_size,
               const std::string& version = "1", const std::string& format = "\"modelmgr-resume\"")
{
  return R"({"format":)" + format + R"(,"version":)" + version + R"(,"etag":")" + etag + R"(","size":)" +
         std::to_string(size) + R"(,"chunk_size":16777216,"chunks":)" + chunks + "}";
}

TEST(ResumeState, RoundTrip)
{
  ResumeState s;
  s.etag = k_etag;
  s.size = k_size;
  s.chunk_size = 4096;
  s.present.add(0, 10);
  s.present.add(500, 70'000);
  s.present.add(99'999, 100'000);
  const std::string text = serialize_resume_state(s);
  auto back = parse_resume_state(text, k_etag, k_size, k_size);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->present, s.present);
  EXPECT_EQ(back->chunk_size, 4096u);
  EXPECT_EQ(back->etag, k_etag);
  // The file is the documented version-1 shape: one fully written chunk per present range.
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["format"], "modelmgr-resume");
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["chunks"].size(), 3u);
  EXPECT_EQ(j["chunks"][1], nlohmann::json({500, 70'000, 69'500}));
}

TEST(ResumeState, EmptyStateRoundTrips)
{
  ResumeState s;
  s.etag = k_etag;
  s.size = k_size;
  auto back = parse_resume_state(serialize_resume_state(s), k_etag, k_size, 0);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->present.empty());
}

TEST(ResumeState, ReadsTheLayoutOfOlderVersionsWithPartialChunks)
{
  // Written by the fixed-chunk engine: chunks of 40,000 with partial progress, one split (appended last).
  auto s = parse_resume_state(v1("[[0,40000,40000],[40000,70000,1234],[80000,100000,0],[70000,80000,10000]]"),
                              k_etag, k_size, k_size);
  ASSERT_TRUE(s);
  using V = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
  EXPECT_EQ(s->present.list(), (V{{0, 41'234}, {70'000, 80'000}}));
  EXPECT_EQ(s->present.prefix(), 41'234u);
}

struct Rejection {
  std::string name;
  std::string text;
  std::uint64_t temp_size = k_size;
  std::string reason;
};

void PrintTo(const Rejection& r, std::ostream* os)
{
  *os << r.name;
}

class RejectsState : public ::testing::TestWithParam<Rejection> {};

TEST_P(RejectsState, WithAReason)
{
  const auto& r = GetParam();
  std::string why;
  EXPECT_FALSE(parse_resume_state(r.text, k_etag, k_size, r.temp_size, &why)) << r.text;
  EXPECT_EQ(why, r.reason);
}

INSTANTIATE_TEST_SUITE_P(
    ResumeState, RejectsState,
    ::testing::Values(
        Rejection{"empty", "", k_size, "not a JSON object"},
        Rejection{"truncated", v1("[[0,10,10]]").substr(0, 40), k_size, "not a JSON object"},
        Rejection{"array", "[1,2,3]", k_size, "not a JSON object"},
        Rejection{"other_format", v1("[]", k_etag, k_size, "1", "\"aria2\""), k_size,
                  "not a modelmgr resume state"},
        Rejection{"no_format", R"({"version":1,"etag":"x","size":1,"chunks":[]})", k_size,
                  "not a modelmgr resume state"},
        Rejection{"future_version", v1("[]", k_etag, k_size, "3"), k_size, "unknown version"},
        Rejection{"string_version", v1("[]", k_etag, k_size, "\"1\""), k_size, "unknown version"},
        Rejection{"other_etag", v1("[]", "0000"), k_size, "another etag"},
        Rejection{"other_size", v1("[]", k_etag, k_size + 1), k_size, "another size"},
        Rejection{"negative_size",
                  R"({"format":"modelmgr-resume","version":1,"etag":")" + k_etag +
                      R"(","size":-5,"chunks":[]})",
                  k_size, "another size"},
        Rejection{"chunks_not_array", v1("{}"), k_size, "no chunk list"},
        Rejection{"chunk_not_triple", v1("[[0,10]]"), k_size, "malformed chunk"},
        Rejection{"chunk_negative", v1("[[-1,10,5]]"), k_size, "malformed chunk"},
        Rejection{"chunk_float", v1("[[0.5,10,5]]"), k_size, "malformed chunk"},
        Rejection{"chunk_string", v1(R"([["0",10,5]])"), k_size, "malformed chunk"},
        Rejection{"chunk_reversed", v1("[[50,10,0]]"), k_size, "chunk outside the file"},
        Rejection{"chunk_past_end", v1("[[0,100001,5]]"), k_size, "chunk outside the file"},
        Rejection{"chunk_huge", v1("[[0,18446744073709551615,5]]"), k_size, "chunk outside the file"},
        Rejection{"written_too_much", v1("[[0,10,11]]"), k_size, "chunk claims more bytes than it holds"},
        Rejection{"beyond_temp_file", v1("[[0,50000,50000]]"), 49'999,
                  "chunk claims bytes beyond the end of the temp file"},
        Rejection{"overlap", v1("[[0,50000,10],[40000,60000,10]]"), k_size, "overlapping chunks"}),
    [](const auto& param_info) { return param_info.param.name; });

} // namespace
} // namespace modelmgr::transfer
