// `modelmgr serve --upstream`: pull-through from the hub emulator into the served cache, through the
// verified download path. A corrupted upstream body is never served, a dropped upstream connection is
// retried, two clients on one miss cause one upstream download, refs are refreshed at most once per
// interval, and --offline never contacts the upstream.

#include "support/hub_fixture.hpp"
#include "support/serve_fixture.hpp"

#include <filesystem>
#include <future>

#include <fmt/format.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;

class ServeUpstreamTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    mirror_root = tmp->path() / "mirror";
    fs::create_directories(mirror_root);
  }

  std::unique_ptr<ServeProcess> serve(std::vector<std::string> extra = {})
  {
    std::vector<std::string> args{"--cache-dir", mirror_root.string(), "--upstream", hub->endpoint()};
    args.insert(args.end(), extra.begin(), extra.end());
    // A generous stall timeout for the mirror's own downloads: the tests stall the upstream on purpose.
    return std::make_unique<ServeProcess>(args, env({{"HF_HUB_DOWNLOAD_TIMEOUT", "30"}}));
  }

  std::string model_url(const ServeProcess& s, const std::string& path, const std::string& rev = "main") const
  {
    return s.endpoint() + "/test-org/tiny-model/resolve/" + rev + "/" + path;
  }

  fs::path mirror_root;
};

