#include "formats/hf_json.hpp"
#include "formats/parse_error.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace modelmgr::formats;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

std::string error_of(void (*parse)(std::string_view), std::string_view text)
{
  try {
    parse(text);
  } catch (const ParseError& e) {
    return e.what();
  }
  return "no error";
}

} // namespace

TEST(HfConfig, ReadsTheModelFacts)
{
  const auto c = parse_hf_config(R"({
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
    "num_hidden_layers": 32, "vocab_size": 32768, "max_position_embeddings": 32768.0,
    "torch_dtype": "bfloat16", "rope_theta": 1000000.0})",
                                 "config.json");
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_THAT(c.architectures, ElementsAre("MistralForCausalLM"));
  EXPECT_EQ(c.hidden_size, 4096u);
  EXPECT_EQ(c.num_hidden_layers, 32u);
  EXPECT_EQ(c.vocab_size, 32768u);
  EXPECT_EQ(c.max_position_embeddings, 32768u); // an integral float counts
  EXPECT_EQ(c.torch_dtype, "bfloat16");
}

TEST(HfConfig, MultimodalTextConfigAndNewDtypeKey)
{
  const auto c = parse_hf_config(
      R"({"model_type": "llava", "dtype": "float16", "text_config": {"hidden_size": 2048, "num_hidden_layers": 4}})",
      "config.json");
  EXPECT_EQ(c.hidden_size, 2048u);
  EXPECT_EQ(c.num_hidden_layers, 4u);
  EXPECT_FALSE(c.vocab_size);
  EXPECT_EQ(c.torch_dtype, "float16");
}

TEST(HfConfig, ErrorsNameLineAndColumn)
{
  const auto msg = error_of([](std::string_view t) { (void)parse_hf_config(t, "config.json"); },
                            "{\n  \"a\": 1,\n  \"b\": ,\n}");
  EXPECT_THAT(msg, HasSubstr("config.json"));
  EXPECT_THAT(msg, HasSubstr("line 3, column 8"));
  EXPECT_THAT(error_of([](std::string_view t) { (void)parse_hf_config(t, "config.json"); }, "[1, 2]"),
              HasSubstr("expected a JSON object, found array"));
  EXPECT_THAT(error_of([](std::string_view t) { (void)parse_hf_config(t, "config.json"); }, "{\"x\": 1e999}"),
              HasSubstr("invalid JSON"));
  EXPECT_THAT(error_of([](std::string_view t) { (void)parse_hf_config(t, "config.json"); },
                       std::string(100, '[') + std::string(100, ']')),
              HasSubstr("nested deeper than 64"));
}

TEST(HfTokenizer, BpeAndUnigram)
{
  const auto bpe = parse_hf_tokenizer(
      R"({"version": "1.0", "added_tokens": [{"id": 0, "content": "<s>"}, {"id": 1, "content": "</s>"}],
          "model": {"type": "BPE", "vocab": {"<s>": 0, "</s>": 1, "a": 2}, "merges": []}})",
      "tokenizer.json");
  EXPECT_EQ(bpe.model_type, "BPE");
  EXPECT_EQ(bpe.vocab_size, 3u);
  EXPECT_EQ(bpe.added_tokens, 2u);
  const auto unigram = parse_hf_tokenizer(
      R"({"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["a", -1.5]]}})", "tokenizer.json");
  EXPECT_EQ(unigram.model_type, "Unigram");
  EXPECT_EQ(unigram.vocab_size, 2u);
  EXPECT_EQ(unigram.added_tokens, 0u);
  EXPECT_THAT(
      error_of([](std::string_view t) { (void)parse_hf_tokenizer(t, "tokenizer.json"); }, R"({"x": 1})"),
      HasSubstr("not a `tokenizers` tokenizer.json"));
}

TEST(HfTokenizerConfig, ClassLengthAndChatTemplate)
{
  const auto c = parse_hf_tokenizer_config(
      R"({"tokenizer_class": "LlamaTokenizer", "model_max_length": 8192, "chat_template": "{{ messages }}"})",
      "tokenizer_config.json");
  EXPECT_EQ(c.tokenizer_class, "LlamaTokenizer");
  EXPECT_EQ(c.model_max_length, 8192u);
  EXPECT_TRUE(c.has_chat_template);
  // transformers writes int(1e30) for "no limit".
  const auto unlimited = parse_hf_tokenizer_config(
      R"({"tokenizer_class": "BertTokenizer", "model_max_length": 1000000000000000019884624838656})",
      "tokenizer_config.json");
  EXPECT_FALSE(unlimited.model_max_length);
  EXPECT_FALSE(unlimited.has_chat_template);
  const auto named = parse_hf_tokenizer_config(R"({"chat_template": [{"name": "default", "template": "x"}]})",
                                               "tokenizer_config.json");
  EXPECT_TRUE(named.has_chat_template);
}

TEST(HfJson, LineColumn)
{
  EXPECT_EQ(line_column("ab\ncd\ne", 0), std::make_pair(std::uint64_t{1}, std::uint64_t{1}));
  EXPECT_EQ(line_column("ab\ncd\ne", 4), std::make_pair(std::uint64_t{2}, std::uint64_t{2}));
  EXPECT_EQ(line_column("ab\ncd\ne", 100), std::make_pair(std::uint64_t{3}, std::uint64_t{2}));
}
