#include "support/nginx_fixture.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace modelmgr::test {

namespace fs = std::filesystem;

namespace {

// nginx lives in /usr/sbin, which is not on every PATH.
std::optional<fs::path> find_program(const std::string& name)
{
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/local/sbin:/usr/sbin:/sbin";
  std::stringstream ss(dirs);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) {
      continue;
    }
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) {
      return p;
    }
  }
  return std::nullopt;
}

int loopback_socket()
{
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("socket() failed");
  }
  return fd;
}

sockaddr_in loopback(int port)
{
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  return addr;
}

// Two distinct ports the kernel considers free right now. Another process may take one before nginx
// binds it: the caller retries with new ports.
std::pair<int, int> free_ports()
{
  int fds[2];
  int ports[2];
  for (int i = 0; i < 2; ++i) {
    fds[i] = loopback_socket();
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof addr;
    if (::bind(fds[i], reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fds[i], reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot bind a loopback port");
    }
    ports[i] = ntohs(addr.sin_port);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return {ports[0], ports[1]};
}

bool accepts_connections(int port)
{
  int fd = loopback_socket();
  sockaddr_in addr = loopback(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string server_block(int listen_port, int upstream_port, const fs::path& dir)
{
  std::ostringstream c;
  c << "  server {\n"
    << "    listen 127.0.0.1:" << listen_port << " ssl http2;\n"
    << "    ssl_certificate " << (dir / "cert.pem").string() << ";\n"
    << "    ssl_certificate_key " << (dir / "key.pem").string() << ";\n"
    << "    location / { proxy_pass http://127.0.0.1:" << upstream_port << "; }\n"
    << "  }\n";
  return c.str();
}

} // namespace

std::optional<std::string> NginxProxy::unavailable()
{
  for (const char* tool : {"nginx", "openssl"}) {
    if (!find_program(tool)) {
      return std::string(tool) +
             " not found: this test runs Debian's nginx with TLS and HTTP/2 in front of the hub emulator "
             "(install it with scripts/deps.sh, or apt-get install nginx openssl)";
    }
  }
  return std::nullopt;
}

NginxProxy::NginxProxy(const fs::path& dir, int hub_port, int cdn_port) : m_dir(dir), m_cert(dir / "cert.pem")
{
  if (auto why = unavailable()) {
    throw std::runtime_error(*why);
  }
  fs::create_directories(m_dir);
  // A self-signed certificate for 127.0.0.1 (EC: quick to make); clients trust it as their CA.
  Process openssl({find_program("openssl")->string(), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", (m_dir / "key.pem").string(), "-out",
                   m_cert.string(), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                   "subjectAltName=IP:127.0.0.1,DNS:localhost"});
  auto made = openssl.wait(std::chrono::seconds(60));
  if (made.exit_code != 0) {
    throw std::runtime_error("openssl could not make a test certificate: " + made.err);
  }

  const std::string nginx = find_program("nginx")->string();
  std::string last_error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto [hub_listen, cdn_listen] = free_ports();
    std::ofstream conf(m_dir / "nginx.conf", std::ios::trunc);
    // One process, no daemon: it is this test's child and dies with it; no user switch, so it runs as
    // whoever runs the tests. The startup messages go to stderr (readiness), everything to error.log.
    conf << "master_process off;\n"
         << "error_log stderr notice;\n"
         << "error_log " << (m_dir / "error.log").string() << " info;\n"
         << "pid " << (m_dir / "nginx.pid").string() << ";\n"
         << "events { worker_connections 4096; }\n"
         << "http {\n"
         << "  log_format conns '$connection $server_protocol $status $server_port \"$request\"';\n"
         << "  access_log " << (m_dir / "access.log").string() << " conns;\n"
         << "  client_body_temp_path " << (m_dir / "tmp_body").string() << ";\n"
         << "  proxy_temp_path " << (m_dir / "tmp_proxy").string() << ";\n"
         << "  fastcgi_temp_path " << (m_dir / "tmp_fastcgi").string() << ";\n"
         << "  uwsgi_temp_path " << (m_dir / "tmp_uwsgi").string() << ";\n"
         << "  scgi_temp_path " << (m_dir / "tmp_scgi").string()
         << ";\n"
         // The tests count the connections a client opens: nginx must not close one after its default of
         // 1000 requests.
         << "  keepalive_requests 100000;\n"
         // Stream bodies through (like a CDN), and keep the emulator's headers as they are.
         << "  proxy_buffering off;\n"
         << "  proxy_request_buffering off;\n"
         << "  proxy_http_version 1.1;\n"
         << "  proxy_redirect off;\n"
         << server_block(hub_listen, hub_port, m_dir) << server_block(cdn_listen, cdn_port, m_dir) << "}\n";
    conf.close();
    if (!conf) {
      throw std::runtime_error("cannot write " + (m_dir / "nginx.conf").string());
    }

    std::vector<std::string> argv = {nginx,
                                     "-p",
                                     m_dir.string(),
                                     "-c",
                                     (m_dir / "nginx.conf").string(),
                                     "-e",
                                     (m_dir / "error.log").string(),
                                     "-g",
                                     "daemon off;"};
    // With setpriv (util-linux), nginx is killed if the test process dies without cleaning up.
    if (::access("/usr/bin/setpriv", X_OK) == 0) {
      argv.insert(argv.begin(), {"/usr/bin/setpriv", "--pdeathsig", "KILL"});
    }
    m_nginx = std::make_unique<Process>(argv);
    // nginx logs its version once its listening sockets are open (ngx_os_status runs after ngx_init_cycle).
    if (m_nginx->wait_for_output(": nginx/", std::chrono::seconds(30)) && accepts_connections(hub_listen) &&
        accepts_connections(cdn_listen)) {
      m_hub_port = hub_listen;
      m_cdn_port = cdn_listen;
      return;
    }
    m_nginx->signal(SIGTERM);
    auto r = m_nginx->wait(std::chrono::seconds(10));
    m_nginx.reset();
    last_error = r.err;
    if (r.err.find("Address already in use") == std::string::npos) {
      break;
    }
  }
  throw std::runtime_error("nginx did not start: " + last_error);
}

NginxProxy::~NginxProxy()
{
  stop();
}

void NginxProxy::stop()
{
  if (m_nginx) {
    m_nginx->signal(SIGTERM);
    m_nginx->wait(std::chrono::seconds(10));
    m_nginx.reset();
  }
}

std::string NginxProxy::hub_origin() const
{
  return "https://127.0.0.1:" + std::to_string(m_hub_port);
}

std::string NginxProxy::cdn_origin() const
{
  return "https://127.0.0.1:" + std::to_string(m_cdn_port);
}

std::vector<NginxProxy::LogEntry> NginxProxy::access_log() const
{
  std::vector<LogEntry> out;
  std::ifstream in(m_dir / "access.log");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    LogEntry e;
    ls >> e.connection >> e.protocol >> e.status >> e.port;
    std::getline(ls >> std::ws, e.request);
    if (e.request.size() >= 2 && e.request.front() == '"' && e.request.back() == '"') {
      e.request = e.request.substr(1, e.request.size() - 2);
    }
    out.push_back(std::move(e));
  }
  return out;
}

// ---- NginxSite ----

std::optional<std::string> NginxSite::unavailable()
{
  if (!find_program("nginx")) {
    return std::string(
        "nginx not found: this test runs Debian's nginx in front of modelmgr serve (install it "
        "with scripts/deps.sh, or apt-get install nginx)");
  }
  return std::nullopt;
}

NginxSite::NginxSite(const fs::path& dir, const std::function<std::string(int port)>& render) : m_dir(dir)
{
  if (auto why = unavailable()) {
    throw std::runtime_error(*why);
  }
  fs::create_directories(m_dir);
  const std::string nginx = find_program("nginx")->string();
  std::string last_error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = free_ports().first;
    {
      std::ofstream site(m_dir / "site.conf", std::ios::trunc);
      site << render(port);
      std::ofstream conf(m_dir / "nginx.conf", std::ios::trunc);
      // One process, no daemon, no user switch (see NginxProxy).
      conf << "master_process off;\n"
           << "error_log stderr notice;\n"
           << "error_log " << (m_dir / "error.log").string() << " info;\n"
           << "pid " << (m_dir / "nginx.pid").string() << ";\n"
           << "events { worker_connections 4096; }\n"
           << "http {\n"
           << "  log_format site '$status $request_method \"$request_uri\" $uri $body_bytes_sent';\n"
           << "  access_log " << (m_dir / "access.log").string() << " site;\n"
           << "  client_body_temp_path " << (m_dir / "tmp_body").string() << ";\n"
           << "  proxy_temp_path " << (m_dir / "tmp_proxy").string() << ";\n"
           << "  fastcgi_temp_path " << (m_dir / "tmp_fastcgi").string() << ";\n"
           << "  uwsgi_temp_path " << (m_dir / "tmp_uwsgi").string() << ";\n"
           << "  scgi_temp_path " << (m_dir / "tmp_scgi").string() << ";\n"
           << "  include " << (m_dir / "site.conf").string() << ";\n"
           << "}\n";
      if (!site || !conf) {
        throw std::runtime_error("cannot write the nginx config in " + m_dir.string());
      }
    }
    std::vector<std::string> argv = {nginx,
                                     "-p",
                                     m_dir.string(),
                                     "-c",
                                     (m_dir / "nginx.conf").string(),
                                     "-e",
                                     (m_dir / "error.log").string(),
                                     "-g",
                                     "daemon off;"};
    if (::access("/usr/bin/setpriv", X_OK) == 0) {
      argv.insert(argv.begin(), {"/usr/bin/setpriv", "--pdeathsig", "KILL"});
    }
    m_nginx = std::make_unique<Process>(argv);
    if (m_nginx->wait_for_output(": nginx/", std::chrono::seconds(30)) && accepts_connections(port)) {
      m_port = port;
      return;
    }
    m_nginx->signal(SIGTERM);
    auto r = m_nginx->wait(std::chrono::seconds(10));
    m_nginx.reset();
    last_error = r.err;
    if (r.err.find("Address already in use") == std::string::npos) {
      break;
    }
  }
  throw std::runtime_error("nginx did not start: " + last_error);
}

NginxSite::~NginxSite()
{
  stop();
}

void NginxSite::stop()
{
  if (m_nginx) {
    m_nginx->signal(SIGTERM);
    m_nginx->wait(std::chrono::seconds(10));
    m_nginx.reset();
  }
}

std::string NginxSite::origin() const
{
  return "http://127.0.0.1:" + std::to_string(m_port);
}

std::vector<NginxSite::LogEntry> NginxSite::access_log() const
{
  std::vector<LogEntry> out;
  std::ifstream in(m_dir / "access.log");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    LogEntry e;
    std::string quoted;
    ls >> e.status >> e.method >> quoted >> e.uri >> e.body_bytes;
    if (quoted.size() >= 2 && quoted.front() == '"' && quoted.back() == '"') {
      quoted = quoted.substr(1, quoted.size() - 2);
    }
    e.request_uri = quoted;
    out.push_back(std::move(e));
  }
  return out;
}

} // namespace modelmgr::test
