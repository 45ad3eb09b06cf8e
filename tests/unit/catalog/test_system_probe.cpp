// The system probe against fake /proc + /sys trees in a temp dir, and fake nvidia-smi scripts.

#include "catalog/system_probe.hpp"
#include "support/test_util.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

namespace modelmgr::catalog {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr std::uint64_t k_gib = 1024ull * 1024 * 1024;
constexpr std::uint64_t k_mib = 1024ull * 1024;

// 16 GiB physical, 12 GiB available.
constexpr const char* k_meminfo = "MemTotal:       16777216 kB\n"
                                  "MemFree:         1048576 kB\n"
                                  "MemAvailable:   12582912 kB\n"
                                  "Buffers:          123456 kB\n";

class SystemProbeTest : public ::testing::Test {
protected:
  fs::path root() const { return tmp.path() / "root"; }
  void put(const std::string& rel, const std::string& content) const
  {
    test::write_file(root() / rel, content);
  }
  // A script `name` in tmp/bin that prints `out` and exits with `status`.
  fs::path script(const std::string& name, const std::string& body) const
  {
    fs::path p = tmp.path() / "bin" / name;
    test::write_file(p, "#!/bin/sh\n" + body);
    ::chmod(p.c_str(), 0755);
    return p;
  }
  ProbeOptions options() const
  {
    ProbeOptions o;
    o.root = root();
    o.search_path = (tmp.path() / "bin").string(); // no real nvidia-smi
    return o;
  }

  TempDir tmp;
};

TEST_F(SystemProbeTest, MissingFilesLeaveEverythingUnknown)
{
  fs::create_directories(root());
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.ram_physical_bytes, 0u);
  EXPECT_EQ(info.ram_total_bytes, 0u);
  EXPECT_EQ(info.ram_available_bytes, 0u);
  EXPECT_FALSE(info.ram_known());
  EXPECT_FALSE(info.cgroup_limit_bytes);
  EXPECT_EQ(info.cgroup_version, "");
  EXPECT_FALSE(info.disk_known);
  EXPECT_EQ(info.cpu_threads, 0u);
  EXPECT_TRUE(info.cpu_features.empty());
  EXPECT_TRUE(info.gpus.empty());
}

TEST_F(SystemProbeTest, RootThatDoesNotExistIsNotAnError)
{
  ProbeOptions o = options();
  o.root = tmp.path() / "nowhere";
  EXPECT_NO_THROW(probe_system(o));
}

TEST_F(SystemProbeTest, MeminfoWithoutCgroup)
{
  put("proc/meminfo", k_meminfo);
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.ram_physical_bytes, 16 * k_gib);
  EXPECT_EQ(info.ram_total_bytes, 16 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, 12 * k_gib);
  EXPECT_FALSE(info.cgroup_limit_bytes);
}

TEST_F(SystemProbeTest, OldKernelWithoutMemAvailableUsesMemFree)
{
  put("proc/meminfo", "MemTotal: 2097152 kB\nMemFree: 524288 kB\n");
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.ram_total_bytes, 2 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, 512 * k_mib);
}

TEST_F(SystemProbeTest, CgroupV2LimitBelowPhysicalRam)
{
  put("proc/meminfo", k_meminfo);
  put("proc/self/cgroup", "0::/\n");
  put("sys/fs/cgroup/memory.max", std::to_string(8 * k_gib) + "\n");
  put("sys/fs/cgroup/memory.current", std::to_string(3 * k_gib) + "\n");
  // 1 GiB of the usage is reclaimable page cache.
  put("sys/fs/cgroup/memory.stat",
      "anon 2147483648\nfile 1073741824\ninactive_file " + std::to_string(k_gib) + "\nactive_file 0\n");
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.cgroup_version, "v2");
  ASSERT_TRUE(info.cgroup_limit_bytes);
  EXPECT_EQ(*info.cgroup_limit_bytes, 8 * k_gib);
  EXPECT_EQ(info.ram_physical_bytes, 16 * k_gib);
  EXPECT_EQ(info.ram_total_bytes, 8 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, 6 * k_gib); // 8 - (3 - 1)
}

TEST_F(SystemProbeTest, CgroupV2MaxMeansNoLimit)
{
  put("proc/meminfo", k_meminfo);
  put("proc/self/cgroup", "0::/\n");
  put("sys/fs/cgroup/memory.max", "max\n");
  put("sys/fs/cgroup/memory.current", std::to_string(15 * k_gib) + "\n");
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.cgroup_version, "v2");
  EXPECT_FALSE(info.cgroup_limit_bytes);
  EXPECT_EQ(info.ram_total_bytes, 16 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, 12 * k_gib);
}

