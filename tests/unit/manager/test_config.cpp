// Model-set configuration: parsing both formats, every class of invalid input with exact positions,
// discovery (including CI_MINIMAL_MODELS) and model selection.

#include "modelmgr/config.hpp"
#include "modelmgr/errors.hpp"

#include "manager/config.hpp"
#include "support/test_util.hpp"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace fs = std::filesystem;
using modelmgr::ConfigProblem;
using modelmgr::ConfigurationError;
using modelmgr::InvalidConfigError;
using modelmgr::ModelSetConfig;
using modelmgr::ModelSpec;
using modelmgr::VerifyLevel;
using modelmgr::manager::Format;
using testing::HasSubstr;

namespace {

using modelmgr::test::TempDir;

// Writes `text` below the temp dir, creating parent folders.
fs::path write(const TempDir& dir, const std::string& relative, std::string_view text)
{
  const fs::path p = dir / relative;
  modelmgr::test::write_file(p, std::string(text));
  return p;
}

// Raw strings below start with a newline so that the text lines up with its line numbers: drop it.
std::string text(std::string_view raw)
{
  if (!raw.empty() && raw.front() == '\n') {
    raw.remove_prefix(1);
  }
  return std::string(raw);
}

const char* name_for(Format format)
{
  return format == Format::yaml ? "models.yaml" : "models.toml";
}

std::vector<ConfigProblem> problems_of(std::string_view raw, Format format)
{
  try {
    modelmgr::manager::parse_config(text(raw), format, name_for(format));
  } catch (const InvalidConfigError& e) {
    EXPECT_EQ(e.kind(), modelmgr::ErrorKind::config);
    return e.problems();
  }
  ADD_FAILURE() << "expected InvalidConfigError for:\n" << raw;
  return {};
}

// The one problem expected, as "file:line:col: where: message".
std::string single_problem(std::string_view raw, Format format)
{
  const auto problems = problems_of(raw, format);
  if (problems.size() != 1) {
    std::string all;
    for (const auto& p : problems) {
      all += p.format() + "\n";
    }
    ADD_FAILURE() << "expected exactly one problem, got " << problems.size() << ":\n" << all;
    return {};
  }
  return problems.front().format();
}

// source_line differs between the formats by nature; everything else must match.
std::vector<ModelSpec> without_lines(std::vector<ModelSpec> models)
{
  for (auto& m : models) {
    m.source_line = 0;
  }
  return models;
}

const std::string k_hash_a(64, 'a');
const std::string k_hash_b_lower = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

constexpr const char* k_full_yaml = R"(
cache_dir: ~/models/$PROJECT
verify: sha256
manifest: out/manifest.json
models:
  - id: bge-m3
    repo_id: BAAI/bge-m3
    revision: v1.0
    files: ["*.json", "pytorch_model.bin", "tokenizer/"]
    exclude:
      - "*.onnx"
    local_dir: ./models/bge-m3
    sha256:
      pytorch_model.bin: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
      config.json: 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789ABCDEF
    description: "Dense: multilingual"
  - id: squad
    repo_id: rajpurkar/squad
    repo_type: dataset
  - id: gpt2
    repo_id: gpt2
)";

constexpr const char* k_full_toml = R"(
cache_dir = "~/models/$PROJECT"
verify = "sha256"
manifest = "out/manifest.json"

[[models]]
id = "bge-m3"
repo_id = "BAAI/bge-m3"
revision = "v1.0"
files = ["*.json", "pytorch_model.bin", "tokenizer/"]
exclude = ["*.onnx"]
local_dir = "./models/bge-m3"
description = "Dense: multilingual"

[models.sha256]
"pytorch_model.bin" = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
"config.json" = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789ABCDEF"

[[models]]
id = "squad"
repo_id = "rajpurkar/squad"
repo_type = "dataset"

[[models]]
id = "gpt2"
repo_id = "gpt2"
)";

} // namespace

// ---------------------------------------------------------------------------------------------------------
// Valid input

