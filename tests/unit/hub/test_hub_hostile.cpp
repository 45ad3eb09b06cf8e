// hub/: a hostile or broken server gets a BadResponseError naming what is wrong, never an internal error,
// an endless loop or unbounded memory: JSON readers (with mutation fuzzing), size headers, redirects to
// other schemes, pagination loops, oversized bodies, escaped server text.

#include "modelmgr/errors.hpp"

#include "emulator/hub_emulator.hpp"
#include "hub/hub_client.hpp"
#include "hub/hub_json.hpp"

#include <random>

#include <fmt/format.h>
#include <gmock/gmock.h>

namespace modelmgr::hub {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string k_oid(40, 'a');
const std::string k_sha256(64, 'b');

std::string entry(std::string_view path_json, std::string_view size_json = "3", std::string_view extra = "")
{
  return fmt::format(R"({{"type":"file","oid":"{}","size":{},"path":{}{}}})", k_oid, size_json, path_json,
                     extra);
}

std::string error_of_tree(const std::string& body)
{
  try {
    parse_tree_page(body, "http://hub/api/models/o/m/tree/x");
    return "accepted";
  } catch (const BadResponseError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::bad_response);
    EXPECT_EQ(exit_code_for(e.kind()), exit_code_for(ErrorKind::network));
    return e.what();
  }
}

TEST(TreeJson, ValidPageWithDirectoriesAndLfs)
{
  const std::string body =
      "[" + entry(R"("a/b.txt")") + R"(,{"type":"directory","oid":"x","size":0,"path":"a"},)" +
      entry(R"("m.safetensors")", "10",
            fmt::format(R"(,"lfs":{{"oid":"{}","size":10,"pointerSize":130}})", k_sha256)) +
      "]";
  auto files = parse_tree_page(body, "src");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].path, "a/b.txt");
  EXPECT_EQ(files[0].size, 3u);
  EXPECT_EQ(files[1].lfs_sha256, k_sha256);
  EXPECT_EQ(files[1].lfs_size, 10u);
}

TEST(TreeJson, HostileNamesAreRefusedAndNamed)
{
  EXPECT_THAT(error_of_tree("[" + entry(R"("../../x")") + "]"), HasSubstr("'../../x': has a '..' segment"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("/etc/x")") + "]"), HasSubstr("'/etc/x': is absolute"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("a\\b")") + "]"), HasSubstr("contains a backslash"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("a//b")") + "]"), HasSubstr("has an empty segment"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("a/./b")") + "]"), HasSubstr("has a '.' segment"));
  const std::string ctl = error_of_tree("[" + entry(R"("evil\u001b[2J.txt")") + "]");
  EXPECT_THAT(ctl, HasSubstr("'evil\\x1b[2J.txt'"));
  EXPECT_THAT(ctl, HasSubstr("control characters"));
  EXPECT_EQ(ctl.find('\x1b'), std::string::npos);
  EXPECT_THAT(error_of_tree("[" + entry(R"("a\u0000b")") + "]"), HasSubstr("NUL"));
}

TEST(TreeJson, WrongTypesAndAbsurdSizesAreRefused)
{
  EXPECT_THAT(error_of_tree("[" + entry(R"("f")", "-1") + "]"),
              HasSubstr("entry 0 ('f'): 'size' is a negative number (-1), expected a size in bytes"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("f")", R"("12")") + "]"), HasSubstr("'size' is a string"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("f")", "1.5") + "]"), HasSubstr("'size' is a fractional number"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("f")", "18446744073709551615") + "]"),
              HasSubstr("more than any file the Hub stores"));
  EXPECT_THAT(error_of_tree("[" + entry("42") + "]"),
              HasSubstr("'path' is a number (42), expected a string"));
  EXPECT_THAT(error_of_tree(R"([{"type":1}])"), HasSubstr("'type' is a number"));
  EXPECT_THAT(error_of_tree(R"([{"type":"file","path":"f","size":1}])"), HasSubstr("no 'oid' field"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("f")", "1", R"(,"lfs":"yes")") + "]"),
              HasSubstr("'lfs' is a string"));
  EXPECT_THAT(error_of_tree("[" + entry(R"("f")", "1", R"(,"lfs":{"oid":"../x","size":1})") + "]"),
              HasSubstr("expected a lower-case hex hash"));
  EXPECT_THAT(error_of_tree(R"([{"type":"file","oid":"../../etc","size":1,"path":"f"}])"),
              HasSubstr("'oid' is '../../etc'"));
  EXPECT_THAT(error_of_tree(R"([1])"), HasSubstr("entry 0: is a number, expected an object"));
  EXPECT_THAT(error_of_tree(R"({"files":[]})"), HasSubstr("is an object, expected an array"));
}

