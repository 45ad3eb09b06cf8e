// A stand-in for llama.cpp's llama-server in `modelmgr start` tests: listens on --host/--port, answers
// GET /health with 503 ("loading model") for the first STAND_IN_LOADING_POLLS requests, then 200; writes
// its arguments (one per line) to STAND_IN_RECORD once listening, and "signal=N" when it stops on
// SIGINT/SIGTERM; exits with STAND_IN_EXIT_CODE (default 0). STAND_IN_FAIL=N exits with N at once.

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace {
httplib::Server* g_server = nullptr;
std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig)
{
  g_signal.store(sig);
}

int env_int(const char* name, int fallback)
{
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}
} // namespace

int main(int argc, char** argv)
{
  std::vector<std::string> args(argv, argv + argc);
  if (const char* fail = std::getenv("STAND_IN_FAIL")) {
    return std::atoi(fail);
  }
  std::string host = "127.0.0.1";
  int port = 8080;
  for (std::size_t i = 1; i + 1 < args.size(); ++i) {
    if (args[i] == "--host") {
      host = args[i + 1];
    } else if (args[i] == "--port") {
      port = std::stoi(args[i + 1]);
    }
  }
  const char* record = std::getenv("STAND_IN_RECORD");
  std::atomic<int> loading{env_int("STAND_IN_LOADING_POLLS", 1)};
  httplib::Server server;
  g_server = &server;
  server.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    if (loading.fetch_sub(1) > 0) {
      res.status = 503;
      res.set_content(R"({"error":{"code":503,"message":"Loading model"}})", "application/json");
      return;
    }
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (!server.bind_to_port(host, port)) {
    return 98;
  }
  if (record) {
    std::ofstream out(std::string(record) + ".tmp");
    for (std::size_t i = 1; i < args.size(); ++i) {
      out << args[i] << '\n';
    }
    out.close();
    std::rename((std::string(record) + ".tmp").c_str(), record);
  }
  std::thread watcher([&] {
    while (g_signal.load() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    server.stop();
  });
  server.listen_after_bind();
  watcher.join();
  if (record) {
    std::ofstream out(record, std::ios::app);
    out << "signal=" << g_signal.load() << '\n';
  }
  return env_int("STAND_IN_EXIT_CODE", 0);
}
