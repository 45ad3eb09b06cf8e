#pragma once
// The process environment behind a narrow interface, so that cache-location and flag logic can be tested
// with a fake environment, plus the Hugging Face boolean rule and Python-style path expansion.

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace modelmgr::util {

class Env {
public:
  virtual ~Env() = default;
  // Returns the value of `name`, or nullopt when unset (an empty value is returned as "").
  virtual std::optional<std::string> get(std::string_view name) const = 0;
  // Returns the value of `name` unless it is unset or empty (how XDG and most HF variables treat "").
  std::optional<std::string> get_nonempty(std::string_view name) const;

  // Returns the real process environment (getenv).
  static const Env& process();
};

// A fixed environment for tests and for callers that want to override variables.
class MapEnv : public Env {
public:
  MapEnv() = default;
  // Takes {{"NAME", "value"}, ...}. (Not a std::map parameter: {{"A", "b"}} would then be ambiguous with
  // map's iterator-pair constructor.)
  MapEnv(std::initializer_list<std::pair<const std::string, std::string>> vars) : m_vars(vars) {}
  std::optional<std::string> get(std::string_view name) const override;
  // Sets `name` to `value`.
  void set(std::string name, std::string value) { m_vars[std::move(name)] = std::move(value); }
  // Removes `name`.
  void unset(std::string_view name);

private:
  std::map<std::string, std::string, std::less<>> m_vars;
};

// Returns true iff `value`, compared case-insensitively and untrimmed, is one of 1, ON, YES, TRUE
// (huggingface_hub's ENV_VARS_TRUE_VALUES).
bool is_truthy(std::string_view value) noexcept;
// Returns is_truthy() of the variable, or `default_value` when it is unset.
bool env_bool(const Env& env, std::string_view name, bool default_value = false);

// Returns `path` with a leading "~" or "~user" replaced by the home directory as Python's
// os.path.expanduser does ($HOME first for "~", then the passwd database); unchanged if unknown.
std::string expand_user(std::string_view path, const Env& env);
// Returns `path` with $NAME and ${NAME} replaced by their values as Python's os.path.expandvars does
// (NAME = [A-Za-z0-9_]+; unknown variables and a lone "$" are left as they are).
std::string expand_vars(std::string_view path, const Env& env);
// Returns expand_vars(expand_user(path)): the order huggingface_hub's constants.py applies them in.
std::string expand_path(std::string_view path, const Env& env);

} // namespace modelmgr::util