TEST_F(SystemProbeTest, CgroupV2NestedPathAndAncestorLimits)
{
  put("proc/meminfo", k_meminfo);
  put("proc/self/cgroup", "0::/user.slice/user-1000.slice/session-3.scope\n");
  // The process's own cgroup is unlimited; the user slice has 4 GiB with 1 GiB in use; the root has none.
  put("sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope/memory.max", "max\n");
  put("sys/fs/cgroup/user.slice/user-1000.slice/memory.max", std::to_string(4 * k_gib));
  put("sys/fs/cgroup/user.slice/user-1000.slice/memory.current", std::to_string(k_gib));
  put("sys/fs/cgroup/user.slice/memory.max", std::to_string(6 * k_gib));
  put("sys/fs/cgroup/user.slice/memory.current", std::to_string(5 * k_gib));
  const SystemInfo info = probe_system(options());
  ASSERT_TRUE(info.cgroup_limit_bytes);
  EXPECT_EQ(*info.cgroup_limit_bytes, 4 * k_gib);
  EXPECT_EQ(info.ram_total_bytes, 4 * k_gib);
  // user.slice leaves 1 GiB, less than user-1000.slice's 3 GiB.
  EXPECT_EQ(info.ram_available_bytes, k_gib);
}

TEST_F(SystemProbeTest, CgroupV2NestedPathMissingFallsBackToTheRoot)
{
  put("proc/meminfo", k_meminfo);
  // Inside a container without a cgroup namespace the host path is listed but not mounted.
  put("proc/self/cgroup", "0::/system.slice/docker-abc.scope\n");
  put("sys/fs/cgroup/memory.max", std::to_string(2 * k_gib));
  put("sys/fs/cgroup/memory.current", std::to_string(512 * k_mib));
  const SystemInfo info = probe_system(options());
  ASSERT_TRUE(info.cgroup_limit_bytes);
  EXPECT_EQ(*info.cgroup_limit_bytes, 2 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, 1536 * k_mib);
}

TEST_F(SystemProbeTest, CgroupPathEscapingTheNamespaceUsesOnlyTheRoot)
{
  put("proc/meminfo", k_meminfo);
  put("proc/self/cgroup", "0::/../../etc\n");
  put("sys/fs/cgroup/memory.max", std::to_string(3 * k_gib));
  const SystemInfo info = probe_system(options());
  ASSERT_TRUE(info.cgroup_limit_bytes);
  EXPECT_EQ(*info.cgroup_limit_bytes, 3 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, 3 * k_gib); // no usage file: the whole limit
}

TEST_F(SystemProbeTest, CgroupV1Limit)
{
  put("proc/meminfo", k_meminfo);
  put("proc/self/cgroup", "12:pids:/docker/abc\n5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", std::to_string(4 * k_gib) + "\n");
  put("sys/fs/cgroup/memory/memory.usage_in_bytes", std::to_string(2 * k_gib) + "\n");
  put("sys/fs/cgroup/memory/memory.stat",
      "cache 1073741824\ninactive_file 1\ntotal_inactive_file " + std::to_string(512 * k_mib) + "\n");
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.cgroup_version, "v1");
  ASSERT_TRUE(info.cgroup_limit_bytes);
  EXPECT_EQ(*info.cgroup_limit_bytes, 4 * k_gib);
  EXPECT_EQ(info.ram_total_bytes, 4 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, 2560 * k_mib); // 4 GiB - (2 GiB - 512 MiB)
}

TEST_F(SystemProbeTest, CgroupV1NestedPath)
{
  put("proc/meminfo", k_meminfo);
  put("proc/self/cgroup", "4:memory:/batch/job1\n");
  put("sys/fs/cgroup/memory/batch/job1/memory.limit_in_bytes", std::to_string(k_gib));
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712");
  const SystemInfo info = probe_system(options());
  ASSERT_TRUE(info.cgroup_limit_bytes);
  EXPECT_EQ(*info.cgroup_limit_bytes, k_gib);
}

TEST_F(SystemProbeTest, CgroupV1UnlimitedSentinel)
{
  put("proc/meminfo", k_meminfo);
  put("proc/self/cgroup", "4:memory:/\n");
  put("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  put("sys/fs/cgroup/memory/memory.usage_in_bytes", std::to_string(10 * k_gib));
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.cgroup_version, "v1");
  EXPECT_FALSE(info.cgroup_limit_bytes);
  EXPECT_EQ(info.ram_total_bytes, 16 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, 12 * k_gib);
}

TEST_F(SystemProbeTest, CgroupWithoutMeminfo)
{
  put("sys/fs/cgroup/memory.max", std::to_string(2 * k_gib));
  put("sys/fs/cgroup/memory.current", std::to_string(k_gib));
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.ram_physical_bytes, 0u);
  EXPECT_EQ(info.ram_total_bytes, 2 * k_gib);
  EXPECT_EQ(info.ram_available_bytes, k_gib);
}

