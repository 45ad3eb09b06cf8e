// A hostile or broken Hub (or mirror, or CDN): `modelmgr pull` must end with a clear error naming the
// problem and the network class's exit code (6), write nothing outside the cache, leave no file under a
// final name, show no raw control characters, and stay bounded on endless answers.

#include "modelmgr/errors.hpp"

#include "support/hub_fixture.hpp"

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using emulator::FaultSpec;
using ::testing::HasSubstr;

const std::string k_tiny = "models--test-org--tiny-model";

struct HostileCase {
  std::string name;
  FaultSpec fault;
  std::vector<std::string> files; // pulled files; empty = the whole repo (tree listing)
  std::string expected;           // in the error message
};

void PrintTo(const HostileCase& c, std::ostream* os)
{
  *os << c.name;
}

FaultSpec redirect(FaultSpec::Route route, std::string path_contains, std::string location)
{
  FaultSpec f;
  f.kind = FaultSpec::Kind::redirect;
  f.route = route;
  f.path_contains = std::move(path_contains);
  f.status = 302;
  f.location = std::move(location);
  f.times = -1;
  return f;
}

FaultSpec tree_body(std::string body)
{
  FaultSpec f;
  f.kind = FaultSpec::Kind::body;
  f.route = FaultSpec::Route::api;
  f.path_contains = "/tree/";
  f.status = 200;
  f.body = std::move(body);
  f.times = -1;
  return f;
}

std::string entry(const std::string& path_json, const std::string& size_json = "3")
{
  return R"({"type":"file","oid":")" + std::string(40, 'a') + R"(","size":)" + size_json + R"(,"path":)" +
         path_json + "}";
}

class HostileServer : public HubTest, public ::testing::WithParamInterface<HostileCase> {
protected:
  // Every file below the temp dir that is outside the cache and HF_HOME.
  std::vector<std::string> written_outside() const
  {
    std::vector<std::string> out;
    for (const auto& p : list_tree(tmp->path())) {
      if (!p.starts_with("hub/") && !p.starts_with("hf_home/")) {
        out.push_back(p);
      }
    }
    return out;
  }
  // Files under a final name: snapshot entries and blobs (temp files end in .incomplete).
  std::vector<std::string> final_files() const
  {
    std::vector<std::string> out;
    for (const auto& p : list_tree(cache / k_tiny)) {
      if (p.starts_with("snapshots/") || (p.starts_with("blobs/") && !p.ends_with(".incomplete"))) {
        out.push_back(p);
      }
    }
    return out;
  }
};

TEST_P(HostileServer, PullFailsCleanly)
{
  const HostileCase& c = GetParam();
  hub->add_fault(c.fault);
  std::vector<std::string> args{"pull", "test-org/tiny-model"};
  args.insert(args.end(), c.files.begin(), c.files.end());
  const auto r = mm(args);
  EXPECT_EQ(r.exit_code, exit_code_for(ErrorKind::bad_response)) << r.err;
  EXPECT_EQ(r.exit_code, 6) << "documented: a bad server response exits like a network failure";
  EXPECT_THAT(r.err, HasSubstr("modelmgr: error: "));
  EXPECT_THAT(r.err, HasSubstr(c.expected));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("internal")));
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "raw control characters reached the terminal";
  EXPECT_EQ(written_outside(), std::vector<std::string>{});
  EXPECT_EQ(final_files(), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(tmp->path() / "x"));
  EXPECT_FALSE(fs::exists(cache / "x"));
  EXPECT_FALSE(fs::exists(cache / k_tiny / "x"));
}

