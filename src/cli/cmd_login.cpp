// `modelmgr login`, `logout`, `whoami`: the access token where the `hf` CLI keeps it ($HF_HOME/token and
// stored_tokens, mode 0600), validated with the Hub's whoami-v2 before anything is written. The token is
// read from a prompt that does not echo, or from standard input with `--token -`; it is never printed.

#include "modelmgr/errors.hpp"

#include "cli/cli.hpp"
#include "hub/http_options.hpp"
#include "hub/hub_client.hpp"
#include "hub/token_store.hpp"
#include "net/http.hpp"
#include "util/env.hpp"

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

namespace modelmgr::cli {

namespace {

struct AuthArgs {
  std::string token; // "-" = read a line from stdin
  std::string endpoint;
  std::string token_name;
};

std::string clean(std::string t)
{
  std::erase(t, '\r');
  std::erase(t, '\n');
  const auto first = t.find_first_not_of(" \t");
  if (first == std::string::npos) {
    return {};
  }
  return t.substr(first, t.find_last_not_of(" \t") - first + 1);
}

// One line from `fd`, byte by byte (no buffering past the newline). Stops at EOF. A signal (Ctrl-C) ends it
// as interrupted.
std::string read_line(int fd)
{
  std::string line;
  char c = 0;
  for (;;) {
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) {
      if (cancel_flag().load()) {
        throw ModelManagerError(ErrorKind::interrupted, "interrupted while reading the token");
      }
      continue;
    }
    if (n <= 0 || c == '\n') {
      break;
    }
    line += c;
  }
  return line;
}

// Asks on the terminal with echo off, restoring the terminal's settings on every way out.
std::string prompt_token()
{
  struct EchoOff {
    termios saved{};
    bool active = false;
    EchoOff()
    {
      if (::tcgetattr(STDIN_FILENO, &saved) == 0) {
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        quiet.c_lflag |= ECHONL;
        // TCSANOW, not TCSAFLUSH: input typed ahead (a paste right after the prompt) must not be dropped.
        active = ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
      }
    }
    ~EchoOff()
    {
      if (active) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
      }
    }
  };
  // Echo goes off before the prompt appears, so nothing typed after it is ever shown.
  EchoOff echo_off;
  print_stderr_noexcept("Enter your Hugging Face access token (input is not shown): ");
  return read_line(STDIN_FILENO);
}

std::string token_from_args(const AuthArgs& a)
{
  std::string token;
  if (a.token == "-") {
    token = read_line(STDIN_FILENO);
  } else if (!a.token.empty()) {
    token = a.token;
  } else if (::isatty(STDIN_FILENO) != 0) {
    token = prompt_token();
  } else {
    throw ConfigurationError(
        "no terminal to ask for the token on",
        "pass it on standard input: `printf '%s\\n' \"$TOKEN\" | modelmgr login --token -`",
        ErrorKind::usage);
  }
  token = clean(std::move(token));
  if (token.empty()) {
    throw ConfigurationError(
        "empty token", "paste an access token from https://huggingface.co/settings/tokens", ErrorKind::usage);
  }
  return token;
}

hub::UserInfo ask_hub(const std::string& endpoint_flag, const std::string& token)
{
  const auto& env = util::Env::process();
  hub::HubConfig config = hub::hub_config_from_env(env);
  if (!endpoint_flag.empty()) {
    config.endpoint = hub::normalize_endpoint(endpoint_flag);
  }
  config.token = token;
  // The same CA bundle variables `pull` honours, so that login works wherever downloads do.
  net::Client http(hub::http_options_from_env(env));
  hub::HubClient client(config, http, &cancel_flag());
  return hub::whoami(client);
}

nlohmann::json user_json(const hub::UserInfo& u)
{
  return {{"name", u.name}, {"fullname", u.fullname},     {"type", u.type},
          {"orgs", u.orgs}, {"token_name", u.token_name}, {"role", u.role}};
}