TEST_F(SystemProbeTest, GarbageFilesAreIgnored)
{
  put("proc/meminfo", "MemTotal: lots\nnonsense\n\n");
  put("proc/self/cgroup", "garbage\n0::\n");
  put("sys/fs/cgroup/memory.max", "-5\n");
  put("proc/cpuinfo", ":::\nflags\n");
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.ram_total_bytes, 0u);
  EXPECT_FALSE(info.cgroup_limit_bytes);
  EXPECT_TRUE(info.cpu_features.empty());
}

TEST_F(SystemProbeTest, CpuinfoX86)
{
  std::string cpu;
  for (int i = 0; i < 8; ++i) {
    cpu += "processor\t: " + std::to_string(i) +
           "\nvendor_id\t: GenuineIntel\nmodel name\t: Some CPU\n"
           "flags\t\t: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 bmi2\n\n";
  }
  put("proc/cpuinfo", cpu);
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.cpu_threads, 8u);
  EXPECT_EQ(info.cpu_features, (std::vector<std::string>{"avx", "avx2", "fma", "f16c"}));
  EXPECT_TRUE(info.has_cpu_feature("avx2"));
  EXPECT_FALSE(info.has_cpu_feature("avx512f"));
}

TEST_F(SystemProbeTest, CpuinfoX86Avx512)
{
  put("proc/cpuinfo", "processor\t: 0\nflags\t\t: avx avx2 avx512f avx512bw\n\n");
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.cpu_threads, 1u);
  EXPECT_EQ(info.cpu_features, (std::vector<std::string>{"avx", "avx2", "avx512f"}));
}

TEST_F(SystemProbeTest, CpuinfoAarch64)
{
  put("proc/cpuinfo",
      "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 "
      "atomics fphp asimdhp cpuid sve\nCPU implementer\t: 0x41\n\n"
      "processor\t: 1\nFeatures\t: fp asimd sve\n\n"
      "processor\t: 2\nFeatures\t: fp asimd sve\n\n"
      "processor\t: 3\nFeatures\t: fp asimd sve\n\n");
  const SystemInfo info = probe_system(options());
  EXPECT_EQ(info.cpu_threads, 4u);
  EXPECT_EQ(info.cpu_features, (std::vector<std::string>{"neon", "sve"}));
}

TEST_F(SystemProbeTest, FreeDiskOfTheNearestExistingParent)
{
  fs::create_directories(root());
  ProbeOptions o = options();
  o.disk_path = tmp.path() / "cache" / "not" / "yet";
  const SystemInfo info = probe_system(o);
  EXPECT_TRUE(info.disk_known);
  EXPECT_GT(info.disk_free_bytes, 0u);
  EXPECT_EQ(info.disk_path, o.disk_path);
}

TEST_F(SystemProbeTest, FakeNvidiaSmiOnThePath)
{
  fs::create_directories(root());
  // The query and its options must be passed as separate arguments, unquoted by any shell.
  script("nvidia-smi", "[ \"$1\" = \"--query-gpu=name,memory.total,memory.free\" ] || exit 9\n"
                       "[ \"$2\" = \"--format=csv,noheader,nounits\" ] || exit 9\n"
                       "echo 'NVIDIA GeForce RTX 3090, 24576, 23000'\n"
                       "echo 'Tesla T4, 15360, [N/A]'\n");
  const SystemInfo info = probe_system(options());
  ASSERT_EQ(info.gpus.size(), 2u);
  EXPECT_EQ(info.gpus[0].name, "NVIDIA GeForce RTX 3090");
  EXPECT_EQ(info.gpus[0].memory_total_bytes, 24576 * k_mib);
  ASSERT_TRUE(info.gpus[0].memory_free_bytes);
  EXPECT_EQ(*info.gpus[0].memory_free_bytes, 23000 * k_mib);
  EXPECT_EQ(info.gpus[0].source, "nvidia-smi");
  EXPECT_EQ(info.gpus[1].name, "Tesla T4");
  EXPECT_FALSE(info.gpus[1].memory_free_bytes);
}

TEST_F(SystemProbeTest, FailingNvidiaSmiMeansNoNvidiaGpu)
{
  fs::create_directories(root());
  // What nvidia-smi does on a machine with the tools but no driver loaded.
  script("nvidia-smi",
         "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\n"
         "exit 1\n");
  const SystemInfo info = probe_system(options());
  EXPECT_TRUE(info.gpus.empty());
}

TEST_F(SystemProbeTest, HangingNvidiaSmiIsKilledAfterTheTimeout)
{
  fs::create_directories(root());
  script("nvidia-smi", "echo 'GPU, 1, 1'\nexec sleep 600\n");
  ProbeOptions o = options();
  o.nvidia_smi_timeout_ms = 100;
  const SystemInfo info = probe_system(o);
  EXPECT_TRUE(info.gpus.empty());
}