TEST(ConfigParse, YamlGivesEveryField)
{
  const ModelSetConfig c = modelmgr::manager::parse_config(text(k_full_yaml), Format::yaml, "models.yaml");
  EXPECT_EQ(c.path, fs::path("models.yaml"));
  ASSERT_TRUE(c.cache_dir);
  EXPECT_EQ(*c.cache_dir, "~/models/$PROJECT"); // raw: expansion is the caller's job
  EXPECT_EQ(c.verify, VerifyLevel::sha256);
  EXPECT_EQ(c.manifest, "out/manifest.json");
  ASSERT_EQ(c.models.size(), 3u);

  const ModelSpec& m = c.models[0];
  EXPECT_EQ(m.id, "bge-m3");
  EXPECT_EQ(m.repo_id, "BAAI/bge-m3");
  EXPECT_EQ(m.repo_type, "model");
  EXPECT_EQ(m.revision, "v1.0");
  EXPECT_EQ(m.files, (std::vector<std::string>{"*.json", "pytorch_model.bin", "tokenizer/"}));
  EXPECT_EQ(m.exclude, (std::vector<std::string>{"*.onnx"}));
  EXPECT_EQ(m.local_dir, std::optional<std::string>("./models/bge-m3"));
  // Hashes are normalised to lower case.
  EXPECT_EQ(m.sha256, (std::map<std::string, std::string>{{"pytorch_model.bin", k_hash_a},
                                                          {"config.json", k_hash_b_lower}}));
  EXPECT_EQ(m.description, "Dense: multilingual");
  EXPECT_EQ(m.source_line, 5);

  EXPECT_EQ(c.models[1].repo_type, "dataset");
  EXPECT_EQ(c.models[1].source_line, 16);
  // Defaults.
  EXPECT_EQ(c.models[2].repo_type, "model");
  EXPECT_EQ(c.models[2].revision, "main");
  EXPECT_TRUE(c.models[2].files.empty());
  EXPECT_FALSE(c.models[2].local_dir);
  EXPECT_TRUE(c.models[2].sha256.empty());
  EXPECT_EQ(c.models[2].source_line, 19);
}

TEST(ConfigParse, TomlAndYamlGiveIdenticalResults)
{
  const ModelSetConfig y = modelmgr::manager::parse_config(text(k_full_yaml), Format::yaml, "same");
  const ModelSetConfig t = modelmgr::manager::parse_config(text(k_full_toml), Format::toml, "same");
  EXPECT_EQ(y.path, t.path);
  EXPECT_EQ(y.cache_dir, t.cache_dir);
  EXPECT_EQ(y.verify, t.verify);
  EXPECT_EQ(y.manifest, t.manifest);
  EXPECT_EQ(without_lines(y.models), without_lines(t.models));
  // In TOML the line is the [[models]] header.
  ASSERT_EQ(t.models.size(), 3u);
  EXPECT_EQ(t.models[0].source_line, 5);
  EXPECT_EQ(t.models[1].source_line, 18);
  EXPECT_EQ(t.models[2].source_line, 23);
}

TEST(ConfigParse, DefaultsForOptionalTopLevelKeys)
{
  for (auto [format, raw] : {std::pair{Format::yaml, "models:\n  - {id: a, repo_id: org/a}\n"},
                             std::pair{Format::toml, "[[models]]\nid = \"a\"\nrepo_id = \"org/a\"\n"}}) {
    const ModelSetConfig c = modelmgr::manager::parse_config(raw, format, name_for(format));
    EXPECT_FALSE(c.cache_dir);
    EXPECT_EQ(c.verify, VerifyLevel::size);
    EXPECT_EQ(c.manifest, "model_manifest.json");
    ASSERT_EQ(c.models.size(), 1u);
    EXPECT_EQ(c.models[0].repo_type, "model");
    EXPECT_EQ(c.models[0].revision, "main");
  }
}

TEST(ConfigParse, TomlInlineArrayOfModels)
{
  const ModelSetConfig c = modelmgr::manager::parse_config(
      "models = [ { id = \"a\", repo_id = \"org/a\" }, { id = \"b\", repo_id = \"b\" } ]\n", Format::toml,
      "m.toml");
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[1].repo_id, "b");
}

TEST(ConfigParse, FindById)
{
  const ModelSetConfig c = modelmgr::manager::parse_config(text(k_full_yaml), Format::yaml, "models.yaml");
  ASSERT_NE(c.find("squad"), nullptr);
  EXPECT_EQ(c.find("squad")->repo_id, "rajpurkar/squad");
  EXPECT_EQ(c.find("nope"), nullptr);
}

TEST(ConfigParse, VerifyLevelNames)
{
  for (auto level : {VerifyLevel::none, VerifyLevel::size, VerifyLevel::sha256, VerifyLevel::load}) {
    EXPECT_EQ(modelmgr::parse_verify_level(modelmgr::to_string(level)), level);
  }
  EXPECT_EQ(modelmgr::parse_verify_level("SIZE"), std::nullopt);
}

// ---------------------------------------------------------------------------------------------------------
// Invalid input: each class, in both formats, at the exact position.