TEST(TreeJson, MalformedAndDeepJsonIsRefusedWithoutQuotingIt)
{
  EXPECT_THAT(error_of_tree("[{\"type\":\x1b"), HasSubstr("malformed JSON in the tree listing"));
  EXPECT_THAT(error_of_tree("[{\"type\":\x1b"), Not(HasSubstr("\x1b")));
  EXPECT_THAT(error_of_tree(std::string(100000, '[') + std::string(100000, ']')), HasSubstr("nests deeper"));
}

TEST(RevisionJson, TypesAreChecked)
{
  const std::string sha(40, 'c');
  EXPECT_EQ(
      parse_revision_info(fmt::format(R"({{"sha":"{}","private":true,"gated":"manual"}})", sha), "s").sha,
      sha);
  EXPECT_EQ(parse_revision_info(fmt::format(R"({{"sha":"{}","gated":false}})", sha), "s").gated, "");
  auto error = [](const std::string& body) {
    try {
      parse_revision_info(body, "http://hub/api/models/o/m/revision/main");
      return std::string("accepted");
    } catch (const BadResponseError& e) {
      return std::string(e.what());
    }
  };
  EXPECT_THAT(error(fmt::format(R"({{"sha":"{}","private":"yes"}})", sha)),
              HasSubstr("'private' is a string"));
  EXPECT_THAT(error(fmt::format(R"({{"sha":"{}","gated":3}})", sha)), HasSubstr("'gated' is a number"));
  EXPECT_THAT(error(R"({"sha":12})"), HasSubstr("no 'sha' string ('sha' is a number)"));
  EXPECT_THAT(error(R"({"sha":"\u001b[31mzz"})"), HasSubstr("invalid commit '\\x1b[31mzz'"));
  EXPECT_THAT(error(R"([])"), HasSubstr("is an array, expected an object"));
  EXPECT_THAT(error(R"({"sha":)"), HasSubstr("malformed JSON"));
}

// Mutation fuzzing of the JSON readers (the pattern of tests/unit/formats/test_formats_fuzz.cpp): every
// mutated answer is accepted or refused with BadResponseError; any other exception fails.
void mutate(std::string& s, std::mt19937_64& rng)
{
  static const std::string k_tokens[] = {
      "-1",         "\"",         "null",      "[",       "]",    "{",
      "}",          ",",          ":",         "1e999",   "true", "\"../x\"",
      "\"/etc/x\"", "\"a\\\\b\"", "\\u0000",   "\\u001b", "0",    "18446744073709551616",
      "\"size\":",  "\"lfs\":{}", "\"oid\":1", "1.5"};
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % (n == 0 ? 1 : n)); };
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds; ++r) {
    switch (rng() % 6) {
    case 0:
      if (!s.empty()) {
        s[pick(s.size())] = static_cast<char>(rng());
      }
      break;
    case 1: s.resize(pick(s.size() + 1)); break;
    case 2: s.insert(pick(s.size() + 1), k_tokens[pick(std::size(k_tokens))]); break;
    case 3:
    case 4: {
      // Replace a value after a ':' (keeps the document well-formed more often than byte noise).
      const std::size_t colon = s.find(':', pick(s.size()));
      if (colon != std::string::npos) {
        const std::size_t end = s.find_first_of(",}", colon);
        if (end != std::string::npos) {
          s.replace(colon + 1, end - colon - 1, k_tokens[pick(std::size(k_tokens))]);
        }
      }
      break;
    }
    case 5:
      if (!s.empty()) {
        s.erase(pick(s.size()), 1 + pick(8));
      }
      break;
    }
  }
}

template <class Parse>
void fuzz(const std::string& seed, std::uint64_t seed_value, int iterations, Parse parse)
{
  std::mt19937_64 rng(seed_value);
  int accepted = 0;
  int rejected = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string input = seed;
    mutate(input, rng);
    try {
      parse(input);
      ++accepted;
    } catch (const BadResponseError&) {
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << i << ": unexpected exception: " << e.what();
    }
  }
  EXPECT_GT(accepted, iterations / 100);
  EXPECT_GT(rejected, iterations / 2);
  std::printf("[ fuzz     ] %d accepted, %d rejected\n", accepted, rejected);
}

TEST(HubJsonFuzz, TreePage)
{
  const std::string seed =
      "[" + entry(R"("config.json")", "186") + R"(,{"type":"directory","oid":")" + k_oid +
      R"(","size":0,"path":"sub"},)" +
      entry(
          R"("sub/m.safetensors")", "3145848",
          fmt::format(R"(,"lfs":{{"oid":"{}","size":3145848,"pointerSize":134}},"xetHash":"ab")", k_sha256)) +
      "]";
  fuzz(seed, 21, 20000, [](const std::string& body) {
    for (const auto& f : parse_tree_page(body, "fuzz")) {
      EXPECT_TRUE(unsafe_name_reason(f.path).empty()) << f.path;
      EXPECT_LE(f.size, k_max_file_size);
    }
  });
}