TEST_F(SystemProbeTest, NoGpuProbeWhenDisabled)
{
  fs::create_directories(root());
  script("nvidia-smi", "echo 'NVIDIA A100, 40960, 40000'\n");
  ProbeOptions o = options();
  o.probe_gpu = false;
  EXPECT_TRUE(probe_system(o).gpus.empty());
  o.probe_gpu = true;
  EXPECT_EQ(probe_system(o).gpus.size(), 1u);
}

TEST_F(SystemProbeTest, NonExecutableNvidiaSmiIsNotRun)
{
  fs::create_directories(root());
  fs::path p = script("nvidia-smi", "echo 'NVIDIA A100, 40960, 40000'\n");
  ::chmod(p.c_str(), 0644);
  EXPECT_TRUE(probe_system(options()).gpus.empty());
}

TEST_F(SystemProbeTest, AmdGpuFromDrm)
{
  put("sys/class/drm/card1/device/mem_info_vram_total", std::to_string(16 * k_gib) + "\n");
  put("sys/class/drm/card1/device/mem_info_vram_used", std::to_string(2 * k_gib) + "\n");
  put("sys/class/drm/card1/device/vendor", "0x1002\n");
  put("sys/class/drm/card1/device/device", "0x73bf\n");
  put("sys/class/drm/card0/device/mem_info_vram_total", std::to_string(512 * k_mib));
  put("sys/class/drm/card0/device/product_name", "AMD Radeon Graphics\n");
  // Connectors and cards without VRAM files (Intel, nouveau) are skipped.
  put("sys/class/drm/card1-DP-1/status", "connected\n");
  put("sys/class/drm/card2/device/vendor", "0x8086\n");
  put("sys/class/drm/renderD128/device/mem_info_vram_total", "1");
  const SystemInfo info = probe_system(options());
  ASSERT_EQ(info.gpus.size(), 2u);
  EXPECT_EQ(info.gpus[0].name, "AMD Radeon Graphics");
  EXPECT_EQ(info.gpus[0].memory_total_bytes, 512 * k_mib);
  EXPECT_FALSE(info.gpus[0].memory_free_bytes);
  EXPECT_EQ(info.gpus[0].source, "/sys/class/drm/card0");
  EXPECT_EQ(info.gpus[1].name, "AMD GPU 0x73bf");
  EXPECT_EQ(info.gpus[1].memory_total_bytes, 16 * k_gib);
  ASSERT_TRUE(info.gpus[1].memory_free_bytes);
  EXPECT_EQ(*info.gpus[1].memory_free_bytes, 14 * k_gib);
  EXPECT_EQ(info.gpus[1].source, "/sys/class/drm/card1");
}

TEST(NvidiaSmiCsv, ParsesLinesAndSkipsJunk)
{
  auto gpus = parse_nvidia_smi_csv("A100-SXM4-40GB, 40960, 40536\n"
                                   "\n"
                                   "No devices were found\n"
                                   "Odd, Name, With Commas, 1024, 512\n"
                                   ", 1, 1\n"
                                   "GPU, [N/A], 1\n");
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(gpus[0].name, "A100-SXM4-40GB");
  EXPECT_EQ(gpus[0].memory_total_bytes, 40960 * k_mib);
  EXPECT_EQ(gpus[1].name, "Odd, Name, With Commas");
  EXPECT_EQ(*gpus[1].memory_free_bytes, 512 * k_mib);
}

TEST_F(SystemProbeTest, FindProgramSearchesInOrder)
{
  script("tool", "exit 0\n");
  fs::path other = tmp.path() / "other" / "tool";
  test::write_file(other, "#!/bin/sh\n");
  ::chmod(other.c_str(), 0755);
  const std::string bin = (tmp.path() / "bin").string();
  const std::string oth = (tmp.path() / "other").string();
  EXPECT_EQ(find_program("tool", oth + ":" + bin), other);
  EXPECT_EQ(find_program("tool", "::" + bin), tmp.path() / "bin" / "tool");
  EXPECT_FALSE(find_program("tool", ""));
  EXPECT_FALSE(find_program("missing", bin));
  fs::create_directories(tmp.path() / "dir" / "tool");
  EXPECT_FALSE(find_program("tool", (tmp.path() / "dir").string()));
}

TEST(SystemProbeReal, ProbesThisMachineWithoutThrowing)
{
  ProbeOptions o;
  o.probe_gpu = false;
  o.disk_path = fs::temp_directory_path();
  const SystemInfo info = probe_system(o);
  EXPECT_GT(info.ram_total_bytes, 0u);
  EXPECT_GT(info.cpu_threads, 0u);
  EXPECT_TRUE(info.disk_known);
  EXPECT_LE(info.ram_available_bytes, info.ram_total_bytes);
}

} // namespace
} // namespace modelmgr::catalog
