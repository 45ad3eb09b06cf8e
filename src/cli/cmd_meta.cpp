// Hidden commands that describe the CLI itself, from the same CLI11 objects that parse it (so they cannot
// drift from it):
//   modelmgr __complete WORD... CURRENT   candidates for the word being typed, one per line (the shell
//                                          completion scripts in packaging/completions call it); "__files__"
//                                          means: also complete a file name. Handled before the command line
//                                          is parsed (the words are partial by nature).
//   modelmgr __man DIR                    writes a man page per command (modelmgr.1, modelmgr-pull.1,
//                                          modelmgr-cache-ls.1 ...) into DIR; run at build time

#include "modelmgr/errors.hpp"

#include "cache/paths.hpp"
#include "catalog/catalog.hpp"
#include "cli/cli.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace fs = std::filesystem;

namespace {

bool hidden(const CLI::App* app)
{
  return app->get_group().empty();
}

std::vector<CLI::App*> visible_subcommands(CLI::App* app)
{
  return app->get_subcommands([](CLI::App* sub) { return !hidden(sub); });
}

// The command path below the root: "pull", "cache ls".
std::string command_path(const CLI::App* app)
{
  std::string path;
  for (const CLI::App* a = app; a->get_parent() != nullptr; a = a->get_parent()) {
    path = a->get_name() + (path.empty() ? "" : " " + path);
  }
  return path;
}

// ---- completion -----------------------------------------------------------------------------------------

const CLI::Option* find_option(CLI::App* app, const std::string& word)
{
  const std::string name = word.substr(0, word.find('='));
  for (CLI::App* a = app; a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* o : a->get_options()) {
      if (!o->get_positional() && o->check_name(name)) {
        return o;
      }
    }
  }
  return nullptr;
}

bool takes_value(const CLI::Option* o)
{
  return o->get_type_size_max() > 0 && o->get_items_expected_max() > 0;
}

std::vector<std::string> catalog_specs()
{
  std::vector<std::string> out;
  try {
    for (const auto& e : catalog::load_catalog(util::Env::process()).entries) {
      out.push_back(e.id);
      for (const auto& v : e.variants) {
        if (!v.quantization.empty()) {
          out.push_back(e.id + ":" + v.quantization);
        }
      }
    }
  } catch (const std::exception&) {
    // A broken user catalog: no catalog candidates (the command itself will say what is wrong).
  }
  return out;
}

