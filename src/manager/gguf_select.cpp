#include "manager/gguf_select.hpp"

#include "modelmgr/errors.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>

#include <fmt/format.h>

namespace modelmgr::manager {

namespace {

std::string lower(std::string_view s)
{
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string upper(std::string_view s)
{
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

bool all_digits(std::string_view s)
{
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string_view file_name(std::string_view path)
{
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view dir_of(std::string_view path)
{
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
}

// The first run of digits of a quantization tag: Q4_K_M → 4, BF16 → 16, IQ2_XXS → 2; 0 when none.
int quant_bits(std::string_view quant)
{
  const auto first = quant.find_first_of("0123456789");
  if (first == std::string_view::npos) {
    return 0;
  }
  return std::atoi(std::string(quant.substr(first, 4)).c_str());
}

// `tag` occurs in `path` (both lower case) between a boundary before (start, '/', '-', '.') and a
// separator after ('-', '.'): "q4_k_m" is in "x-q4_k_m.gguf" but not in "x-iq4_k_m.gguf" or
// "x-q4_k_m_l.gguf".
bool tag_matches(std::string_view path, std::string_view tag)
{
  for (std::size_t at = path.find(tag); at != std::string_view::npos; at = path.find(tag, at + 1)) {
    const bool start_ok = at == 0 || path[at - 1] == '/' || path[at - 1] == '-' || path[at - 1] == '.';
    const std::size_t end = at + tag.size();
    const bool end_ok = end < path.size() && (path[end] == '-' || path[end] == '.');
    if (start_ok && end_ok) {
      return true;
    }
  }
  return false;
}

bool valid_tag(std::string_view tag)
{
  return !tag.empty() && std::all_of(tag.begin(), tag.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
  });
}

struct Parsed {
  std::string path;
  GgufName name;
};

std::vector<Parsed> parse_all(const std::vector<std::string>& paths)
{
  std::vector<Parsed> out;
  for (const auto& p : paths) {
    if (auto n = parse_gguf_name(p)) {
      out.push_back({p, std::move(*n)});
    }
  }
  return out;
}

// The first model file (the first part of a split set) whose path carries `tag` (lower case).
const Parsed* find_model(const std::vector<Parsed>& ggufs, std::string_view tag)
{
  for (const auto& g : ggufs) {
    if (g.name.is_model && g.name.part == 1 && tag_matches(lower(g.path), tag)) {
      return &g;
    }
  }
  return nullptr;
}

std::string describe_available(const std::vector<std::string>& paths)
{
  const auto quants = available_quants(paths);
  if (!quants.empty()) {
    return fmt::format("{}", fmt::join(quants, ", "));
  }
  std::vector<std::string> names;
  for (const auto& g : parse_all(paths)) {
    if (g.name.is_model && g.name.part == 1) {
      names.push_back(g.path);
    }
  }
  return fmt::format("{}", fmt::join(names, ", "));
}

} // namespace

RepoQuant split_repo_quant(std::string_view spec)
{
  const auto colon = spec.rfind(':');
  if (colon == std::string_view::npos) {
    return {std::string(spec), std::nullopt};
  }
  const std::string_view tag = spec.substr(colon + 1);
  if (!valid_tag(tag)) {
    throw ConfigurationError(
        fmt::format("invalid quantization tag '{}' in '{}'", tag, spec),
        "write REPO:QUANT with a tag such as Q4_K_M (letters, digits, '_', '-', '.'), or REPO alone for the "
        "default quantization",
        ErrorKind::usage);
  }
  return {std::string(spec.substr(0, colon)), std::string(tag)};
}

bool looks_like_repo_spec(std::string_view spec) noexcept
{
  return spec.find('/') != std::string_view::npos;
}

std::optional<GgufName> parse_gguf_name(std::string_view path)
{
  constexpr std::string_view ext = ".gguf";
  if (path.size() <= ext.size() || lower(path.substr(path.size() - ext.size())) != ext) {
    return std::nullopt;
  }
  GgufName n;
  std::string_view prefix = path.substr(0, path.size() - ext.size());
  // <prefix>-00001-of-00003: 5 digits, "-of-", 5 digits.
  constexpr std::size_t split_len = 1 + 5 + 4 + 5;
  if (prefix.size() > split_len) {
    const std::string_view tail = prefix.substr(prefix.size() - split_len);
    if (tail[0] == '-' && all_digits(tail.substr(1, 5)) && lower(tail.substr(6, 4)) == "-of-" &&
        all_digits(tail.substr(10, 5))) {
      const int part = std::atoi(std::string(tail.substr(1, 5)).c_str());
      const int parts = std::atoi(std::string(tail.substr(10, 5)).c_str());
      if (part >= 1 && parts >= 1 && part <= parts) {
        n.part = part;
        n.parts = parts;
        prefix = prefix.substr(0, prefix.size() - split_len);
      }
    }
  }
  n.prefix = std::string(prefix);
  // The quantization: the last '-' or '.' separated token of the file name, when it has a digit (a word such
  // as "instruct" is not one).
  const std::string_view base = file_name(prefix);
  const auto sep = base.find_last_of("-.");
  const std::string_view token = sep == std::string_view::npos ? std::string_view{} : base.substr(sep + 1);
  const bool token_ok = !token.empty() && std::all_of(token.begin(), token.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
  });
  if (token_ok && token.find_first_of("0123456789") != std::string_view::npos) {
    n.quant = upper(token);
  }
  const std::string name_lower = lower(file_name(path));
  n.is_mmproj = name_lower.find("mmproj") != std::string::npos;
  n.is_model = !n.is_mmproj && name_lower.find("imatrix") == std::string::npos;
  return n;
}

std::vector<std::string> GgufSelection::files() const
{
  std::vector<std::string> out = model;
  if (mmproj) {
    out.push_back(*mmproj);
  }
  return out;
}

std::vector<std::string> available_quants(const std::vector<std::string>& paths)
{
  std::vector<std::string> out;
  for (const auto& g : parse_all(paths)) {
    if (g.name.is_model && g.name.part == 1 && !g.name.quant.empty() &&
        std::find(out.begin(), out.end(), g.name.quant) == out.end()) {
      out.push_back(g.name.quant);
    }
  }
  return out;
}

GgufSelection select_gguf(const std::vector<std::string>& paths, const std::optional<std::string>& quant,
                          std::string_view repo)
{
  const std::vector<Parsed> ggufs = parse_all(paths);
  const bool has_model =
      std::any_of(ggufs.begin(), ggufs.end(), [](const Parsed& g) { return g.name.is_model; });
  if (!has_model) {
    throw MissingModelError(
        fmt::format("{} has no GGUF model file ({} files in the listing)", repo, paths.size()),
        fmt::format("REPO:QUANT picks GGUF files; for other repos use `modelmgr pull {}` (whole snapshot) or "
                    "name the files",
                    repo));
  }

  GgufSelection sel;
  const Parsed* primary = nullptr;
  if (quant) {
    primary = find_model(ggufs, lower(*quant));
    sel.quant = upper(*quant);
    if (!primary) {
      throw MissingModelError(
          fmt::format("{} has no GGUF file of quantization '{}'", repo, *quant),
          fmt::format("the repo has: {}; pick one as {}:QUANT", describe_available(paths), repo));
    }
  } else {
    // llama.cpp's default: a 4-bit medium k-quant, else 8-bit, else whatever comes first.
    for (std::string_view tag : {"q4_k_m", "q8_0"}) {
      if ((primary = find_model(ggufs, tag)) != nullptr) {
        sel.quant = upper(tag);
        break;
      }
    }
    if (!primary) {
      for (const auto& g : ggufs) {
        if (g.name.is_model && g.name.part == 1) {
          primary = &g;
          sel.quant = g.name.quant;
          break;
        }
      }
    }
    if (!primary) {
      throw MissingModelError(fmt::format("{} has split GGUF files without a first part", repo),
                              "name the files to pull them: `modelmgr pull REPO FILE...`");
    }
  }

  // Every part of a split set, in order; each must be listed.
  if (primary->name.parts == 1) {
    sel.model.push_back(primary->path);
  } else {
    std::map<int, std::string> parts;
    for (const auto& g : ggufs) {
      if (g.name.parts == primary->name.parts && g.name.prefix == primary->name.prefix) {
        parts.emplace(g.name.part, g.path);
      }
    }
    std::vector<int> missing;
    for (int i = 1; i <= primary->name.parts; ++i) {
      if (parts.count(i) == 0) {
        missing.push_back(i);
      }
    }
    if (!missing.empty()) {
      throw MissingModelError(
          fmt::format("{}: the split GGUF {} has {} parts, but part{} {} {} missing from the listing", repo,
                      primary->path, primary->name.parts, missing.size() == 1 ? "" : "s",
                      fmt::join(missing, ", "), missing.size() == 1 ? "is" : "are"),
          "the upload is incomplete; pick another quantization or ask the repo's owner");
    }
    for (auto& [i, p] : parts) {
      sel.model.push_back(p);
    }
  }

  // The vision projector: in the model's folder or above it (deepest first), then the bit width closest to
  // the model's, then listing order.
  const std::string_view model_dir = dir_of(primary->path);
  const int model_bits = quant_bits(primary->name.quant);
  const Parsed* best = nullptr;
  std::size_t best_depth = 0;
  int best_diff = 0;
  for (const auto& g : ggufs) {
    if (!g.name.is_mmproj) {
      continue;
    }
    const std::string_view d = dir_of(g.path);
    const bool inside =
        d.empty() || model_dir == d ||
        (model_dir.size() > d.size() && model_dir.substr(0, d.size()) == d && model_dir[d.size()] == '/');
    if (!inside) {
      continue;
    }
    const std::size_t depth =
        d.empty() ? 0 : 1 + static_cast<std::size_t>(std::count(d.begin(), d.end(), '/'));
    const int diff = std::abs(quant_bits(g.name.quant) - model_bits);
    if (!best || depth > best_depth || (depth == best_depth && diff < best_diff)) {
      best = &g;
      best_depth = depth;
      best_diff = diff;
    }
  }
  if (best) {
    sel.mmproj = best->path;
  }
  return sel;
}

} // namespace modelmgr::manager
