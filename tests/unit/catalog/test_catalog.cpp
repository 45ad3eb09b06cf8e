// The model catalog: parsing, validation messages (file, line, key), merging, ID[:QUANT] resolution, the
// offline cache state of a variant, size drift, and the invariants of the built-in data/catalog.toml.

#include "cache/paths.hpp"
#include "cache/repo_cache.hpp"
#include "catalog/catalog.hpp"
#include "support/test_util.hpp"
#include "util/env.hpp"

#include <algorithm>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace modelmgr::catalog {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string k_small = R"(# a user catalog
[[model]]
id = "tiny-chat"
name = "Tiny Chat"
hf_repo = "test-org/Tiny-Chat-GGUF"
format = "gguf"
use_cases = ["chat"]
context_length = 2048
license = "mit"
description = "test"

[[model.variant]]
quantization = "Q4_K_M"
file = "tiny-chat.Q4_K_M.gguf"
size_bytes = 1000
min_ram_bytes = 2000

[[model.variant]]
quantization = "Q8_0"
file = "tiny-chat.Q8_0.gguf"
size_bytes = 3000
min_ram_bytes = 4000
default = true

[[model]]
id = "tiny-embed"
hf_repo = "test-org/tiny-embed"
format = "safetensors"
use_cases = ["embedding"]
files = ["config.json", "tokenizer.json"]

[[model.variant]]
file = "model.safetensors"
size_bytes = 10
min_ram_bytes = 20
)";

// Parses `text` expecting failure; returns the problems.
std::vector<CatalogProblem> problems_of(const std::string& text)
{
  try {
    parse_catalog(text, "user.toml");
  } catch (const CatalogError& e) {
    return e.problems();
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return {};
}

std::string entry_with(const std::string& model_extra, const std::string& variant_extra = "")
{
  return "[[model]]\nid = \"m\"\nhf_repo = \"org/m\"\nformat = \"gguf\"\n" + model_extra +
         "\n[[model.variant]]\nquantization = \"Q4_K_M\"\nfile = \"m.gguf\"\nsize_bytes = 1\nmin_ram_bytes = "
         "2\n" +
         variant_extra;
}

TEST(CatalogParse, ReadsEveryKeyAndDefaults)
{
  const Catalog c = parse_catalog(k_small, "user.toml");
  ASSERT_EQ(c.entries.size(), 2u);
  const Entry& chat = c.entries[0];
  EXPECT_EQ(chat.id, "tiny-chat");
  EXPECT_EQ(chat.name, "Tiny Chat");
  EXPECT_EQ(chat.hf_repo, "test-org/Tiny-Chat-GGUF");
  EXPECT_EQ(chat.revision, "main");
  EXPECT_EQ(chat.format, "gguf");
  EXPECT_THAT(chat.use_cases, ElementsAre("chat"));
  EXPECT_EQ(chat.context_length, 2048u);
  EXPECT_EQ(chat.license, "mit");
  EXPECT_EQ(chat.origin, "user.toml");
  EXPECT_EQ(chat.line, 2);
  ASSERT_EQ(chat.variants.size(), 2u);
  EXPECT_FALSE(chat.variants[0].is_default);
  EXPECT_TRUE(chat.variants[1].is_default);
  EXPECT_EQ(chat.variants[1].size_bytes, 3000u);
  EXPECT_EQ(chat.variants[1].min_ram_bytes, 4000u);
  EXPECT_EQ(&default_variant(chat), &chat.variants[1]);

  const Entry& embed = c.entries[1];
  EXPECT_EQ(embed.name, "tiny-embed"); // defaults to the id
  EXPECT_THAT(embed.files, ElementsAre("config.json", "tokenizer.json"));
  ASSERT_EQ(embed.variants.size(), 1u);
  EXPECT_TRUE(embed.variants[0].is_default); // the only (first) variant
  EXPECT_EQ(embed.variants[0].quantization, "");
  EXPECT_THAT(variant_patterns(embed, embed.variants[0]),
              ElementsAre("model.safetensors", "config.json", "tokenizer.json"));
}

TEST(CatalogParse, SizeExactDefaultsToTrueAndMustBeABoolean)
{
  const std::string base = "[[model]]\nid = \"m\"\nname = \"M\"\nhf_repo = \"o/m\"\nformat = \"gguf\"\n"
                           "use_cases = [\"chat\"]\ndescription = \"d\"\n[[model.variant]]\nquantization = "
                           "\"Q4_K_M\"\nfile = \"m.Q4_K_M.gguf\"\nsize_bytes = 10\nmin_ram_bytes = 20\n";
  EXPECT_TRUE(parse_catalog(base, "t").entries.at(0).variants.at(0).size_exact);
  EXPECT_FALSE(parse_catalog(base + "size_exact = false\n", "t").entries.at(0).variants.at(0).size_exact);
  try {
    (void)parse_catalog(base + "size_exact = \"no\"\n", "t");
    FAIL() << "accepted a string";
  } catch (const CatalogError& e) {
    EXPECT_THAT(e.what(), HasSubstr("size_exact"));
  }
}

TEST(CatalogParse, EmptyTextIsAnEmptyCatalog)
{
  EXPECT_TRUE(parse_catalog("# nothing yet\n", "user.toml").entries.empty());
}

TEST(CatalogValidate, SyntaxErrorNamesFileAndLine)
{
  const auto p = problems_of("[[model]]\nid = \"x\"\nhf_repo = \n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].file, "user.toml");
  EXPECT_EQ(p[0].line, 3);
  EXPECT_THAT(p[0].message, HasSubstr("TOML syntax error"));
}

TEST(CatalogValidate, ProblemsCarryLineAndKey)
{
  // line 7: size_bytes = 0; line 11 of the second entry: an unknown format.
  const std::string text = R"([[model]]
id = "a"
hf_repo = "org/a"
format = "gguf"
[[model.variant]]
quantization = "Q4_K_M"
file = "a.gguf"
size_bytes = 0
min_ram_bytes = 5
[[model]]
id = "b"
hf_repo = "org/b"
format = "ggml"
[[model.variant]]
file = "b.bin"
size_bytes = 5
min_ram_bytes = 5
)";
  const auto p = problems_of(text);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].line, 8);
  EXPECT_EQ(p[0].key, "model[1].variant[1].size_bytes");
  EXPECT_THAT(p[0].message, HasSubstr("greater than 0"));
  EXPECT_EQ(p[1].line, 13);
  EXPECT_EQ(p[1].key, "model[2].format");
  EXPECT_THAT(p[1].message, HasSubstr("unknown format 'ggml'; use gguf, safetensors or onnx"));
  EXPECT_THAT(p[0].format(), HasSubstr("user.toml:8:"));
}

