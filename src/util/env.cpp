#include "util/env.hpp"

#include <array>
#include <cstdlib>
#include <vector>

#include <pwd.h>
#include <unistd.h>

namespace modelmgr::util {

namespace {

class ProcessEnv : public Env {
public:
  std::optional<std::string> get(std::string_view name) const override
  {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) {
      return std::nullopt;
    }
    return std::string(value);
  }
};

bool is_name_char(char c) noexcept
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// getpw*_r with a growing buffer: the static getpw* variants are not thread-safe.
std::optional<std::string> home_from_passwd(const std::optional<std::string>& user)
{
  std::vector<char> buf(4096);
  for (int attempt = 0; attempt < 6; ++attempt) {
    struct passwd pw {};
    struct passwd* result = nullptr;
    const int rc = user ? ::getpwnam_r(user->c_str(), &pw, buf.data(), buf.size(), &result)
                        : ::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &result);
    if (rc == ERANGE) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || result == nullptr || result->pw_dir == nullptr) {
      return std::nullopt;
    }
    return std::string(result->pw_dir);
  }
  return std::nullopt;
}

} // namespace

std::optional<std::string> Env::get_nonempty(std::string_view name) const
{
  auto value = get(name);
  if (value && value->empty()) {
    return std::nullopt;
  }
  return value;
}

const Env& Env::process()
{
  static const ProcessEnv env;
  return env;
}

std::optional<std::string> MapEnv::get(std::string_view name) const
{
  auto it = m_vars.find(name);
  if (it == m_vars.end()) {
    return std::nullopt;
  }
  return it->second;
}

void MapEnv::unset(std::string_view name)
{
  auto it = m_vars.find(name);
  if (it != m_vars.end()) {
    m_vars.erase(it);
  }
}

bool is_truthy(std::string_view value) noexcept
{
  static constexpr std::array<std::string_view, 4> truthy{"1", "ON", "YES", "TRUE"};
  for (std::string_view t : truthy) {
    if (t.size() != value.size()) {
      continue;
    }
    bool same = true;
    for (std::size_t i = 0; i < t.size(); ++i) {
      char c = value[i];
      if (c >= 'a' && c <= 'z') {
        c = static_cast<char>(c - 'a' + 'A');
      }
      if (c != t[i]) {
        same = false;
        break;
      }
    }
    if (same) {
      return true;
    }
  }
  return false;
}

bool env_bool(const Env& env, std::string_view name, bool default_value)
{
  auto value = env.get(name);
  if (!value) {
    return default_value;
  }
  return is_truthy(*value);
}

std::string expand_user(std::string_view path, const Env& env)
{
  if (path.empty() || path.front() != '~') {
    return std::string(path);
  }
  std::size_t end = path.find('/', 1);
  if (end == std::string_view::npos) {
    end = path.size();
  }
  std::optional<std::string> home;
  if (end == 1) {
    home = env.get("HOME");
    if (!home) {
      home = home_from_passwd(std::nullopt);
    }
  } else {
    home = home_from_passwd(std::string(path.substr(1, end - 1)));
  }
  if (!home) {
    return std::string(path);
  }
  // Python strips trailing separators from the home directory and falls back to "/" for an empty result.
  while (!home->empty() && home->back() == '/') {
    home->pop_back();
  }
  std::string out = *home + std::string(path.substr(end));
  return out.empty() ? std::string("/") : out;
}

std::string expand_vars(std::string_view path, const Env& env)
{
  std::string out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] != '$') {
      out += path[i++];
      continue;
    }
    std::string_view name;
    std::size_t next = 0;
    if (i + 1 < path.size() && path[i + 1] == '{') {
      const std::size_t close = path.find('}', i + 2);
      if (close == std::string_view::npos) {
        out += path[i++];
        continue;
      }
      name = path.substr(i + 2, close - i - 2);
      next = close + 1;
    } else {
      std::size_t end = i + 1;
      while (end < path.size() && is_name_char(path[end])) {
        ++end;
      }
      if (end == i + 1) {
        out += path[i++];
        continue;
      }
      name = path.substr(i + 1, end - i - 1);
      next = end;
    }
    // Unknown variables (and "${}") stay as written, as in Python.
    const std::optional<std::string> value = name.empty() ? std::nullopt : env.get(name);
    out += value ? std::string_view(*value) : path.substr(i, next - i);
    i = next;
  }
  return out;
}

std::string expand_path(std::string_view path, const Env& env)
{
  return expand_vars(expand_user(path, env), env);
}

} // namespace modelmgr::util
