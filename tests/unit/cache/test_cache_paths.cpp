#include "cache/paths.hpp"

#include <stdexcept>

#include <gtest/gtest.h>

namespace fs = std::filesystem;
using namespace modelmgr::cache;
using modelmgr::util::MapEnv;

TEST(CachePaths, RepoTypeHelpers)
{
  EXPECT_EQ(parse_repo_type("model"), RepoType::model);
  EXPECT_EQ(parse_repo_type("datasets"), RepoType::dataset);
  EXPECT_EQ(parse_repo_type("space"), RepoType::space);
  EXPECT_FALSE(parse_repo_type("Model").has_value());
  EXPECT_FALSE(parse_repo_type("kernel").has_value());
  EXPECT_EQ(to_string(RepoType::dataset), "dataset");
  EXPECT_EQ(plural(RepoType::space), "spaces");
  EXPECT_EQ(url_prefix(RepoType::model), "");
  EXPECT_EQ(url_prefix(RepoType::dataset), "datasets/");
  EXPECT_EQ(url_prefix(RepoType::space), "spaces/");
}

TEST(CachePaths, CacheDirPrecedence)
{
  MapEnv env({{"HOME", "/home/u"}});
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::path("/home/u/.cache/huggingface/hub"));
  EXPECT_EQ(hf_home(env), fs::path("/home/u/.cache/huggingface"));
  env.set("XDG_CACHE_HOME", "/xdg");
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::path("/xdg/huggingface/hub"));
  env.set("HF_HOME", "/hf");
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::path("/hf/hub"));
  EXPECT_EQ(hf_home(env), fs::path("/hf"));
  env.set("HUGGINGFACE_HUB_CACHE", "/legacy");
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::path("/legacy"));
  env.set("HF_HUB_CACHE", "/new");
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::path("/new"));
  EXPECT_EQ(resolve_cache_dir(fs::path("/explicit"), env), fs::path("/explicit"));
}

TEST(CachePaths, CacheDirExpandsAndMakesAbsolute)
{
  MapEnv env({{"HOME", "/home/u"}, {"SCRATCH", "/scratch"}});
  env.set("HF_HUB_CACHE", "~/models");
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::path("/home/u/models"));
  env.set("HF_HUB_CACHE", "$SCRATCH/hf/./hub/");
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env).string(), "/scratch/hf/hub");
  env.set("HF_HUB_CACHE", "rel/cache");
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::current_path() / "rel" / "cache");
  env.unset("HF_HUB_CACHE");
  env.set("HF_HOME", "${SCRATCH}/home");
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::path("/scratch/home/hub"));
  EXPECT_EQ(resolve_cache_dir(fs::path("~/x"), env), fs::path("/home/u/x"));
}

TEST(CachePaths, EmptyVariablesCountAsUnset)
{
  MapEnv env({{"HOME", "/home/u"},
              {"HF_HUB_CACHE", ""},
              {"HUGGINGFACE_HUB_CACHE", ""},
              {"HF_HOME", ""},
              {"XDG_CACHE_HOME", ""}});
  EXPECT_EQ(resolve_cache_dir(std::nullopt, env), fs::path("/home/u/.cache/huggingface/hub"));
  EXPECT_EQ(resolve_cache_dir(fs::path(), env), fs::path("/home/u/.cache/huggingface/hub"));
}

