// `modelmgr start` pieces: the server command template, quoting for display, PATH lookup, the child
// process and the health wait; and the [model]/[server] sections of the project config.

#include "modelmgr/errors.hpp"

#include "manager/config.hpp"
#include "manager/server_launch.hpp"
#include "support/test_util.hpp"

#include <csignal>

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace modelmgr::manager {
namespace {

namespace fs = std::filesystem;
using testing::ElementsAre;
using testing::HasSubstr;

const Placeholders k_values{{"file", "/c/snap/model Q4.gguf"},
                            {"dir", "/c/snap"},
                            {"host", "127.0.0.1"},
                            {"port", "8080"},
                            {"model", "m:Q4_K_M"},
                            {"context", "4096"}};

TEST(ServerCommand, WordsQuotesAndPlaceholders)
{
  EXPECT_THAT(expand_command_template("mistralrs-server --port {port} gguf -m {dir} -f '{file}'", k_values),
              ElementsAre("mistralrs-server", "--port", "8080", "gguf", "-m", "/c/snap", "-f",
                          "/c/snap/model Q4.gguf"));
  EXPECT_THAT(expand_command_template(R"(srv "a b" c\ d --url=http://{host}:{port}/ {{x}} '')", k_values),
              ElementsAre("srv", "a b", "c d", "--url=http://127.0.0.1:8080/", "{x}", ""));
  // A placeholder that expands to a value with spaces stays one word.
  EXPECT_THAT(expand_command_template("srv -m {file}", k_values),
              ElementsAre("srv", "-m", "/c/snap/model Q4.gguf"));
  EXPECT_THAT(default_server_command(k_values), ElementsAre("llama-server", "-m", "/c/snap/model Q4.gguf",
                                                            "--host", "127.0.0.1", "--port", "8080"));
}

TEST(ServerCommand, ErrorsNameTheProblem)
{
  try {
    (void)expand_command_template("srv -m {weights}", k_values);
    FAIL() << "no error";
  } catch (const ConfigurationError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown placeholder {weights}"));
    EXPECT_THAT(e.hint(), HasSubstr("{file}"));
  }
  EXPECT_THROW((void)expand_command_template("srv 'open", k_values), ConfigurationError);
  EXPECT_THROW((void)expand_command_template("srv {file", k_values), ConfigurationError);
  EXPECT_THROW((void)expand_command_template("   ", k_values), ConfigurationError);
}

TEST(ServerCommand, ShellJoinQuotesOnlyWhatNeedsIt)
{
  EXPECT_EQ(shell_join({"llama-server", "-m", "/a/b c.gguf", "--x", "it's", ""}),
            R"(llama-server -m '/a/b c.gguf' --x 'it'\''s' '')");
}

TEST(ServerCommand, FindExecutableOnPath)
{
  test::TempDir dir;
  const fs::path a = dir / "a";
  const fs::path b = dir / "b";
  fs::create_directories(a);
  fs::create_directories(b);
  test::write_file(a / "srv", "not executable");
  test::write_file(b / "srv", "#!/bin/sh\n");
  fs::permissions(b / "srv", fs::perms::owner_all);
  const std::string path = a.string() + ":" + b.string();
  EXPECT_EQ(find_executable("srv", path), b / "srv");
  EXPECT_EQ(find_executable("nothing-here", path), std::nullopt);
  EXPECT_EQ(find_executable((b / "srv").string(), ""), b / "srv");
}

TEST(ServerProcess, ExitStatusAndSignals)
{
  ServerProcess ok({"/bin/sh", "-c", "exit 4"});
  EXPECT_EQ(ok.wait(), 4);
  ServerProcess sleeper({"/bin/sleep", "30"});
  EXPECT_EQ(sleeper.poll(), std::nullopt);
  sleeper.send_signal(SIGTERM);
  EXPECT_EQ(sleeper.wait(), 128 + SIGTERM);
  try {
    ServerProcess missing({"modelmgr-no-such-server-program"});
    FAIL() << "started a missing program";
  } catch (const ModelManagerError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
    EXPECT_THAT(e.what(), HasSubstr("not found on PATH"));
  }
}

// A loopback port that is bound but not listening: connections to it are refused.
class RefusingPort {
public:
  RefusingPort()
  {
    m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    m_port = ntohs(addr.sin_port);
  }
  ~RefusingPort() { ::close(m_fd); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/health"; }

private:
  int m_fd = -1;
  int m_port = 0;
};

TEST(ServerProcess, HealthWaitEndsWhenTheServerExits)
{
  RefusingPort port;
  ServerProcess dies({"/bin/sh", "-c", "exit 3"});
  EXPECT_EQ(wait_for_health(dies, port.url(), std::chrono::minutes(1), nullptr), HealthResult::exited);
  EXPECT_EQ(dies.wait(), 3);
  std::atomic<bool> cancel{true};
  ServerProcess sleeper({"/bin/sleep", "30"});
  EXPECT_EQ(wait_for_health(sleeper, port.url(), std::chrono::minutes(1), &cancel), HealthResult::cancelled);
}

TEST(ProjectConfig, ModelAndServerSections)
{
  auto c = parse_config(R"([model]
spec = "mistral-7b-instruct-v0.3:Q5_K_M"

[server]
command = "llama-server -m {file} --port {port}"
host = "0.0.0.0"
port = 9000
health_path = "/v1/health"
)",
                        Format::toml, "modelmgr.toml");
  EXPECT_EQ(c.model_spec, "mistral-7b-instruct-v0.3:Q5_K_M");
  EXPECT_TRUE(c.models.empty());
  EXPECT_EQ(c.server.command, "llama-server -m {file} --port {port}");
  EXPECT_EQ(c.server.host, "0.0.0.0");
  EXPECT_EQ(c.server.port, 9000);
  EXPECT_EQ(c.server.health_path, "/v1/health");

  auto y = parse_config("model:\n  spec: bge-m3\nmodels:\n  - id: a\n    repo_id: org/a\n", Format::yaml,
                        "m.yaml");
  EXPECT_EQ(y.model_spec, "bge-m3");
  EXPECT_EQ(y.models.size(), 1u);
}

TEST(ProjectConfig, BadServerSectionsAreReportedWithPositions)
{
  try {
    parse_config("[server]\nport = 70000\nhealth_path = \"health\"\nthreads = 3\n", Format::toml,
                 "modelmgr.toml");
    FAIL() << "accepted";
  } catch (const InvalidConfigError& e) {
    const std::string all = e.what();
    EXPECT_THAT(all, HasSubstr("modelmgr.toml:2"));
    EXPECT_THAT(all, HasSubstr("server.port"));
    EXPECT_THAT(all, HasSubstr("must start with '/'"));
    EXPECT_THAT(all, HasSubstr("server.threads"));
  }
}

} // namespace
} // namespace modelmgr::manager

