// `modelmgr models recommend` on a fake machine (MODELMGR_TEST_SYSROOT: /proc and /sys under a temp dir,
// a fake nvidia-smi first on PATH) with a user catalog ($XDG_CONFIG_HOME/modelmgr/catalog.toml) whose
// entries have a use case of their own, so the built-in catalog does not take part.

#include "formats/writers.hpp"
#include "support/test_util.hpp"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::uint64_t k_gib = 1024ull * 1024 * 1024;
constexpr const char* k_commit = "0123456789abcdef0123456789abcdef01234567";

// Three quantizations of one model: downloads of 100/200/400 MiB (small enough for any test disk) that need
// 3, 5 and 9 GiB of RAM.
constexpr const char* k_catalog = R"(
[[model]]
id = "probe-model"
name = "Probe Model"
hf_repo = "probe-org/probe-model-GGUF"
format = "gguf"
use_cases = ["probetest"]
context_length = 4096
description = "A catalog entry of the recommend tests."

[[model.variant]]
quantization = "Q4_K_M"
file = "probe-Q4_K_M.gguf"
size_bytes = 104857600
min_ram_bytes = 3221225472
default = true

[[model.variant]]
quantization = "Q5_K_M"
file = "probe-Q5_K_M.gguf"
size_bytes = 209715200
min_ram_bytes = 5368709120

[[model.variant]]
quantization = "Q8_0"
file = "probe-Q8_0.gguf"
size_bytes = 419430400
min_ram_bytes = 9663676416
)";

class ModelsRecommendTest : public ::testing::Test {
protected:
  void SetUp() override
  {
    write_file(tmp / "config/modelmgr/catalog.toml", k_catalog);
    // 16 GiB machine, 12 GiB available, 8 AVX2 threads; a cgroup v2 limit of `limit` with 2 GiB in use.
    write_file(tmp / "sys/proc/meminfo",
               "MemTotal: 16777216 kB\nMemFree: 1048576 kB\nMemAvailable: 12582912 kB\n");
    std::string cpu;
    for (int i = 0; i < 8; ++i) {
      cpu += "processor\t: " + std::to_string(i) + "\nflags\t\t: fpu sse2 avx avx2 fma f16c\n\n";
    }
    write_file(tmp / "sys/proc/cpuinfo", cpu);
    write_file(tmp / "sys/proc/self/cgroup", "0::/\n");
    set_cgroup_limit(8 * k_gib);
    // A machine without an NVIDIA driver, even on a developer's GPU box.
    nvidia_smi(
        "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\nexit 1\n");
  }

  void set_cgroup_limit(std::uint64_t limit)
  {
    write_file(tmp / "sys/sys/fs/cgroup/memory.max", std::to_string(limit) + "\n");
    write_file(tmp / "sys/sys/fs/cgroup/memory.current", std::to_string(2 * k_gib) + "\n");
  }

  void nvidia_smi(const std::string& body)
  {
    const fs::path p = tmp / "bin/nvidia-smi";
    write_file(p, "#!/bin/sh\n" + body);
    ::chmod(p.c_str(), 0755);
  }

  std::map<std::string, std::string> env() const
  {
    const char* path = std::getenv("PATH");
    return {{"MODELMGR_TEST_SYSROOT", (tmp / "sys").string()},
            {"XDG_CONFIG_HOME", (tmp / "config").string()},
            {"HF_HUB_CACHE", (tmp / "cache").string()},
            {"PATH", (tmp / "bin").string() + ":" + (path ? path : "/usr/bin:/bin")}};
  }

