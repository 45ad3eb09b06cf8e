// `modelmgr start`: the model is ensured (downloaded on first use, from the cache after), the server runs
// with the right arguments, is waited for until healthy, gets SIGINT/SIGTERM forwarded, and its exit
// status becomes modelmgr's. The server is a stand-in that records its arguments (tests/stand_in).

#include "support/hub_fixture.hpp"

#include <csignal>
#include <fstream>
#include <regex>

namespace modelmgr::test {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> read_lines(const fs::path& p)
{
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

class StartTest : public HubTest {
protected:
  void SetUp() override
  {
    HubTest::SetUp();
    emulator::RepoSpec spec;
    spec.id = "test-org/Start-Chat-GGUF";
    emulator::CommitSpec commit;
    commit.files.push_back(emulator::FileSpec::generated("start-chat.Q4_K_M.gguf", 3000, 41, true, "GGUF"));
    commit.files.push_back(emulator::FileSpec::generated("start-chat.Q8_0.gguf", 5000, 42, true, "GGUF"));
    commit.files.push_back(emulator::FileSpec::text("README.md", "# start chat\n"));
    spec.commits.push_back(commit);
    hub->add_repo(spec);

    xdg = tmp->path() / "xdg";
    fs::create_directories(xdg / "modelmgr");
    std::ofstream(xdg / "modelmgr" / "catalog.toml") << R"([[model]]
id = "start-chat"
name = "Start Chat"
hf_repo = "test-org/Start-Chat-GGUF"
revision = "main"
format = "gguf"
use_cases = ["chat", "stand-in"]
context_length = 2048
license = "apache-2.0"
description = "A tiny stand-in chat model for tests."

[[model.variant]]
quantization = "Q4_K_M"
file = "start-chat.Q4_K_M.gguf"
size_bytes = 3000
min_ram_bytes = 100000
default = true

[[model.variant]]
quantization = "Q8_0"
file = "start-chat.Q8_0.gguf"
size_bytes = 5000
min_ram_bytes = 200000
)";
    bin = tmp->path() / "bin";
    fs::create_directories(bin);
    fs::create_symlink(MODELMGR_STAND_IN_SERVER, bin / "llama-server");
    record = tmp->path() / "server-args.txt";
    project = tmp->path() / "project";
    fs::create_directories(project);
  }

  std::map<std::string, std::string> start_env(std::map<std::string, std::string> extra = {}) const
  {
    auto e = env(std::move(extra));
    e["XDG_CONFIG_HOME"] = xdg.string();
    e.emplace("PATH", bin.string() + ":/usr/bin:/bin");
    e["STAND_IN_RECORD"] = record.string();
    return e;
  }

  std::unique_ptr<Process> start(const std::vector<std::string>& args,
                                 std::map<std::string, std::string> extra = {})
  {
    std::vector<std::string> argv{modelmgr_binary(), "start"};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<Process>(argv, start_env(std::move(extra)));
  }

  fs::path snapshot_file(const std::string& name) const
  {
    const fs::path repo = cache / "models--test-org--Start-Chat-GGUF";
    std::ifstream ref(repo / "refs" / "main");
    std::string commit;
    ref >> commit;
    return repo / "snapshots" / commit / name;
  }

  fs::path xdg, bin, record, project;
};

TEST_F(StartTest, DownloadsOnFirstUseWaitsForHealthForwardsSigtermAndExitsWithTheServersStatus)
{
  auto p = start({"--model", "start-chat", "--port", "0"},
                 {{"STAND_IN_EXIT_CODE", "7"}, {"STAND_IN_LOADING_POLLS", "3"}});
  ASSERT_TRUE(p->wait_for_output("Server ready: http://127.0.0.1:")) << p->wait().err;
  const auto args = read_lines(record);
  ASSERT_EQ(args.size(), 6u);
  EXPECT_EQ(args[0], "-m");
  EXPECT_EQ(fs::path(args[1]), snapshot_file("start-chat.Q4_K_M.gguf"));
  EXPECT_TRUE(fs::exists(args[1]));
  EXPECT_EQ(args[2], "--host");
  EXPECT_EQ(args[3], "127.0.0.1");
  EXPECT_EQ(args[4], "--port");
  EXPECT_GT(std::stoi(args[5]), 0);
  p->signal(SIGTERM);
  auto r = p->wait();
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("Downloading start-chat:Q4_K_M"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("http://127.0.0.1:" + args[5]), std::string::npos) << r.out;
  EXPECT_EQ(read_lines(record).back(), "signal=" + std::to_string(SIGTERM));
  // Only the variant asked for was fetched.
  EXPECT_FALSE(fs::exists(snapshot_file("start-chat.Q8_0.gguf")));
}

TEST_F(StartTest, SecondRunUsesTheCachedModelWithoutAnyRequestAndForwardsSigint)
{
  ASSERT_EQ(mm({"models", "download", "start-chat"}, {{"XDG_CONFIG_HOME", xdg.string()}}).exit_code, 0);
  hub->reset_counters();
  auto p = start({"--model", "start-chat", "--port", "0"});
  ASSERT_TRUE(p->wait_for_output("Server ready:")) << p->wait().err;
  p->signal(SIGINT);
  auto r = p->wait();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("Using cached model: start-chat:Q4_K_M"), std::string::npos) << r.err;
  EXPECT_EQ(total_requests(), 0u);
  EXPECT_EQ(read_lines(record).back(), "signal=" + std::to_string(SIGINT));
}

