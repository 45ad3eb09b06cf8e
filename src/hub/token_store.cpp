#include "hub/token_store.hpp"

#include "modelmgr/errors.hpp"

#include "cache/paths.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <nlohmann/json.hpp>
#include <system_error>

#include <fmt/format.h>
#include <sys/stat.h>

namespace modelmgr::hub {

namespace fs = std::filesystem;

namespace {

std::string_view trim(std::string_view s)
{
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string lower(std::string_view s)
{
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

[[noreturn]] void throw_disk(const std::system_error& e, const fs::path& path, std::string_view what)
{
  throw DownloadError(ErrorKind::disk, fmt::format("cannot {} {}: {}", what, path.string(), e.what()),
                      "check the permissions of the folder (HF_HOME, HF_TOKEN_PATH)");
}

std::map<std::string, std::string> read_stored(const fs::path& path)
{
  try {
    if (auto text = util::read_file_if_exists(path)) {
      return parse_stored_tokens(*text).value_or(std::map<std::string, std::string>{});
    }
  } catch (const std::system_error& e) {
    throw_disk(e, path, "read");
  }
  return {};
}

void remove_file(const fs::path& path, std::vector<fs::path>& removed)
{
  std::error_code ec;
  if (fs::remove(path, ec)) {
    removed.push_back(path);
  } else if (ec) {
    throw_disk(std::system_error(ec), path, "remove");
  }
}

// The token in the active token file, cleaned as find_token() cleans it; "" when none.
std::string active_token(const fs::path& path)
{
  std::optional<std::string> text;
  try {
    text = util::read_file_if_exists(path);
  } catch (const std::system_error& e) {
    throw_disk(e, path, "read");
  }
  std::string t;
  for (char c : text.value_or("")) {
    if (c != '\r' && c != '\n') {
      t += c;
    }
  }
  return std::string(trim(t));
}

} // namespace

fs::path token_path(const util::Env& env)
{
  if (auto p = env.get_nonempty("HF_TOKEN_PATH")) {
    return util::expand_path(*p, env);
  }
  return cache::hf_home(env) / "token";
}

fs::path stored_tokens_path(const util::Env& env)
{
  return token_path(env).parent_path() / "stored_tokens";
}

std::optional<std::map<std::string, std::string>> parse_stored_tokens(std::string_view text)
{
  std::map<std::string, std::string> tokens;
  std::optional<std::string> section;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#' || line.front() == ';') {
      continue;
    }
    if (line.front() == '[') {
      if (line.back() != ']' || line.size() < 3) {
        return std::nullopt;
      }
      section = std::string(line.substr(1, line.size() - 2));
      continue;
    }
    const auto eq = line.find_first_of("=:");
    if (!section || eq == std::string_view::npos) {
      return std::nullopt; // a key outside a section, or a line that is no key: not INI
    }
    // configparser lower-cases keys.
    if (lower(trim(line.substr(0, eq))) == "hf_token") {
      tokens[*section] = std::string(trim(line.substr(eq + 1)));
    }
  }
  return tokens;
}

std::string format_stored_tokens(const std::map<std::string, std::string>& tokens)
{
  std::string out;
  for (const auto& [name, token] : tokens) { // std::map: sorted by name, as Python sorts them
    out += fmt::format("[{}]\nhf_token = {}\n\n", name, token);
  }
  return out;
}

void write_secret_file(const fs::path& path, std::string_view content)
{
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  try {
    if (!fs::exists(dir)) {
      util::create_directories(dir);
      // Only a folder created here is narrowed: an existing HF_HOME keeps the permissions its owner chose.
      if (::chmod(dir.c_str(), 0700) != 0) {
        throw util::make_fs_error(errno, "chmod", dir);
      }
    }
    util::TempFile tmp = util::TempFile::create_beside(path);
    // Owner-only before the first byte of the secret is written.
    if (::fchmod(tmp.fd(), 0600) != 0) {
      throw util::make_fs_error(errno, "chmod", tmp.path());
    }
    tmp.write(content);
    tmp.commit(path);
  } catch (const std::system_error& e) {
    throw_disk(e, path, "write");
  }
}

SavedLogin save_login(const util::Env& env, const std::string& token, const std::string& name)
{
  SavedLogin saved{token_path(env), stored_tokens_path(env)};
  auto tokens = read_stored(saved.stored_tokens_file);
  tokens[name] = token;
  write_secret_file(saved.stored_tokens_file, format_stored_tokens(tokens));
  write_secret_file(saved.token_file, token);
  return saved;
}

LogoutResult logout(const util::Env& env, const std::optional<std::string>& name)
{
  LogoutResult r;
  const fs::path token_file = token_path(env);
  const fs::path stored_file = stored_tokens_path(env);
  auto tokens = read_stored(stored_file);
  const std::string active = active_token(token_file);
  r.was_logged_in = !active.empty() || !tokens.empty();
  if (!name) {
    remove_file(token_file, r.removed);
    remove_file(stored_file, r.removed);
    return r;
  }
  const auto it = tokens.find(*name);
  if (it == tokens.end()) {
    r.name_found = false;
    return r;
  }
  const bool is_active = !active.empty() && it->second == active;
  tokens.erase(it);
  write_secret_file(stored_file, format_stored_tokens(tokens));
  r.removed.push_back(stored_file);
  if (is_active) {
    remove_file(token_file, r.removed);
  }
  return r;
}

UserInfo whoami(HubClient& hub)
{
  const std::string url = hub.config().endpoint + "/api/whoami-v2";
  net::Request req;
  req.url = url;
  const net::Response r = hub.request_with_retries(req, "asking the Hub who owns the token");
  if (r.transport_ok() && (r.status == 401 || r.status == 403)) {
    throw DownloadError(ErrorKind::auth,
                        fmt::format("{} refused the token (HTTP {}): it is invalid, expired or revoked",
                                    hub.config().endpoint, r.status),
                        fmt::format("create a token at {}/settings/tokens and run `modelmgr login` again",
                                    hub.config().endpoint));
  }
  if (!r.transport_ok()) {
    throw DownloadError(ErrorKind::network, describe_transport_error(r, net::display_url(url)),
                        "check the network and HF_ENDPOINT");
  }
  if (!r.is_success()) {
    throw DownloadError(ErrorKind::network,
                        fmt::format("GET {} answered HTTP {}", net::display_url(url), r.status),
                        "check HF_ENDPOINT, or try again later");
  }
  const auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) {
    throw BadResponseError(
        fmt::format("the answer of {} is not a user (no string \"name\")", net::display_url(url)),
        "check HF_ENDPOINT: it does not behave like the Hugging Face Hub");
  }
  auto text = [](const nlohmann::json& o, const char* key) {
    return o.is_object() && o.contains(key) && o[key].is_string() ? o[key].get<std::string>() : std::string();
  };
  UserInfo u;
  u.name = j["name"].get<std::string>();
  u.fullname = text(j, "fullname");
  u.type = text(j, "type");
  if (j.contains("auth") && j["auth"].is_object() && j["auth"].contains("accessToken")) {
    const auto& at = j["auth"]["accessToken"];
    u.token_name = text(at, "displayName");
    u.role = text(at, "role");
  }
  if (j.contains("orgs") && j["orgs"].is_array()) {
    for (const auto& o : j["orgs"]) {
      if (auto n = text(o, "name"); !n.empty()) {
        u.orgs.push_back(n);
      }
    }
  }
  return u;
}

} // namespace modelmgr::hub
