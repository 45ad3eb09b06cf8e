// `modelmgr start`: ensure a model (catalog entry, model-set choice or a file) is in the cache, then run the
// inference server on it, wait until it is healthy, print its URL, forward SIGINT/SIGTERM and exit with the
// server's status (docs/start.md).

#include "modelmgr/errors.hpp"
#include "modelmgr/pull.hpp"

#include "catalog/catalog.hpp"
#include "cli/cache_maint.hpp"
#include "cli/catalog_cli.hpp"
#include "cli/cli.hpp"
#include "cli/model_set.hpp"
#include "manager/config.hpp"
#include "manager/gguf_select.hpp"
#include "manager/server_launch.hpp"
#include "util/env.hpp"
#include "util/size.hpp"

#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace modelmgr::cli {

namespace fs = std::filesystem;

namespace {

struct StartArgs {
  std::string model;
  std::string file;
  std::string host;
  int port = -1;
  std::string config;
  std::string cache_dir;
  std::string server_command;
  double health_timeout_s = 600;
  bool offline = false;
  bool dry_run = false;
  std::vector<std::string> extra;
};

// The model to serve, once it is on disk.
struct ModelOnDisk {
  std::string spec; // "id:QUANT", or the file name for --file
  fs::path file;    // the weights file (or the snapshot folder for a whole-repo variant)
  fs::path dir;     // its folder
  std::string repo; // Hub repo, empty for --file
  std::string quant;
  std::uint64_t context = 0;
  fs::path mmproj; // the vision projector of a REPO:QUANT pull, when the repo has one
};

// The child server's pid for the signal handler, which forwards SIGINT/SIGTERM to it.
std::atomic<pid_t> g_server_pid{-1};
std::atomic<int> g_forwarded{0};

extern "C" void forward_signal(int sig)
{
  g_forwarded.store(sig);
  cancel_flag().store(true);
  const pid_t pid = g_server_pid.load();
  if (pid > 0) {
    ::kill(pid, sig);
  }
}

void install_forwarding()
{
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// A TCP port nobody listens on right now (for --port 0).
int free_port(const std::string& host)
{
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    throw ModelManagerError(ErrorKind::internal, "cannot create a socket to find a free port");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw ModelManagerError(ErrorKind::usage, fmt::format("cannot find a free port on {}", host),
                            "pass --port N");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::optional<ModelSetConfig> project_config(const StartArgs& a, const GlobalOptions& global)
{
  if (!a.config.empty()) {
    return manager::load_config(a.config);
  }
  if (auto path = default_model_config(!global.quiet && !global.json)) {
    return manager::load_config(*path);
  }
  return std::nullopt;
}

ModelOnDisk ensure_catalog_model(const StartArgs& a, const std::string& spec, const GlobalOptions& global)
{
  const auto& env = util::Env::process();
  const auto cat = load_effective_catalog({}, a.config);
  const auto sel = catalog::resolve(cat, spec);
  const auto& entry = *sel.entry;
  const auto& variant = *sel.variant;
  const fs::path root = cache_root_for(a.cache_dir);
  const std::string label = catalog::spec_of(entry, variant);

  PullOptions o = variant_pull_options(entry, variant);
  o.cache_dir = root;
  if (a.offline) {
    o.offline = true;
  }
  auto state = catalog::variant_cache_state(entry, variant, root, env);
  std::unique_ptr<ProgressObserver> progress;
  if (state.complete) {
    // Resolve from the cache only: no request at all for a model that is already there.
    o.offline = true;
    if (!global.json) {
      fmt::print(stderr, "Using cached model: {}\n", label);
    }
  } else {
    if (!global.json) {
      fmt::print(stderr, "Downloading {} ({}, {}) from {}...\n", label, entry.name,
                 util::format_size(variant.size_bytes), entry.hf_repo);
    }
    progress = make_progress_renderer(global);
    o.observer = progress.get();
  }
  const PullResult r = pull(o);
  ModelOnDisk m;
  m.spec = label;
  m.repo = entry.hf_repo;
  m.quant = variant.quantization;
  m.context = entry.context_length;
  m.dir = r.root;
  m.file = variant.file.empty() ? r.root : r.root / variant.file;
  return m;
}

// `--model org/name[:QUANT]`: the GGUF file(s) of that quantization from any repo, from the cache when the
// selection is complete there (no request), else downloaded. The server gets the first split part.
ModelOnDisk ensure_repo_model(const StartArgs& a, const std::string& spec, const GlobalOptions& global)
{
  const auto rq = manager::split_repo_quant(spec);
  PullOptions o;
  o.repo_id = rq.repo;
  o.gguf_quant = rq.quant.value_or("");
  o.cache_dir = cache_root_for(a.cache_dir);
  o.cancel = &cancel_flag();
  std::optional<PullResult> r;
  std::unique_ptr<ProgressObserver> progress;
  try {
    PullOptions cached = o;
    cached.offline = true;
    r = pull(cached);
    if (!global.json) {
      fmt::print(stderr, "Using cached model: {}\n", spec);
    }
  } catch (const MissingModelError&) {
    if (a.offline) {
      throw;
    }
  }
  if (!r) {
    if (!global.json) {
      fmt::print(stderr, "Downloading {}...\n", spec);
    }
    progress = make_progress_renderer(global);
    o.observer = progress.get();
    r = pull(o);
  }
  ModelOnDisk m;
  m.repo = rq.repo;
  m.dir = r->root;
  m.file = r->files.front().local_path;
  if (auto name = manager::parse_gguf_name(r->files.front().path)) {
    m.quant = name->quant;
  }
  m.spec = m.quant.empty() ? rq.repo : fmt::format("{}:{}", rq.repo, m.quant);
  for (const auto& f : r->files) {
    if (auto name = manager::parse_gguf_name(f.path); name && name->is_mmproj) {
      m.mmproj = f.local_path;
    }
  }
  return m;
}

// A catalog id (`ID[:QUANT]`, never a '/') or a repo (`org/name[:QUANT]`).
ModelOnDisk ensure_model_spec(const StartArgs& a, const std::string& spec, const GlobalOptions& global)
{
  return manager::looks_like_repo_spec(spec) ? ensure_repo_model(a, spec, global)
                                             : ensure_catalog_model(a, spec, global);
}

ModelOnDisk choose_model(const StartArgs& a, const std::optional<ModelSetConfig>& config,
                         const GlobalOptions& global)
{
  if (!a.file.empty()) {
    std::error_code ec;
    fs::path p = fs::absolute(a.file, ec);
    if (!fs::exists(p, ec)) {
      throw MissingModelError(fmt::format("model file {} does not exist", p.string()),
                              "check the path, or use --model ID (see `modelmgr models list`)");
    }
    ModelOnDisk m;
    m.spec = p.filename().string();
    m.file = p;
    m.dir = p.parent_path();
    return m;
  }
  if (!a.model.empty()) {
    return ensure_model_spec(a, a.model, global);
  }
  if (config && config->model_spec) {
    return ensure_model_spec(a, *config->model_spec, global);
  }
  if (::isatty(STDIN_FILENO) != 0 && ::isatty(STDOUT_FILENO) != 0 && !global.json) {
    // On a terminal with nothing chosen yet: ask, download, save the choice, then serve it.
    fmt::print("No model chosen yet: pick one (saved as [model] spec for the next `modelmgr start`).\n");
    SelectOptions so;
    so.cache_dir = a.cache_dir;
    so.config = config ? config->path.string() : a.config;
    so.download = false; // ensure_catalog_model downloads it below
    return ensure_catalog_model(a, run_select_flow(so, global), global);
  }
  const std::string where = config ? config->path.string() : std::string("no project config");
  throw ModelManagerError(
      ErrorKind::usage, fmt::format("no model chosen ({} has no [model] spec)", where),
      ::isatty(STDIN_FILENO) != 0
          ? "pass --model ID (see `modelmgr models list`), or run `modelmgr models select` to choose one"
          : "pass --model ID (see `modelmgr models list`) or --file PATH; `modelmgr models select` needs a "
            "terminal");
}

int run_start(const StartArgs& a, const GlobalOptions& global)
{
  const auto config = project_config(a, global);
  const std::string host = !a.host.empty()                   ? a.host
                           : (config && config->server.host) ? *config->server.host
                                                             : std::string("127.0.0.1");
  int port = a.port >= 0 ? a.port : (config && config->server.port) ? *config->server.port : 8080;
  if (port == 0) {
    port = free_port(host);
  }
  const ModelOnDisk m = choose_model(a, config, global);

  manager::Placeholders values{{"file", m.file.string()},
                               {"dir", m.dir.string()},
                               {"host", host},
                               {"port", std::to_string(port)},
                               {"model", m.spec},
                               {"repo", m.repo},
                               {"quant", m.quant},
                               {"context", m.context ? std::to_string(m.context) : std::string()}};
  std::vector<std::string> argv;
  if (!a.server_command.empty()) {
    argv = manager::expand_command_template(a.server_command, values);
  } else if (config && config->server.command) {
    argv = manager::expand_command_template(*config->server.command, values);
  } else {
    argv = manager::default_server_command(values);
    if (!m.mmproj.empty()) {
      // llama-server loads the vision projector llama.cpp's -hf would have fetched with the model.
      argv.insert(argv.end(), {"--mmproj", m.mmproj.string()});
    }
  }
  argv.insert(argv.end(), a.extra.begin(), a.extra.end());
  const std::string line = manager::shell_join(argv);
  const char* path_env = std::getenv("PATH");
  const auto exe = manager::find_executable(argv[0], path_env ? path_env : "");
  if (a.dry_run) {
    fmt::print("{}\n", line);
    return 0;
  }
  if (!exe) {
    fmt::print(stderr, "modelmgr: would run: {}\n", line);
    throw ModelManagerError(
        ErrorKind::not_found, fmt::format("server program '{}' not found on PATH", argv[0]),
        "install llama.cpp's llama-server (https://github.com/ggml-org/llama.cpp), or set "
        "server.command in the project config / --server-command (docs/start.md)");
  }
  if (cancel_flag().load()) {
    throw ModelManagerError(ErrorKind::interrupted, "interrupted before the server was started");
  }
  install_forwarding();
  if (!global.quiet && !global.json) {
    fmt::print(stderr, "Starting: {}\n", line);
  }
  manager::ServerProcess server(argv);
  g_server_pid.store(server.pid());
  const std::string url =
      fmt::format("http://{}:{}", host.find(':') != std::string::npos ? "[" + host + "]" : host, port);
  const std::string health = url + (config ? config->server.health_path : std::string("/health"));
  const auto ready = manager::wait_for_health(
      server, health, std::chrono::milliseconds(static_cast<long long>(a.health_timeout_s * 1000)),
      &cancel_flag());
  switch (ready) {
  case manager::HealthResult::ready:
    if (global.json) {
      fmt::print("{}\n", nlohmann::json{{"url", url},
                                        {"pid", server.pid()},
                                        {"model", m.spec},
                                        {"file", m.file.string()},
                                        {"command", argv}}
                             .dump());
    } else {
      fmt::print("Server ready: {} (model {}, pid {})\n", url, m.spec, server.pid());
    }
    std::fflush(stdout);
    break;
  case manager::HealthResult::exited: {
    const int status = server.wait();
    throw ModelManagerError(
        ErrorKind::internal,
        fmt::format("the server exited with status {} before it was ready ({})", status, line),
        "read its output above; check the model file and the server's arguments");
  }
  case manager::HealthResult::timed_out:
    server.terminate();
    throw ModelManagerError(ErrorKind::network,
                            fmt::format("the server did not answer {} with 200 within {:.0f} s; stopped it",
                                        health, a.health_timeout_s),
                            "raise --health-timeout for a large model, or check server.health_path");
  case manager::HealthResult::cancelled:
    // The signal was forwarded; report the server's own status below.
    break;
  }
  const int status = server.wait();
  g_server_pid.store(-1);
  if (!global.quiet && !global.json) {
    if (const int sig = g_forwarded.load()) {
      fmt::print(stderr, "Server stopped ({} forwarded), status {}\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                 status);
    } else {
      fmt::print(stderr, "Server exited with status {}\n", status);
    }
  }
  return status;
}

} // namespace

void set_start_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<StartArgs>();
  auto* cmd = app.add_subcommand("start", "Download a model if needed and run an inference server on it");
  auto* model = cmd->add_option(
      "--model", args->model,
      "Catalog model ID or ID:QUANT (see `modelmgr models list`), or a GGUF repo REPO[:QUANT]");
  cmd->add_option("--file", args->file, "Serve this model file instead")->excludes(model);
  cmd->add_option("--host", args->host, "Address the server listens on (default 127.0.0.1)");
  cmd->add_option("--port", args->port, "Port (default 8080; 0 = any free port)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--config", args->config, "Project config with [model] spec and [server] command");
  cmd->add_option("--cache-dir", args->cache_dir, "Cache directory");
  cmd->add_option("--server-command", args->server_command,
                  "Server command template, e.g. \"llama-server -m {file} --port {port}\"");
  cmd->add_option("--health-timeout", args->health_timeout_s, "Seconds to wait for the server to be ready")
      ->capture_default_str();
  cmd->add_flag("--offline", args->offline, "Never touch the network (the model must be cached)");
  cmd->add_flag("--dry-run", args->dry_run,
                "Ensure the model, then print the server command instead of running it");
  cmd->add_option("extra", args->extra, "Extra server arguments, after --");
  cmd->callback([args, &global, &exit_code] { exit_code = run_start(*args, global); });
}

} // namespace modelmgr::cli
