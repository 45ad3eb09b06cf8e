// `modelmgr cache ls|scan|du` on caches the binary itself filled from the hub emulator: the JSON numbers
// must equal what is on disk, filters and sort must select and order, bad expressions exit with 2.

#include "support/hub_fixture.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include <gmock/gmock.h>
#include <sys/stat.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CacheCliTest : public HubTest {
protected:
  nlohmann::json ls_json(std::vector<std::string> extra = {})
  {
    std::vector<std::string> args = {"cache", "ls", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = mm(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }

  // Distinct inodes and their apparent sizes under `dir`, following snapshot links: what "on disk"
  // means for a repo.
  static std::pair<std::uint64_t, std::size_t> disk_usage(const fs::path& dir)
  {
    std::set<std::pair<dev_t, ino_t>> seen;
    std::uint64_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir / "snapshots")) {
      struct stat st {};
      if (::stat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
          seen.insert({st.st_dev, st.st_ino}).second) {
        bytes += static_cast<std::uint64_t>(st.st_size);
      }
    }
    return {bytes, seen.size()};
  }
};

TEST_F(CacheCliTest, LsJsonNumbersEqualTheFilesOnDisk)
{
  // Two revisions of tiny-model sharing most blobs, plus a dataset.
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--exclude", "weights/*"}).exit_code, 0);
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "--revision", "v1.0", "--exclude", "weights/*"}).exit_code, 0);
  ASSERT_EQ(mm({"pull", "test-org/tiny-dataset", "--repo-type", "dataset"}).exit_code, 0);

  const auto j = ls_json({"--revisions"});
  ASSERT_EQ(j["repos"].size(), 2u) << j.dump(1);
  std::uint64_t total = 0;
  for (const auto& repo : j["repos"]) {
    const auto [bytes, files] = disk_usage(repo["path"].get<std::string>());
    EXPECT_EQ(repo["size_on_disk"].get<std::uint64_t>(), bytes) << repo["id"];
    EXPECT_EQ(repo["nb_files"].get<std::size_t>(), files) << repo["id"];
    // Every blob is referenced by a snapshot, so the blobs folder holds exactly the same bytes.
    std::uint64_t blob_bytes = 0;
    for (const auto& b : fs::directory_iterator(fs::path(repo["path"].get<std::string>()) / "blobs")) {
      blob_bytes += fs::file_size(b.path());
    }
    EXPECT_EQ(blob_bytes, bytes);
    total += bytes;
  }
  EXPECT_EQ(j["totals"]["size_on_disk"].get<std::uint64_t>(), total);
  EXPECT_EQ(j["totals"]["repos"], 2);
  EXPECT_EQ(j["totals"]["revisions"], 3);

  const auto& tiny = j["repos"][0]["id"] == "model/test-org/tiny-model" ? j["repos"][0] : j["repos"][1];
  EXPECT_EQ(tiny["id"], "model/test-org/tiny-model");
  EXPECT_EQ(tiny["refs"]["main"], repo("test-org/tiny-model").resolve("main")->sha);
  EXPECT_EQ(tiny["refs"]["v1.0"], repo("test-org/tiny-model").resolve("v1.0")->sha);
  ASSERT_EQ(tiny["revisions"].size(), 2u);
  std::uint64_t rev_sum = 0;
  for (const auto& rev : tiny["revisions"]) {
    rev_sum += rev["size_on_disk"].get<std::uint64_t>();
    std::uint64_t files = 0;
    for (const auto& f : rev["files"]) {
      EXPECT_EQ(f["size"].get<std::uint64_t>(), fs::file_size(f["file_path"].get<std::string>()));
      files += 1;
    }
    EXPECT_EQ(files, rev["files"].size());
  }
  // Blobs shared by v1.0 and main are counted once for the repo.
  EXPECT_GT(rev_sum, tiny["size_on_disk"].get<std::uint64_t>());

  // Python's lock files stay after a download: reported as stale locks, nothing else is wrong.
  for (const auto& p : j["problems"]) {
    EXPECT_EQ(p["kind"], "stale_lock") << p.dump();
  }
}

TEST_F(CacheCliTest, HumanTableFooterAndProblems)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "config.json"}).exit_code, 0);
  const fs::path blobs = cache / "models--test-org--tiny-model" / "blobs";
  std::ofstream(blobs / "deadbeef.modelmgr.incomplete") << "partial";

  auto r = mm({"cache", "ls"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("ID"));
  EXPECT_THAT(r.out, HasSubstr("LAST_ACCESSED"));
  EXPECT_THAT(r.out, HasSubstr("model/test-org/tiny-model"));
  EXPECT_THAT(r.out, HasSubstr("main"));
  EXPECT_THAT(r.out, HasSubstr("Found 1 repo(s) for a total of 1 revision(s) and 186.0 on disk."));
  EXPECT_THAT(r.out, HasSubstr("[temp_file]"));
  EXPECT_THAT(r.out, HasSubstr("deadbeef.modelmgr.incomplete"));

  // `scan` is an alias; --revisions shows the commit.
  auto s = mm({"cache", "scan", "--revisions"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_THAT(s.out, HasSubstr(repo("test-org/tiny-model").resolve("main")->sha));
  EXPECT_THAT(s.out, HasSubstr("REVISION"));
}

TEST_F(CacheCliTest, FilterAndSort)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "config.json"}).exit_code, 0);
  ASSERT_EQ(mm({"pull", "test-org/private-model"}, {{"HF_TOKEN", "hf_test_token_with_access"}}).exit_code, 0);
  ASSERT_EQ(mm({"pull", "test-org/tiny-dataset", "--repo-type", "dataset"}).exit_code, 0);

  const auto ids = [](const nlohmann::json& j) {
    std::vector<std::string> out;
    for (const auto& r : j["repos"]) {
      out.push_back(r["id"]);
    }
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(
      ids(ls_json({"--sort", "size"})),
      (V{"dataset/test-org/tiny-dataset", "model/test-org/private-model", "model/test-org/tiny-model"}));
  EXPECT_EQ(
      ids(ls_json({"--sort", "size:asc"})),
      (V{"model/test-org/tiny-model", "model/test-org/private-model", "dataset/test-org/tiny-dataset"}));
  EXPECT_EQ(ids(ls_json({"--filter", "type=model"})),
            (V{"model/test-org/private-model", "model/test-org/tiny-model"}));
  EXPECT_EQ(ids(ls_json({"--filter", "type=model", "--filter", "size>1M"})),
            (V{"model/test-org/private-model"}));
  EXPECT_EQ(ids(ls_json({"-f", "size<1K"})), (V{"model/test-org/tiny-model"}));
  // Just downloaded: nothing is older than a day, everything was modified within one.
  EXPECT_TRUE(ids(ls_json({"--filter", "accessed>1d"})).empty());
  EXPECT_EQ(ids(ls_json({"--filter", "modified<1d"})).size(), 3u);
  const auto filtered = ls_json({"--filter", "type=dataset"});
  EXPECT_EQ(filtered["totals"]["repos"], 1);
  EXPECT_EQ(filtered["totals"]["size_on_disk"], filtered["repos"][0]["size_on_disk"]);
}

TEST_F(CacheCliTest, BadFilterOrSortExitsWithUsageCode)
{
  auto r = mm({"cache", "ls", "--filter", "size>lots"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("invalid filter 'size>lots'"));
  EXPECT_EQ(mm({"cache", "ls", "--filter", "colour=red"}).exit_code, 2);
  EXPECT_EQ(mm({"cache", "ls", "--sort", "bogus"}).exit_code, 2);
  auto j = mm({"cache", "ls", "--json", "-f", "type=kernel"});
  EXPECT_EQ(j.exit_code, 2);
  EXPECT_EQ(nlohmann::json::parse(j.err)["error"]["kind"], "usage");
}

TEST_F(CacheCliTest, EmptyOrMissingCacheIsNotAnError)
{
  auto r = mm({"cache", "ls", "--cache-dir", (tmp->path() / "nowhere").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Found 0 repo(s) for a total of 0 revision(s) and 0.0 on disk."));
  r = mm({"cache", "ls", "--json", "--revisions", "--cache-dir", (tmp->path() / "nowhere").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["exists"], false);
  EXPECT_EQ(j["repos"], nlohmann::json::array());
  EXPECT_EQ(j["totals"]["repos"], 0);
}

TEST_F(CacheCliTest, DuReportsTotalsPerTypeAndFreeSpace)
{
  ASSERT_EQ(mm({"pull", "test-org/tiny-model", "config.json"}).exit_code, 0);
  ASSERT_EQ(mm({"pull", "test-org/tiny-dataset", "--repo-type", "dataset"}).exit_code, 0);
  auto r = mm({"cache", "du", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto ls = ls_json();
  EXPECT_EQ(j["size_on_disk"], ls["totals"]["size_on_disk"]);
  EXPECT_EQ(j["per_type"]["model"].get<std::uint64_t>(), 186u);
  EXPECT_EQ(j["per_type"]["model"].get<std::uint64_t>() + j["per_type"]["dataset"].get<std::uint64_t>(),
            j["size_on_disk"].get<std::uint64_t>());
  EXPECT_GT(j["free_space"].get<std::uint64_t>(), 0u);
  auto h = mm({"cache", "du"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_THAT(h.out, HasSubstr("Free space:"));
  EXPECT_THAT(h.out, HasSubstr("datasets:"));
}

} // namespace
} // namespace modelmgr::test
