// The transfer engine through the binary: chunk boundaries at odd sizes, files over 2^31 bytes, the
// bandwidth cap, the free-space preflight, many files under one connection budget, and the file system work
// per file.

#include "support/hub_fixture.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

#include <gmock/gmock.h>
#include <sys/inotify.h>
#include <unistd.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TransferTest : public HubTest {
protected:
  // Adds repo `test-org/sizes` with generated LFS files of the given sizes, named by their size.
  void add_sized_repo(const std::vector<std::uint64_t>& sizes)
  {
    emulator::RepoSpec spec;
    spec.id = "test-org/sizes";
    emulator::CommitSpec commit;
    std::uint64_t seed = 100;
    for (auto size : sizes) {
      commit.files.push_back(
          emulator::FileSpec::generated("f" + std::to_string(size) + ".bin", size, seed++, true));
    }
    spec.commits.push_back(commit);
    hub->add_repo(spec);
  }
  void expect_blob_matches(const std::string& path)
  {
    auto f = repo("test-org/sizes").resolve("main")->find(path);
    ASSERT_NE(f, nullptr);
    const fs::path blob = cache / "models--test-org--sizes" / "blobs" / f->sha256();
    ASSERT_TRUE(fs::exists(blob)) << path;
    ASSERT_EQ(fs::file_size(blob), f->size()) << path;
    if (f->size() <= (64u << 20)) {
      EXPECT_EQ(read_file(blob), f->read(0, static_cast<std::size_t>(f->size()))) << path;
    }
  }
};

