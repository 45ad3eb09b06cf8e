// Bounded random-mutation fuzzing of the model-set config readers (YAML and TOML, and the `model.spec`
// editor built on them), in the pattern of tests/unit/formats/test_formats_fuzz.cpp: every mutated file
// must either parse or throw InvalidConfigError (the documented error, with positions). Any other
// exception, a crash or a hang (the ctest timeout) fails. Fixed seeds make failures reproducible; the
// iteration number and the input are in the failure message.

#include "modelmgr/config.hpp"
#include "modelmgr/errors.hpp"

#include "manager/config.hpp"

#include <cstdio>
#include <random>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

using modelmgr::InvalidConfigError;
using modelmgr::manager::Format;

namespace {

// Every section and key kind of the schema (docs/config.md), so that mutations reach each check.
constexpr const char* k_yaml_seed = R"(# a model set
cache_dir: ~/models/$PROJECT
verify: sha256
manifest: out/manifest.json
model:
  spec: "qwen2.5-0.5b:Q4_K_M"
server:
  command: "llama-server -m {file} --host {host} --port {port}"
  host: 127.0.0.1
  port: 8080
  health_path: /health
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
    description: "Dense: multilingual"
  - id: squad
    repo_id: rajpurkar/squad
    repo_type: dataset
  - {id: gpt2, repo_id: gpt2}
)";

constexpr const char* k_toml_seed = R"(# a model set
cache_dir = "~/models/$PROJECT"
verify = "sha256"
manifest = "out/manifest.json"

[model]
spec = "qwen2.5-0.5b:Q4_K_M"

[server]
command = "llama-server -m {file} --host {host} --port {port}"
host = "127.0.0.1"
port = 8080
health_path = "/health"

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

[[models]]
id = "squad"
repo_id = "rajpurkar/squad"
repo_type = "dataset"

[[models]]
id = "gpt2"
repo_id = "gpt2"
)";

// Text mutations: the ways hand-edited and hostile config files differ from valid ones. Syntax characters
// are favoured, since random bytes mostly land inside strings.
void mutate(std::string& text, std::mt19937_64& rng)
{
  static constexpr std::string_view k_syntax = "[]{}:,-=\"'#&*!|>%@`\n \t.\\0123456789";
  static constexpr std::string_view k_tokens[] = {
      "null",     "~",       "true",   "-1",          "99999999999999999999",
      "1e400",    "nan",     "inf",    "0x10",        "1979-05-27",
      "!!binary", "&a",      "*a",     "<<: *a",      "[[x]]",
      "[x]",      "---",     "...",    "\"\\u0000\"", "\"\\xff\"",
      "? ",       "- - -",   "{{{{",   "]]]]",        "models",
      "id",       "repo_id", "port",   "server",      "model",
      "spec",     "sha256",  "verify", "\xff\xfe",    "\x00"};
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % (n == 0 ? 1 : n)); };
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds; ++r) {
    switch (rng() % 8) {
    case 0: // a byte replaced by a syntax character
      if (!text.empty()) {
        text[pick(text.size())] = k_syntax[pick(k_syntax.size())];
      }
      break;
    case 1: // a random byte
      if (!text.empty()) {
        text[pick(text.size())] = static_cast<char>(rng());
      }
      break;
    case 2: // truncation
      text.resize(pick(text.size() + 1));
      break;
    case 3: // a token inserted
    case 4: {
      const std::string_view tok = k_tokens[pick(std::size(k_tokens))];
      text.insert(pick(text.size() + 1), tok.empty() ? std::string(1, '\0') : std::string(tok));
      break;
    }
    case 5: // a line duplicated, moved or re-indented
    {
      const std::size_t at = pick(text.size() + 1);
      const std::size_t begin = text.rfind('\n', at == 0 ? 0 : at - 1);
      const std::size_t line_start = begin == std::string::npos ? 0 : begin + 1;
      const std::size_t end = text.find('\n', line_start);
      const std::string line =
          text.substr(line_start, end == std::string::npos ? std::string::npos : end - line_start + 1);
      if (rng() % 2 == 0) {
        text.insert(pick(text.size() + 1), line);
      } else {
        text.insert(line_start, std::string(pick(6), rng() % 4 == 0 ? '\t' : ' '));
      }
      break;
    }
    case 6: // bytes removed
      if (!text.empty()) {
        const std::size_t at = pick(text.size());
        text.erase(at, 1 + pick(16));
      }
      break;
    case 7: // a run of brackets or dashes (nesting)
      text.insert(pick(text.size() + 1), std::string(1 + pick(40), "[{-"[pick(3)]));
      break;
    }
  }
}