TEST(ConfigErrors, UnknownKeySuggestsTheClosest)
{
  EXPECT_EQ(single_problem(R"(
models:
  - id: a
    repo_id: org/a
    revison: v1
)",
                           Format::yaml),
            "models.yaml:4:5: models[0].revison: unknown key; did you mean 'revision'?");
  EXPECT_EQ(single_problem(R"(
[[models]]
id = "a"
repo_id = "org/a"
revison = "v1"
)",
                           Format::toml),
            "models.toml:4:1: models[0].revison: unknown key; did you mean 'revision'?");
}

TEST(ConfigErrors, UnknownKeyWithoutCloseMatchListsTheKnownOnes)
{
  EXPECT_EQ(single_problem(R"(
models:
  - {id: a, repo_id: org/a}
gateway:
  port: 80
)",
                           Format::yaml),
            "models.yaml:3:1: gateway: unknown key; expected one of: cache_dir, verify, manifest, models, model, "
            "server, catalog");
  EXPECT_EQ(single_problem(R"(
[gateway]
port = 80

[[models]]
id = "a"
repo_id = "org/a"
)",
                           Format::toml),
            "models.toml:1:2: gateway: unknown key; expected one of: cache_dir, verify, manifest, models, model, "
            "server, catalog");
}

TEST(ConfigErrors, DuplicateIdNamesBothLines)
{
  EXPECT_EQ(
      single_problem(R"(
models:
  - id: a
    repo_id: org/a
  - id: b
    repo_id: org/b
  - id: a
    repo_id: org/c
)",
                     Format::yaml),
      "models.yaml:6:9: models[2].id: duplicate id 'a', already used by models[0] at line 2; give each model "
      "its own id");
  EXPECT_EQ(single_problem(R"(
[[models]]
id = "a"
repo_id = "org/a"

[[models]]
id = "b"
repo_id = "org/b"

[[models]]
id = "a"
repo_id = "org/c"
)",
                           Format::toml),
            "models.toml:10:6: models[2].id: duplicate id 'a', already used by models[0] at line 2; give "
            "each model "
            "its own id");
}

TEST(ConfigErrors, DuplicateYamlKey)
{
  EXPECT_EQ(single_problem(R"(
models:
  - id: a
    repo_id: org/a
    repo_id: org/b
)",
                           Format::yaml),
            "models.yaml:4:5: models[0].repo_id: duplicate key, first set at line 3; remove one of them");
  // TOML forbids it in the grammar: the parser reports it.
  const std::string toml =
      single_problem("[[models]]\nid = \"a\"\nrepo_id = \"org/a\"\nrepo_id = \"org/b\"\n", Format::toml);
  EXPECT_THAT(toml, testing::StartsWith("models.toml:4:"));
  EXPECT_THAT(toml, HasSubstr("TOML syntax error"));
}

TEST(ConfigErrors, BadRepoIdSaysWhy)
{
  EXPECT_EQ(single_problem(R"(
models:
  - id: a
    repo_id: BAAI//bge-m3
)",
                           Format::yaml),
            "models.yaml:3:14: models[0].repo_id: invalid repo id 'BAAI//bge-m3': it has more than one '/'; "
            "expected 'name' or 'namespace/name'");
  EXPECT_EQ(single_problem(R"(
[[models]]
id = "a"
repo_id = "BAAI/-bge"
)",
                           Format::toml),
            "models.toml:3:11: models[0].repo_id: invalid repo id 'BAAI/-bge': '-bge' starts or ends with "
            "'-'; names "
            "cannot start or end with '-' or '.'");
}