namespace modelmgr::manager {
namespace {

TEST(WithModelSpec, TomlKeepsTheRestOfTheFile)
{
  EXPECT_EQ(with_model_spec("", Format::toml, "a:Q4_K_M", "m.toml"), "[model]\nspec = \"a:Q4_K_M\"\n\n");
  EXPECT_EQ(
      with_model_spec("# c\nverify = \"sha256\"\n\n[[models]]\nid = \"x\"\nrepo_id = \"o/x\"\n", Format::toml,
                      "b", "m.toml"),
      "# c\nverify = \"sha256\"\n\n[model]\nspec = \"b\"\n\n[[models]]\nid = \"x\"\nrepo_id = \"o/x\"\n");
  EXPECT_EQ(with_model_spec("[model]\nspec = \"old\" # chosen\n[server]\nport = 1\n", Format::toml, "new",
                            "m.toml"),
            "[model]\nspec = \"new\"\n[server]\nport = 1\n");
  // A file that was invalid to begin with is not written.
  EXPECT_THROW((void)with_model_spec("[server]\nport = \"x\"\n", Format::toml, "a", "m.toml"), InvalidConfigError);
}

TEST(WithModelSpec, YamlReplacesOrAppends)
{
  EXPECT_EQ(with_model_spec("models:\n  - id: a\n    repo_id: o/a\n", Format::yaml, "m:Q8_0", "m.yaml"),
            "models:\n  - id: a\n    repo_id: o/a\nmodel:\n  spec: \"m:Q8_0\"\n");
  EXPECT_EQ(with_model_spec("model:\n  # picked by hand\n  spec: old\nverify: size\n", Format::yaml, "new",
                            "m.yaml"),
            "model:\n  # picked by hand\n  spec: \"new\"\nverify: size\n");
}

} // namespace
} // namespace modelmgr::manager