TEST(CatalogValidate, WhatListsEveryProblem)
{
  try {
    parse_catalog(entry_with("", "size_bytes_x = 1\n"), "cat.toml");
    FAIL();
  } catch (const CatalogError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("cat.toml: 1 problem in the model catalog:"));
    EXPECT_THAT(std::string(e.what()),
                HasSubstr("cat.toml:11:1: model[1].variant[1].size_bytes_x: unknown key; "
                          "did you mean 'size_bytes'?"));
    EXPECT_THAT(e.hint(), HasSubstr("docs/catalog.md"));
    EXPECT_EQ(e.kind(), ErrorKind::config);
  }
}

TEST(CatalogValidate, DuplicateIdNamesTheFirstLine)
{
  const auto p = problems_of(entry_with("") + entry_with(""));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].line, 12);
  EXPECT_THAT(p[0].message, HasSubstr("duplicate id 'm', already used by the entry at line 1"));
}

TEST(CatalogValidate, NoVariant)
{
  const auto p = problems_of("[[model]]\nid = \"m\"\nhf_repo = \"org/m\"\nformat = \"onnx\"\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].line, 1);
  EXPECT_THAT(p[0].message, HasSubstr("has no variant"));
}

TEST(CatalogValidate, TwoDefaults)
{
  const std::string text = entry_with("", "default = true\n") +
                           "[[model.variant]]\nquantization = \"Q8_0\"\nfile = \"m8.gguf\"\nsize_bytes = 1\n"
                           "min_ram_bytes = 2\ndefault = true\n";
  const auto p = problems_of(text);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].line, 17);
  EXPECT_THAT(p[0].message, HasSubstr("second variant is marked default"));
}

