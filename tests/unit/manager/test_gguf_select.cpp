// GGUF by quantization (`REPO:QUANT`): which files of a repo listing make up one quantization. Listings only,
// no network.

#include "modelmgr/errors.hpp"

#include "manager/gguf_select.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace modelmgr::manager {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;

// A typical single-file quantization repo (bartowski style), sorted as the tree API lists it.
const std::vector<std::string> k_single = {
    ".gitattributes",
    "Mistral-7B-Instruct-v0.3-IQ4_XS.gguf",
    "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf",
    "Mistral-7B-Instruct-v0.3-Q4_K_M_L.gguf",
    "Mistral-7B-Instruct-v0.3-Q8_0.gguf",
    "Mistral-7B-Instruct-v0.3.imatrix.gguf",
    "README.md",
};

// Split quantizations in folders plus vision projectors (unsloth style).
const std::vector<std::string> k_split = {
    "BF16/Big-BF16-00001-of-00002.gguf",
    "BF16/Big-BF16-00002-of-00002.gguf",
    "Big-Q2_K.gguf",
    "Q8_0/Big-Q8_0-00001-of-00003.gguf",
    "Q8_0/Big-Q8_0-00002-of-00003.gguf",
    "Q8_0/Big-Q8_0-00003-of-00003.gguf",
    "README.md",
    "mmproj-BF16.gguf",
    "mmproj-F32.gguf",
};

TEST(GgufName, ParsesQuantizationAndSplit)
{
  auto n = parse_gguf_name("Q8_0/Big-Q8_0-00002-of-00003.gguf");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->prefix, "Q8_0/Big-Q8_0");
  EXPECT_EQ(n->quant, "Q8_0");
  EXPECT_EQ(n->part, 2);
  EXPECT_EQ(n->parts, 3);
  EXPECT_TRUE(n->is_model);

  n = parse_gguf_name("model.q4_k_m.GGUF");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->quant, "Q4_K_M");
  EXPECT_EQ(n->parts, 1);

  n = parse_gguf_name("mmproj-model-f16.gguf");
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->is_mmproj);
  EXPECT_FALSE(n->is_model);
  EXPECT_FALSE(parse_gguf_name("x.imatrix.gguf")->is_model);
  // A word is not a quantization.
  EXPECT_EQ(parse_gguf_name("llama-instruct.gguf")->quant, "");
  EXPECT_FALSE(parse_gguf_name("model.safetensors"));
  EXPECT_FALSE(parse_gguf_name(".gguf"));
}

TEST(GgufSelect, TagIsCaseInsensitiveAndMatchesWholeTokens)
{
  auto sel = select_gguf(k_single, std::string("q4_k_m"), "org/m");
  // Not Q4_K_M_L (longer tag) and not IQ4_XS.
  EXPECT_THAT(sel.model, ElementsAre("Mistral-7B-Instruct-v0.3-Q4_K_M.gguf"));
  EXPECT_FALSE(sel.mmproj);
  EXPECT_EQ(sel.quant, "Q4_K_M");

  sel = select_gguf(k_single, std::string("Q4_K_M_L"), "org/m");
  EXPECT_THAT(sel.model, ElementsAre("Mistral-7B-Instruct-v0.3-Q4_K_M_L.gguf"));
  // "Q4_XS" must not pick IQ4_XS.
  EXPECT_THROW(select_gguf(k_single, std::string("Q4_XS"), "org/m"), MissingModelError);
}

TEST(GgufSelect, DefaultIsQ4KMThenQ8ThenFirst)
{
  EXPECT_EQ(select_gguf(k_single, std::nullopt, "org/m").model.front(),
            "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf");
  // No Q4_K_M: Q8_0, all its parts.
  auto sel = select_gguf(k_split, std::nullopt, "org/big");
  EXPECT_EQ(sel.quant, "Q8_0");
  EXPECT_THAT(sel.model, ElementsAre("Q8_0/Big-Q8_0-00001-of-00003.gguf", "Q8_0/Big-Q8_0-00002-of-00003.gguf",
                                     "Q8_0/Big-Q8_0-00003-of-00003.gguf"));
  // Neither: the first model file (the imatrix file is not a model).
  sel = select_gguf({"a.imatrix.gguf", "b-IQ2_XXS.gguf", "c-Q5_K_S.gguf"}, std::nullopt, "org/m");
  EXPECT_THAT(sel.model, ElementsAre("b-IQ2_XXS.gguf"));
  EXPECT_EQ(sel.quant, "IQ2_XXS");
}

