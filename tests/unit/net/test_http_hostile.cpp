// net/: the client does not trust the server: only http(s) for requests and redirects, a cap on bodies
// kept in memory, escaped header values; and curl's C callbacks are exception barriers.

#include "modelmgr/errors.hpp"

#include "emulator/hub_emulator.hpp"
#include "net/http.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <unistd.h>

namespace modelmgr::net {
namespace {

namespace fs = std::filesystem;

std::string what_of_resolve(std::string_view base, std::string_view location)
{
  try {
    std::string r = resolve_location(base, location);
    return "resolved to " + r;
  } catch (const BadResponseError& e) {
    return e.what();
  }
}

TEST(ResolveLocation, RefusesEveryNonHttpSchemeAndNamesIt)
{
  const std::string base = "https://hub.example/org/m/resolve/main/a.bin";
  for (const auto& [location, scheme] : std::vector<std::pair<std::string, std::string>>{
           {"file:///etc/passwd", "file"},
           {"FILE:///etc/passwd", "file"},
           {"dict://127.0.0.1:2628/d:x", "dict"},
           {"gopher://127.0.0.1/x", "gopher"},
           {"smb://server/share/x", "smb"},
           {"ftp://mirror.example/x", "ftp"},
           {"data:text/plain;base64,SGVsbG8=", "data"},
       }) {
    const std::string msg = what_of_resolve(base, location);
    EXPECT_NE(msg.find("scheme '" + scheme + "' is not allowed"), std::string::npos)
        << location << ": " << msg;
    EXPECT_NE(msg.find("https://hub.example/org/m/resolve/main/a.bin"), std::string::npos) << msg;
  }
  EXPECT_NE(what_of_resolve(base, "file:///etc/passwd").find("'file:///etc/passwd'"), std::string::npos);
}

TEST(ResolveLocation, MessageHidesCredentialsAndSignatures)
{
  const std::string msg = what_of_resolve("https://hub.example/x",
                                          "ftp://user:hf_secret_token@mirror.example/x?Signature=sig_secret");
  EXPECT_NE(msg.find("ftp://mirror.example/x?…"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hf_secret_token"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("sig_secret"), std::string::npos) << msg;
}

TEST(ResolveLocation, EscapesControlCharactersInTheMessage)
{
  const std::string msg = what_of_resolve("https://hub.example/x", "gopher://h/\x1b[2Jx");
  EXPECT_EQ(msg.find('\x1b'), std::string::npos);
  EXPECT_NE(msg.find("\\x1b[2Jx"), std::string::npos) << msg;
}

TEST(ResolveLocation, HttpFormsStillResolve)
{
  const std::string base = "https://hub.example/org/m/resolve/main/a/b.bin?x=1";
  EXPECT_EQ(resolve_location(base, "HTTP://cdn.example/o"), "HTTP://cdn.example/o");
  EXPECT_EQ(resolve_location(base, "/api/x"), "https://hub.example/api/x");
  // RFC 3986: "c:d.bin" is an absolute URI of scheme "c"; the relative form is "./c:d.bin".
  EXPECT_THROW(resolve_location(base, "c:d.bin"), BadResponseError);
  EXPECT_EQ(resolve_location(base, "./c:d.bin"), "https://hub.example/org/m/resolve/main/a/./c:d.bin");
}

class HostileServerTest : public ::testing::Test {
protected:
  void SetUp() override { hub.start(); }
  emulator::HubEmulator hub;
  Client client;
  const std::string api = "/api/models/test-org/tiny-model/revision/main";
};

TEST_F(HostileServerTest, FileUrlsAreRefused)
{
  const fs::path secret = fs::temp_directory_path() / ("modelmgr-net-secret-" + std::to_string(::getpid()));
  std::ofstream(secret) << "local secret";
  Request req;
  req.url = "file://" + secret.string();
  Response r = client.perform(req);
  fs::remove(secret);
  EXPECT_EQ(r.error, TransferError::protocol) << r.error_message;
  EXPECT_EQ(r.body.find("local secret"), std::string::npos);
  EXPECT_FALSE(is_transient(r));
}

TEST_F(HostileServerTest, CurlFollowsNoRedirectToAnotherProtocol)
{
  // ftp is in libcurl's default redirect list: without the allow-list curl would connect to it.
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::redirect;
  f.route = emulator::FaultSpec::Route::api;
  f.status = 302;
  f.location = "ftp://127.0.0.1:" + std::to_string(hub.port()) + "/x";
  hub.add_fault(f);
  Request req;
  req.url = hub.endpoint() + api;
  req.follow_redirects = true;
  Response r = client.perform(req);
  EXPECT_EQ(r.error, TransferError::protocol) << r.error_message;
}

TEST_F(HostileServerTest, EndlessBodyIsCutAtTheCap)
{
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::endless_body;
  f.route = emulator::FaultSpec::Route::api;
  hub.add_fault(f);
  Request req;
  req.url = hub.endpoint() + api;
  req.max_body = 1 << 20;
  Response r = client.perform(req);
  EXPECT_EQ(r.error, TransferError::too_large);
  EXPECT_LE(r.body.size(), req.max_body);
  EXPECT_NE(r.error_message.find("1 MiB limit"), std::string::npos) << r.error_message;
  EXPECT_FALSE(is_transient(r));
}

TEST_F(HostileServerTest, AnnouncedOversizedBodyIsRefusedBeforeReadingIt)
{
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::endless_body;
  f.route = emulator::FaultSpec::Route::api;
  f.after_bytes = 64ull << 20; // announced in Content-Length
  hub.add_fault(f);
  Request req;
  req.url = hub.endpoint() + api;
  req.max_body = 1 << 20;
  Response r = client.perform(req);
  EXPECT_EQ(r.error, TransferError::too_large);
  EXPECT_TRUE(r.body.empty());
}

TEST_F(HostileServerTest, DefaultCapLetsNormalAnswersThrough)
{
  Request req;
  req.url = hub.endpoint() + api;
  Response r = client.perform(req);
  ASSERT_TRUE(r.is_success()) << r.error_message;
  EXPECT_NE(r.body.find("\"sha\""), std::string::npos);
}

TEST_F(HostileServerTest, HeaderValuesArriveWithControlCharactersEscaped)
{
  emulator::FaultSpec f;
  f.kind = emulator::FaultSpec::Kind::status;
  f.route = emulator::FaultSpec::Route::api;
  f.status = 500;
  f.message = "boom \x1b]0;pwned\x07 \x1b[31mred";
  hub.add_fault(f);
  Request req;
  req.url = hub.endpoint() + api;
  Response r = client.perform(req);
  ASSERT_TRUE(r.transport_ok()) << r.error_message;
  const std::string m = r.header("x-error-message").value_or("");
  EXPECT_EQ(m.find('\x1b'), std::string::npos) << m;
  EXPECT_EQ(m.find('\x07'), std::string::npos) << m;
  EXPECT_EQ(m, "boom \\x1b]0;pwned\\x07 \\x1b[31mred");
}

TEST_F(HostileServerTest, AnExceptionInTheSinkReachesTheCallerOfPerform)
{
  Request req;
  req.url = hub.endpoint() + "/test-org/tiny-model/resolve/main/weights/big.bin";
  req.follow_redirects = true;
  int calls = 0;
  try {
    client.perform(req, [&](std::span<const char>, const Response&) -> bool {
      ++calls;
      throw std::runtime_error("sink failed: EPIPE");
    });
    ADD_FAILURE() << "perform returned instead of throwing";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "sink failed: EPIPE");
  }
  EXPECT_EQ(calls, 1) << "the transfer is aborted at the first exception";
  // The pooled handle stays usable.
  Request again;
  again.url = hub.endpoint() + api;
  EXPECT_TRUE(client.perform(again).is_success());
}

} // namespace
} // namespace modelmgr::net
