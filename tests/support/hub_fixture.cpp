#include "support/hub_fixture.hpp"

namespace modelmgr::test {

void HubTest::SetUp()
{
  tmp = std::make_unique<TempDir>();
  cache = tmp->path() / "hub";
  hub = std::make_unique<emulator::HubEmulator>();
  hub->start();
}

void HubTest::TearDown()
{
  hub->stop();
  hub.reset();
  tmp.reset();
}

std::map<std::string, std::string> HubTest::env(std::map<std::string, std::string> extra) const
{
  std::map<std::string, std::string> e{
      {"HF_ENDPOINT", hub->endpoint()},
      {"HF_HUB_CACHE", cache.string()},
      {"HF_HOME", (tmp->path() / "hf_home").string()},
      {"MODELMGR_RETRY_BASE_MS", "20"},
      {"HF_HUB_DOWNLOAD_TIMEOUT", "3"},
  };
  for (auto& [k, v] : extra) {
    e[k] = v;
  }
  return e;
}

ProcessResult HubTest::mm(const std::vector<std::string>& args,
                          std::map<std::string, std::string> extra) const
{
  return run_modelmgr(args, env(std::move(extra)));
}

std::uint64_t HubTest::total_requests() const
{
  auto c = hub->counters();
  std::uint64_t n = 0;
  for (auto v : c.requests) {
    n += v;
  }
  return n;
}

const emulator::Repo& HubTest::repo(const std::string& id, const std::string& type) const
{
  static thread_local std::shared_ptr<const emulator::Repo> keep;
  keep = hub->repo(id, type);
  if (!keep) {
    throw std::runtime_error("no such emulator repo: " + id);
  }
  return *keep;
}

} // namespace modelmgr::test