TEST(GgufSelect, SplitBringsEveryPartInOrderWhateverTheListingOrder)
{
  std::vector<std::string> shuffled = {"m-Q4_K_M-00002-of-00002.gguf", "m-Q4_K_M-00001-of-00002.gguf",
                                       "other-Q4_K_M-00001-of-00005.gguf"};
  auto sel = select_gguf(shuffled, std::string("Q4_K_M"), "org/m");
  EXPECT_THAT(sel.model, ElementsAre("m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf"));
  EXPECT_THAT(sel.files(), ElementsAre("m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf"));
}

TEST(GgufSelect, IncompleteSplitIsAnError)
{
  try {
    select_gguf({"m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00003-of-00003.gguf"}, std::string("Q8_0"), "org/m");
    FAIL() << "expected MissingModelError";
  } catch (const MissingModelError& e) {
    EXPECT_THAT(e.what(), HasSubstr("part 2 is missing"));
  }
}

TEST(GgufSelect, MmprojComesAlongClosestInBitsAfterTheModel)
{
  auto sel = select_gguf(k_split, std::string("bf16"), "org/big");
  EXPECT_THAT(sel.model,
              ElementsAre("BF16/Big-BF16-00001-of-00002.gguf", "BF16/Big-BF16-00002-of-00002.gguf"));
  ASSERT_TRUE(sel.mmproj);
  EXPECT_EQ(*sel.mmproj, "mmproj-BF16.gguf");
  EXPECT_EQ(sel.files().back(), "mmproj-BF16.gguf");
  // Q2_K: 2 bits, BF16 (16) is closer than F32 (32).
  EXPECT_EQ(*select_gguf(k_split, std::string("Q2_K"), "org/big").mmproj, "mmproj-BF16.gguf");
  // A projector in the model's own folder wins over one above it; one in a sibling folder never comes.
  std::vector<std::string> nested = {"a/m-Q4_K_M.gguf", "a/mmproj-F32.gguf", "b/mmproj-F16.gguf",
                                     "mmproj-Q4_0.gguf"};
  EXPECT_EQ(*select_gguf(nested, std::string("Q4_K_M"), "org/m").mmproj, "a/mmproj-F32.gguf");
  EXPECT_FALSE(select_gguf({"a/m-Q4_K_M.gguf", "b/mmproj-F16.gguf"}, std::nullopt, "org/m").mmproj);
}

TEST(GgufSelect, UnknownTagListsTheRepoQuantizations)
{
  try {
    select_gguf(k_split, std::string("Q6_K"), "org/big");
    FAIL() << "expected MissingModelError";
  } catch (const MissingModelError& e) {
    EXPECT_THAT(e.what(), HasSubstr("org/big has no GGUF file of quantization 'Q6_K'"));
    EXPECT_THAT(e.hint(), HasSubstr("BF16, Q2_K, Q8_0"));
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
  }
  EXPECT_THAT(available_quants(k_single), ElementsAre("IQ4_XS", "Q4_K_M", "Q4_K_M_L", "Q8_0"));
}

TEST(GgufSelect, RepoWithoutGgufIsAnError)
{
  try {
    select_gguf({"config.json", "model.safetensors", "mmproj-F16.gguf"}, std::nullopt, "org/st");
    FAIL() << "expected MissingModelError";
  } catch (const MissingModelError& e) {
    EXPECT_THAT(e.what(), HasSubstr("org/st has no GGUF model file"));
  }
}

TEST(RepoQuant, SplitsOnTheLastColon)
{
  auto rq = split_repo_quant("bartowski/X-GGUF:Q4_K_M");
  EXPECT_EQ(rq.repo, "bartowski/X-GGUF");
  EXPECT_EQ(rq.quant, "Q4_K_M");
  rq = split_repo_quant("org/name");
  EXPECT_EQ(rq.repo, "org/name");
  EXPECT_FALSE(rq.quant);
  EXPECT_EQ(split_repo_quant("unsloth/M-GGUF:UD-Q4_K_XL").quant, "UD-Q4_K_XL");
  EXPECT_THROW(split_repo_quant("org/name:"), ConfigurationError);
  EXPECT_THROW(split_repo_quant("org/name:Q4 K"), ConfigurationError);
  EXPECT_TRUE(looks_like_repo_spec("org/name:Q4_K_M"));
  EXPECT_FALSE(looks_like_repo_spec("mistral-7b-instruct-v0.3:Q4_K_M"));
}

} // namespace
} // namespace modelmgr::manager
