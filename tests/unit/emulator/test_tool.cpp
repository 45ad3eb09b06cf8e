// The standalone modelmgr-hub-emulator binary: readiness line, serving, clean exit on SIGTERM.

#include "http_client.hpp"

#include <csignal>
#include <cstdio>
#include <filesystem>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace modelmgr::emulator::test;

namespace {

std::filesystem::path tool_path()
{
#ifdef MODELMGR_BINARY
  return std::filesystem::path(MODELMGR_BINARY).parent_path() / "modelmgr-hub-emulator";
#else
  return {};
#endif
}

} // namespace

TEST(EmulatorTool, PrintsEndpointsServesAndExitsOnSigterm)
{
  auto path = tool_path();
  if (path.empty() || !std::filesystem::exists(path)) {
    GTEST_SKIP() << "modelmgr-hub-emulator not built (" << path << ")";
  }
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(path.c_str(), path.c_str(), "--port", "0", "--cdn-port", "0", "--big-file-size", "12345", "--demo",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* stream = fdopen(out[0], "r");
  char line[512] = {};
  ASSERT_NE(fgets(line, sizeof line, stream), nullptr);
  std::string text(line);
  ASSERT_TRUE(text.starts_with("endpoint=http://127.0.0.1:")) << text;
  auto space = text.find(" cdn=http://127.0.0.1:");
  ASSERT_NE(space, std::string::npos) << text;
  EXPECT_TRUE(text.ends_with("\n"));
  std::string endpoint = text.substr(9, space - 9);

  auto big = http_follow("GET", endpoint + "/bench/big/resolve/main/big.bin");
  EXPECT_EQ(big.status, 200);
  EXPECT_EQ(big.body.size(), 12345u);
  EXPECT_EQ(http_head(endpoint + "/BAAI/bge-m3/resolve/main/config.json").status, 307);
  EXPECT_EQ(http_head(endpoint + "/test-org/tiny-model/resolve/main/config.json").status, 307);

  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  fclose(stream);
}
