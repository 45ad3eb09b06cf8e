#pragma once
// The access token on disk, where the `hf` CLI (huggingface_hub) keeps it, so that `modelmgr login` and
// `hf auth login` share one login: the active token in HF_TOKEN_PATH (default $HF_HOME/token) and every
// named token in `stored_tokens` beside it (an INI file: one `[name]` section per token with `hf_token =
// <token>`, as Python's configparser writes it). Both files are secrets: mode 0600 in a 0700 folder, written
// atomically. Plus the Hub's whoami-v2 call that validates a token. Nothing here prints, and no message
// carries a token.

#include "hub/hub_client.hpp"
#include "util/env.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::hub {

// HF_TOKEN_PATH (with `~`/$VAR expanded), else $HF_HOME/token.
std::filesystem::path token_path(const util::Env& env);
// `stored_tokens` in the token file's folder (huggingface_hub's HF_STORED_TOKENS_PATH).
std::filesystem::path stored_tokens_path(const util::Env& env);

// Name → token from the INI text; sections without `hf_token` are skipped. nullopt when the text is not
// INI at all (Python then treats the file as empty, and so does modelmgr).
std::optional<std::map<std::string, std::string>> parse_stored_tokens(std::string_view text);
// The INI text configparser writes: sections sorted by name, `hf_token = <token>`, a blank line after each.
std::string format_stored_tokens(const std::map<std::string, std::string>& tokens);

// Replaces `path` atomically with `content` readable by its owner only (0600; the folder is created 0700).
// Throws DownloadError (disk) naming the file.
void write_secret_file(const std::filesystem::path& path, std::string_view content);

struct SavedLogin {
  std::filesystem::path token_file;
  std::filesystem::path stored_tokens_file;
};
// Adds (or replaces) `name` in stored_tokens and makes `token` the active token (the token file), as
// `hf auth login` does. Throws DownloadError (disk).
SavedLogin save_login(const util::Env& env, const std::string& token, const std::string& name);

struct LogoutResult {
  std::vector<std::filesystem::path> removed; // files deleted or rewritten
  bool was_logged_in = false;                 // a token file or a stored token existed
  bool name_found = true;                     // with a name: it was among the stored tokens
};
// Without a name: deletes the token file and stored_tokens (every stored token), as `hf auth logout`.
// With a name: removes that token from stored_tokens, and the token file too when it is the active one.
// Throws DownloadError (disk).
LogoutResult logout(const util::Env& env, const std::optional<std::string>& name);

// What GET /api/whoami-v2 says about a token's owner.
struct UserInfo {
  std::string name;
  std::string fullname;
  std::string type;       // "user", "org"
  std::string token_name; // auth.accessToken.displayName ("" when absent)
  std::string role;       // auth.accessToken.role: read, write, fineGrained ("" when absent)
  std::vector<std::string> orgs;
};
// Asks the Hub who owns the client's token (HubConfig::token, which must be set). Throws DownloadError(auth)
// when the Hub refuses it (401/403), other DownloadErrors for network failures, BadResponseError for an
// answer that is not the expected JSON.
UserInfo whoami(HubClient& hub);

} // namespace modelmgr::hub
