// hub/http_options: one user agent and CA bundle lookup for every command that talks to a hub.

#include "hub/http_options.hpp"

#include <gtest/gtest.h>

namespace modelmgr::hub {
namespace {

TEST(HttpOptions, CaBundleComesFromTheFirstVariableSetInCurlsOrder)
{
  EXPECT_FALSE(http_options_from_env(util::MapEnv{}).ca_bundle);
  EXPECT_EQ(http_options_from_env(util::MapEnv{{"SSL_CERT_FILE", "/c"}}).ca_bundle, "/c");
  EXPECT_EQ(
      http_options_from_env(util::MapEnv{{"REQUESTS_CA_BUNDLE", "/b"}, {"SSL_CERT_FILE", "/c"}}).ca_bundle,
      "/b");
  EXPECT_EQ(http_options_from_env(
                util::MapEnv{{"CURL_CA_BUNDLE", "/a"}, {"REQUESTS_CA_BUNDLE", "/b"}, {"SSL_CERT_FILE", "/c"}})
                .ca_bundle,
            "/a");
  // An empty variable counts as unset, as in curl.
  EXPECT_EQ(http_options_from_env(util::MapEnv{{"CURL_CA_BUNDLE", ""}, {"SSL_CERT_FILE", "/c"}}).ca_bundle,
            "/c");
}

TEST(HttpOptions, UserAgentNamesTheProgramAndHubCompatibility)
{
  EXPECT_EQ(http_options_from_env(util::MapEnv{}).user_agent, "modelmgr/0.1.0; hf_hub/compatible");
  EXPECT_EQ(http_options_from_env(util::MapEnv{}, "modelmgr-serve").user_agent,
            "modelmgr-serve/0.1.0; hf_hub/compatible");
}

} // namespace
} // namespace modelmgr::hub