TEST(ConfigErrors, RepoIdRules)
{
  using modelmgr::manager::repo_id_problem;
  EXPECT_EQ(repo_id_problem("gpt2"), std::nullopt);
  EXPECT_EQ(repo_id_problem("BAAI/bge-m3"), std::nullopt);
  EXPECT_EQ(repo_id_problem("google/siglip-base-patch16-224"), std::nullopt);
  EXPECT_EQ(repo_id_problem("a_b/c.d-e"), std::nullopt);
  EXPECT_EQ(repo_id_problem("org/" + std::string(96, 'x')), std::nullopt);

  EXPECT_THAT(repo_id_problem("").value_or(""), HasSubstr("empty"));
  EXPECT_THAT(repo_id_problem("a/b/c").value_or(""), HasSubstr("more than one '/'"));
  EXPECT_THAT(repo_id_problem("/b").value_or(""), HasSubstr("namespace before '/' is empty"));
  EXPECT_THAT(repo_id_problem("a/").value_or(""), HasSubstr("name after '/' is empty"));
  EXPECT_THAT(repo_id_problem("org/my model").value_or(""), HasSubstr("contains a space"));
  EXPECT_THAT(repo_id_problem("org/m@del").value_or(""), HasSubstr("contains '@'"));
  EXPECT_THAT(repo_id_problem("org/a--b").value_or(""), HasSubstr("contains '--'"));
  EXPECT_THAT(repo_id_problem("org/a..b").value_or(""), HasSubstr("contains '..'"));
  EXPECT_THAT(repo_id_problem(".org/a").value_or(""), HasSubstr("'.org' starts or ends with '.'"));
  EXPECT_THAT(repo_id_problem("org/a-").value_or(""), HasSubstr("'a-' starts or ends with '-'"));
  EXPECT_THAT(repo_id_problem("org/" + std::string(97, 'x')).value_or(""), HasSubstr("97 characters"));
  EXPECT_THAT(repo_id_problem("org/model.git").value_or(""), HasSubstr("'.git'"));
  EXPECT_THAT(repo_id_problem("https://huggingface.co/BAAI/bge-m3").value_or(""), HasSubstr("URL"));
}

TEST(ConfigErrors, WrongTypes)
{
  EXPECT_EQ(single_problem(R"(
models:
  - id: a
    repo_id: org/a
    files: model.safetensors
)",
                           Format::yaml),
            "models.yaml:4:12: models[0].files: expected a list of file names or globs, got a string; write "
            "[\"model.safetensors\"] or a '- ' list");
  EXPECT_EQ(single_problem(R"(
[[models]]
id = "a"
repo_id = "org/a"
files = "model.safetensors"
)",
                           Format::toml),
            "models.toml:4:9: models[0].files: expected a list of file names or globs, got a string; write "
            "[\"model.safetensors\"]");
  EXPECT_EQ(single_problem(R"(
models:
  - id: a
    repo_id: org/a
    revision: [main]
)",
                           Format::yaml),
            "models.yaml:4:15: models[0].revision: expected a string, got a list");
  EXPECT_EQ(
      single_problem(R"(
[[models]]
id = "a"
repo_id = "org/a"
revision = 3
)",
                     Format::toml),
      "models.toml:4:12: models[0].revision: expected a string, got an integer; put the value in double "
      "quotes");
  EXPECT_EQ(single_problem("models:\n  - id: a\n    repo_id: org/a\n    local_dir:\n", Format::yaml),
            "models.yaml:4:5: models[0].local_dir: expected a string, got nothing (null); give a value or "
            "remove the key");
  EXPECT_EQ(single_problem("models:\n  - just-a-string\n", Format::yaml),
            "models.yaml:2:5: models[0]: expected a model (a map with 'id' and 'repo_id'), got a string");
  EXPECT_EQ(single_problem("[models]\nid = \"a\"\n", Format::toml),
            "models.toml:1:1: models: expected a list of models, got a map; write each model as a [[models]] "
            "table");
}

TEST(ConfigErrors, BadVerifyLevel)
{
  const std::string expected =
      "unknown verify level 'sha265'; did you mean 'sha256'? expected one of: none, size, "
      "sha256, load";
  EXPECT_EQ(single_problem("verify: sha265\nmodels:\n  - {id: a, repo_id: org/a}\n", Format::yaml),
            "models.yaml:1:9: verify: " + expected);
  EXPECT_EQ(
      single_problem("verify = \"sha265\"\n[[models]]\nid = \"a\"\nrepo_id = \"org/a\"\n", Format::toml),
      "models.toml:1:10: verify: " + expected);
}

TEST(ConfigErrors, EmptyOrMissingModels)
{
  EXPECT_THAT(single_problem("verify: size\nmodels: []\n", Format::yaml),
              testing::StartsWith("models.yaml:2:9: models: no models listed; add at least one entry"));
  EXPECT_THAT(single_problem("verify = \"size\"\nmodels = []\n", Format::toml),
              testing::StartsWith("models.toml:2:10: models: no models listed; add at least one entry"));
  EXPECT_THAT(single_problem("verify: size\n", Format::yaml),
              testing::StartsWith("models.yaml:1:1: models: missing required key; list the models to sync"));
  EXPECT_THAT(single_problem("verify = \"size\"\n", Format::toml),
              testing::StartsWith("models.toml:1:1: models: missing required key; list the models to sync"));
  EXPECT_THAT(single_problem("# nothing yet\n", Format::yaml),
              testing::StartsWith("models.yaml:1:1: the file is empty"));
}