void run_login(const AuthArgs& a, const GlobalOptions& global)
{
  const auto& env = util::Env::process();
  const std::string token = token_from_args(a);
  // Validated before anything is written: a mistyped token never replaces a working one.
  const hub::UserInfo user = ask_hub(a.endpoint, token);
  std::string name = !a.token_name.empty()      ? a.token_name
                     : !user.token_name.empty() ? user.token_name
                                                : "modelmgr-" + user.name;
  const hub::SavedLogin saved = hub::save_login(env, token, name);
  const bool env_wins = env.get_nonempty("HF_TOKEN") || env.get_nonempty("HUGGING_FACE_HUB_TOKEN");
  if (global.json) {
    auto j = user_json(user);
    j["token_name"] = name;
    j["token_path"] = saved.token_file.string();
    j["stored_tokens_path"] = saved.stored_tokens_file.string();
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("Logged in as {}{} (token '{}'{}).\n", user.name,
             user.fullname.empty() ? "" : " (" + user.fullname + ")", name,
             user.role.empty() ? "" : ", " + user.role);
  fmt::print("Token saved to {} (also in {}), shared with the hf CLI and huggingface_hub.\n",
             saved.token_file.string(), saved.stored_tokens_file.string());
  if (env_wins) {
    fmt::print(stderr, "note: HF_TOKEN is set in the environment and is used instead of the saved token.\n");
  }
}

void run_logout(const AuthArgs& a, const GlobalOptions& global)
{
  const auto& env = util::Env::process();
  const auto r = hub::logout(env, a.token_name.empty() ? std::nullopt : std::optional(a.token_name));
  if (!r.name_found) {
    throw ConfigurationError(
        fmt::format("no stored token named '{}' in {}", a.token_name, hub::stored_tokens_path(env).string()),
        "`modelmgr logout` without --token-name removes every stored token", ErrorKind::usage);
  }
  if (global.json) {
    nlohmann::json removed = nlohmann::json::array();
    for (const auto& p : r.removed) {
      removed.push_back(p.string());
    }
    fmt::print("{}\n", nlohmann::json{{"was_logged_in", r.was_logged_in}, {"removed", removed}}.dump());
    return;
  }
  if (r.removed.empty()) {
    fmt::print("Not logged in (no token in {}).\n", hub::token_path(env).string());
  } else {
    for (const auto& p : r.removed) {
      fmt::print("Removed {}\n", p.string());
    }
  }
  if (env.get_nonempty("HF_TOKEN") || env.get_nonempty("HUGGING_FACE_HUB_TOKEN")) {
    fmt::print(stderr, "note: HF_TOKEN is still set in the environment; unset it to stop using a token.\n");
  }
}

void run_whoami(const AuthArgs& a, const GlobalOptions& global)
{
  const auto& env = util::Env::process();
  std::string source;
  std::optional<std::string> token;
  if (!a.token.empty()) {
    token = token_from_args(a);
    source = "--token";
  } else if ((token = hub::find_token(env))) {
    source = env.get_nonempty("HF_TOKEN")                 ? "HF_TOKEN"
             : env.get_nonempty("HUGGING_FACE_HUB_TOKEN") ? "HUGGING_FACE_HUB_TOKEN"
                                                          : hub::token_path(env).string();
  }
  if (!token) {
    throw DownloadError(
        ErrorKind::auth,
        fmt::format("not logged in (no HF_TOKEN and no token in {})", hub::token_path(env).string()),
        "run `modelmgr login`");
  }
  const hub::UserInfo user = ask_hub(a.endpoint, *token);
  if (global.json) {
    auto j = user_json(user);
    j["token_source"] = source;
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("{}\n", user.name);
  if (!user.orgs.empty()) {
    fmt::print("orgs: {}\n", fmt::join(user.orgs, ","));
  }
  if (!global.quiet) {
    fmt::print(stderr, "token '{}'{} from {}\n", user.token_name,
               user.role.empty() ? "" : " (" + user.role + ")", source);
  }
}

} // namespace

void set_login_commands(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto login_args = std::make_shared<AuthArgs>();
  auto* login = app.add_subcommand(
      "login",
      "Save a Hugging Face access token where the hf CLI keeps it ($HF_HOME/token), after checking it");
  login->add_option("--token", login_args->token,
                    "'-' reads the token from standard input (for scripts); default: ask on the terminal "
                    "without echo");
  login->add_option("--token-name", login_args->token_name,
                    "Name to store the token under (default: the name the Hub gives it)");
  login->add_option("--endpoint", login_args->endpoint,
                    "Hub endpoint (default: HF_ENDPOINT or https://huggingface.co)");
  login->callback([login_args, &global, &exit_code] {
    run_login(*login_args, global);
    exit_code = 0;
  });

  auto logout_args = std::make_shared<AuthArgs>();
  auto* logout =
      app.add_subcommand("logout", "Remove the saved access token(s) ($HF_HOME/token, stored_tokens)");
  logout->add_option("--token-name", logout_args->token_name,
                     "Remove only this stored token (default: every stored token and the active one)");
  logout->callback([logout_args, &global, &exit_code] {
    run_logout(*logout_args, global);
    exit_code = 0;
  });

  auto whoami_args = std::make_shared<AuthArgs>();
  auto* whoami = app.add_subcommand("whoami", "Show the Hub user the current token belongs to");
  whoami->add_option("--token", whoami_args->token, "'-' reads a token to check from standard input");
  whoami->add_option("--endpoint", whoami_args->endpoint,
                     "Hub endpoint (default: HF_ENDPOINT or https://huggingface.co)");
  whoami->callback([whoami_args, &global, &exit_code] {
    run_whoami(*whoami_args, global);
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
