// `cmake --install` into a temporary prefix, then the example (examples/ensure_models) configured with
// find_package(modelmgr) and built against it, and once more with pkg-config; the built example syncs a
// model set from the hub emulator. Slow (a few compiles): generous timeouts.

#include "support/hub_fixture.hpp"

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class InstallTest : public HubTest {
protected:
  ProcessResult sh(const std::string& command, std::map<std::string, std::string> extra = {})
  {
    Process p({"/bin/sh", "-c", command}, env(std::move(extra)));
    return p.wait(std::chrono::minutes(15));
  }
  static std::string q(const fs::path& p) { return "'" + p.string() + "'"; }
};

std::optional<fs::path> find_below(const fs::path& root, const std::string& name)
{
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().filename() == name) {
      return e.path();
    }
  }
  return std::nullopt;
}

TEST_F(InstallTest, InstalledPackageBuildsAndRunsTheExample)
{
  // The test binary knows the modelmgr binary's path (build/bin/modelmgr), hence the build tree.
  const fs::path build_dir = fs::path(MODELMGR_BINARY).parent_path().parent_path();
  const fs::path source_dir = MODELMGR_SOURCE_DIR;
  const fs::path prefix = tmp->path() / "prefix";
  auto r = sh("cmake --install " + q(build_dir) + " --prefix " + q(prefix));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  EXPECT_TRUE(fs::exists(prefix / "bin" / "modelmgr"));
  EXPECT_TRUE(fs::exists(prefix / "include" / "modelmgr" / "model_manager.hpp"));
  EXPECT_TRUE(fs::exists(prefix / "include" / "modelmgr" / "pull.hpp"));
  EXPECT_FALSE(fs::exists(prefix / "include" / "cache")); // private headers stay private
  auto config_file = find_below(prefix, "modelmgrConfig.cmake");
  ASSERT_TRUE(config_file);
  ASSERT_TRUE(find_below(prefix, "libmodelmgr_manager.a"));
  ASSERT_TRUE(find_below(prefix, "libmodelmgr_util.a"));
  auto pc = find_below(prefix, "modelmgr.pc");
  ASSERT_TRUE(pc);

  const fs::path example_build = tmp->path() / "example-build";
  r = sh("cmake -S " + q(source_dir / "examples" / "ensure_models") + " -B " + q(example_build) +
         " -DCMAKE_PREFIX_PATH=" + q(prefix) + " -DCMAKE_BUILD_TYPE=Release");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = sh("cmake --build " + q(example_build));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  const fs::path config = tmp->path() / "project" / "modelmgr.yaml";
  write_file(config, "models:\n  - id: tiny\n    repo_id: test-org/tiny-model\n    files: [config.json]\n");
  r = sh(q(example_build / "ensure_models") + " " + q(config));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("downloaded tiny "));
  EXPECT_TRUE(fs::exists(config.parent_path() / "model_manifest.json"));

  // pkg-config lists every layer and the system libraries the static libraries need.
  const std::string pkg = "PKG_CONFIG_PATH=" + q(pc->parent_path()) + " pkg-config";
  r = sh(pkg + " --libs modelmgr");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("-lmodelmgr_manager"));
  EXPECT_THAT(r.out, HasSubstr("-lmodelmgr_util"));
  EXPECT_THAT(r.out, HasSubstr("-lcurl"));
  const fs::path pc_binary = tmp->path() / "ensure_models_pc";
  r = sh("c++ -std=c++20 " + q(source_dir / "examples" / "ensure_models" / "main.cpp") + " -o " +
         q(pc_binary) + " $(" + pkg + " --cflags --libs modelmgr)");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = sh(q(pc_binary) + " " + q(config));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("cached tiny "));
}

} // namespace
} // namespace modelmgr::test