std::vector<HostileCase> hostile_cases()
{
  std::vector<HostileCase> v;
  // Redirects: the hub layer's HEAD (git file), the transfer engine's GET on the CDN (LFS file), the API.
  v.push_back({"head_redirect_to_file",
               redirect(FaultSpec::Route::head, "config.json", "file:///etc/passwd"),
               {"config.json"},
               "'file:///etc/passwd': scheme 'file' is not allowed (only http and https)"});
  v.push_back({"cdn_redirect_to_file",
               redirect(FaultSpec::Route::body, "model.safetensors", "file:///etc/passwd"),
               {"model.safetensors"},
               "scheme 'file' is not allowed"});
  v.push_back(
      {"cdn_redirect_to_data",
       redirect(FaultSpec::Route::body, "model.safetensors", "data:application/octet-stream;base64,AAAA"),
       {"model.safetensors"},
       "scheme 'data' is not allowed"});
  v.push_back({"api_redirect_to_smb",
               redirect(FaultSpec::Route::api, "/revision/", "smb://127.0.0.1/share/x"),
               {"config.json"},
               "scheme 'smb' is not allowed"});
  v.push_back({"api_redirect_to_dict",
               redirect(FaultSpec::Route::api, "/revision/", "dict://127.0.0.1:2628/d:x"),
               {},
               "scheme 'dict' is not allowed"});
  // Tree listings.
  v.push_back(
      {"dotdot_name", tree_body("[" + entry(R"("../../x")") + "]"), {}, "'../../x': has a '..' segment"});
  v.push_back({"absolute_name", tree_body("[" + entry(R"("/etc/x")") + "]"), {}, "'/etc/x': is absolute"});
  v.push_back(
      {"backslash_name", tree_body("[" + entry(R"("a\\b")") + "]"), {}, "'a\\b': contains a backslash"});
  v.push_back({"control_name",
               tree_body("[" + entry(R"("x\u001b[2Jy.txt")") + "]"),
               {},
               "'x\\x1b[2Jy.txt': contains control characters"});
  v.push_back({"empty_segment", tree_body("[" + entry(R"("a//x")") + "]"), {}, "has an empty segment"});
  v.push_back({"dot_segment", tree_body("[" + entry(R"("./x")") + "]"), {}, "has a '.' segment"});
  v.push_back({"negative_size",
               tree_body("[" + entry(R"("x")", "-1") + "]"),
               {},
               "'size' is a negative number (-1), expected a size in bytes"});
  v.push_back({"string_size", tree_body("[" + entry(R"("x")", R"("big")") + "]"), {}, "'size' is a string"});
  v.push_back({"wrong_typed_path", tree_body("[" + entry("[1]") + "]"), {}, "'path' is an array"});
  v.push_back({"malformed_json",
               tree_body("[{\"type\":\"file\",\"path\":"),
               {},
               "malformed JSON in the tree listing"});
  v.push_back({"not_an_array", tree_body(R"({"error":"x"})"), {}, "is an object, expected an array"});
  FaultSpec loop;
  loop.kind = FaultSpec::Kind::link_loop;
  loop.route = FaultSpec::Route::api;
  loop.path_contains = "/tree/";
  loop.times = -1;
  v.push_back({"pagination_loop", loop, {}, "loops: the next page link of page 1 points back"});
  FaultSpec endless;
  endless.kind = FaultSpec::Kind::endless_body;
  endless.route = FaultSpec::Route::api;
  endless.path_contains = "/tree/";
  endless.times = -1;
  v.push_back({"endless_tree_body", endless, {}, "the body is larger than the 64 MiB limit"});
  FaultSpec revision;
  revision.kind = FaultSpec::Kind::body;
  revision.route = FaultSpec::Route::api;
  revision.path_contains = "/revision/";
  revision.status = 200;
  revision.body = R"({"sha":"0123456789012345678901234567890123456789","private":"no"})";
  v.push_back(
      {"revision_wrong_type", revision, {"config.json"}, "'private' is a string, expected true or false"});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Faults, HostileServer, ::testing::ValuesIn(hostile_cases()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST_F(HubTest, ServerErrorMessageIsShownEscaped)
{
  FaultSpec f;
  f.kind = FaultSpec::Kind::status;
  f.route = FaultSpec::Route::api;
  f.status = 500;
  f.message = "busy \x1b]0;pwned\x07\x1b[2J";
  f.times = -1;
  hub->add_fault(f);
  const auto r = mm({"pull", "test-org/tiny-model", "config.json"}, {{"MODELMGR_RETRY_BASE_MS", "1"}});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_THAT(r.err, HasSubstr("server: busy \\x1b]0;pwned\\x07\\x1b[2J"));
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos);
  EXPECT_EQ(r.err.find('\x07'), std::string::npos);
}

} // namespace
} // namespace modelmgr::test
