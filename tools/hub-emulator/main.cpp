// modelmgr-hub-emulator: the fake Hugging Face Hub as a process, for benchmarks and manual testing.
// Prints one line "endpoint=http://127.0.0.1:PORT cdn=http://127.0.0.1:PORT" once both ports listen, then
// serves until SIGINT/SIGTERM. Faults and counters: POST/DELETE /_emulator/faults, GET /_emulator/counters.

#include "emulator/hub_emulator.hpp"

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <thread>
#include <vector>

#include <pthread.h>

int main(int argc, char** argv)
{
  namespace emu = modelmgr::emulator;
  CLI::App app{"Local Hugging Face Hub emulator (modelmgr)"};
  emu::HubEmulator::Options options;
  std::uint64_t big_file_size = 0;
  bool no_default_repos = false;
  app.add_option("--port", options.hub_port, "Hub port (0 = any free port)")->capture_default_str();
  app.add_option("--cdn-port", options.cdn_port, "CDN port (0 = any free port)")->capture_default_str();
  app.add_option("--bind", options.bind, "Address to listen on")->capture_default_str();
  app.add_flag("--demo", options.demo_repos, "Also serve the demo repos (BAAI/bge-m3, ...)");
  app.add_flag("--no-default-repos", no_default_repos, "Do not serve the test-org/* test repos");
  app.add_option("--big-file-size", big_file_size,
                 "Add repo bench/big with one generated LFS file big.bin of BYTES");
  app.add_option("--threads", options.worker_threads, "Worker threads per server")->capture_default_str();
  long latency_ms = 0;
  std::vector<std::string> latency_routes;
  app.add_option("--latency-ms", latency_ms, "Delay before every answer (server + network latency)");
  app.add_option("--latency-routes", latency_routes,
                 "Routes the latency applies to (default all): get_resolve, resolve_cache, cdn_get, ...")
      ->delimiter(',');
  app.add_option("--connection-rate", options.connection_rate,
                 "Bytes/s of each body response (a CDN pacing every connection); 0 = unlimited");
  app.add_option("--total-rate", options.total_rate,
                 "Bytes/s of all body responses together (a shared link); 0 = unlimited");
  CLI11_PARSE(app, argc, argv);
  options.default_repos = !no_default_repos;
  options.latency = std::chrono::milliseconds(latency_ms);
  for (const auto& name : latency_routes) {
    auto kind = emu::route_kind_from_string(name);
    if (!kind) {
      std::cerr << "modelmgr-hub-emulator: unknown route '" << name << "' for --latency-routes\n";
      return 2;
    }
    options.latency_routes.insert(*kind);
  }

  // Block the stop signals in every thread (the servers' threads inherit the mask) and wait for them here.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  try {
    emu::HubEmulator hub(options);
    if (big_file_size > 0) {
      hub.add_repo(emu::big_file_repo_spec(big_file_size));
    }
    hub.start();
    std::cout << "endpoint=" << hub.endpoint() << " cdn=" << hub.cdn_endpoint() << std::endl;
    // Hash the generated files in the background so the first request for a big file does not wait for it.
    std::atomic<bool> warmed{false};
    std::thread warm([&hub, &warmed] {
      hub.warm_hashes();
      warmed = true;
    });
    int received = 0;
    sigwait(&signals, &received);
    hub.stop();
    if (!warmed) {
      // Hashing a multi-GB file cannot be interrupted and nothing is lost by not finishing it: leave at once
      // rather than keep the caller waiting (the servers are already stopped, stdout is flushed).
      std::cout.flush();
      std::_Exit(0);
    }
    warm.join();
  } catch (const std::exception& e) {
    std::cerr << "modelmgr-hub-emulator: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