TEST(CatalogValidate, TypesIdsPathsAndMissingKeys)
{
  EXPECT_THAT(problems_of(entry_with("context_length = \"4k\""))[0].message, HasSubstr("must be an integer"));
  EXPECT_THAT(problems_of(entry_with("use_cases = \"chat\""))[0].message, HasSubstr("array of strings"));
  EXPECT_THAT(problems_of(entry_with("", "default = \"yes\"\n"))[0].message, HasSubstr("true or false"));
  EXPECT_THAT(problems_of(entry_with("files = [\"../x\"]"))[0].message, HasSubstr("'..'"));
  EXPECT_THAT(problems_of(entry_with("revision = \"\""))[0].key, "model[1].revision");
  const auto bad_id =
      problems_of("[[model]]\nid = \"a:b\"\nhf_repo = \"org/m\"\nformat = \"gguf\"\n"
                  "[[model.variant]]\nquantization = \"Q4_0\"\nfile = \"m.gguf\"\nsize_bytes = 1\n"
                  "min_ram_bytes = 2\n");
  EXPECT_THAT(bad_id[0].message, HasSubstr("invalid id 'a:b'"));
  const auto missing = problems_of("[[model]]\nid = \"m\"\nformat = \"gguf\"\n[[model.variant]]\n"
                                   "quantization = \"Q4_0\"\nfile = \"m.gguf\"\n");
  std::set<std::string> keys;
  for (const auto& p : missing) {
    keys.insert(p.key);
  }
  EXPECT_EQ(keys, (std::set<std::string>{"model[1].hf_repo", "model[1].variant[1].size_bytes",
                                         "model[1].variant[1].min_ram_bytes"}));
  EXPECT_THAT(problems_of("[model]\nid = \"m\"\n")[0].message, HasSubstr("[[model]]"));
  EXPECT_THAT(problems_of("title = \"x\"\n")[0].message, HasSubstr("unknown top-level key"));
  // A key given twice is a TOML syntax error.
  EXPECT_THAT(problems_of(entry_with("", "quantization = \"q4_k_m\"\n"))[0].message,
              HasSubstr("TOML syntax error"));
}

TEST(CatalogValidate, DuplicateQuantizationIsCaseInsensitive)
{
  const std::string text =
      entry_with("") + "[[model.variant]]\nquantization = \"q4_k_m\"\nfile = \"other.gguf\"\nsize_bytes = 1\n"
                       "min_ram_bytes = 2\n";
  EXPECT_THAT(problems_of(text)[0].message, HasSubstr("duplicate quantization 'q4_k_m'"));
}

TEST(CatalogMerge, SameIdReplacesInPlaceNewIdsAppend)
{
  Catalog base = parse_catalog(k_small, "built-in");
  Catalog user = parse_catalog(R"([[model]]
id = "tiny-chat"
hf_repo = "other/Tiny"
format = "gguf"
[[model.variant]]
quantization = "Q2_K"
file = "t.gguf"
size_bytes = 5
min_ram_bytes = 6
[[model]]
id = "new-one"
hf_repo = "org/new"
format = "onnx"
[[model.variant]]
file = "model.onnx"
size_bytes = 5
min_ram_bytes = 6
)",
                               "user.toml");
  merge_catalog(base, user);
  ASSERT_EQ(base.entries.size(), 3u);
  EXPECT_EQ(base.entries[0].id, "tiny-chat");
  EXPECT_EQ(base.entries[0].hf_repo, "other/Tiny");
  EXPECT_EQ(base.entries[0].origin, "user.toml");
  ASSERT_EQ(base.entries[0].variants.size(), 1u); // replaced whole, not merged variant by variant
  EXPECT_EQ(base.entries[1].id, "tiny-embed");
  EXPECT_EQ(base.entries[2].id, "new-one");
}