TEST_F(StartTest, ProjectConfigChoosesTheModelAndTheServerTemplateExtraArgsFollow)
{
  std::ofstream(project / "modelmgr.toml") << R"([model]
spec = "start-chat:q8_0"

[server]
command = "llama-server --model-dir {dir} -m '{file}' --host {host} --port {port} --alias {model} --ctx {context}"
)";
  auto p = start({"--config", (project / "modelmgr.toml").string(), "--port", "0", "--", "--threads", "2"});
  ASSERT_TRUE(p->wait_for_output("Server ready:")) << p->wait().err;
  p->signal(SIGTERM);
  auto r = p->wait();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto args = read_lines(record);
  ASSERT_EQ(args.size(), 15u) << r.err;
  const fs::path file = snapshot_file("start-chat.Q8_0.gguf");
  EXPECT_EQ(args[0], "--model-dir");
  EXPECT_EQ(fs::path(args[1]), file.parent_path());
  EXPECT_EQ(fs::path(args[3]), file);
  EXPECT_EQ(args[8], "--alias");
  EXPECT_EQ(args[9], "start-chat:Q8_0");
  EXPECT_EQ(args[10], "--ctx");
  EXPECT_EQ(args[11], "2048");
  EXPECT_EQ(args[12], "--threads");
  EXPECT_EQ(args[13], "2");
}

TEST_F(StartTest, WithoutAServerProgramItPrintsTheCommandItWouldRun)
{
  fs::remove(bin / "llama-server");
  auto r = run_modelmgr({"start", "--model", "start-chat", "--port", "9"}, start_env());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("would run: llama-server -m " + snapshot_file("start-chat.Q4_K_M.gguf").string() +
                       " --host 127.0.0.1 --port 9"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("llama-server' not found on PATH"), std::string::npos) << r.err;
}

TEST_F(StartTest, NoModelChosenOffATerminalNamesModelFlag)
{
  std::ofstream(project / "modelmgr.toml") << "[server]\nport = 8081\n";
  auto r = run_modelmgr({"start", "--config", (project / "modelmgr.toml").string()}, start_env());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("no model chosen"), std::string::npos) << r.err;
  // The same file is a valid model set with nothing to sync, and says so.
  auto sync = run_modelmgr({"sync", "--config", (project / "modelmgr.toml").string()}, start_env());
  EXPECT_EQ(sync.exit_code, 0) << sync.err;
  EXPECT_NE(sync.err.find("lists no models"), std::string::npos) << sync.err;
  EXPECT_NE(r.err.find("--model ID"), std::string::npos) << r.err;
}

