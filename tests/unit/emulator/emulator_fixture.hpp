#pragma once
// A started emulator per test plus URL helpers.

#include "emulator/hub_emulator.hpp"
#include "http_client.hpp"

#include <gtest/gtest.h>

namespace modelmgr::emulator::test {

inline const std::string k_token = "Authorization: Bearer hf_test_token_with_access";
inline const std::string k_token_no_gated = "Authorization: Bearer hf_test_token_without_access";

class EmulatorTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    hub = std::make_unique<HubEmulator>();
    hub->start();
  }
  void TearDown() override { hub->stop(); }

  std::string url(const std::string& path) const { return hub->endpoint() + path; }
  std::string resolve(const std::string& file, const std::string& rev = "main",
                      const std::string& repo = "test-org/tiny-model") const
  {
    return url("/" + repo + "/resolve/" + rev + "/" + file);
  }
  std::shared_ptr<const Repo> tiny() const { return hub->repo("test-org/tiny-model"); }
  // Absolute URL of the body of `file`: the CDN URL for LFS files, the resolve-cache URL otherwise.
  std::string body_url(const std::string& file, const std::string& repo = "test-org/tiny-model") const
  {
    auto head = http_head(resolve(file, "main", repo));
    EXPECT_TRUE(head.status == 302 || head.status == 307) << head.status;
    auto location = head.header("location");
    return location.starts_with("/") ? url(location) : location;
  }

  std::unique_ptr<HubEmulator> hub;
};

} // namespace modelmgr::emulator::test
