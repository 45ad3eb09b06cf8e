#pragma once
// Where the Hugging Face cache lives and how repos are named in it: the cache-dir precedence of the
// Python client, repo types, `models--org--name` folder names, and Hub repo-id validation.

#include "util/env.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace modelmgr::cache {

enum class RepoType { model, dataset, space };

// Returns the type for "model", "dataset", "space" (also the plurals "models", ...), or nullopt.
std::optional<RepoType> parse_repo_type(std::string_view text) noexcept;
// Returns "model", "dataset" or "space".
std::string_view to_string(RepoType type) noexcept;
// Returns "models", "datasets" or "spaces": the cache folder prefix and the /api/<plural>/ segment.
std::string_view plural(RepoType type) noexcept;
// Returns the prefix of a repo in Hub file URLs: "" for models, "datasets/" or "spaces/" otherwise.
std::string_view url_prefix(RepoType type) noexcept;

// Returns $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface; "~" and $VAR expanded,
// made absolute (lexically normalised, symlinks kept). Empty variables count as unset.
std::filesystem::path hf_home(const util::Env& env);

// Returns the hub cache directory: `explicit_dir` if given, else HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE,
// else hf_home()/hub. "~" and $VAR are expanded (as Python does for the variables), and the result is
// absolute and lexically normalised. Empty variables count as unset (Python would use the CWD).
std::filesystem::path resolve_cache_dir(std::optional<std::filesystem::path> explicit_dir,
                                        const util::Env& env);

// Returns the repo's folder name in the cache: "models--org--name", "datasets--name", ... (case kept).
std::string repo_folder_name(RepoType type, std::string_view repo_id);

struct RepoFolder {
  RepoType type;
  std::string repo_id;
  bool operator==(const RepoFolder&) const = default;
};
// Returns the type and repo id of a cache folder name (split at the first "--", drop the plural "s",
// remaining "--" → "/"), or nullopt for names that are not repo folders (".locks", "CACHEDIR.TAG",
// "kernels--x", "models--").
std::optional<RepoFolder> parse_repo_folder_name(std::string_view folder_name);

// Returns why `repo_id` is not a valid Hub repo id, or nullopt if valid. Rules (huggingface_hub's
// validate_repo_id, restricted to ASCII): "name" or "namespace/name"; characters [A-Za-z0-9._-]; each part
// starts and ends with a letter, digit or "_"; name at most 96 characters; no "--" or ".."; not ending in
// ".git".
std::optional<std::string> repo_id_error(std::string_view repo_id);
// Throws std::invalid_argument "invalid repo id '<id>': <reason>" when repo_id_error() reports one.
void validate_repo_id(std::string_view repo_id);

// Returns true for a full commit hash: exactly 40 lower-case hex digits.
bool is_commit_hash(std::string_view revision) noexcept;

// Returns why `revision` cannot name a ref file under refs/ (it may contain "/": "refs/pr/1"), or nullopt.
// Rejected: empty, NUL, backslash, absolute, empty/"."/".." segments.
std::optional<std::string> revision_error(std::string_view revision);

// The exact content of `CACHEDIR.TAG` as huggingface_hub writes it (4 lines, each ending in "\n").
inline constexpr std::string_view k_cachedir_tag =
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by huggingface_hub.\n"
    "# For information about cache directory tags, see:\n"
    "#\thttps://bford.info/cachedir/\n";

} // namespace modelmgr::cache
