#pragma once
// The model catalog: recommended models (chat LLMs as GGUF quantizations, embedding/rerank models) with
// the facts needed to choose one for a machine. The built-in catalog is the data file data/catalog.toml
// (compiled into the library and installed beside the binary); a user catalog
// ($XDG_CONFIG_HOME/modelmgr/catalog.toml) and a project's config can add or override entries by id.
// Pure data and parsing: no network, no printing.

#include "modelmgr/errors.hpp"

#include "cache/delete.hpp"
#include "cache/tree.hpp"
#include "util/env.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::catalog {

// One downloadable file of an entry: a GGUF quantization, or the main weights file of a safetensors/ONNX
// model. `size_bytes` is the real size on the Hub (checked by `models list --refresh`).
struct Variant {
  std::string quantization;     // Q4_K_M, Q5_K_M, Q8_0, F16, F32 ... ("" when the format has none)
  std::string file;             // path inside the repo of the weights file
  std::uint64_t size_bytes = 0; // size of `file` on the Hub (extra files are small and not counted)
  std::uint64_t min_ram_bytes =
      0;                   // RAM needed to run it at the default context (weights + KV cache + overhead)
  bool is_default = false; // the variant `ID` means when no quantization is given
  // false: size_bytes is the Hub page's rounded figure, not the exact byte count (`models list --refresh`
  // reads the exact one); shown with "~".
  bool size_exact = true;
};

struct Entry {
  std::string id;      // short stable id, e.g. "mistral-7b-instruct-v0.3"
  std::string name;    // display name
  std::string hf_repo; // e.g. "bartowski/Mistral-7B-Instruct-v0.3-GGUF"
  std::string revision = "main";
  std::string format;                 // gguf | safetensors | onnx
  std::vector<std::string> use_cases; // chat, code, embedding, rerank, vision ...
  std::vector<std::string> files;     // extra files/globs to fetch with every variant (tokenizer, config)
  std::uint64_t context_length = 0;   // tokens: the context min_ram_bytes assumes (0 = not applicable)
  std::string tokenizer_repo;
  std::string license;
  std::string description;       // one line
  std::vector<Variant> variants; // at least one
  std::string origin;            // where the entry came from: "built-in", a file path (for messages)
  int line = 0;                  // line of its [[model]] in that file (0 if unknown)
};

struct Catalog {
  std::vector<Entry> entries;

  // The entry with this id (exact), or nullptr.
  const Entry* find(std::string_view id) const;
};

// A reference to one variant: "ID" (the default variant) or "ID:QUANT" (case-insensitive quantization).
struct Selection {
  const Entry* entry = nullptr;
  const Variant* variant = nullptr;
};

// ---- Reading ---------------------------------------------------------------------------------------------

// One problem found in a catalog file. line/column are 1-based; 0 when unknown.
struct CatalogProblem {
  std::string file; // display name: "built-in", or the path
  int line = 0;
  int column = 0;
  std::string key;     // key path, e.g. "model[2].variant[1].size_bytes"; empty for syntax errors
  std::string message; // what is wrong and how to fix it

  // "file:line:col: key: message" (unknown parts left out).
  std::string format() const;
};

// A catalog file is invalid; carries every problem found, in file order. what() lists them.
class CatalogError : public ConfigurationError {
public:
  CatalogError(std::string file, std::vector<CatalogProblem> problems);
  const std::vector<CatalogProblem>& problems() const noexcept { return m_problems; }

private:
  std::vector<CatalogProblem> m_problems;
};

// The formats an entry may have.
inline constexpr std::string_view k_formats[] = {"gguf", "safetensors", "onnx"};
// The fixed overhead added to weights + KV cache in min_ram_bytes (runtime, buffers): 512 MiB.
inline constexpr std::uint64_t k_ram_overhead_bytes = 512ull * 1024 * 1024;

// Parses and validates catalog TOML (schema: docs/catalog.md). `origin` names the text in messages and
// becomes every entry's `origin`. Throws CatalogError listing every problem (syntax errors, unknown keys,
// wrong types, duplicate ids, no variant, more than one default, sizes of 0, unknown formats...).
Catalog parse_catalog(std::string_view text, std::string_view origin);
// Reads a catalog file. Throws ConfigurationError when it cannot be read, CatalogError when invalid.
Catalog load_catalog_file(const std::filesystem::path& path);

