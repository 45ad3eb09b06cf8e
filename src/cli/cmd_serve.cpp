// `modelmgr serve --demo`: a local demo hub (the test emulator with the default model set), so that
// modelmgr can be tried and its main job run on a machine with no network.

#include "modelmgr/errors.hpp"

#include "cli/cli.hpp"
#include "emulator/hub_emulator.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {
struct ServeArgs {
  bool demo = false;
  std::string host = "127.0.0.1";
  int port = 8080;
  int cdn_port = 0;
};
} // namespace

void set_serve_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "Serve a Hugging Face-compatible endpoint");
  cmd->add_flag("--demo", args->demo, "Serve the built-in demo hub (generated models of the default set)");
  cmd->add_option("--host", args->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", args->port, "Port (0 = any free port)")->capture_default_str();
  cmd->add_option("--cdn-port", args->cdn_port, "Port of the demo CDN (0 = any free port)")
      ->capture_default_str();
  cmd->callback([args, &global, &exit_code] {
    if (!args->demo) {
      throw ConfigurationError("`modelmgr serve` can only serve the demo hub so far",
                               "run `modelmgr serve --demo`; serving your cache is planned",
                               ErrorKind::usage);
    }
    emulator::HubEmulator::Options options;
    options.bind = args->host;
    options.default_repos = false;
    options.demo_repos = true;
    options.hub_port = args->port;
    options.cdn_port = args->cdn_port;
    emulator::HubEmulator hub(options);
    hub.start();
    if (global.json) {
      fmt::print("{{\"endpoint\": \"{}\", \"cdn\": \"{}\"}}\n", hub.endpoint(), hub.cdn_endpoint());
    } else {
      fmt::print("endpoint={} cdn={}\n", hub.endpoint(), hub.cdn_endpoint());
    }
    std::fflush(stdout);
    while (!cancel_flag().load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    hub.stop();
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