TEST_F(TransferTest, ChunkBoundariesAtOddSizes)
{
  const std::vector<std::uint64_t> sizes{1, 2, (1u << 20) - 1, 1u << 20, (1u << 20) + 1, (3u << 20) + 7};
  add_sized_repo(sizes);
  auto r = mm({"pull", "test-org/sizes", "--chunk-size", "1M", "--connections", "4", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (auto size : sizes) {
    expect_blob_matches("f" + std::to_string(size) + ".bin");
  }
  // Every byte crossed the wire once.
  std::uint64_t total = 0;
  for (auto s : sizes) {
    total += s;
  }
  EXPECT_EQ(counters().body_bytes_total, total);
}

TEST_F(TransferTest, FileLargerThanTwoToThe31Bytes)
{
  const std::uint64_t size = (1ull << 31) + 12345;
  add_sized_repo({size});
  hub->warm_hashes();
  auto r = mm({"pull", "test-org/sizes", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = repo("test-org/sizes").resolve("main")->find("f" + std::to_string(size) + ".bin");
  const fs::path blob = cache / "models--test-org--sizes" / "blobs" / f->sha256();
  ASSERT_EQ(fs::file_size(blob), size);
  // The last bytes are where 32-bit offsets would break.
  std::string tail(4096, '\0');
  {
    std::ifstream in(blob, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(size - tail.size()));
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  }
  EXPECT_EQ(tail, f->read(size - tail.size(), tail.size()));
  // No chunk started again from its beginning. The server's count may exceed the size by what was already
  // in the socket when a slow chunk was split or a stalled one cancelled (a loaded CI machine does both), but
  // never by a whole default chunk (64 MiB), let alone the file. It may also fall short by one 1 MiB body
  // write per connection (8): a connection the client closes once its split chunk is done has its last write
  // counted back by the emulator although the client used part of it. The bytes are checked by the hash.
  EXPECT_GE(counters().body_bytes_total + (8ull << 20), size);
  EXPECT_LT(counters().body_bytes_total, size + (64ull << 20));
}

TEST_F(TransferTest, RateLimitCapsTheTotalAcrossConnections)
{
  auto f = repo("test-org/tiny-model").resolve("main")->find("model.safetensors");
  const double rate = 2e6;
  const auto start = std::chrono::steady_clock::now();
  auto r = mm({"pull", "test-org/tiny-model", "model.safetensors", "--limit-rate", "2M", "--chunk-size",
               "512K", "--connections", "4"});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The cap is a lower bound on the time whatever the machine's speed (within 10 %: the limiter allows a
  // 100 ms burst).
  EXPECT_GE(secs, 0.9 * static_cast<double>(f->size()) / rate);
}

TEST_F(TransferTest, FreeSpacePreflightFailsBeforeTheFirstByte)
{
  auto r = mm({"pull", "test-org/tiny-model", "model.safetensors", "weights/big.bin"},
              {{"MODELMGR_TEST_FREE_SPACE", std::to_string(100ull << 20)}});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not enough disk space"));
  EXPECT_THAT(r.err, HasSubstr(cache.string()));
  EXPECT_THAT(r.err, HasSubstr("317.7M")); // 3.1 MB + 314.6 MB needed
  EXPECT_EQ(counters().body_bytes_total, 0u);
  EXPECT_TRUE(list_tree(cache / "models--test-org--tiny-model" / "blobs").empty());
}

TEST_F(TransferTest, ManySmallFilesAreNotSerializedBehindALargeOne)
{
  // With one connection in total the small files must still all finish before the big one starts.
  auto r = mm({"pull", "test-org/tiny-model", "--max-workers", "1", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto c = counters();
  std::size_t big_first = c.log.size();
  std::size_t last_small = 0;
  for (std::size_t i = 0; i < c.log.size(); ++i) {
    if (c.log[i].file_path == "weights/big.bin" && big_first == c.log.size()) {
      big_first = i;
    } else if (!c.log[i].file_path.empty() && c.log[i].file_path != "weights/big.bin") {
      last_small = i;
    }
  }
  EXPECT_LT(last_small, big_first);
}

TEST_F(TransferTest, HostThatPushesBackGetsFewerConnections)
{
  emulator::FaultSpec busy;
  busy.kind = emulator::FaultSpec::Kind::status;
  busy.status = 503;
  busy.path_contains = "model.safetensors";
  busy.times = 3;
  hub->add_fault(busy);
  auto r = mm({"--json", "pull", "test-org/tiny-model", "model.safetensors", "--chunk-size", "512K",
               "--connections", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Three 503s: 8 → 4 → 2 → 1 connections to the CDN, reported in the retry events.
  EXPECT_THAT(r.err, HasSubstr("reduced to 4"));
  EXPECT_THAT(r.err, HasSubstr("reduced to 1"));
  auto f = repo("test-org/tiny-model").resolve("main")->find("model.safetensors");
  EXPECT_EQ(read_file(cache / "models--test-org--tiny-model" / "blobs" / f->sha256()), f->content());
}

TEST_F(TransferTest, SlowLastChunkIsSplitForIdleConnections)
{
  auto big = repo("test-org/tiny-model").resolve("main")->find("weights/big.bin");
  // Chunks of 64 MiB: five for eight connections, the last one [256 MiB, 300 MiB). Three connections are idle
  // from the start, so the split does not depend on how fast the other chunks finish on a loaded machine
  // (with a short last chunk it had to happen before the slow one fell under two minimum pieces).
  const std::uint64_t last_start = 256ull << 20;
  emulator::FaultSpec slow;
  slow.kind = emulator::FaultSpec::Kind::throttle;
  slow.path_contains = "weights/big.bin";
  slow.range_start_at_least = last_start;
  slow.bytes_per_sec = 2'000'000;
  slow.times = 1;
  hub->add_fault(slow);
  auto r = mm({"pull", "test-org/tiny-model", "weights/big.bin", "--chunk-size", "64MiB"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::file_size(cache / "models--test-org--tiny-model" / "blobs" / big->sha256()), big->size());
  // The throttled request kept only the start of the last chunk; other connections took the rest.
  int requests_in_last_chunk = 0;
  std::uint64_t range_requests = 0;
  const auto c = counters();
  for (const auto& rec : c.log) {
    if (rec.file_path == "weights/big.bin" && rec.range.rfind("bytes=", 0) == 0) {
      ++range_requests;
      requests_in_last_chunk += std::stoull(rec.range.substr(6)) >= last_start ? 1 : 0;
    }
  }
  EXPECT_GE(requests_in_last_chunk, 2);
  // No byte was fetched twice except what a cut connection had in flight: at most what its socket holds
  // (loopback buffers grow to a few MiB) per split. Under load the fast chunks may be split too, each such
  // cut wasting its buffer; never a whole chunk fetched again.
  const std::uint64_t splits = range_requests - 5;
  EXPECT_LE(c.bytes_for("weights/big.bin"), big->size() + splits * (8ull << 20));
  EXPECT_LT(c.bytes_for("weights/big.bin"), big->size() + (64ull << 20));
}

TEST_F(TransferTest, ASnapshotProbesTheBlobModeOncePerRun)
{
  // Each blob gets the folder's default file mode, learned by creating and deleting a probe file. Once per
  // file, that was a third of the inodes a snapshot of small files allocates (and ext4 gets slower with
  // every recently deleted inode): the folder is probed once per run.
  const fs::path blobs = cache / "models--test-org--many-files" / "blobs";
  fs::create_directories(blobs);
  const int watch = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(watch, 0);
  ASSERT_GE(::inotify_add_watch(watch, blobs.c_str(), IN_CREATE), 0);
  auto r = mm({"pull", "test-org/many-files", "--include", "dir00/*", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int probes = 0;
  int created = 0;
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::read(watch, buf.data(), buf.size());
    if (n <= 0) {
      break;
    }
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf.data() + off);
      const std::string name = ev->len > 0 ? std::string(ev->name) : std::string();
      probes += name.starts_with(".modelmgr-mode.") ? 1 : 0;
      created += ev->mask & IN_Q_OVERFLOW ? 0 : 1;
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  ::close(watch);
  EXPECT_GE(created, 100) << "the 100 files of dir00/ each have a temp file";
  EXPECT_EQ(probes, 1);
}

} // namespace
} // namespace modelmgr::test