// The text of data/catalog.toml as compiled into the library.
std::string_view builtin_catalog_text();
// The parsed built-in catalog (origin "built-in").
Catalog builtin_catalog();

// Where the user catalog lives: $XDG_CONFIG_HOME/modelmgr/catalog.toml, else ~/.config/modelmgr/catalog.toml
// ("~" from HOME). The file may not exist.
std::filesystem::path user_catalog_path(const util::Env& env);

// Adds `overlay`'s entries to `base`: an entry whose id is already there replaces it in place, new ids are
// appended in their order.
void merge_catalog(Catalog& base, Catalog overlay);

// The catalog in effect: built-in < user catalog (if the file exists) < each of `project_catalogs` in order
// (each must exist). Throws ConfigurationError / CatalogError naming the file at fault.
Catalog load_catalog(const util::Env& env, const std::vector<std::filesystem::path>& project_catalogs = {});

// ---- Selecting -------------------------------------------------------------------------------------------

// The default variant of an entry: the one marked default, else the first.
const Variant& default_variant(const Entry& entry);
// Resolves "ID" or "ID:QUANT" (id exact, then case-insensitive; quantization case-insensitive). Throws
// ConfigurationError (usage) for an unknown id (naming the closest ids) or an unknown quantization (listing
// the entry's quantizations).
Selection resolve(const Catalog& catalog, std::string_view spec);
// Up to `max` ids that look like `id` (edit distance, substrings), closest first.
std::vector<std::string> close_ids(const Catalog& catalog, std::string_view id, std::size_t max = 3);
// "id" or "id:QUANT" for a selection (the quantization is left out when the entry has a single variant
// without one).
std::string spec_of(const Entry& entry, const Variant& variant);

// The include patterns that fetch a variant: its file, then the entry's extra files.
std::vector<std::string> variant_patterns(const Entry& entry, const Variant& variant);

// ---- Cache state (offline) -------------------------------------------------------------------------------

struct CacheState {
  bool complete = false;
  std::optional<std::string> commit; // what refs/<revision> (or a commit revision) points at
  std::filesystem::path snapshot;    // snapshots/<commit> when the commit is known
  std::vector<std::string> missing;  // files of the variant that are not in the snapshot
};

// Whether the variant is complete in the cache at `cache_root`, without network: the revision's ref gives
// the commit; the variant's file must be in that snapshot, and so must every extra file (matched against the
// snapshot's tree listing `trees/<commit>.json` when present, else exact extra paths only).
CacheState variant_cache_state(const Entry& entry, const Variant& variant,
                               const std::filesystem::path& cache_root, const util::Env& env);

// The revisions the catalog pins to a commit (`revision` = 40 hex), as prune pins that keep them from being
// deleted as detached (a download at a commit writes no ref); the repos stay evictable (keep_repo = false).
std::vector<cache::Pin> revision_pins(const Catalog& catalog);

// ---- Drift against the Hub -------------------------------------------------------------------------------

struct SizeCheck {
  std::string quantization;
  std::string path;
  std::uint64_t catalog_size = 0;
  std::optional<std::uint64_t> hub_size; // nullopt: the file is not in the Hub's listing
  bool drift() const { return !hub_size || *hub_size != catalog_size; }

  // For an entry pinned to a commit, when `main` has moved to a commit whose file is another blob (a
  // re-upload) or is gone: that commit and the file's size there (nullopt: not on main). Not a drift.
  struct Newer {
    std::string commit;
    std::optional<std::uint64_t> size;
  };
  std::optional<Newer> newer;
};

// Compares every variant's size_bytes with the size of its file in `hub_files` (a tree listing of the
// entry's repo at its revision).
std::vector<SizeCheck> compare_sizes(const Entry& entry, const std::vector<cache::TreeFile>& hub_files);

// Sets `newer` on each check whose file in `main_files` (the listing at `main_commit`) is not the same blob
// (LFS sha256 or git blob id) as in `pinned_files`, the listing at the entry's pinned commit.
void note_newer_uploads(std::vector<SizeCheck>& checks, const std::vector<cache::TreeFile>& pinned_files,
                        const std::string& main_commit, const std::vector<cache::TreeFile>& main_files);

} // namespace modelmgr::catalog