TEST(ConfigErrors, MissingRequiredModelKeys)
{
  EXPECT_EQ(
      single_problem("models:\n  - id: a\n    revision: main\n", Format::yaml),
      "models.yaml:2:5: models[0]: missing required key 'repo_id'; add the Hub repository, e.g. repo_id: "
      "BAAI/bge-m3");
  EXPECT_EQ(
      single_problem("[[models]]\nrepo_id = \"org/a\"\n", Format::toml),
      "models.toml:1:1: models[0]: missing required key 'id'; add a short unique name, e.g. id = \"bge-m3\"");
}

TEST(ConfigErrors, BadIdAndRepoType)
{
  EXPECT_EQ(
      single_problem("models:\n  - id: bge m3\n    repo_id: org/a\n", Format::yaml),
      "models.yaml:2:9: models[0].id: 'bge m3' contains a space; ids may use only letters, digits, '.', '_' "
      "and '-'");
  EXPECT_EQ(
      single_problem("[[models]]\nid = \"a\"\nrepo_id = \"org/a\"\nrepo_type = \"datasets\"\n", Format::toml),
      "models.toml:4:13: models[0].repo_type: unknown repo type 'datasets'; did you mean 'dataset'? expected "
      "one of: model, dataset, space");
}

TEST(ConfigErrors, BadSha256)
{
  EXPECT_EQ(
      single_problem(R"(
models:
  - id: a
    repo_id: org/a
    sha256:
      model.safetensors: abc123
)",
                     Format::yaml),
      "models.yaml:5:26: models[0].sha256[\"model.safetensors\"]: 'abc123' is 6 characters long; a sha256 is "
      "exactly 64 hex digits");
  const std::string not_hex = std::string(63, 'a') + "g";
  EXPECT_EQ(single_problem(R"(
[[models]]
id = "a"
repo_id = "org/a"
[models.sha256]
"model.safetensors" = ")" + not_hex +
                               "\"\n",
                           Format::toml),
            "models.toml:5:23: models[0].sha256[\"model.safetensors\"]: '" + not_hex +
                "' contains 'g'; a sha256 is exactly 64 hex digits (0-9, a-f)");
  EXPECT_EQ(
      single_problem("models:\n  - id: a\n    repo_id: org/a\n    sha256: [x]\n", Format::yaml),
      "models.yaml:4:13: models[0].sha256: expected a map of file name to sha256, got a list; e.g. sha256: "
      "{ model.safetensors: <64 hex digits> }");
}

TEST(ConfigErrors, PinsMustBeDownloaded)
{
  const std::string yaml = "models:\n  - id: a\n    repo_id: org/a\n    files: [\"*.json\"]\n    exclude: "
                           "[\"big.json\"]\n    sha256:\n      model.bin: " +
                           k_hash_a + "\n      big.json: " + k_hash_a + "\n      small.json: " + k_hash_a +
                           "\n";
  const auto problems = problems_of(yaml, Format::yaml);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].format(),
            "models.yaml:7:7: models[0].sha256[\"model.bin\"]: pinned file is not selected by "
            "'files'; add it to 'files' or remove the pin");
  EXPECT_EQ(problems[1].format(),
            "models.yaml:8:7: models[0].sha256[\"big.json\"]: pinned file is excluded by "
            "'big.json'; narrow 'exclude' or remove the pin");
}

TEST(ConfigErrors, BadPaths)
{
  EXPECT_EQ(
      single_problem("[[models]]\nid = \"a\"\nrepo_id = \"org/a\"\nfiles = []\n", Format::toml),
      "models.toml:4:9: models[0].files: empty list selects nothing; list file names or globs, or remove the "
      "key for the whole repository");
  const auto problems = problems_of(
      "models:\n  - id: a\n    repo_id: org/a\n    files: [\"/etc/passwd\", \"../x\", \"\"]\n", Format::yaml);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_THAT(problems[0].format(), HasSubstr("files[0]: '/etc/passwd' is absolute"));
  EXPECT_THAT(problems[1].format(), HasSubstr("files[1]: '../x' contains '..'"));
  EXPECT_THAT(problems[2].format(), HasSubstr("files[2]: empty file name or pattern"));
}

TEST(ConfigErrors, MalformedYamlGivesTheParserMessageAndLine)
{
  const std::string problem = single_problem(R"(
models:
  - id: a
    files: [a, b
    revision: main
)",
                                             Format::yaml);
  // yaml-cpp notices the unclosed '[' where the flow should have ended.
  EXPECT_THAT(problem, testing::MatchesRegex(
                           "models\\.yaml:4:13: YAML syntax error: end of sequence flow not found; .+"));
  const std::string indent = single_problem("models:\n  - id: a\n   repo_id: org/a\n", Format::yaml);
  EXPECT_THAT(indent, testing::MatchesRegex("models\\.yaml:3:4: YAML syntax error: .+"));
}

