#include "support/serve_fixture.hpp"

#include <csignal>
#include <stdexcept>

namespace modelmgr::test {

ServeProcess::ServeProcess(std::vector<std::string> args, std::map<std::string, std::string> env)
{
  std::vector<std::string> argv{modelmgr_binary(), "serve", "--port", "0"};
  argv.insert(argv.end(), args.begin(), args.end());
  m_process = std::make_unique<Process>(argv, std::move(env));
  if (!m_process->wait_for_output("endpoint=http://", std::chrono::seconds(30)) ||
      !m_process->wait_for_output("\n", std::chrono::seconds(5))) {
    auto r = m_process->wait(std::chrono::seconds(5));
    throw std::runtime_error("modelmgr serve did not start: " + r.out + r.err);
  }
  const std::string& out = m_process->output_so_far().out;
  auto at = out.find("endpoint=") + 9;
  auto end = out.find_first_of(" \n", at);
  m_endpoint = out.substr(at, end - at);
  m_port = std::stoi(m_endpoint.substr(m_endpoint.rfind(':') + 1));
}

ServeProcess::~ServeProcess()
{
  stop();
}

ProcessResult ServeProcess::stop()
{
  if (!m_stopped) {
    m_stopped = true;
    m_process->signal(SIGTERM);
    m_result = m_process->wait(std::chrono::seconds(30));
  }
  return m_result;
}

ProcessResult run_curl(const std::vector<std::string>& args)
{
  std::vector<std::string> argv{"/usr/bin/curl", "-sS", "--max-time", "60"};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv);
  return p.wait(std::chrono::seconds(90));
}

namespace {
std::string lower(std::string s)
{
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}
// The last header block of a dump (after redirects or 100-continue, the final response).
std::string last_block(const std::string& dump)
{
  auto at = dump.rfind("HTTP/");
  return at == std::string::npos ? std::string() : dump.substr(at);
}
} // namespace

std::string header_of(const std::string& dump, const std::string& name)
{
  std::string block = last_block(dump);
  std::string want = lower(name) + ":";
  std::size_t pos = 0;
  while (pos < block.size()) {
    auto end = block.find('\n', pos);
    std::string line = block.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (lower(line.substr(0, want.size())) == want) {
      auto value = line.substr(want.size());
      while (!value.empty() && value.front() == ' ') {
        value.erase(0, 1);
      }
      return value;
    }
    if (end == std::string::npos) {
      break;
    }
    pos = end + 1;
  }
  return "";
}

int status_of(const std::string& dump)
{
  std::string block = last_block(dump);
  auto sp = block.find(' ');
  if (sp == std::string::npos) {
    return 0;
  }
  return std::atoi(block.c_str() + sp + 1);
}

} // namespace modelmgr::test