std::vector<std::string> cached_repos()
{
  std::vector<std::string> out;
  std::error_code ec;
  const fs::path root = cache::resolve_cache_dir(std::nullopt, util::Env::process());
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (auto folder = cache::parse_repo_folder_name(entry.path().filename().string());
        folder && folder->type == cache::RepoType::model) {
      out.push_back(folder->repo_id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> option_values(const std::string& option, const std::string& command)
{
  if (option == "--model" && command == "start") {
    return catalog_specs();
  }
  if (option == "--repo-type") {
    return {"model", "dataset", "space"};
  }
  if (option == "--use-case") {
    return {"chat", "code", "embedding", "rerank", "vision"};
  }
  if (option == "--local-dir-link") {
    return {"copy", "hardlink"};
  }
  if (option == "--sort") {
    return {"size", "accessed", "name"};
  }
  static const std::set<std::string> file_options = {"--cache-dir", "--config",   "--local-dir", "--file",
                                                     "--catalog",   "--manifest", "--lock-file", "--output"};
  if (file_options.count(option) != 0) {
    return {"__files__"};
  }
  return {};
}

std::vector<std::string> positional_values(const std::string& command)
{
  if (command == "pull" || command == "cache rm" || command == "cache verify") {
    return cached_repos();
  }
  if (command == "models download") {
    return catalog_specs();
  }
  if (command == "inspect" || command == "bench-load") {
    auto out = catalog_specs();
    auto repos = cached_repos();
    out.insert(out.end(), repos.begin(), repos.end());
    out.push_back("__files__");
    return out;
  }
  return {};
}

std::vector<std::string> complete(CLI::App& root, std::vector<std::string> words)
{
  if (words.empty()) {
    words.push_back("");
  }
  const std::string current = words.back();
  words.pop_back();
  CLI::App* app = &root;
  std::string value_of; // the option whose value is being typed
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--") {
      return {};
    }
    if (w.size() > 1 && w[0] == '-') {
      const CLI::Option* o = find_option(app, w);
      if (o && takes_value(o) && w.find('=') == std::string::npos) {
        if (i + 1 == words.size()) {
          value_of = o->get_name();
        } else {
          ++i; // its value
        }
      }
      continue;
    }
    for (CLI::App* sub : visible_subcommands(app)) {
      if (sub->check_name(w)) {
        app = sub;
        break;
      }
    }
  }
  std::vector<std::string> candidates;
  if (!value_of.empty()) {
    candidates = option_values(value_of, command_path(app));
  } else if (!current.empty() && current[0] == '-') {
    for (CLI::App* a = app; a != nullptr; a = a->get_parent()) {
      for (const CLI::Option* o : a->get_options()) {
        if (o->get_positional() || o->get_group().empty()) {
          continue;
        }
        for (const auto& l : o->get_lnames()) {
          candidates.push_back("--" + l);
        }
        for (const auto& s : o->get_snames()) {
          candidates.push_back("-" + s);
        }
      }
    }
  } else {
    for (CLI::App* sub : visible_subcommands(app)) {
      candidates.push_back(sub->get_name());
    }
    auto values = positional_values(command_path(app));
    candidates.insert(candidates.end(), values.begin(), values.end());
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& c : candidates) {
    if (c == "__files__") {
      continue;
    }
    if (c.rfind(current, 0) == 0 && seen.insert(c).second) {
      out.push_back(c);
    }
  }
  // The scripts look for the file-name marker first.
  if (std::find(candidates.begin(), candidates.end(), "__files__") != candidates.end()) {
    out.insert(out.begin(), "__files__");
  }
  return out;
}

// ---- man pages ------------------------------------------------------------------------------------------

// Text for roff: backslashes and hyphens escaped, a leading '.' or '\'' neutralised.
std::string roff(std::string_view text)
{
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) {
      out += "\\&";
    }
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
    line_start = c == '\n';
  }
  return out;
}

std::string page_name(const CLI::App* app)
{
  std::string path = command_path(app);
  std::replace(path.begin(), path.end(), ' ', '-');
  return path.empty() ? "modelmgr" : "modelmgr-" + path;
}

std::string option_item(const CLI::Option* o)
{
  std::vector<std::string> names;
  for (const auto& s : o->get_snames()) {
    names.push_back("\\fB\\-" + roff(s) + "\\fR");
  }
  for (const auto& l : o->get_lnames()) {
    names.push_back("\\fB\\-\\-" + roff(l) + "\\fR");
  }
  std::string item = fmt::format("{}", fmt::join(names, ", "));
  if (takes_value(o)) {
    item += " \\fI" + roff(o->get_type_name().empty() ? "VALUE" : o->get_type_name()) + "\\fR";
  }
  std::string text = o->get_description();
  if (!o->get_default_str().empty()) {
    text += " (default: " + o->get_default_str() + ")";
  }
  return fmt::format(".TP\n{}\n{}\n", item, roff(text));
}