TEST(ConfigErrors, MalformedTomlGivesTheParserMessageAndLine)
{
  const std::string problem = single_problem(R"(
verify = "size"

[[models]]
id = "a
repo_id = "org/a"
)",
                                             Format::toml);
  EXPECT_THAT(problem, testing::MatchesRegex("models\\.toml:4:8: TOML syntax error: .+"));
}

TEST(ConfigErrors, AllProblemsReportedTogetherInFileOrder)
{
  const char* yaml = R"(
verify: fast
models:
  - id: a
    repo_id: org//a
    revison: v1
  - id: a
    repo_id: org/b
)";
  const char* toml = R"(
verify = "fast"

[[models]]
id = "a"
repo_id = "org//a"
revison = "v1"

[[models]]
id = "a"
repo_id = "org/b"
)";
  const std::string verify = "verify: unknown verify level 'fast'; expected one of: none, size, sha256, load";
  const std::string repo =
      "models[0].repo_id: invalid repo id 'org//a': it has more than one '/'; expected 'name' "
      "or 'namespace/name'";
  const std::string key = "models[0].revison: unknown key; did you mean 'revision'?";
  const std::string dup =
      "models[1].id: duplicate id 'a', already used by models[0] at line 3; give each model its "
      "own id";

  try {
    modelmgr::manager::parse_config(text(yaml), Format::yaml, "models.yaml");
    FAIL() << "no error";
  } catch (const InvalidConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "models.yaml: 4 problems in the model set configuration:\n"
                                     "models.yaml:1:9: " +
                                         verify + "\n" + "models.yaml:4:14: " + repo + "\n" +
                                         "models.yaml:5:5: " + key + "\n" + "models.yaml:6:9: " + dup);
    EXPECT_THAT(e.hint(), HasSubstr("docs/config.md"));
  }

  // The TOML twin; and the error is a ConfigurationError for callers that do not care about the details.
  try {
    modelmgr::manager::parse_config(text(toml), Format::toml, "models.toml");
    FAIL() << "no error";
  } catch (const ConfigurationError& e) {
    const std::string dup_toml =
        "models[1].id: duplicate id 'a', already used by models[0] at line 4; give each "
        "model its own id";
    EXPECT_EQ(std::string(e.what()), "models.toml: 4 problems in the model set configuration:\n"
                                     "models.toml:1:10: " +
                                         verify + "\n" + "models.toml:5:11: " + repo + "\n" +
                                         "models.toml:6:1: " + key + "\n" + "models.toml:9:6: " + dup_toml);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Files

TEST(ConfigLoad, FormatFromExtensionOrContent)
{
  TempDir dir;
  const auto yaml = write(dir, "a.yml", text(k_full_yaml));
  const auto toml = write(dir, "b.toml", text(k_full_toml));
  const auto sniffed_toml = write(dir, "c.conf", text(k_full_toml));
  const auto sniffed_yaml = write(dir, "d", text(k_full_yaml));
  const ModelSetConfig a = modelmgr::manager::load_config(yaml);
  EXPECT_EQ(a.path, yaml);
  EXPECT_EQ(without_lines(a.models), without_lines(modelmgr::manager::load_config(toml).models));
  EXPECT_EQ(without_lines(a.models), without_lines(modelmgr::manager::load_config(sniffed_toml).models));
  EXPECT_EQ(without_lines(a.models), without_lines(modelmgr::manager::load_config(sniffed_yaml).models));

  using modelmgr::manager::detect_format;
  EXPECT_EQ(detect_format("x.YAML", ""), Format::yaml);
  EXPECT_EQ(detect_format("x", "# c\n\n[[models]]\n"), Format::toml);
  EXPECT_EQ(detect_format("x", "verify = \"size\" # a: b\n"), Format::toml);
  EXPECT_EQ(detect_format("x", "---\nmodels: []\n"), Format::yaml);
  EXPECT_EQ(detect_format("x", "verify: size # a = b\n"), Format::yaml);
}

TEST(ConfigLoad, MessagesUseThePathGiven)
{
  TempDir dir;
  const auto p = write(dir, "models.yaml", "models:\n  - id: a\n    repo_id: org/a\n    revison: v1\n");
  try {
    modelmgr::manager::load_config(p);
    FAIL() << "no error";
  } catch (const InvalidConfigError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0].format(),
              p.string() + ":4:5: models[0].revison: unknown key; did you mean 'revision'?");
  }
}