TEST(CatalogMerge, LoadCatalogLayersBuiltInUserAndProjectFiles)
{
  test::TempDir tmp;
  util::MapEnv env{{"XDG_CONFIG_HOME", (tmp.path() / "xdg").string()},
                   {"HOME", (tmp.path() / "home").string()}};
  EXPECT_EQ(user_catalog_path(env), tmp.path() / "xdg" / "modelmgr" / "catalog.toml");
  const std::size_t builtin = builtin_catalog().entries.size();
  EXPECT_EQ(load_catalog(env).entries.size(), builtin); // no user catalog yet

  test::write_file(tmp.path() / "xdg" / "modelmgr" / "catalog.toml", k_small);
  const Catalog with_user = load_catalog(env);
  ASSERT_EQ(with_user.entries.size(), builtin + 2);
  EXPECT_EQ(with_user.find("tiny-chat")->origin, (tmp.path() / "xdg" / "modelmgr" / "catalog.toml").string());

  // A project catalog overrides the user's entry with the same id.
  const fs::path project = tmp.path() / "project.toml";
  test::write_file(project, "[[model]]\nid = \"tiny-chat\"\nhf_repo = \"proj/x\"\nformat = \"gguf\"\n"
                            "[[model.variant]]\nquantization = \"Q4_0\"\nfile = \"x.gguf\"\nsize_bytes = 1\n"
                            "min_ram_bytes = 2\n");
  const Catalog layered = load_catalog(env, {project});
  EXPECT_EQ(layered.entries.size(), builtin + 2);
  EXPECT_EQ(layered.find("tiny-chat")->hf_repo, "proj/x");

  // Errors name the file at fault.
  test::write_file(project, "[[model]]\nid = 3\n");
  try {
    load_catalog(env, {project});
    FAIL();
  } catch (const CatalogError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr(project.string() + ":2:"));
  }
  EXPECT_THROW(load_catalog(env, {tmp.path() / "missing.toml"}), ConfigurationError);

  // Without XDG_CONFIG_HOME: ~/.config.
  util::MapEnv home_only{{"HOME", (tmp.path() / "home").string()}};
  EXPECT_EQ(user_catalog_path(home_only), tmp.path() / "home" / ".config" / "modelmgr" / "catalog.toml");
}

TEST(CatalogResolve, IdAndQuantization)
{
  const Catalog c = parse_catalog(k_small, "user.toml");
  auto s = resolve(c, "tiny-chat");
  EXPECT_EQ(s.entry->id, "tiny-chat");
  EXPECT_EQ(s.variant->quantization, "Q8_0"); // the default
  s = resolve(c, "tiny-chat:q4_k_m");
  EXPECT_EQ(s.variant->quantization, "Q4_K_M");
  s = resolve(c, "TINY-CHAT:Q4_K_M");
  EXPECT_EQ(s.entry->id, "tiny-chat");
  s = resolve(c, "tiny-embed");
  EXPECT_EQ(s.variant->file, "model.safetensors");
  EXPECT_EQ(spec_of(*s.entry, *s.variant), "tiny-embed");
  EXPECT_EQ(spec_of(c.entries[0], c.entries[0].variants[0]), "tiny-chat:Q4_K_M");
}

TEST(CatalogResolve, UnknownIdSuggestsCloseIds)
{
  const Catalog c = parse_catalog(k_small, "user.toml");
  try {
    resolve(c, "tiny-chta:Q4_K_M");
    FAIL();
  } catch (const ConfigurationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_THAT(std::string(e.what()), HasSubstr("unknown model 'tiny-chta'"));
    EXPECT_THAT(std::string(e.what()), HasSubstr("did you mean 'tiny-chat'"));
    EXPECT_THAT(e.hint(), HasSubstr("modelmgr models list"));
  }
  EXPECT_THAT(close_ids(c, "tiny"), ElementsAre("tiny-chat", "tiny-embed"));
  EXPECT_TRUE(close_ids(c, "completely-different-name").empty());
  const Catalog b = builtin_catalog();
  EXPECT_THAT(close_ids(b, "mistral"), ElementsAre("mistral-7b-instruct-v0.3"));
  EXPECT_THAT(close_ids(b, "llama-3-8b-instruct"), ::testing::Contains("llama-3.1-8b-instruct"));
}

TEST(CatalogResolve, UnknownQuantizationListsTheKnownOnes)
{
  const Catalog c = parse_catalog(k_small, "user.toml");
  try {
    resolve(c, "tiny-chat:Q5_K_M");
    FAIL();
  } catch (const ConfigurationError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_THAT(std::string(e.what()),
                HasSubstr("model 'tiny-chat' has no quantization 'Q5_K_M'; it has: Q4_K_M, Q8_0"));
  }
}

