// Fit checks and the recommendation; the rules are in recommend.hpp and docs/recommend.md.

#include "catalog/recommend.hpp"

#include "formats/gguf.hpp"
#include "formats/parse_error.hpp"
#include "util/size.hpp"

#include <algorithm>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

namespace modelmgr::catalog {

namespace {

constexpr std::uint64_t k_gib = 1024ull * 1024 * 1024;

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept
{
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

// `bytes` + 10%.
std::uint64_t with_disk_margin(std::uint64_t bytes) noexcept
{
  return saturating_add(bytes, bytes / 10);
}

std::string size(std::uint64_t bytes)
{
  return util::format_bytes_iec(bytes);
}

bool iequals(std::string_view a, std::string_view b) noexcept
{
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

bool has_use_case(const Entry& entry, const std::string& use_case)
{
  if (use_case.empty()) {
    return true;
  }
  return std::any_of(entry.use_cases.begin(), entry.use_cases.end(),
                     [&](const std::string& u) { return iequals(u, use_case); });
}

// The memory a GPU offers a new model: its free memory, or its total when the driver does not say.
std::uint64_t gpu_usable(const GpuInfo& gpu) noexcept
{
  return gpu.memory_free_bytes.value_or(gpu.memory_total_bytes);
}

std::string gpu_memory_text(const GpuInfo& gpu)
{
  if (gpu.memory_free_bytes) {
    return fmt::format("{} free of {}", size(*gpu.memory_free_bytes), size(gpu.memory_total_bytes));
  }
  return size(gpu.memory_total_bytes);
}

// Whether the cgroup limit (not the machine) is what bounds the RAM.
bool cgroup_bounds_ram(const SystemInfo& system) noexcept
{
  return system.cgroup_limit_bytes &&
         (system.ram_physical_bytes == 0 || *system.cgroup_limit_bytes < system.ram_physical_bytes);
}

} // namespace

std::uint64_t ram_headroom_bytes(const SystemInfo& system) noexcept
{
  return std::max(k_gib, system.ram_total_bytes / 10);
}

Fit check_fit(const FitInput& input, const SystemInfo& system)
{
  if (input.entry == nullptr || input.variant == nullptr) {
    throw std::invalid_argument("check_fit: the entry and the variant must be set");
  }
  const Variant& variant = *input.variant;
  Fit fit;
  if (input.ram_from_header) {
    fit.ram_needed_bytes = *input.ram_from_header;
    fit.ram_source = "header";
  } else if (variant.min_ram_bytes > 0) {
    fit.ram_needed_bytes = variant.min_ram_bytes;
    fit.ram_source = "catalog";
  } else {
    // No RAM figure at all: the weights have to be in memory at least.
    fit.ram_needed_bytes = variant.size_bytes;
    fit.ram_source = "download size";
  }
  fit.headroom_bytes = ram_headroom_bytes(system);

  std::vector<std::string> reasons;

  // RAM.
  if (!system.ram_known()) {
    fit.ram_ok = true;
  } else {
    fit.ram_ok = saturating_add(fit.ram_needed_bytes, fit.headroom_bytes) <= system.ram_available_bytes;
  }

  // GPU: the one with the most usable memory.
  for (std::size_t i = 0; i < system.gpus.size(); ++i) {
    if (!fit.gpu || gpu_usable(system.gpus[i]) > gpu_usable(system.gpus[*fit.gpu])) {
      fit.gpu = i;
    }
  }
  if (fit.gpu) {
    fit.gpu_ok = fit.ram_needed_bytes <= gpu_usable(system.gpus[*fit.gpu]);
  }

  if (!fit.ram_ok) {
    std::string text = fmt::format("needs {} RAM + {} headroom, {} available", size(fit.ram_needed_bytes),
                                   size(fit.headroom_bytes), size(system.ram_available_bytes));
    if (cgroup_bounds_ram(system)) {
      text += fmt::format(" (cgroup limit {})", size(*system.cgroup_limit_bytes));
    }
    if (fit.gpu && !fit.gpu_ok) {
      const GpuInfo& gpu = system.gpus[*fit.gpu];
      text += fmt::format(", and more than the GPU memory of {} ({})", gpu.name, gpu_memory_text(gpu));
    }
    if (!fit.gpu_ok) {
      reasons.push_back(std::move(text));
    }
  }

  // Disk.
  if (input.cached) {
    fit.disk_ok = true;
  } else {
    fit.disk_needed_bytes = with_disk_margin(variant.size_bytes);
    fit.disk_ok = !system.disk_known || fit.disk_needed_bytes <= system.disk_free_bytes;
    if (!fit.disk_ok) {
      reasons.push_back(fmt::format("needs {} free disk (download {} + 10%), {} free at {}",
                                    size(fit.disk_needed_bytes), size(variant.size_bytes),
                                    size(system.disk_free_bytes), system.disk_path.string()));
    }
  }

  fit.fits = (fit.ram_ok || fit.gpu_ok) && fit.disk_ok;
  if (fit.fits) {
    fit.where = fit.ram_ok ? std::string("RAM") : fmt::format("GPU memory ({})", system.gpus[*fit.gpu].name);
  }
  for (std::size_t i = 0; i < reasons.size(); ++i) {
    fit.reason += (i == 0 ? "" : "; ") + reasons[i];
  }
  return fit;
}

Recommendation recommend(const std::vector<FitInput>& candidates, const SystemInfo& system,
                         const std::string& use_case)
{
  Recommendation rec;
  rec.summary = describe_system(system);

  struct Checked {
    const FitInput* input;
    Fit fit;
  };
  std::vector<Checked> checked;
  for (const auto& c : candidates) {
    if (c.entry == nullptr || c.variant == nullptr || !has_use_case(*c.entry, use_case)) {
      continue;
    }
    checked.push_back({&c, check_fit(c, system)});
  }
  rec.considered = checked.size();

  const Checked* best = nullptr;
  for (const auto& c : checked) {
    if (!c.fit.fits) {
      continue;
    }
    if (best == nullptr) {
      best = &c;
      continue;
    }
    const auto size_c = c.input->variant->size_bytes;
    const auto size_b = best->input->variant->size_bytes;
    if (size_c > size_b ||
        (size_c == size_b && c.input->variant->is_default && !best->input->variant->is_default)) {
      best = &c;
    }
  }
  if (best != nullptr) {
    rec.best = *best->input;
    rec.best_fit = best->fit;
  }
  for (const auto& c : checked) {
    if (c.fit.fits) {
      continue;
    }
    if (best == nullptr || c.input->variant->size_bytes > best->input->variant->size_bytes) {
      rec.rejected.emplace_back(*c.input, c.fit);
    }
  }
  std::stable_sort(rec.rejected.begin(), rec.rejected.end(), [](const auto& a, const auto& b) {
    return a.first.variant->size_bytes < b.first.variant->size_bytes;
  });
  return rec;
}

std::string describe_system(const SystemInfo& system)
{
  std::vector<std::string> parts;
  if (system.ram_known()) {
    std::string ram =
        fmt::format("{} RAM ({} available",
                    size(system.ram_physical_bytes > 0 ? system.ram_physical_bytes : system.ram_total_bytes),
                    size(system.ram_available_bytes));
    if (cgroup_bounds_ram(system)) {
      ram += fmt::format(", cgroup limit {}", size(*system.cgroup_limit_bytes));
    }
    parts.push_back(ram + ")");
  } else {
    parts.emplace_back("RAM unknown");
  }
  if (system.disk_known) {
    parts.push_back(fmt::format("{} free disk", size(system.disk_free_bytes)));
  } else if (!system.disk_path.empty()) {
    parts.emplace_back("free disk unknown");
  }
  if (system.cpu_threads > 0) {
    parts.push_back(fmt::format("{} thread{}", system.cpu_threads, system.cpu_threads == 1 ? "" : "s"));
  }
  // The SIMD levels llama.cpp picks its kernels by; AVX alone only when nothing better is there.
  std::vector<std::string> simd;
  if (system.has_cpu_feature("avx512f")) {
    simd.emplace_back("AVX-512");
  }
  if (system.has_cpu_feature("avx2")) {
    simd.emplace_back("AVX2");
  }
  if (simd.empty() && system.has_cpu_feature("avx")) {
    simd.emplace_back("AVX");
  }
  if (system.has_cpu_feature("neon")) {
    simd.emplace_back("NEON");
  }
  if (system.has_cpu_feature("sve")) {
    simd.emplace_back("SVE");
  }
  for (auto& s : simd) {
    parts.push_back(std::move(s));
  }
  if (system.gpus.empty()) {
    parts.emplace_back("GPU: none");
  } else {
    std::string gpus = "GPU: ";
    for (std::size_t i = 0; i < system.gpus.size(); ++i) {
      const GpuInfo& gpu = system.gpus[i];
      gpus += fmt::format("{}{} ({})", i == 0 ? "" : ", ", gpu.name, gpu_memory_text(gpu));
    }
    parts.push_back(std::move(gpus));
  }
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    out += (i == 0 ? "" : ", ") + parts[i];
  }
  return out;
}

std::optional<std::uint64_t> ram_from_gguf(const std::filesystem::path& path, std::uint64_t context_length)
{
  try {
    const formats::GgufFile file = formats::parse_gguf_file(path);
    return formats::estimate_ram_bytes(formats::describe_gguf(file), context_length);
  } catch (const formats::ParseError&) {
    return std::nullopt;
  } catch (const std::system_error&) {
    return std::nullopt;
  }
}

} // namespace modelmgr::catalog