TEST(ConfigLoad, MissingFileIsAConfigurationError)
{
  TempDir dir;
  try {
    modelmgr::manager::load_config(dir.path() / "nope.yaml");
    FAIL() << "no error";
  } catch (const ConfigurationError& e) {
    EXPECT_THAT(e.what(), HasSubstr("nope.yaml"));
    EXPECT_THAT(e.what(), HasSubstr("No such file"));
  }
  EXPECT_THROW(modelmgr::manager::load_config(dir.path()), ConfigurationError);
}

TEST(ConfigLoad, ShippedSamplesAreValidAndAgree)
{
#ifndef MODELMGR_SOURCE_DIR
  GTEST_SKIP() << "MODELMGR_SOURCE_DIR not defined";
#else
  const fs::path root = MODELMGR_SOURCE_DIR;
  const ModelSetConfig full = modelmgr::manager::load_config(root / "config/model_manager/models.yaml");
  const ModelSetConfig minimal =
      modelmgr::manager::load_config(root / "config/model_manager/models.minimal.yaml");
  const ModelSetConfig toml = modelmgr::manager::load_config(root / "examples/modelmgr.toml");

  std::vector<std::string> ids;
  for (const auto& m : full.models) {
    ids.push_back(m.id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"bge-m3", "bge-reranker", "siglip", "bm42"}));
  EXPECT_EQ(full.find("bge-m3")->repo_id, "BAAI/bge-m3");
  EXPECT_EQ(full.find("bge-reranker")->repo_id, "BAAI/bge-reranker-v2-m3");
  EXPECT_EQ(full.find("siglip")->repo_id, "google/siglip-base-patch16-224");
  EXPECT_EQ(full.find("bm42")->repo_id, "Qdrant/bm42-all-minilm-l6-v2-attentions");

  EXPECT_EQ(without_lines(full.models), without_lines(toml.models));
  EXPECT_EQ(full.verify, toml.verify);
  EXPECT_EQ(full.manifest, toml.manifest);

  // The minimal set is a strict subset with identical entries.
  ASSERT_FALSE(minimal.models.empty());
  EXPECT_LT(minimal.models.size(), full.models.size());
  for (const auto& m : minimal.models) {
    ASSERT_NE(full.find(m.id), nullptr) << m.id;
    ModelSpec a = m;
    ModelSpec b = *full.find(m.id);
    a.source_line = b.source_line = 0;
    EXPECT_EQ(a, b);
  }
#endif
}

// ---------------------------------------------------------------------------------------------------------
// Discovery

namespace {

modelmgr::manager::GetEnv env(std::map<std::string, std::string> vars)
{
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) {
      return std::nullopt;
    }
    return it->second;
  };
}

} // namespace

TEST(ConfigDiscovery, DefaultOrder)
{
  using modelmgr::manager::find_default_config;
  TempDir dir;
  std::string note = "stale";
  EXPECT_EQ(find_default_config(dir.path(), env({}), &note), std::nullopt);
  EXPECT_EQ(note, "");

  write(dir, "modelmgr.toml", "");
  EXPECT_EQ(find_default_config(dir.path(), env({}), &note), dir.path() / "modelmgr.toml");
  write(dir, "modelmgr.yaml", "");
  EXPECT_EQ(find_default_config(dir.path(), env({}), &note), dir.path() / "modelmgr.yaml");
  write(dir, "config/model_manager/models.yaml", "");
  EXPECT_EQ(find_default_config(dir.path(), env({}), &note), dir.path() / "config/model_manager/models.yaml");
  EXPECT_EQ(note, "");
  // A null environment behaves as an empty one.
  EXPECT_EQ(find_default_config(dir.path(), nullptr, nullptr),
            dir.path() / "config/model_manager/models.yaml");
  // A directory with a candidate's name is not a config.
  TempDir other;
  fs::create_directories(other.path() / "modelmgr.yaml");
  EXPECT_EQ(find_default_config(other.path(), env({}), nullptr), std::nullopt);
}