TEST(CatalogCache, CompleteOnlyWhenRefSnapshotAndFilesArePresent)
{
  test::TempDir tmp;
  util::MapEnv env;
  const Catalog c = parse_catalog(k_small, "user.toml");
  const Entry& embed = c.entries[1];
  const Variant& v = embed.variants[0];
  const fs::path root = tmp.path() / "hub";

  auto state = variant_cache_state(embed, v, root, env);
  EXPECT_FALSE(state.complete);
  EXPECT_FALSE(state.commit);

  cache::RepoCache rc(root, cache::RepoType::model, "test-org/tiny-embed", env);
  rc.ensure_layout();
  const std::string commit(40, 'a');
  rc.write_ref("main", commit);
  auto add = [&](const std::string& path, const std::string& etag) {
    test::write_file(rc.blob_path(etag), "x");
    rc.link_snapshot(commit, path, etag);
  };
  add("model.safetensors", std::string(64, 'b'));
  state = variant_cache_state(embed, v, root, env);
  EXPECT_FALSE(state.complete); // the extra files are missing
  EXPECT_EQ(state.commit, commit);
  EXPECT_THAT(state.missing, ElementsAre("config.json", "tokenizer.json"));

  add("config.json", std::string(40, 'c'));
  rc.mark_no_exist(commit, "tokenizer.json"); // known not to exist on the Hub
  state = variant_cache_state(embed, v, root, env);
  EXPECT_TRUE(state.complete);
  EXPECT_EQ(state.snapshot, rc.snapshot_dir(commit));

  // With a tree listing, globs among the extra files are expanded against it.
  Catalog globbed = parse_catalog(R"([[model]]
id = "g"
hf_repo = "test-org/tiny-embed"
format = "safetensors"
files = ["*.json"]
[[model.variant]]
file = "model.safetensors"
size_bytes = 1
min_ram_bytes = 1
)",
                                  "g.toml");
  rc.write_tree_cache(commit, {{"model.safetensors", 1, std::string(40, '1'), std::string(64, 'b'), 1, {}},
                               {"config.json", 1, std::string(40, 'c'), {}, {}, {}},
                               {"extra.json", 1, std::string(40, 'e'), {}, {}, {}}});
  state = variant_cache_state(globbed.entries[0], globbed.entries[0].variants[0], root, env);
  EXPECT_FALSE(state.complete);
  EXPECT_THAT(state.missing, ElementsAre("extra.json"));
}

TEST(CatalogDrift, ComparesEveryVariantFile)
{
  const Catalog c = parse_catalog(k_small, "user.toml");
  const std::vector<cache::TreeFile> hub{{"tiny-chat.Q4_K_M.gguf", 1000, "x", std::string(64, 'a'), 1000, {}},
                                         {"README.md", 10, "y", {}, {}, {}}};
  const auto checks = compare_sizes(c.entries[0], hub);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].quantization, "Q4_K_M");
  EXPECT_EQ(checks[0].hub_size, 1000u);
  EXPECT_FALSE(checks[0].drift());
  EXPECT_EQ(checks[1].path, "tiny-chat.Q8_0.gguf");
  EXPECT_FALSE(checks[1].hub_size);
  EXPECT_TRUE(checks[1].drift());
}

TEST(CatalogDrift, NotesANewerUploadOnMainPerFile)
{
  const Catalog c = parse_catalog(k_small, "user.toml");
  const std::vector<cache::TreeFile> pinned{
      {"tiny-chat.Q4_K_M.gguf", 1000, "x", std::string(64, 'a'), 1000, {}},
      {"tiny-chat.Q8_0.gguf", 2000, "z", std::string(64, 'c'), 2000, {}}};
  auto checks = compare_sizes(c.entries[0], pinned);
  const std::string main_commit(40, '9');
  // Q4_K_M re-uploaded (another LFS object, one byte longer); Q8_0 unchanged.
  note_newer_uploads(checks, pinned, main_commit,
                     {{"tiny-chat.Q4_K_M.gguf", 1001, "x2", std::string(64, 'b'), 1001, {}},
                      {"tiny-chat.Q8_0.gguf", 2000, "z", std::string(64, 'c'), 2000, {}}});
  ASSERT_EQ(checks.size(), 2u);
  ASSERT_TRUE(checks[0].newer);
  EXPECT_EQ(checks[0].newer->commit, main_commit);
  EXPECT_EQ(checks[0].newer->size, 1001u);
  EXPECT_FALSE(checks[0].drift()); // the pinned size still holds
  EXPECT_FALSE(checks[1].newer);
  // A file that main no longer has is noted with no size; one missing at the pinned commit is a drift only.
  checks = compare_sizes(c.entries[0], {pinned[0]});
  note_newer_uploads(checks, {pinned[0]}, main_commit, {});
  ASSERT_TRUE(checks[0].newer);
  EXPECT_FALSE(checks[0].newer->size);
  EXPECT_TRUE(checks[1].drift());
  EXPECT_FALSE(checks[1].newer);
}