TEST(HubJsonFuzz, RevisionInfo)
{
  const std::string seed = R"({"_id":"x","id":"o/m","sha":")" + std::string(40, 'd') +
                           R"(","private":false,"gated":"auto","siblings":[{"rfilename":"a"}]})";
  fuzz(seed, 22, 20000, [](const std::string& body) {
    auto info = parse_revision_info(body, "fuzz");
    EXPECT_EQ(info.sha.size(), 40u);
  });
}

// ---- HubClient against the emulator's hostile faults ----

class HostileHubTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    emu.start();
    config.endpoint = emu.endpoint();
    config.retry_base = std::chrono::milliseconds(1);
  }
  template <class F> std::string bad_response_of(F&& f)
  {
    try {
      f();
      return "no error";
    } catch (const BadResponseError& e) {
      return e.what();
    }
  }
  emulator::HubEmulator emu;
  net::Client http;
  HubConfig config;
  RepoId tiny{cache::RepoType::model, "test-org/tiny-model"};
  std::string commit() { return emu.repo("test-org/tiny-model")->main().sha; }
};

TEST_F(HostileHubTest, PaginationLoopStopsAtTheFirstRepeat)
{
  emulator::FaultSpec loop;
  loop.kind = emulator::FaultSpec::Kind::link_loop;
  loop.route = emulator::FaultSpec::Route::api;
  loop.times = -1;
  emu.add_fault(loop);
  HubClient c(config, http);
  const std::string msg = bad_response_of([&] { c.list_files(tiny, commit()); });
  EXPECT_THAT(msg, HasSubstr("loops: the next page link of page 1 points back to a page already fetched"));
  EXPECT_EQ(emu.counters().count(emulator::RouteKind::api_tree), 1u);
}

TEST_F(HostileHubTest, NextPageOnAnotherHostOrSchemeIsRefused)
{
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::link_loop;
  f.route = emulator::FaultSpec::Route::api;
  f.location = emu.cdn_endpoint() + "/api/models/test-org/tiny-model/tree/x?cursor=abc";
  emu.add_fault(f);
  HubClient c(config, http);
  EXPECT_THAT(bad_response_of([&] { c.list_files(tiny, commit()); }),
              HasSubstr("links its next page to another host (" + emu.cdn_endpoint()));
  f.location = "dict://127.0.0.1:2628/d:secret";
  emu.add_fault(f);
  EXPECT_THAT(bad_response_of([&] { c.list_files(tiny, commit()); }),
              HasSubstr("scheme 'dict' is not allowed"));
}

TEST_F(HostileHubTest, RedirectToFileSchemeIsABadResponse)
{
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::redirect;
  f.route = emulator::FaultSpec::Route::head;
  f.status = 302;
  f.location = "file:///etc/passwd";
  emu.add_fault(f);
  HubClient c(config, http);
  const std::string msg = bad_response_of([&] { c.file_metadata(tiny, "main", "config.json"); });
  EXPECT_THAT(msg, HasSubstr("'file:///etc/passwd': scheme 'file' is not allowed"));
}

TEST_F(HostileHubTest, RevisionApiRedirectToGopherIsABadResponse)
{
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::redirect;
  f.route = emulator::FaultSpec::Route::api;
  f.status = 307;
  f.location = "gopher://127.0.0.1:70/1";
  emu.add_fault(f);
  HubClient c(config, http);
  EXPECT_THAT(bad_response_of([&] { c.revision_info(tiny, "main"); }), HasSubstr("scheme 'gopher'"));
}

TEST_F(HostileHubTest, HugeTreeBodyStopsAtTheCap)
{
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::endless_body;
  f.route = emulator::FaultSpec::Route::api;
  emu.add_fault(f);
  HubClient c(config, http);
  const std::string msg = bad_response_of([&] { c.list_files(tiny, commit()); });
  EXPECT_THAT(msg, HasSubstr("is too large: the body is larger than the 64 MiB limit"));
}

TEST_F(HostileHubTest, ServerErrorTextIsEscaped)
{
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::status;
  f.route = emulator::FaultSpec::Route::api;
  f.status = 500;
  f.message = "\x1b]2;owned\x07\x1b[2J";
  f.times = -1;
  emu.add_fault(f);
  config.max_retries = 0;
  HubClient c(config, http);
  try {
    c.revision_info(tiny, "main");
    ADD_FAILURE() << "expected an error";
  } catch (const ModelManagerError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("server: \\x1b]2;owned\\x07\\x1b[2J"));
    EXPECT_EQ(std::string(e.what()).find('\x1b'), std::string::npos);
  }
}

} // namespace
} // namespace modelmgr::hub