TEST(ConfigDiscovery, MinimalSiblingWhenCiAsksForIt)
{
  using modelmgr::manager::find_default_config;
  TempDir dir;
  write(dir, "config/model_manager/models.yaml", "");
  write(dir, "config/model_manager/models.minimal.yaml", "");
  const fs::path full = dir.path() / "config/model_manager/models.yaml";
  const fs::path minimal = dir.path() / "config/model_manager/models.minimal.yaml";

  for (const char* on : {"true", "TRUE", "1", "yes", "Yes"}) {
    std::string note;
    EXPECT_EQ(find_default_config(dir.path(), env({{"CI_MINIMAL_MODELS", on}}), &note), minimal) << on;
    EXPECT_EQ(note, "using " + minimal.string() + " instead of " + full.string() +
                        " because CI_MINIMAL_MODELS=" + on);
  }
  for (const char* off : {"false", "0", "no", "NO", ""}) {
    std::string note = "stale";
    EXPECT_EQ(find_default_config(dir.path(), env({{"CI_MINIMAL_MODELS", off}}), &note), full) << off;
    EXPECT_EQ(note, "");
  }
  try {
    find_default_config(dir.path(), env({{"CI_MINIMAL_MODELS", "maybe"}}), nullptr);
    FAIL() << "no error";
  } catch (const ConfigurationError& e) {
    EXPECT_EQ(std::string(e.what()), "CI_MINIMAL_MODELS='maybe' is not a boolean");
    EXPECT_THAT(e.hint(), HasSubstr("true, 1 or yes"));
  }
}

TEST(ConfigDiscovery, MinimalSiblingOfTheChosenFile)
{
  using modelmgr::manager::find_default_config;
  TempDir dir;
  write(dir, "modelmgr.toml", "");
  write(dir, "modelmgr.minimal.toml", "");
  write(dir, "modelmgr.minimal.yaml", ""); // its full sibling modelmgr.yaml does not exist: ignored
  std::string note;
  EXPECT_EQ(find_default_config(dir.path(), env({{"CI_MINIMAL_MODELS", "1"}}), &note),
            dir.path() / "modelmgr.minimal.toml");
  EXPECT_EQ(note, "using " + (dir / "modelmgr.minimal.toml").string() + " instead of " +
                      (dir / "modelmgr.toml").string() + " because CI_MINIMAL_MODELS=1");

  // Only minimal files: there is no configuration.
  TempDir only_minimal;
  write(only_minimal, "config/model_manager/models.minimal.yaml", "");
  EXPECT_EQ(find_default_config(only_minimal.path(), env({{"CI_MINIMAL_MODELS", "1"}}), &note), std::nullopt);
  EXPECT_EQ(note, "");
}

TEST(ConfigDiscovery, MissingMinimalFileIsAnErrorNamingIt)
{
  using modelmgr::manager::find_default_config;
  TempDir dir;
  write(dir, "config/model_manager/models.yaml", "");
  write(dir, "modelmgr.minimal.yaml", ""); // belongs to a lower-priority candidate: not a substitute
  try {
    find_default_config(dir.path(), env({{"CI_MINIMAL_MODELS", "true"}}), nullptr);
    FAIL() << "no error";
  } catch (const ConfigurationError& e) {
    const fs::path expected = dir.path() / "config/model_manager/models.minimal.yaml";
    EXPECT_EQ(std::string(e.what()), "CI_MINIMAL_MODELS=true asks for the minimal model set, but " +
                                         expected.string() + " does not exist");
    EXPECT_THAT(e.hint(), HasSubstr("create " + expected.string()));
    EXPECT_THAT(e.hint(), HasSubstr("unset CI_MINIMAL_MODELS"));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Selection

TEST(ConfigSelect, ChosenIdsInOrder)
{
  const ModelSetConfig c = modelmgr::manager::parse_config(text(k_full_yaml), Format::yaml, "models.yaml");
  using modelmgr::manager::select_models;
  EXPECT_EQ(select_models(c, {}).size(), 3u);
  const auto chosen = select_models(c, {"gpt2", "bge-m3", "gpt2"});
  ASSERT_EQ(chosen.size(), 2u);
  EXPECT_EQ(chosen[0].id, "gpt2");
  EXPECT_EQ(chosen[1].id, "bge-m3");
}

TEST(ConfigSelect, UnknownIdsListTheKnownOnes)
{
  const ModelSetConfig c = modelmgr::manager::parse_config(text(k_full_yaml), Format::yaml, "models.yaml");
  try {
    modelmgr::manager::select_models(c, {"bge-m4", "gpt2", "llama"});
    FAIL() << "no error";
  } catch (const ConfigurationError& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown model ids 'bge-m4' (did you mean 'bge-m3'?), 'llama'; known ids in "
              "models.yaml: bge-m3, squad, gpt2");
    EXPECT_EQ(e.kind(), modelmgr::ErrorKind::config);
  }
}