TEST(CatalogPins, OneRevisionPinPerEntryPinnedToACommit)
{
  const Catalog c = builtin_catalog();
  const auto pins = revision_pins(c);
  EXPECT_EQ(pins.size(), c.entries.size()); // every built-in entry is pinned to a commit
  for (std::size_t i = 0; i < pins.size(); ++i) {
    EXPECT_EQ(pins[i].type, cache::RepoType::model);
    EXPECT_EQ(pins[i].repo_id, c.entries[i].hf_repo);
    EXPECT_EQ(pins[i].revision, c.entries[i].revision);
    EXPECT_FALSE(pins[i].keep_repo);
  }
  // An entry that follows a branch has a ref to keep it: no pin.
  EXPECT_TRUE(revision_pins(parse_catalog(k_small, "user.toml")).empty());
}

// ---- The built-in catalog -------------------------------------------------------------------------------

TEST(BuiltinCatalog, ParsesAndHoldsEverySeedEntry)
{
  const Catalog c = builtin_catalog();
  const std::set<std::string> seed = {"mistral-7b-instruct-v0.3",
                                      "llama-3.1-8b-instruct",
                                      "phi-3.5-mini-instruct",
                                      "gemma-2-2b-it",
                                      "qwen2.5-7b-instruct",
                                      "bge-m3",
                                      "bge-reranker-v2-m3",
                                      "all-minilm-l6-v2",
                                      "e5-small-v2",
                                      "bge-base-en-v1.5",
                                      "siglip-base-patch16-224"};
  std::set<std::string> ids;
  for (const auto& e : c.entries) {
    ids.insert(e.id);
  }
  for (const auto& id : seed) {
    EXPECT_TRUE(ids.count(id)) << id;
  }
  std::set<std::string> mistral;
  for (const auto& v : c.find("mistral-7b-instruct-v0.3")->variants) {
    mistral.insert(v.quantization);
  }
  EXPECT_EQ(mistral, (std::set<std::string>{"Q4_K_M", "Q5_K_M", "Q8_0"}));
  EXPECT_EQ(c.find("llama-3.1-8b-instruct")->variants.size(), 2u);
}

TEST(BuiltinCatalog, Invariants)
{
  const Catalog c = builtin_catalog();
  for (const auto& e : c.entries) {
    SCOPED_TRACE(e.id);
    EXPECT_EQ(e.origin, "built-in");
    EXPECT_FALSE(e.use_cases.empty());
    EXPECT_FALSE(e.description.empty());
    EXPECT_FALSE(e.license.empty());
    EXPECT_GT(e.context_length, 0u);
    // An exact size is the size at a commit: an entry with one is pinned to that commit, not to a branch
    // that moves when the publisher re-uploads.
    const bool all_exact =
        std::all_of(e.variants.begin(), e.variants.end(), [](const Variant& v) { return v.size_exact; });
    EXPECT_EQ(cache::is_commit_hash(e.revision), all_exact) << e.revision;
    int defaults = 0;
    for (const auto& v : e.variants) {
      SCOPED_TRACE(v.file);
      EXPECT_GT(v.size_bytes, 0u);
      EXPECT_GE(v.min_ram_bytes, v.size_bytes + k_ram_overhead_bytes);
      defaults += v.is_default ? 1 : 0;
      if (e.format == "gguf") {
        EXPECT_TRUE(v.file.ends_with(".gguf"));
        EXPECT_THAT(v.file, HasSubstr(v.quantization));
      }
    }
    EXPECT_EQ(defaults, 1);
  }
  // Every size either is exact or says it is not: an approximate size is marked both ways in the data file.
  const std::string text(builtin_catalog_text());
  std::size_t marked = 0;
  for (const auto& e : c.entries) {
    for (const auto& v : e.variants) {
      marked += v.size_exact ? 0 : 1;
    }
  }
  std::size_t comments = 0;
  for (auto at = text.find("\n# size: approximate"); at != std::string::npos;
       at = text.find("\n# size: approximate", at + 1)) {
    ++comments;
  }
  EXPECT_EQ(marked, comments);
  // The compiled-in text is the data file of the source tree.
  EXPECT_EQ(std::string(builtin_catalog_text()),
            test::read_file(fs::path(MODELMGR_SOURCE_DIR) / "data/catalog.toml"));
}

} // namespace
} // namespace modelmgr::catalog
