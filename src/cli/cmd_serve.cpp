// `modelmgr serve`: the cache as a Hugging Face-compatible mirror (src/server), read-only. Clients point
// HF_ENDPOINT at the printed endpoint. `--demo` first writes the stand-in default model set into a demo
// cache (once) and serves that.

#include "modelmgr/errors.hpp"

#include "cache/paths.hpp"
#include "cli/cli.hpp"
#include "server/cache_view.hpp"
#include "server/demo_cache.hpp"
#include "server/handler.hpp"
#include "server/http_server.hpp"
#include "server/upstream.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {
struct ServeArgs {
  bool demo = false;
  std::string cache_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string token_file;
  std::string accel_redirect;
  unsigned threads = 0;
  std::size_t max_connections = 1024;
  bool access_log = false;
  std::string upstream;
  bool offline = false;
  int refresh_interval = 60;
  std::string redirect_above;
};

// sha256 of each token in `path` (one per line; blank lines and '#' comments skipped). The tokens
// themselves are not kept.
std::set<std::string> read_token_hashes(const std::string& path)
{
  auto text = util::read_file_if_exists(path);
  if (!text) {
    throw ConfigurationError(fmt::format("cannot read the client token file {}: no such file", path),
                             "create it with one token per line, or leave out --token-file",
                             ErrorKind::usage);
  }
  std::set<std::string> hashes;
  std::size_t start = 0;
  while (start <= text->size()) {
    auto end = text->find('\n', start);
    std::string_view line = util::trim(
        std::string_view(*text).substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (!line.empty() && !line.starts_with('#')) {
      hashes.insert(util::sha256_hex(line));
    }
    if (end == std::string::npos) {
      break;
    }
    start = end + 1;
  }
  if (hashes.empty()) {
    throw ConfigurationError(fmt::format("the client token file {} holds no token", path),
                             "put one token per line in it, or leave out --token-file", ErrorKind::usage);
  }
  return hashes;
}

void wait_for_cancel()
{
  while (!cancel_flag().load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void run_serve(const ServeArgs& a, const GlobalOptions& global)
{
  std::optional<std::filesystem::path> explicit_dir;
  if (!a.cache_dir.empty()) {
    explicit_dir = a.cache_dir;
  }
  std::filesystem::path root;
  if (a.demo) {
    root =
        std::filesystem::absolute(explicit_dir.value_or(server::default_demo_cache_dir())).lexically_normal();
    auto written = server::write_demo_cache(root);
    if (!global.quiet) {
      print_stderr_noexcept(
          fmt::format("modelmgr: demo cache {} ({} repos{})\n", root.string(), written.repos,
                      written.files_written > 0 ? fmt::format(", {} files written", written.files_written)
                                                : std::string(", already complete")));
    }
  } else {
    root = cache::resolve_cache_dir(explicit_dir, util::Env::process());
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) {
    throw ConfigurationError(fmt::format("cannot serve the cache {}: no such folder", root.string()),
                             "pull something into it first (`modelmgr pull REPO`), or pass --cache-dir",
                             ErrorKind::usage);
  }
  server::CacheView cache(root);
  server::HandlerOptions handler_options;
  handler_options.accel_redirect_prefix = a.accel_redirect;
  while (handler_options.accel_redirect_prefix.ends_with('/')) {
    handler_options.accel_redirect_prefix.pop_back();
  }
  if (!a.token_file.empty()) {
    handler_options.client_token_hashes = read_token_hashes(a.token_file);
  }
  std::unique_ptr<server::Upstream> upstream;
  if (!a.upstream.empty() && !a.offline) {
    server::UpstreamOptions uo;
    uo.endpoint = a.upstream;
    uo.refresh_interval = std::chrono::seconds(a.refresh_interval);
    if (!a.redirect_above.empty()) {
      uo.redirect_above = parse_size_option("--redirect-above", a.redirect_above);
    }
    upstream = std::make_unique<server::Upstream>(root, uo, &cancel_flag());
  }
  server::Handler handler(cache, handler_options, upstream.get());
  server::ServerOptions options;
  options.host = a.host;
  options.port = a.port;
  options.threads = a.threads;
  options.max_connections = a.max_connections;
  std::mutex log_mutex;
  std::function<void(const server::AccessEvent&)> on_access;
  if (a.access_log) {
    on_access = [&log_mutex](const server::AccessEvent& e) {
      std::lock_guard lock(log_mutex);
      print_stderr_noexcept(
          fmt::format("{} \"{} {}\" {} {}\n", e.remote, e.method, e.target, e.status, e.body_bytes));
    };
  }
  server::HttpServer http(handler, options, on_access);
  try {
    http.start();
  } catch (const std::runtime_error& e) {
    throw ConfigurationError(e.what(), "", ErrorKind::usage);
  }
  if (global.json) {
    nlohmann::json j{{"endpoint", http.endpoint()},
                     {"port", http.port()},
                     {"cache_dir", root.string()},
                     {"upstream", upstream ? upstream->endpoint() : ""},
                     {"clients_need_token", !handler_options.client_token_hashes.empty()}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("endpoint={} cache={}{}\n", http.endpoint(), root.string(),
               upstream ? " upstream=" + upstream->endpoint() : std::string());
  }
  flush_stdout();
  wait_for_cancel();
  http.stop();
}

} // namespace

void set_serve_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "Serve the cache read-only as a Hugging Face-compatible mirror "
                                          "(clients: HF_ENDPOINT=<printed endpoint>)");
  cmd->add_option("--cache-dir", args->cache_dir, "Cache to serve (default: HF_HUB_CACHE, HF_HOME/hub, ...)");
  cmd->add_option("--host", args->host, "Address to listen on (0.0.0.0 = every interface)")
      ->capture_default_str();
  cmd->add_option("--port", args->port, "Port (0 = any free port)")->capture_default_str();
  cmd->add_option(
      "--token-file", args->token_file,
      "Only clients sending one of these tokens (one per line) as `Authorization: Bearer` get in");
  cmd->add_option("--accel-redirect", args->accel_redirect,
                  "Let nginx send file bodies: answer GETs with X-Accel-Redirect to this internal location "
                  "(see deploy/nginx/modelmgr-serve.conf)");
  cmd->add_option("--threads", args->threads, "Server threads (0 = 2-4 by CPU count)")->capture_default_str();
  cmd->add_option("--max-connections", args->max_connections, "Connections served at once (more get 503)")
      ->capture_default_str();
  cmd->add_option(
      "--upstream", args->upstream,
      "Pull-through: fetch what the cache lacks from this Hub (e.g. https://huggingface.co) through "
      "the verified download path, into the cache (default: none, serve only the cache)");
  cmd->add_flag("--offline", args->offline, "Never contact the upstream (serve only the cache)");
  cmd->add_option("--refresh-interval", args->refresh_interval,
                  "Seconds between two upstream checks of the same branch or tag")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--redirect-above", args->redirect_above,
                  "Pull-through: redirect GETs of missing files larger than this (e.g. 64M) to the upstream "
                  "while the mirror fetches them, instead of waiting (clients must reach the upstream)");
  cmd->add_flag("--access-log", args->access_log, "Print one line per request to stderr");
  cmd->add_flag("--demo", args->demo,
                "Serve the demo cache: the stand-in default model set (generated files), written once into "
                "--cache-dir (default ~/.cache/modelmgr/demo-hub)");
  cmd->callback([args, &global, &exit_code] {
    run_serve(*args, global);
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
