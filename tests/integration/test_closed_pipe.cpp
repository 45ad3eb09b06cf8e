// Output nobody reads any more: `modelmgr pull ... | head -1`, a CI log collector that went away, a closed
// stderr. The command ends quietly with the documented status (never an abort), nothing unverified appears
// under a final name, and the next run completes. Also the library's own barrier: an observer that throws
// stops the run cleanly instead of unwinding through libcurl and out of a worker thread.

#include "modelmgr/pull.hpp"

#include "support/hub_fixture.hpp"

#include <atomic>
#include <stdexcept>

#include <gmock/gmock.h>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;
using emulator::FaultSpec;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

const std::string k_tiny = "models--test-org--tiny-model";
// 128 + SIGPIPE, documented in the README ("Exit codes").
constexpr int k_exit_output_closed = 141;

class ClosedPipeTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    big = repo("test-org/tiny-model").resolve("main")->find("weights/big.bin");
    // 300 MiB at 2 MiB/s per connection: at least 15 s with every connection busy, so the download is
    // still running whenever the output goes away (a cancelled run ends long before).
    FaultSpec slow;
    slow.kind = FaultSpec::Kind::throttle;
    slow.path_contains = "weights/big.bin";
    slow.times = -1;
    slow.bytes_per_sec = 2ull << 20;
    hub->add_fault(slow);
  }

  std::vector<std::string> pull_args(std::vector<std::string> extra = {}) const
  {
    std::vector<std::string> args{modelmgr_binary(), "pull", "test-org/tiny-model", "weights/big.bin"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  fs::path blob() const { return cache / k_tiny / "blobs" / big->sha256(); }
  fs::path incomplete() const { return cache / k_tiny / "blobs" / (big->sha256() + ".modelmgr.incomplete"); }

  // No crash message, no error text: a closed pipe is a quiet end.
  static void expect_quiet(const ProcessResult& r)
  {
    EXPECT_THAT(r.err, Not(HasSubstr("terminate")));
    EXPECT_THAT(r.err, Not(HasSubstr("error")));
  }

  // Whatever the stopped run left is either absent or verified, and a plain run then completes.
  void expect_cache_clean_and_next_run_completes()
  {
    auto verify = mm({"cache", "verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    hub->clear_faults();
    auto again = mm({"pull", "test-org/tiny-model", "weights/big.bin"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(again.out, (cache / k_tiny / "snapshots" / repo("test-org/tiny-model").resolve("main")->sha /
                          "weights" / "big.bin")
                                 .string() +
                             "\n");
    EXPECT_EQ(fs::file_size(blob()), big->size());
    EXPECT_FALSE(fs::exists(incomplete()));
    verify = mm({"cache", "verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  }

  std::shared_ptr<const emulator::RepoFile> big;
};

// `modelmgr --json pull ... 2>&1 | head -1`: JSON progress lines arrive about ten times a second, so the
// first write after the reader left happens mid-download.
TEST_F(ClosedPipeTest, ReaderThatLeavesAfterTheFirstLineStopsTheDownloadResumably)
{
  Process p(pull_args({"--json"}), env(), Stdio{Stream::captured, Stream::to_stdout});
  ASSERT_TRUE(p.wait_for_output("\n"));
  p.close_stdout();
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, k_exit_output_closed) << r.out;
  EXPECT_FALSE(fs::exists(blob())) << "an unfinished file must not appear under its final name";
  // The partial file and its resume state stay for the next run.
  EXPECT_TRUE(fs::exists(incomplete()));
  expect_cache_clean_and_next_run_completes();
}

// `modelmgr pull ... 2>&1 | head -1` with the plain progress lines of a log (no terminal).
TEST_F(ClosedPipeTest, PlainProgressIntoAReaderThatLeavesEndsWithTheClosedPipeStatus)
{
  Process p(pull_args(), env(), Stdio{Stream::captured, Stream::to_stdout});
  ASSERT_TRUE(p.wait_for_output("\n"));
  p.close_stdout();
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, k_exit_output_closed) << r.out;
  EXPECT_FALSE(fs::exists(blob()));
  expect_cache_clean_and_next_run_completes();
}

// stderr into a pipe whose reader is gone from the start: the first progress line fails, the download
// stops, stdout stays empty (no path is printed for a file that is not there).
TEST_F(ClosedPipeTest, StderrWithoutReaderStopsTheDownloadQuietly)
{
  Process p(pull_args(), env(), Stdio{Stream::captured, Stream::reader_gone});
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, k_exit_output_closed);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_FALSE(fs::exists(blob()));
  expect_cache_clean_and_next_run_completes();
}

// stdout into a pipe whose reader is gone: pull only prints the paths at the end, so the download
// completes (verified) and then the command reports the closed pipe, without an error message.
TEST_F(ClosedPipeTest, StdoutWithoutReaderEndsQuietlyWithTheClosedPipeStatus)
{
  hub->clear_faults();
  Process p(pull_args(), env(), Stdio{Stream::reader_gone, Stream::captured});
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, k_exit_output_closed) << r.err;
  expect_quiet(r);
  EXPECT_EQ(fs::file_size(blob()), big->size());
  expect_cache_clean_and_next_run_completes();
}

// With two --add targets and stdout gone after the first, the second is not downloaded for no one.
TEST_F(ClosedPipeTest, StdoutWithoutReaderStopsBeforeTheNextRepo)
{
  hub->clear_faults();
  Process p({modelmgr_binary(), "pull", "--add", "test-org/tiny-model", "config.json", "--add",
             "test-org/tiny-embed", "config.json"},
            env(), Stdio{Stream::reader_gone, Stream::captured});
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, k_exit_output_closed) << r.err;
  expect_quiet(r);
  EXPECT_TRUE(fs::exists(cache / k_tiny));
  EXPECT_FALSE(fs::exists(cache / "models--test-org--tiny-embed"));
}

// `2>&-`: a closed stderr is like /dev/null. Without care the first file the process opens takes
// descriptor 2 and progress text is written into it.
TEST_F(ClosedPipeTest, ClosedStderrDescriptorIsLikeDevNull)
{
  hub->clear_faults();
  Process p(pull_args(), env(), Stdio{Stream::captured, Stream::closed});
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("big.bin"));
  EXPECT_EQ(fs::file_size(blob()), big->size());
  auto verify = mm({"cache", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// The library's own barrier, for observers other than the CLI's: an observer that throws from its first
// bytes event on (inside libcurl's write callback on a worker thread, then on the `failed` event the engine
// sends from outside any try block) does not reach std::terminate: the run stops, and the first exception
// comes back out of pull() once every worker has joined; the partial file stays resumable.
class ThrowingObserver : public ProgressObserver {
public:
  void on_event(const ProgressEvent& e) override
  {
    if (e.type == EventType::bytes || broken) {
      broken = true;
      throw std::runtime_error("observer gave up");
    }
  }
  std::atomic<bool> broken{false};
};

TEST_F(ClosedPipeTest, ObserverThatThrowsStopsTheRunAndItsExceptionComesBack)
{
  ThrowingObserver observer;
  PullOptions o;
  o.repo_id = "test-org/tiny-model";
  o.files = {"weights/big.bin"};
  o.cache_dir = cache;
  o.endpoint = hub->endpoint();
  o.observer = &observer;
  try {
    pull(o);
    FAIL() << "pull() returned although the observer threw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "observer gave up");
  }
  EXPECT_FALSE(fs::exists(blob()));
  EXPECT_TRUE(fs::exists(incomplete()));
  expect_cache_clean_and_next_run_completes();
}

} // namespace
} // namespace modelmgr::test
