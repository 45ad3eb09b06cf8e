#include "cache/paths.hpp"

#include "util/fs.hpp"

#include <stdexcept>

namespace modelmgr::cache {

namespace fs = std::filesystem;

namespace {

// Absolute and lexically normal, without a trailing separator ("/a/b/" → "/a/b"); symlinks are kept so
// the paths we return are the ones the user configured.
fs::path absolute_normal(const std::string& path)
{
  fs::path p = fs::absolute(fs::path(path)).lexically_normal();
  if (!p.has_filename() && p.has_relative_path()) {
    p = p.parent_path();
  }
  return p;
}

bool is_word_char(char c) noexcept
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool is_id_char(char c) noexcept
{
  return is_word_char(c) || c == '-' || c == '.';
}

std::optional<std::string> part_error(std::string_view part, std::string_view what)
{
  if (part.empty()) {
    return std::string(what) + " is empty";
  }
  for (char c : part) {
    if (!is_id_char(c)) {
      return std::string(what) + " contains '" + std::string(1, c) +
             "' (allowed: letters, digits, '-', '_' and '.')";
    }
  }
  if (!is_word_char(part.front()) || !is_word_char(part.back())) {
    return std::string(what) + " cannot start or end with '-' or '.'";
  }
  return std::nullopt;
}

} // namespace

std::optional<RepoType> parse_repo_type(std::string_view text) noexcept
{
  if (text == "model" || text == "models") {
    return RepoType::model;
  }
  if (text == "dataset" || text == "datasets") {
    return RepoType::dataset;
  }
  if (text == "space" || text == "spaces") {
    return RepoType::space;
  }
  return std::nullopt;
}

std::string_view to_string(RepoType type) noexcept
{
  switch (type) {
  case RepoType::model: return "model";
  case RepoType::dataset: return "dataset";
  case RepoType::space: return "space";
  }
  return "model";
}

std::string_view plural(RepoType type) noexcept
{
  switch (type) {
  case RepoType::model: return "models";
  case RepoType::dataset: return "datasets";
  case RepoType::space: return "spaces";
  }
  return "models";
}

std::string_view url_prefix(RepoType type) noexcept
{
  switch (type) {
  case RepoType::model: return "";
  case RepoType::dataset: return "datasets/";
  case RepoType::space: return "spaces/";
  }
  return "";
}

fs::path hf_home(const util::Env& env)
{
  if (auto home = env.get_nonempty("HF_HOME")) {
    return absolute_normal(util::expand_path(*home, env));
  }
  if (auto xdg = env.get_nonempty("XDG_CACHE_HOME")) {
    return absolute_normal(util::expand_path(*xdg, env)) / "huggingface";
  }
  return absolute_normal(util::expand_user("~", env)) / ".cache" / "huggingface";
}

fs::path resolve_cache_dir(std::optional<fs::path> explicit_dir, const util::Env& env)
{
  if (explicit_dir && !explicit_dir->empty()) {
    return absolute_normal(util::expand_path(explicit_dir->string(), env));
  }
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    if (auto value = env.get_nonempty(name)) {
      return absolute_normal(util::expand_path(*value, env));
    }
  }
  return hf_home(env) / "hub";
}

std::string repo_folder_name(RepoType type, std::string_view repo_id)
{
  std::string out(plural(type));
  out += "--";
  for (char c : repo_id) {
    if (c == '/') {
      out += "--";
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<RepoFolder> parse_repo_folder_name(std::string_view folder_name)
{
  const std::size_t sep = folder_name.find("--");
  if (sep == std::string_view::npos || sep == 0) {
    return std::nullopt;
  }
  const std::string_view type_part = folder_name.substr(0, sep);
  if (type_part.back() != 's') {
    return std::nullopt;
  }
  const auto type = parse_repo_type(type_part.substr(0, type_part.size() - 1));
  if (!type) {
    return std::nullopt;
  }
  const std::string_view rest = folder_name.substr(sep + 2);
  if (rest.empty()) {
    return std::nullopt;
  }
  std::string repo_id;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '-' && i + 1 < rest.size() && rest[i + 1] == '-') {
      repo_id += '/';
      ++i;
    } else {
      repo_id += rest[i];
    }
  }
  return RepoFolder{*type, std::move(repo_id)};
}

std::optional<std::string> repo_id_error(std::string_view repo_id)
{
  if (repo_id.empty()) {
    return std::string("it is empty");
  }
  const std::size_t slash = repo_id.find('/');
  if (slash != std::string_view::npos && repo_id.find('/', slash + 1) != std::string_view::npos) {
    return std::string("it must be 'name' or 'namespace/name'");
  }
  std::string_view name = repo_id;
  if (slash != std::string_view::npos) {
    if (auto error = part_error(repo_id.substr(0, slash), "the namespace")) {
      return error;
    }
    name = repo_id.substr(slash + 1);
  }
  if (auto error = part_error(name, "the name")) {
    return error;
  }
  if (name.size() > 96) {
    return std::string("the name is longer than 96 characters");
  }
  if (repo_id.find("--") != std::string_view::npos || repo_id.find("..") != std::string_view::npos) {
    return std::string("it cannot contain '--' or '..'");
  }
  if (repo_id.size() >= 4 && repo_id.substr(repo_id.size() - 4) == ".git") {
    return std::string("it cannot end with '.git'");
  }
  return std::nullopt;
}

void validate_repo_id(std::string_view repo_id)
{
  if (auto error = repo_id_error(repo_id)) {
    throw std::invalid_argument("invalid repo id '" + std::string(repo_id) + "': " + *error);
  }
}

bool is_commit_hash(std::string_view revision) noexcept
{
  if (revision.size() != 40) {
    return false;
  }
  for (char c : revision) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> revision_error(std::string_view revision)
{
  return util::relative_path_error(revision);
}

} // namespace modelmgr::cache