TEST(CachePaths, RepoFolderNames)
{
  EXPECT_EQ(repo_folder_name(RepoType::model, "gpt2"), "models--gpt2");
  EXPECT_EQ(repo_folder_name(RepoType::model, "julien-c/EsperBERTo-small"),
            "models--julien-c--EsperBERTo-small");
  EXPECT_EQ(repo_folder_name(RepoType::dataset, "org/name"), "datasets--org--name");
  EXPECT_EQ(repo_folder_name(RepoType::space, "org/name"), "spaces--org--name");

  EXPECT_EQ(parse_repo_folder_name("models--julien-c--EsperBERTo-small"),
            (RepoFolder{RepoType::model, "julien-c/EsperBERTo-small"}));
  EXPECT_EQ(parse_repo_folder_name("models--gpt2"), (RepoFolder{RepoType::model, "gpt2"}));
  EXPECT_EQ(parse_repo_folder_name("datasets--a--b"), (RepoFolder{RepoType::dataset, "a/b"}));
  EXPECT_EQ(parse_repo_folder_name("spaces--a--b"), (RepoFolder{RepoType::space, "a/b"}));
  for (const char* not_repo :
       {".locks", "CACHEDIR.TAG", "version.txt", "models--", "model--x", "kernels--a--b", "--x", "models"}) {
    EXPECT_FALSE(parse_repo_folder_name(not_repo).has_value()) << not_repo;
  }
}

TEST(CachePaths, RepoIdValidation)
{
  for (const char* ok :
       {"gpt2", "BAAI/bge-m3", "org/name.v1", "a_b/c_d", "Qwen/Qwen2.5-0.5B-Instruct", "_x/_y_", "1/2"}) {
    EXPECT_FALSE(repo_id_error(ok).has_value()) << ok << ": " << *repo_id_error(ok);
    EXPECT_NO_THROW(validate_repo_id(ok));
  }
  const std::vector<std::pair<std::string, std::string>> bad{
      {"", "it is empty"},
      {"a/b/c", "it must be 'name' or 'namespace/name'"},
      {"/name", "the namespace is empty"},
      {"org/", "the name is empty"},
      {"-org/name", "the namespace cannot start or end with '-' or '.'"},
      {"org/name.", "the name cannot start or end with '-' or '.'"},
      {".hidden", "the name cannot start or end with '-' or '.'"},
      {"org/na me", "the name contains ' ' (allowed: letters, digits, '-', '_' and '.')"},
      {"org/caf\xc3\xa9", "the name contains '\xc3' (allowed: letters, digits, '-', '_' and '.')"},
      {"org/a--b", "it cannot contain '--' or '..'"},
      {"org/a..b", "it cannot contain '--' or '..'"},
      {"org/repo.git", "it cannot end with '.git'"},
      {"org/" + std::string(97, 'a'), "the name is longer than 96 characters"},
      {"..", "the name cannot start or end with '-' or '.'"},
  };
  for (const auto& [id, reason] : bad) {
    auto error = repo_id_error(id);
    ASSERT_TRUE(error.has_value()) << id;
    EXPECT_EQ(*error, reason) << id;
  }
  EXPECT_FALSE(repo_id_error("org/" + std::string(96, 'a')).has_value());
  try {
    validate_repo_id("a/b/c");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "invalid repo id 'a/b/c': it must be 'name' or 'namespace/name'");
  }
}

TEST(CachePaths, CommitHashesAndRevisions)
{
  EXPECT_TRUE(is_commit_hash("0123456789abcdef0123456789abcdef01234567"));
  EXPECT_FALSE(is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
  EXPECT_FALSE(is_commit_hash("0123456789abcdef0123456789abcdef0123456"));
  EXPECT_FALSE(is_commit_hash("main"));
  EXPECT_FALSE(revision_error("main").has_value());
  EXPECT_FALSE(revision_error("refs/pr/1").has_value());
  EXPECT_TRUE(revision_error("../main").has_value());
  EXPECT_TRUE(revision_error("").has_value());
  EXPECT_TRUE(revision_error("/abs").has_value());
}

TEST(CachePaths, CachedirTagText)
{
  EXPECT_EQ(k_cachedir_tag, "Signature: 8a477f597d28d172789f06886806bc55\n"
                            "# This file is a cache directory tag created by huggingface_hub.\n"
                            "# For information about cache directory tags, see:\n"
                            "#\thttps://bford.info/cachedir/\n");
}