  ProcessResult recommend(std::vector<std::string> extra = {}) const
  {
    std::vector<std::string> args = {"models", "recommend", "--use-case", "probetest"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_modelmgr(args, env());
  }

  TempDir tmp;
};

TEST_F(ModelsRecommendTest, PicksTheLargestThatFitsUnderTheCgroupLimitAndExplainsTheRest)
{
  auto r = recommend();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 8 GiB limit - 2 GiB used = 6 GiB; headroom max(1 GiB, 10% of 8 GiB) = 1 GiB: Q5_K_M (5 GiB) just fits.
  EXPECT_THAT(r.out, HasSubstr("Your system: 16.0 GiB RAM (6.0 GiB available, cgroup limit 8.0 GiB), "));
  EXPECT_THAT(r.out, HasSubstr(", 8 threads, AVX2, GPU: none\n"));
  EXPECT_THAT(r.out, HasSubstr("Recommended for probetest: probe-model:Q5_K_M (Probe Model)\n"));
  EXPECT_THAT(r.out, HasSubstr("  download 200.0 MiB, needs 5.0 GiB RAM (from the catalog), runs in RAM\n"));
  EXPECT_THAT(r.out, HasSubstr("  modelmgr models download probe-model:Q5_K_M\n"));
  EXPECT_THAT(r.out, HasSubstr("  modelmgr start --model probe-model:Q5_K_M\n"));
  EXPECT_THAT(r.out,
              HasSubstr("Not chosen:\n  probe-model:Q8_0 (400.0 MiB): needs 9.0 GiB RAM + 1.0 GiB headroom, "
                        "6.0 GiB available (cgroup limit 8.0 GiB)\n"));
  // Smaller ones that fit are not "not chosen" for a reason worth listing.
  EXPECT_THAT(r.out, Not(HasSubstr("probe-model:Q4_K_M (")));
}

TEST_F(ModelsRecommendTest, JsonOutput)
{
  auto r = recommend({"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["use_case"], "probetest");
  EXPECT_EQ(j["considered"], 3);
  EXPECT_EQ(j["system"]["cgroup_version"], "v2");
  EXPECT_EQ(j["system"]["cgroup_limit_bytes"], 8 * k_gib);
  EXPECT_EQ(j["system"]["ram_available_bytes"], 6 * k_gib);
  EXPECT_EQ(j["system"]["cpu_threads"], 8);
  EXPECT_EQ(j["recommended"]["spec"], "probe-model:Q5_K_M");
  EXPECT_EQ(j["recommended"]["where"], "RAM");
  EXPECT_EQ(j["recommended"]["commands"]["start"], "modelmgr start --model probe-model:Q5_K_M");
  ASSERT_EQ(j["not_chosen"].size(), 1u);
  EXPECT_EQ(j["not_chosen"][0]["spec"], "probe-model:Q8_0");
  EXPECT_EQ(j["not_chosen"][0]["ram_needed_bytes"], 9ull * k_gib);
}

TEST_F(ModelsRecommendTest, NothingFitsExitsThreeWithEveryReason)
{
  set_cgroup_limit(4 * k_gib); // 2 GiB available
  auto r = recommend();
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(
      r.out, HasSubstr("Not chosen:\n  probe-model:Q4_K_M (100.0 MiB): needs 3.0 GiB RAM + 1.0 GiB headroom, "
                       "2.0 GiB available (cgroup limit 4.0 GiB)\n"));
  EXPECT_THAT(r.out, HasSubstr("probe-model:Q8_0 (400.0 MiB)"));
  EXPECT_THAT(r.out, Not(HasSubstr("Recommended")));
  EXPECT_THAT(r.err,
              HasSubstr("modelmgr: error: no catalog model for use case 'probetest' fits this machine"));
  EXPECT_THAT(r.err, HasSubstr("hint: free memory or disk space"));
}

TEST_F(ModelsRecommendTest, GpuMemoryFromAFakeNvidiaSmi)
{
  set_cgroup_limit(4 * k_gib);
  nvidia_smi("echo 'Fake GPU 24G, 24576, 20480'\n");
  auto r = recommend();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("GPU: Fake GPU 24G (20.0 GiB free of 24.0 GiB)"));
  EXPECT_THAT(r.out, HasSubstr("Recommended for probetest: probe-model:Q8_0"));
  EXPECT_THAT(r.out, HasSubstr("runs in GPU memory (Fake GPU 24G)"));
}

TEST_F(ModelsRecommendTest, CachedFileIsJudgedByItsOwnHeader)
{
  // Q8_0 is complete in the cache; its header describes a tiny model, so it needs far less than the
  // catalog's 9 GiB and wins, with no download step.
  const fs::path repo = tmp / "cache/models--probe-org--probe-model-GGUF";
  write_file(repo / "refs/main", k_commit);
  formats::GgufWriter w;
  w.add("general.architecture", "llama");
  w.add("llama.context_length", std::uint32_t{4096});
  w.add("llama.embedding_length", std::uint32_t{64});
  w.add("llama.block_count", std::uint32_t{2});
  w.add("llama.attention.head_count", std::uint32_t{4});
  w.add_tensor("blk.0.attn_q.weight", {64, 64}, formats::GgmlType::f16);
  const auto bytes = w.build();
  fs::create_directories(repo / "snapshots" / k_commit);
  {
    std::ofstream out(repo / "snapshots" / k_commit / "probe-Q8_0.gguf", std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  auto r = recommend();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Recommended for probetest: probe-model:Q8_0"));
  EXPECT_THAT(r.out, HasSubstr("download 400.0 MiB (cached), needs "));
  EXPECT_THAT(r.out, HasSubstr("RAM (from the file's header), runs in RAM\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("modelmgr models download")));
  EXPECT_THAT(r.out, HasSubstr("  modelmgr start --model probe-model:Q8_0\n"));
}

TEST_F(ModelsRecommendTest, UnknownUseCaseIsAUsageError)
{
  auto r = run_modelmgr({"models", "recommend", "--use-case", "no-such-use"}, env());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("no catalog entry has the use case 'no-such-use'"));
  EXPECT_THAT(r.err, HasSubstr("probetest"));
}

} // namespace
} // namespace modelmgr::test
