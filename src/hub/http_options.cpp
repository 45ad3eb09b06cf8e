#include "hub/http_options.hpp"

#include <fmt/format.h>

namespace modelmgr::hub {

net::ClientOptions http_options_from_env(const util::Env& env, std::string_view product)
{
  net::ClientOptions options;
  options.user_agent = fmt::format("{}/0.1.0; hf_hub/compatible", product);
  for (const char* name : {"CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"}) {
    if (auto v = env.get_nonempty(name)) {
      options.ca_bundle = *v;
      break;
    }
  }
  return options;
}

} // namespace modelmgr::hub