TEST_F(ServeUpstreamTest, ColdMissIsFetchedOnceThenServedFromTheCache)
{
  auto s = serve({"--refresh-interval", "3600"});
  const auto client = tmp->path() / "client";
  auto r = mm({"pull", "test-org/tiny-model", "--exclude", "weights/*", "--quiet"},
              {{"HF_ENDPOINT", s->endpoint()}, {"HF_HUB_CACHE", client.string()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto& tiny = repo("test-org/tiny-model");
  for (const auto& f : tiny.main().files) {
    if (!f->path().starts_with("weights/")) {
      EXPECT_EQ(read_file(client / "models--test-org--tiny-model/snapshots" / tiny.main().sha / f->path()),
                f->content())
          << f->path();
      // Now in the mirror's cache too.
      EXPECT_EQ(
          read_file(mirror_root / "models--test-org--tiny-model/snapshots" / tiny.main().sha / f->path()),
          f->content());
    }
  }
  EXPECT_EQ(counters().bytes_for("model.safetensors"), tiny.file("model.safetensors")->size());

  // A second client is served from the cache alone: the upstream sees nothing (refs are fresh, listing
  // cached, bytes present).
  hub->reset_counters();
  r = mm({"pull", "test-org/tiny-model", "--exclude", "weights/*", "--quiet"},
         {{"HF_ENDPOINT", s->endpoint()}, {"HF_HUB_CACHE", (tmp->path() / "client2").string()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(ServeUpstreamTest, CorruptedUpstreamBodyIsNeverServed)
{
  auto s = serve();
  auto model = repo("test-org/tiny-model").file("model.safetensors");
  emulator::FaultSpec flip;
  flip.kind = emulator::FaultSpec::Kind::flip_byte;
  flip.path_contains = "model.safetensors";
  flip.after_bytes = 100;
  flip.times = -1;
  hub->add_fault(flip);
  auto out = tmp->path() / "body.bin";
  auto r = run_curl({"-D", "-", "-o", out.string(), model_url(*s, "model.safetensors")});
  EXPECT_EQ(status_of(r.out), 502) << r.out;
  EXPECT_NE(read_file(out), model->content());
  EXPECT_FALSE(fs::exists(mirror_root / "models--test-org--tiny-model/blobs" / model->sha256()));
  EXPECT_GE(counters().faults_fired, 1u);

  // Once the upstream is healthy the file comes through, verified.
  hub->clear_faults();
  r = run_curl({"-D", "-", "-o", out.string(), model_url(*s, "model.safetensors")});
  EXPECT_EQ(status_of(r.out), 200);
  EXPECT_EQ(read_file(out), model->content());
}

TEST_F(ServeUpstreamTest, DroppedUpstreamConnectionIsRetried)
{
  auto s = serve();
  auto model = repo("test-org/tiny-model").file("model.safetensors");
  emulator::FaultSpec reset;
  reset.kind = emulator::FaultSpec::Kind::reset;
  reset.path_contains = "model.safetensors";
  reset.after_bytes = 1000;
  reset.times = 1;
  hub->add_fault(reset);
  auto out = tmp->path() / "body.bin";
  auto r = run_curl({"-D", "-", "-o", out.string(), model_url(*s, "model.safetensors")});
  EXPECT_EQ(status_of(r.out), 200) << r.out;
  EXPECT_EQ(read_file(out), model->content());
  EXPECT_EQ(counters().faults_fired, 1u);
  EXPECT_GE(counters().gets_for("model.safetensors"), 2u);
}

TEST_F(ServeUpstreamTest, TwoClientsOnOneMissMakeOneUpstreamDownload)
{
  auto s = serve();
  auto model = repo("test-org/tiny-model").file("model.safetensors");
  // The upstream pauses mid-body, so that the second client asks while the first download is in flight.
  emulator::FaultSpec stall;
  stall.kind = emulator::FaultSpec::Kind::stall;
  stall.path_contains = "model.safetensors";
  stall.after_bytes = 1000;
  stall.stall_for = std::chrono::milliseconds(2000);
  stall.times = 1;
  hub->add_fault(stall);
  auto get = [&](const std::string& name) {
    return run_curl({"-D", "-", "-o", (tmp->path() / name).string(), model_url(*s, "model.safetensors")});
  };
  auto first = std::async(std::launch::async, get, "a.bin");
  ASSERT_TRUE(hub->wait_for([](const emulator::Counters& c) { return c.stalls_active == 1; }));
  auto second = std::async(std::launch::async, get, "b.bin");
  EXPECT_EQ(status_of(first.get().out), 200);
  EXPECT_EQ(status_of(second.get().out), 200);
  EXPECT_EQ(read_file(tmp->path() / "a.bin"), model->content());
  EXPECT_EQ(read_file(tmp->path() / "b.bin"), model->content());
  // Every byte of the file left the upstream once.
  EXPECT_EQ(counters().bytes_for("model.safetensors"), model->size());
}

TEST_F(ServeUpstreamTest, RefsAreRefreshedAtMostOncePerInterval)
{
  const std::string old_main = repo("test-org/tiny-model").main().sha;
  {
    auto s = serve({"--refresh-interval", "3600"});
    auto r = run_curl({"-I", model_url(*s, "config.json")});
    EXPECT_EQ(header_of(r.out, "X-Repo-Commit"), old_main);
    std::string moved = hub->add_commit(
        "test-org/tiny-model",
        emulator::CommitSpec{"", {emulator::FileSpec::text("config.json", "{\"v\": 2}")}}, "main");
    ASSERT_NE(moved, old_main);
    const auto before = counters().count(emulator::RouteKind::api_repo_info);
    r = run_curl({"-I", model_url(*s, "config.json")});
    EXPECT_EQ(header_of(r.out, "X-Repo-Commit"), old_main) << "refreshed within the interval";
    EXPECT_EQ(counters().count(emulator::RouteKind::api_repo_info), before);
  }
  // Interval 0: every request checks the upstream, and sees the branch moved.
  auto s = serve({"--refresh-interval", "0"});
  auto r = run_curl({"-D", "-", "-o", (tmp->path() / "c.json").string(), model_url(*s, "config.json")});
  EXPECT_EQ(header_of(r.out, "X-Repo-Commit"), repo("test-org/tiny-model").main().sha);
  EXPECT_EQ(read_file(tmp->path() / "c.json"), "{\"v\": 2}");
}

TEST_F(ServeUpstreamTest, OfflineNeverContactsTheUpstream)
{
  auto s = serve({"--offline"});
  auto r = run_curl({"-I", model_url(*s, "config.json")});
  EXPECT_EQ(status_of(r.out), 404);
  EXPECT_EQ(header_of(r.out, "X-Error-Code"), "RepoNotFound");
  EXPECT_EQ(total_requests(), 0u);
}

TEST_F(ServeUpstreamTest, RedirectAboveSendsBigMissesToTheUpstreamWhileTheMirrorFetches)
{
  auto s = serve({"--redirect-above", "1M"});
  const auto& tiny = repo("test-org/tiny-model");
  auto model = tiny.file("model.safetensors"); // 3 MiB: redirected
  auto r = run_curl({"-D", "-", "-o", "/dev/null", model_url(*s, "model.safetensors")});
  EXPECT_EQ(status_of(r.out), 302);
  EXPECT_EQ(header_of(r.out, "Location"),
            hub->endpoint() + "/test-org/tiny-model/resolve/" + tiny.main().sha + "/model.safetensors");
  EXPECT_EQ(header_of(r.out, "X-Linked-Etag"), "\"" + model->sha256() + "\"");
  // A small file is still waited for and served by the mirror.
  r = run_curl({"-D", "-", "-o", "/dev/null", model_url(*s, "config.json")});
  EXPECT_EQ(status_of(r.out), 200);
  // modelmgr follows the redirect and verifies what the upstream sends.
  auto client = tmp->path() / "client";
  auto p = mm({"pull", "test-org/tiny-model", "model.safetensors", "--quiet"},
              {{"HF_ENDPOINT", s->endpoint()}, {"HF_HUB_CACHE", client.string()}});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(
      read_file(client / "models--test-org--tiny-model/snapshots" / tiny.main().sha / "model.safetensors"),
      model->content());
  // Meanwhile the mirror fetched it into its cache: once there, it is served from the cache (bounded poll:
  // the background download has no event a client could wait on).
  int status = 0;
  for (int i = 0; i < 2000 && status != 200; ++i) {
    status = status_of(run_curl({"-D", "-", "-o", "/dev/null", model_url(*s, "model.safetensors")}).out);
  }
  EXPECT_EQ(status, 200);
  EXPECT_EQ(read_file(mirror_root / "models--test-org--tiny-model/snapshots" / tiny.main().sha /
                      "model.safetensors"),
            model->content());
}

} // namespace
} // namespace modelmgr::test
