// manager::pins_from_config: a model-set config becomes the pins `cache prune --config` honours, one per
// model with its repo type, repo id and revision (default "main"); a repo type that is no Hub type is a
// configuration error naming the model and the file.

#include "modelmgr/config.hpp"
#include "modelmgr/errors.hpp"

#include "manager/cache_pins.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace modelmgr::manager {
namespace {

using ::testing::HasSubstr;

ModelSpec spec(std::string id, std::string repo_id, std::string type, std::string revision)
{
  ModelSpec m;
  m.id = std::move(id);
  m.repo_id = std::move(repo_id);
  m.repo_type = std::move(type);
  m.revision = std::move(revision);
  return m;
}

TEST(CachePins, OnePinPerModelWithTypeRepoAndRevision)
{
  ModelSetConfig config;
  config.path = "models.yaml";
  config.models.push_back(spec("emb", "BAAI/bge-m3", "model", "main"));
  config.models.push_back(spec("data", "org/set", "dataset", "v1.0"));
  config.models.push_back(spec("pinned", "org/app", "space", std::string(40, 'a')));
  ModelSpec defaults;
  defaults.id = "plain";
  defaults.repo_id = "gpt2";
  config.models.push_back(defaults);

  const auto pins = pins_from_config(config);
  ASSERT_EQ(pins.size(), 4u);
  EXPECT_EQ(pins[0].type, cache::RepoType::model);
  EXPECT_EQ(pins[0].repo_id, "BAAI/bge-m3");
  EXPECT_EQ(pins[0].revision, "main");
  EXPECT_EQ(pins[1].type, cache::RepoType::dataset);
  EXPECT_EQ(pins[1].revision, "v1.0");
  EXPECT_EQ(pins[2].type, cache::RepoType::space);
  EXPECT_EQ(pins[2].revision, std::string(40, 'a'));
  EXPECT_EQ(pins[3].type, cache::RepoType::model);
  EXPECT_EQ(pins[3].repo_id, "gpt2");
  EXPECT_EQ(pins[3].revision, "main");
}

TEST(CachePins, EmptyConfigGivesNoPins)
{
  EXPECT_TRUE(pins_from_config(ModelSetConfig{}).empty());
}

TEST(CachePins, UnknownRepoTypeNamesTheModelAndTheFile)
{
  ModelSetConfig config;
  config.path = "sets/models.yaml";
  config.models.push_back(spec("odd", "org/x", "kernel", "main"));
  try {
    (void)pins_from_config(config);
    FAIL() << "expected ConfigurationError";
  } catch (const ConfigurationError& e) {
    EXPECT_THAT(e.what(), HasSubstr("'odd'"));
    EXPECT_THAT(e.what(), HasSubstr("sets/models.yaml"));
    EXPECT_THAT(e.what(), HasSubstr("kernel"));
  }
}

} // namespace
} // namespace modelmgr::manager
