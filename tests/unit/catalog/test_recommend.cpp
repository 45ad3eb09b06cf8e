// check_fit, recommend and describe_system over hand-made catalogs and systems; ram_from_gguf on a GGUF
// file written by the formats writer.

#include "catalog/recommend.hpp"
#include "formats/writers.hpp"
#include "support/test_util.hpp"

#include <fstream>

#include <gtest/gtest.h>

namespace modelmgr::catalog {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t k_gib = 1024ull * 1024 * 1024;
constexpr std::uint64_t k_mib = 1024ull * 1024;

// 16 GiB machine, 12 GiB available, 50 GiB free disk, 8 threads with AVX2, no GPU.
SystemInfo machine(std::uint64_t total = 16 * k_gib, std::uint64_t available = 12 * k_gib)
{
  SystemInfo s;
  s.ram_physical_bytes = total;
  s.ram_total_bytes = total;
  s.ram_available_bytes = available;
  s.disk_path = "/cache";
  s.disk_known = true;
  s.disk_free_bytes = 50 * k_gib;
  s.cpu_threads = 8;
  s.cpu_features = {"avx", "avx2", "fma", "f16c"};
  return s;
}

Variant variant(std::string quant, std::uint64_t size, std::uint64_t ram, bool is_default = false)
{
  Variant v;
  v.quantization = std::move(quant);
  v.file = "model-" + v.quantization + ".gguf";
  v.size_bytes = size;
  v.min_ram_bytes = ram;
  v.is_default = is_default;
  return v;
}

Entry entry(std::string id, std::vector<std::string> use_cases, std::vector<Variant> variants)
{
  Entry e;
  e.id = std::move(id);
  e.name = e.id;
  e.hf_repo = "org/" + e.id;
  e.format = "gguf";
  e.use_cases = std::move(use_cases);
  e.variants = std::move(variants);
  e.origin = "built-in";
  return e;
}

std::vector<FitInput> inputs(const std::vector<Entry>& entries)
{
  std::vector<FitInput> out;
  for (const auto& e : entries) {
    for (const auto& v : e.variants) {
      out.push_back({&e, &v, false, std::nullopt});
    }
  }
  return out;
}

TEST(CheckFit, HeadroomIsAGibOrTenPercent)
{
  EXPECT_EQ(ram_headroom_bytes(machine(4 * k_gib)), k_gib);
  EXPECT_EQ(ram_headroom_bytes(machine(64 * k_gib)), 64 * k_gib / 10);
}

TEST(CheckFit, FitsInRamWithHeadroom)
{
  const Entry e = entry("m", {"chat"}, {variant("Q4_K_M", 4 * k_gib, 5 * k_gib, true)});
  const SystemInfo s = machine(); // headroom 1.6 GiB, 12 GiB available
  const Fit fit = check_fit({&e, &e.variants[0]}, s);
  EXPECT_TRUE(fit.fits);
  EXPECT_TRUE(fit.ram_ok);
  EXPECT_EQ(fit.ram_needed_bytes, 5 * k_gib);
  EXPECT_EQ(fit.ram_source, "catalog");
  EXPECT_EQ(fit.where, "RAM");
  EXPECT_EQ(fit.reason, "");
}

TEST(CheckFit, TooBigForRamSaysWhy)
{
  const Entry e = entry("m", {"chat"}, {variant("Q8_0", 8 * k_gib, 11 * k_gib)});
  const Fit fit = check_fit({&e, &e.variants[0]}, machine());
  EXPECT_FALSE(fit.fits);
  EXPECT_FALSE(fit.ram_ok);
  EXPECT_TRUE(fit.disk_ok);
  // 11 + 1.6 > 12: the headroom is what tips it over.
  EXPECT_EQ(fit.reason, "needs 11.0 GiB RAM + 1.6 GiB headroom, 12.0 GiB available");
}

TEST(CheckFit, CgroupLimitIsNamedInTheReason)
{
  SystemInfo s = machine(16 * k_gib, 6 * k_gib);
  s.cgroup_limit_bytes = 8 * k_gib;
  s.ram_total_bytes = 8 * k_gib;
  const Entry e = entry("m", {"chat"}, {variant("Q8_0", 7 * k_gib, 9 * k_gib)});
  const Fit fit = check_fit({&e, &e.variants[0]}, s);
  EXPECT_FALSE(fit.fits);
  EXPECT_EQ(fit.reason, "needs 9.0 GiB RAM + 1.0 GiB headroom, 6.0 GiB available (cgroup limit 8.0 GiB)");
}

TEST(CheckFit, HeaderEstimateWinsOverTheCatalog)
{
  const Entry e = entry("m", {"chat"}, {variant("Q4_K_M", 4 * k_gib, 11 * k_gib)});
  const SystemInfo s = machine();
  EXPECT_FALSE(check_fit({&e, &e.variants[0]}, s).fits);
  const Fit fit = check_fit({&e, &e.variants[0], true, 6 * k_gib}, s);
  EXPECT_TRUE(fit.fits);
  EXPECT_EQ(fit.ram_needed_bytes, 6 * k_gib);
  EXPECT_EQ(fit.ram_source, "header");
  // And the other way round: a header that says more than the catalog.
  const Fit big = check_fit({&e, &e.variants[0], true, 13 * k_gib}, s);
  EXPECT_FALSE(big.fits);
  EXPECT_EQ(big.ram_source, "header");
}

TEST(CheckFit, WithoutACatalogRamFigureTheDownloadSizeIsUsed)
{
  const Entry e = entry("m", {"embedding"}, {variant("", 2 * k_gib, 0)});
  const Fit fit = check_fit({&e, &e.variants[0]}, machine());
  EXPECT_EQ(fit.ram_needed_bytes, 2 * k_gib);
  EXPECT_EQ(fit.ram_source, "download size");
}

TEST(CheckFit, DiskUnlessCached)
{
  SystemInfo s = machine();
  s.disk_free_bytes = 4 * k_gib;
  // 3.8 GiB + 10% = 4.18 GiB > 4 GiB free.
  const Entry e = entry("m", {"chat"}, {variant("Q4_K_M", 3891 * k_mib, 5 * k_gib)});
  const Fit fit = check_fit({&e, &e.variants[0]}, s);
  EXPECT_FALSE(fit.fits);
  EXPECT_TRUE(fit.ram_ok);
  EXPECT_FALSE(fit.disk_ok);
  EXPECT_EQ(fit.disk_needed_bytes, 3891 * k_mib + 3891 * k_mib / 10);
  EXPECT_EQ(fit.reason, "needs 4.2 GiB free disk (download 3.8 GiB + 10%), 4.0 GiB free at /cache");

  const Fit cached = check_fit({&e, &e.variants[0], true, std::nullopt}, s);
  EXPECT_TRUE(cached.fits);
  EXPECT_EQ(cached.disk_needed_bytes, 0u);
}

TEST(CheckFit, BothReasonsWhenRamAndDiskFail)
{
  SystemInfo s = machine(8 * k_gib, 4 * k_gib);
  s.disk_free_bytes = k_gib;
  const Entry e = entry("m", {"chat"}, {variant("Q8_0", 8 * k_gib, 9 * k_gib)});
  const Fit fit = check_fit({&e, &e.variants[0]}, s);
  EXPECT_EQ(fit.reason, "needs 9.0 GiB RAM + 1.0 GiB headroom, 4.0 GiB available; "
                        "needs 8.8 GiB free disk (download 8.0 GiB + 10%), 1.0 GiB free at /cache");
}

TEST(CheckFit, UnknownRamAndDiskAreNotHeldAgainstAVariant)
{
  SystemInfo s;
  const Entry e = entry("m", {"chat"}, {variant("F16", 100 * k_gib, 120 * k_gib)});
  const Fit fit = check_fit({&e, &e.variants[0]}, s);
  EXPECT_TRUE(fit.fits);
}

TEST(CheckFit, GpuMemoryWhenRamIsShort)
{
  SystemInfo s = machine(16 * k_gib, 4 * k_gib);
  s.gpus.push_back({"Small GPU", 4 * k_gib, 3 * k_gib, "/sys/class/drm/card0"});
  s.gpus.push_back({"NVIDIA GeForce RTX 3090", 24 * k_gib, 20 * k_gib, "nvidia-smi"});
  const Entry e = entry("m", {"chat"}, {variant("Q8_0", 8 * k_gib, 9 * k_gib)});
  const Fit fit = check_fit({&e, &e.variants[0]}, s);
  EXPECT_TRUE(fit.fits);
  EXPECT_FALSE(fit.ram_ok);
  EXPECT_TRUE(fit.gpu_ok);
  ASSERT_TRUE(fit.gpu);
  EXPECT_EQ(*fit.gpu, 1u);
  EXPECT_EQ(fit.where, "GPU memory (NVIDIA GeForce RTX 3090)");
  EXPECT_EQ(fit.reason, "");
}

TEST(CheckFit, GpuTotalWhenFreeIsUnknownAndReasonWhenItIsTooSmall)
{
  SystemInfo s = machine(16 * k_gib, 4 * k_gib);
  s.gpus.push_back({"Radeon", 8 * k_gib, std::nullopt, "/sys/class/drm/card0"});
  const Entry small = entry("s", {"chat"}, {variant("Q4_K_M", 4 * k_gib, 7 * k_gib)});
  EXPECT_TRUE(check_fit({&small, &small.variants[0]}, s).gpu_ok);
  const Entry big = entry("b", {"chat"}, {variant("Q8_0", 8 * k_gib, 9 * k_gib)});
  const Fit fit = check_fit({&big, &big.variants[0]}, s);
  EXPECT_FALSE(fit.fits);
  EXPECT_EQ(fit.reason, "needs 9.0 GiB RAM + 1.6 GiB headroom, 4.0 GiB available, and more than the GPU "
                        "memory of Radeon (8.0 GiB)");
}

TEST(CheckFit, NullInputIsAProgrammingError)
{
  EXPECT_THROW(check_fit({}, machine()), std::invalid_argument);
}

TEST(Recommend, PicksTheLargestThatFitsAndExplainsTheLargerOnes)
{
  const std::vector<Entry> entries = {
      entry("mistral", {"chat"},
            {variant("Q4_K_M", 4370 * k_mib, 6 * k_gib, true), variant("Q5_K_M", 5130 * k_mib, 7 * k_gib),
             variant("Q8_0", 7700 * k_mib, 10 * k_gib + 512 * k_mib)}),
      entry("gemma-2b", {"chat"}, {variant("Q4_K_M", 1710 * k_mib, 3 * k_gib, true)}),
      entry("big", {"chat", "code"}, {variant("Q4_K_M", 40 * k_gib, 44 * k_gib, true)}),
  };
  const auto candidates = inputs(entries);
  const Recommendation rec = recommend(candidates, machine(), "chat");
  EXPECT_EQ(rec.considered, 5u);
  ASSERT_TRUE(rec.best);
  EXPECT_EQ(rec.best->entry->id, "mistral");
  EXPECT_EQ(rec.best->variant->quantization, "Q5_K_M");
  ASSERT_TRUE(rec.best_fit);
  EXPECT_TRUE(rec.best_fit->fits);
  ASSERT_EQ(rec.rejected.size(), 2u);
  EXPECT_EQ(rec.rejected[0].first.variant->quantization, "Q8_0");
  EXPECT_EQ(rec.rejected[0].second.reason, "needs 10.5 GiB RAM + 1.6 GiB headroom, 12.0 GiB available");
  EXPECT_EQ(rec.rejected[1].first.entry->id, "big");
  EXPECT_EQ(rec.summary, "16.0 GiB RAM (12.0 GiB available), 50.0 GiB free disk, 8 threads, AVX2, GPU: none");
}

TEST(Recommend, UseCaseFilter)
{
  const std::vector<Entry> entries = {
      entry("chatty", {"chat"}, {variant("Q4_K_M", 4 * k_gib, 6 * k_gib, true)}),
      entry("bge-m3", {"embedding"}, {variant("", 2 * k_gib, 3 * k_gib, true)}),
      entry("minilm", {"Embedding"}, {variant("", 90 * k_mib, 512 * k_mib, true)}),
  };
  const auto candidates = inputs(entries);
  const Recommendation rec = recommend(candidates, machine(), "embedding");
  EXPECT_EQ(rec.considered, 2u);
  ASSERT_TRUE(rec.best);
  EXPECT_EQ(rec.best->entry->id, "bge-m3");
  EXPECT_TRUE(rec.rejected.empty());

  const Recommendation all = recommend(candidates, machine(), "");
  EXPECT_EQ(all.considered, 3u);
  EXPECT_EQ(all.best->entry->id, "chatty");

  const Recommendation none = recommend(candidates, machine(), "vision");
  EXPECT_EQ(none.considered, 0u);
  EXPECT_FALSE(none.best);
}

TEST(Recommend, DefaultVariantWinsATie)
{
  const std::vector<Entry> entries = {
      entry("a", {"chat"}, {variant("Q4_0", 4 * k_gib, 5 * k_gib)}),
      entry("b", {"chat"}, {variant("Q4_K_M", 4 * k_gib, 5 * k_gib, true)}),
  };
  const auto candidates = inputs(entries);
  const Recommendation rec = recommend(candidates, machine(), "chat");
  ASSERT_TRUE(rec.best);
  EXPECT_EQ(rec.best->entry->id, "b");
}

TEST(Recommend, CachedVariantFitsWhereTheDiskIsFull)
{
  SystemInfo s = machine();
  s.disk_free_bytes = 100 * k_mib;
  const std::vector<Entry> entries = {
      entry("m", {"chat"},
            {variant("Q4_K_M", 4 * k_gib, 6 * k_gib, true), variant("Q5_K_M", 5 * k_gib, 7 * k_gib)}),
  };
  auto candidates = inputs(entries);
  candidates[0].cached = true;
  const Recommendation rec = recommend(candidates, s, "chat");
  ASSERT_TRUE(rec.best);
  EXPECT_EQ(rec.best->variant->quantization, "Q4_K_M");
  ASSERT_EQ(rec.rejected.size(), 1u);
  EXPECT_NE(rec.rejected[0].second.reason.find("free disk"), std::string::npos);
}

TEST(Recommend, NothingFitsListsEverythingWithReasons)
{
  const std::vector<Entry> entries = {
      entry("m", {"chat"},
            {variant("Q8_0", 8 * k_gib, 9 * k_gib), variant("Q4_K_M", 4 * k_gib, 5 * k_gib, true)}),
  };
  const auto candidates = inputs(entries);
  const Recommendation rec = recommend(candidates, machine(4 * k_gib, 3 * k_gib), "chat");
  EXPECT_FALSE(rec.best);
  EXPECT_FALSE(rec.best_fit);
  ASSERT_EQ(rec.rejected.size(), 2u);
  EXPECT_EQ(rec.rejected[0].first.variant->quantization, "Q4_K_M"); // smallest first
  EXPECT_EQ(rec.rejected[0].second.reason, "needs 5.0 GiB RAM + 1.0 GiB headroom, 3.0 GiB available");
}

TEST(DescribeSystem, CgroupGpuAndUnknowns)
{
  SystemInfo s = machine(16 * k_gib, 6 * k_gib);
  s.cgroup_limit_bytes = 8 * k_gib;
  s.ram_total_bytes = 8 * k_gib;
  s.cpu_features = {"avx", "avx2", "avx512f"};
  s.gpus.push_back({"NVIDIA GeForce RTX 3090", 24 * k_gib, 20 * k_gib, "nvidia-smi"});
  EXPECT_EQ(describe_system(s), "16.0 GiB RAM (6.0 GiB available, cgroup limit 8.0 GiB), 50.0 GiB free disk, "
                                "8 threads, AVX-512, AVX2, GPU: NVIDIA GeForce RTX 3090 (20.0 GiB free of "
                                "24.0 GiB)");
  // A limit above the machine's RAM constrains nothing and is not shown.
  s.cgroup_limit_bytes = 64 * k_gib;
  EXPECT_EQ(describe_system(s).find("cgroup"), std::string::npos);

  SystemInfo arm;
  arm.cpu_threads = 1;
  arm.cpu_features = {"neon", "sve"};
  arm.disk_path = "/x";
  EXPECT_EQ(describe_system(arm), "RAM unknown, free disk unknown, 1 thread, NEON, SVE, GPU: none");
}

TEST(RamFromGguf, EstimatesFromTheHeaderAndRejectsOtherFiles)
{
  test::TempDir tmp;
  formats::GgufWriter w;
  w.add("general.architecture", "llama");
  w.add("llama.context_length", std::uint32_t{4096});
  w.add("llama.embedding_length", std::uint32_t{64});
  w.add("llama.block_count", std::uint32_t{2});
  w.add("llama.attention.head_count", std::uint32_t{4});
  w.add("llama.attention.head_count_kv", std::uint32_t{2});
  w.add_tensor("blk.0.attn_q.weight", {64, 64}, formats::GgmlType::f16);
  w.add_tensor("blk.1.attn_q.weight", {64, 64}, formats::GgmlType::f16);
  const auto bytes = w.build();
  const fs::path file = tmp / "model.gguf";
  {
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  const auto ram = ram_from_gguf(file, 0);
  ASSERT_TRUE(ram);
  const auto info = formats::describe_gguf(formats::parse_gguf_file(file));
  EXPECT_EQ(*ram, formats::estimate_ram_bytes(info, 0));
  // A longer context needs more KV cache.
  EXPECT_GT(*ram_from_gguf(file, 32768), *ram);

  test::write_file(tmp / "junk.gguf", "not a gguf file at all");
  EXPECT_FALSE(ram_from_gguf(tmp / "junk.gguf", 0));
  EXPECT_FALSE(ram_from_gguf(tmp / "missing.gguf", 0));
}

} // namespace
} // namespace modelmgr::catalog
