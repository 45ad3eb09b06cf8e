#pragma once
// Test fixture: a hub emulator on loopback port 0 with the default repos, a temporary HF cache, and
// helpers to run the modelmgr binary against them.

#include "emulator/hub_emulator.hpp"
#include "support/test_util.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace modelmgr::test {

class HubTest : public ::testing::Test {
protected:
  void SetUp() override;
  void TearDown() override;

  // Environment for the binary: the emulator as HF_ENDPOINT, the temp cache as HF_HUB_CACHE, fast retries.
  std::map<std::string, std::string> env(std::map<std::string, std::string> extra = {}) const;
  ProcessResult mm(const std::vector<std::string>& args, std::map<std::string, std::string> extra = {}) const;

  std::filesystem::path repo_dir(const std::string& folder) const { return cache / folder; }
  emulator::Counters counters() const { return hub->counters(); }
  // Total requests of every kind the emulator has seen since the last reset.
  std::uint64_t total_requests() const;
  const emulator::Repo& repo(const std::string& id, const std::string& type = "model") const;

  std::unique_ptr<TempDir> tmp;
  std::filesystem::path cache;
  std::unique_ptr<emulator::HubEmulator> hub;
};

} // namespace modelmgr::test