template <class Parse>
void fuzz(const std::string& seed, std::uint64_t seed_value, int iterations, Parse parse)
{
  std::mt19937_64 rng(seed_value);
  int parsed = 0;
  int rejected = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string input = seed;
    mutate(input, rng);
    try {
      parse(input);
      ++parsed;
    } catch (const InvalidConfigError& e) {
      ++rejected;
      // The documented error names the file and a position in it.
      if (std::string_view(e.what()).find("fuzz.") == std::string_view::npos) {
        ADD_FAILURE() << "iteration " << i << ": the error does not name the file: " << e.what();
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "iteration " << i << ": unexpected exception: " << e.what() << "\ninput:\n" << input;
    }
  }
  // Both outcomes must occur, or the mutations are not exercising the reader.
  EXPECT_GT(parsed, iterations / 100);
  EXPECT_GT(rejected, iterations / 4);
  std::printf("[ fuzz     ] %d parsed, %d rejected\n", parsed, rejected);
}

} // namespace

TEST(ConfigFuzz, SeedsAreValid)
{
  EXPECT_EQ(modelmgr::manager::parse_config(k_yaml_seed, Format::yaml, "fuzz.yaml").models.size(), 3u);
  EXPECT_EQ(modelmgr::manager::parse_config(k_toml_seed, Format::toml, "fuzz.toml").models.size(), 3u);
}

TEST(ConfigFuzz, YamlMutations)
{
  fuzz(k_yaml_seed, 0x79616d6cu, 10000, [](const std::string& text) {
    (void)modelmgr::manager::parse_config(text, Format::yaml, "fuzz.yaml");
  });
}

TEST(ConfigFuzz, TomlMutations)
{
  fuzz(k_toml_seed, 0x746f6d6cu, 20000, [](const std::string& text) {
    (void)modelmgr::manager::parse_config(text, Format::toml, "fuzz.toml");
  });
}

// `models select` / `start` rewrite the user's file: the editor reads it with the same parsers.
TEST(ConfigFuzz, ModelSpecEditOfMutatedFiles)
{
  fuzz(k_yaml_seed, 0x65646974u, 5000, [](const std::string& text) {
    (void)modelmgr::manager::with_model_spec(text, Format::yaml, "new:Q8_0", "fuzz.yaml");
  });
  fuzz(k_toml_seed, 0x65646975u, 5000, [](const std::string& text) {
    (void)modelmgr::manager::with_model_spec(text, Format::toml, "new:Q8_0", "fuzz.toml");
  });
}

// Inputs that mutations rarely build but a hostile file can: deep nesting (the parsers recurse) and YAML
// aliases that multiply (a "billion laughs" file of a few hundred bytes).
TEST(ConfigFuzz, HostileShapesAreRejectedWithThePositionNotACrash)
{
  const std::string deep_yaml = std::string(100000, '[') + std::string(100000, ']');
  const std::string deep_yaml_block = [] {
    std::string s;
    for (int i = 0; i < 5000; ++i) {
      s += std::string(static_cast<std::size_t>(i), ' ') + "- \n";
    }
    return s;
  }();
  const std::string deep_toml = "x = " + std::string(100000, '[') + std::string(100000, ']');
  std::string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'k'; ++c) {
    const char prev = static_cast<char>(c - 1);
    laughs += std::string(1, c) + ": &" + c + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
              ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n";
  }
  laughs += "models: *k\n";
  // yaml-cpp 0.7's LoadAll never returned on a ',' outside a flow list (found by YamlMutations).
  const std::string stray_comma = ", a model set\nmodels: []\n";
  for (const auto& [text, format] :
       {std::pair{deep_yaml, Format::yaml}, std::pair{deep_yaml_block, Format::yaml},
        std::pair{laughs, Format::yaml}, std::pair{stray_comma, Format::yaml},
        std::pair{deep_toml, Format::toml}}) {
    EXPECT_THROW((void)modelmgr::manager::parse_config(text, format, "fuzz.cfg"), InvalidConfigError)
        << text.substr(0, 80);
  }
}