std::string man_page(const CLI::App* app, const CLI::App& root, const std::string& version)
{
  const std::string name = page_name(app);
  std::string upper = name;
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  const std::string command = "modelmgr" + (app == &root ? "" : " " + command_path(app));
  std::string page = fmt::format(".TH {} 1 \"\" \"{}\" \"User Commands\"\n", roff(upper), roff(version));
  std::string summary = app->get_description();
  if (summary.rfind("modelmgr: ", 0) == 0) {
    summary.erase(0, 10); // the root's description names the program already
  }
  page += fmt::format(".SH NAME\n{} \\- {}\n", roff(name), roff(summary));

  std::string synopsis = fmt::format(".SH SYNOPSIS\n.B {}\n", roff(command));
  const auto options = app->get_options([](const CLI::Option* o) { return !o->get_group().empty(); });
  if (std::any_of(options.begin(), options.end(), [](const CLI::Option* o) { return o->nonpositional(); })) {
    synopsis += "[\\fIOPTIONS\\fR]";
  }
  for (const CLI::Option* o : options) {
    if (o->get_positional()) {
      synopsis +=
          fmt::format(" [\\fI{}\\fR{}]", roff(o->get_name(true)), o->get_expected_max() > 1 ? "..." : "");
    }
  }
  auto subs = const_cast<CLI::App*>(app)->get_subcommands([](CLI::App* s) { return !hidden(s); });
  if (!subs.empty()) {
    synopsis += " \\fICOMMAND\\fR";
  }
  page += synopsis + "\n";
  page += fmt::format(".SH DESCRIPTION\n{}\n", roff(app->get_description()));
  if (app == &root) {
    page +=
        ".PP\nEach command has its own page, e.g. \\fBmodelmgr\\-pull\\fR(1); the README has the details.\n";
  }

  std::string positional;
  std::string named;
  for (const CLI::Option* o : options) {
    if (o->get_positional()) {
      positional += fmt::format(".TP\n\\fI{}\\fR\n{}\n", roff(o->get_name(true)), roff(o->get_description()));
    } else if (o->get_name() != "--help") {
      named += option_item(o);
    }
  }
  if (!positional.empty()) {
    page += ".SH ARGUMENTS\n" + positional;
  }
  if (!named.empty()) {
    page += ".SH OPTIONS\n" + named;
  }
  if (app != &root) {
    std::string global;
    for (const CLI::Option* o : root.get_options()) {
      if (!o->get_positional() && !o->get_group().empty() && o->get_name() != "--help" &&
          o->get_name() != "--version") {
        global += option_item(o);
      }
    }
    page += ".SH GLOBAL OPTIONS\n" + global;
  }
  if (!subs.empty()) {
    page += ".SH COMMANDS\n";
    for (const CLI::App* s : subs) {
      page += fmt::format(".TP\n\\fB{}\\fR\n{}\n.br\nSee \\fB{}\\fR(1).\n", roff(s->get_name()),
                          roff(s->get_description()), roff(page_name(s)));
    }
  }
  if (app == &root) {
    page += ".SH EXIT STATUS\n0 success, 1 internal error, 2 usage or configuration, 3 not found, 4 "
            "authentication, "
            "5 checksum, 6 network, 7 disk, 8 locked, 9 catalog drift, 130 interrupted, 141 output closed.\n";
  }
  page += fmt::format(".SH SEE ALSO\n\\fB{}\\fR(1)\n", app == &root ? "hf" : "modelmgr");
  return page;
}

void write_pages(const CLI::App* app, const CLI::App& root, const fs::path& dir, const std::string& version,
                 std::vector<fs::path>& written)
{
  const fs::path file = dir / (page_name(app) + ".1");
  util::atomic_write_file(file, man_page(app, root, version));
  written.push_back(file);
  for (const CLI::App* s :
       const_cast<CLI::App*>(app)->get_subcommands([](CLI::App* x) { return !hidden(x); })) {
    write_pages(s, root, dir, version, written);
  }
}

} // namespace

int print_completions(CLI::App& app, const std::vector<std::string>& words)
{
  try {
    for (const auto& c : complete(app, words)) {
      fmt::print("{}\n", c);
    }
    return 0;
  } catch (const std::exception&) {
    return 1; // no candidates; a shell must never see an error message while completing
  }
}

void set_meta_commands(CLI::App& app, GlobalOptions& /*global*/, int& exit_code)
{
  auto dir = std::make_shared<std::string>();
  auto* man = app.add_subcommand("__man", "Write the man pages into a folder")->group("");
  man->add_option("dir", *dir, "Output folder")->required();
  man->callback([&app, dir, &exit_code] {
    try {
      util::create_directories(*dir);
      std::vector<fs::path> written;
      write_pages(&app, app, *dir, "modelmgr 0.1.0", written);
    } catch (const std::system_error& e) {
      throw DownloadError(ErrorKind::disk,
                          fmt::format("cannot write the man pages into {}: {}", *dir, e.what()));
    }
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
