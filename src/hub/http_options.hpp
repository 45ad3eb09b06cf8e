#pragma once
// The HTTP client settings of every command that talks to a hub (pull, sync, models, login, serve's
// upstream), so that they identify and trust the same way.

#include "net/http.hpp"
#include "util/env.hpp"

#include <string_view>

namespace modelmgr::hub {

// modelmgr's user agent (`product` names the program, e.g. "modelmgr-serve") and the CA bundle from
// CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE or SSL_CERT_FILE, the first one set, as curl and Python's requests
// honour them.
net::ClientOptions http_options_from_env(const util::Env& env, std::string_view product = "modelmgr");

} // namespace modelmgr::hub
