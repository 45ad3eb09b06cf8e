#pragma once
// Error classes thrown by the modelmgr library at command level. Each carries a kind that the CLI maps
// to a documented exit code, a message (what failed, where, the reason) and an optional hint (how to fix).

#include <stdexcept>
#include <string>

namespace modelmgr {

enum class ErrorKind {
  internal,    // a bug or an unexpected system state
  usage,       // bad flags or arguments
  config,      // invalid configuration file
  not_found,   // repo, revision or file does not exist (remotely, or locally in offline mode)
  auth,        // token missing or refused, gated repo
  checksum,    // downloaded or cached bytes do not match the Hub's hash
  network,     // transfer failed after retries
  disk,        // no space, permission, I/O error on the cache
  interrupted, // SIGINT/SIGTERM
  locked,      // another process holds a lock past the timeout
  // The server's answer is unusable or hostile (malformed or wrong-typed JSON, absurd sizes, unsafe file
  // names, a redirect to a scheme other than http/https, a body over the size cap). Exits with the network
  // class's code: to a script both mean "the remote side failed"; --json tells them apart by kind.
  bad_response,
};

// Exit code of the CLI for each kind (documented in the README).
int exit_code_for(ErrorKind kind) noexcept;
const char* to_string(ErrorKind kind) noexcept;

class ModelManagerError : public std::runtime_error {
public:
  ModelManagerError(ErrorKind kind, std::string message, std::string hint = {})
      : std::runtime_error(std::move(message)), m_kind(kind), m_hint(std::move(hint))
  {
  }
  ErrorKind kind() const noexcept { return m_kind; }
  // How to fix it; may be empty.
  const std::string& hint() const noexcept { return m_hint; }

private:
  ErrorKind m_kind;
  std::string m_hint;
};

// The configuration (file, flags, environment) is invalid.
class ConfigurationError : public ModelManagerError {
public:
  explicit ConfigurationError(std::string message, std::string hint = {}, ErrorKind kind = ErrorKind::config)
      : ModelManagerError(kind, std::move(message), std::move(hint))
  {
  }
};

// A repo, revision or file is missing (on the Hub, or from the cache in offline mode).
class MissingModelError : public ModelManagerError {
public:
  explicit MissingModelError(std::string message, std::string hint = {})
      : ModelManagerError(ErrorKind::not_found, std::move(message), std::move(hint))
  {
  }
};

// Bytes do not match their expected hash or size.
class BadChecksumError : public ModelManagerError {
public:
  explicit BadChecksumError(std::string message, std::string hint = {})
      : ModelManagerError(ErrorKind::checksum, std::move(message), std::move(hint))
  {
  }
};

// A transfer failed: network, auth, interruption, disk.
class DownloadError : public ModelManagerError {
public:
  DownloadError(ErrorKind kind, std::string message, std::string hint = {})
      : ModelManagerError(kind, std::move(message), std::move(hint))
  {
  }
};

// The server's answer cannot be trusted: malformed or wrong-typed JSON, negative or absurd sizes, file
// names that would leave the repo, a redirect to a non-HTTP scheme, a body over the size cap. Never
// retried: the same server gives the same answer.
class BadResponseError : public ModelManagerError {
public:
  explicit BadResponseError(std::string message, std::string hint = {})
      : ModelManagerError(ErrorKind::bad_response, std::move(message), std::move(hint))
  {
  }
};

} // namespace modelmgr