TEST_F(StartTest, ServerThatDiesBeforeItIsReadyIsAnError)
{
  auto r =
      run_modelmgr({"start", "--model", "start-chat", "--port", "0"}, start_env({{"STAND_IN_FAIL", "3"}}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("exited with status 3 before it was ready"), std::string::npos) << r.err;
}

TEST_F(StartTest, ServesAFileGivenByPath)
{
  const fs::path file = tmp->path() / "my model.gguf";
  std::ofstream(file) << "GGUF";
  auto p = start({"--file", file.string(), "--port", "0"});
  ASSERT_TRUE(p->wait_for_output("Server ready:")) << p->wait().err;
  p->signal(SIGTERM);
  auto r = p->wait();
  EXPECT_EQ(r.exit_code, 0);
  auto args = read_lines(record);
  ASSERT_GE(args.size(), 2u);
  EXPECT_EQ(args[1], file.string());
  EXPECT_EQ(total_requests(), 0u);
}

// The menu number of `spec` in what a `models select` menu printed.
std::string menu_number(const std::string& output, const std::string& spec)
{
  std::smatch m;
  const std::regex line("([0-9]+)\\) " + spec + " ");
  return std::regex_search(output, m, line) ? m[1].str() : std::string();
}

TEST_F(StartTest, SelectShowsTheMenuDownloadsTheChoiceAndWritesItIntoTheProjectConfig)
{
  const fs::path config = project / "modelmgr.toml";
  std::ofstream(config) << "# my project\ncache_dir = \"" << cache.string()
                        << "\"\n\n[server]\nport = 8081\n";
  PtyProcess p({modelmgr_binary(), "models", "select", "--use-case", "stand-in", "--config", config.string()},
               start_env());
  ASSERT_TRUE(p.wait_for("Choose a model [1-2] (Enter = 2)")) << p.output();
  EXPECT_NE(p.output().find("Your system: "), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("start-chat:Q8_0"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("<- recommended"), std::string::npos) << p.output();
  EXPECT_NE(p.output().find("A tiny stand-in chat model for tests."), std::string::npos) << p.output();
  p.write("7\r");
  ASSERT_TRUE(p.wait_for("not one of the numbers 1 to 2")) << p.output();
  p.write(menu_number(p.output(), "start-chat:Q4_K_M") + "\r");
  ASSERT_TRUE(p.wait_for("Saved to")) << p.output();
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(fs::exists(snapshot_file("start-chat.Q4_K_M.gguf")));
  std::ifstream in(config);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "# my project\ncache_dir = \"" + cache.string() +
                      "\"\n\n[model]\nspec = \"start-chat:Q4_K_M\"\n\n[server]\nport = 8081\n");
}

TEST_F(StartTest, SelectOffATerminalNamesTheModelFlag)
{
  auto r = run_modelmgr({"models", "select", "--config", (project / "modelmgr.toml").string()}, start_env());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("needs a terminal"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--model ID"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(project / "modelmgr.toml"));
}

TEST_F(StartTest, StartOnATerminalWithoutAModelRunsTheSelectFlowFirst)
{
  const fs::path config = project / "modelmgr.yaml";
  std::ofstream(config) << "server:\n  host: 127.0.0.1\n";
  PtyProcess p({modelmgr_binary(), "start", "--config", config.string(), "--port", "0"}, start_env());
  ASSERT_TRUE(p.wait_for("Choose a model")) << p.output();
  const std::string n = menu_number(p.output(), "start-chat:Q8_0");
  ASSERT_FALSE(n.empty()) << p.output();
  p.write(n + "\r");
  ASSERT_TRUE(p.wait_for("Server ready: http://127.0.0.1:")) << p.output();
  ::kill(p.pid(), SIGTERM);
  auto r = p.wait();
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(fs::exists(snapshot_file("start-chat.Q8_0.gguf")));
  std::ifstream in(config);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "server:\n  host: 127.0.0.1\nmodel:\n  spec: \"start-chat:Q8_0\"\n");
  EXPECT_EQ(fs::path(read_lines(record).at(1)), snapshot_file("start-chat.Q8_0.gguf"));
}

TEST_F(StartTest, TheProjectConfigCanBringItsOwnCatalog)
{
  std::ofstream(project / "team.toml") << R"([[model]]
id = "team-chat"
name = "Team Chat"
hf_repo = "test-org/Start-Chat-GGUF"
format = "gguf"
use_cases = ["chat"]
description = "The team's pick."

[[model.variant]]
quantization = "Q8_0"
file = "start-chat.Q8_0.gguf"
size_bytes = 5000
min_ram_bytes = 200000
)";
  std::ofstream(project / "modelmgr.toml") << "catalog = \"team.toml\"\n\n[model]\nspec = \"team-chat\"\n";
  auto r = run_modelmgr(
      {"start", "--config", (project / "modelmgr.toml").string(), "--dry-run", "--port", "9"}, start_env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "llama-server -m " + snapshot_file("start-chat.Q8_0.gguf").string() +
                       " --host 127.0.0.1 --port 9\n");
  std::ofstream(project / "modelmgr.toml") << "catalog = \"missing.toml\"\n[model]\nspec = \"team-chat\"\n";
  r = run_modelmgr({"start", "--config", (project / "modelmgr.toml").string(), "--dry-run"}, start_env());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("missing.toml"), std::string::npos) << r.err;
}

TEST_F(StartTest, AServerThatNeverBecomesHealthyIsStoppedAfterTheTimeout)
{
  auto r = run_modelmgr({"start", "--model", "start-chat", "--port", "0", "--health-timeout", "2"},
                        start_env({{"STAND_IN_LOADING_POLLS", "1000000"}}));
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("did not answer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--health-timeout"), std::string::npos) << r.err;
  // It was stopped with SIGTERM, not left running (on a very slow machine the stand-in may not even have
  // started listening, and so recorded nothing, before the deadline).
  const auto lines = read_lines(record);
  if (!lines.empty()) {
    EXPECT_EQ(lines.back(), "signal=" + std::to_string(SIGTERM));
  }
}

} // namespace
} // namespace modelmgr::test
