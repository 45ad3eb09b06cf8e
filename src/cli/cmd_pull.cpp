// `modelmgr pull`: download files or snapshots into the HF cache and print their local paths.

#include "modelmgr/errors.hpp"
#include "modelmgr/pull.hpp"

#include "cli/cli.hpp"
#include "manager/gguf_select.hpp"
#include "util/time.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace modelmgr::cli {

namespace {

// The default model set (`pull --all`), as the project's seed defined it.
const std::vector<std::string> k_default_set = {
    "BAAI/bge-m3",
    "BAAI/bge-reranker-v2-m3",
    "google/siglip-base-patch16-224",
    "Qdrant/bm42-all-minilm-l6-v2-attentions",
};

struct PullArgs {
  std::string repo;
  std::vector<std::string> files;
  std::string revision = "main";
  std::string repo_type = "model";
  std::vector<std::string> include, exclude;
  std::string cache_dir, local_dir, endpoint, token;
  std::string local_dir_link = "copy";
  bool offline = false;
  bool dry_run = false;
  bool all = false;
  std::vector<std::pair<std::string, std::string>> add; // --add REPO FILE, repeatable
  int connections = 0;                                  // 0 = automatic (adaptive per host)
  std::string chunk_size;
  int max_workers = 0; // 0 = automatic
  std::string limit_rate;
  double lock_timeout_s = 600;
};

} // namespace

nlohmann::json pulled_files_json(const PullResult& r)
{
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : r.files) {
    files.push_back({{"path", f.path},
                     {"local_path", f.local_path.string()},
                     {"size", f.size},
                     {"etag", f.etag},
                     {"downloaded", f.downloaded}});
  }
  return files;
}

namespace {

nlohmann::json to_json(const PullResult& r)
{
  const nlohmann::json files = pulled_files_json(r);
  return {{"repo_id", r.repo_id},
          {"repo_type", r.repo_type},
          {"revision", r.revision},
          {"commit", r.commit},
          {"cache_dir", r.cache_dir.string()},
          {"root", r.root.string()},
          {"offline", r.offline},
          {"bytes_to_download", r.bytes_to_download},
          {"http_requests", r.http_requests},
          {"files", files}};
}

PullOptions make_options(const PullArgs& a, const std::string& repo, std::vector<std::string> files,
                         ProgressObserver* observer)
{
  PullOptions o;
  // REPO:QUANT: the GGUF file(s) of that quantization (a repo id never has a ':').
  auto rq = manager::split_repo_quant(repo);
  o.repo_id = rq.repo;
  o.gguf_quant = rq.quant;
  o.repo_type = a.repo_type;
  o.revision = a.revision;
  o.files = std::move(files);
  o.include = a.include;
  o.exclude = a.exclude;
  if (!a.cache_dir.empty()) {
    o.cache_dir = a.cache_dir;
  }
  if (!a.local_dir.empty()) {
    o.local_dir = a.local_dir;
  }
  o.local_dir_hardlink = a.local_dir_link == "hardlink";
  if (!a.endpoint.empty()) {
    o.endpoint = a.endpoint;
  }
  if (!a.token.empty()) {
    o.token = a.token;
  }
  if (a.offline) {
    o.offline = true;
  }
  o.dry_run = a.dry_run;
  o.transfer.connections_per_file = a.connections;
  o.transfer.max_workers = a.max_workers;
  if (!a.chunk_size.empty()) {
    o.transfer.chunk_size = parse_size_option("--chunk-size", a.chunk_size);
  }
  if (!a.limit_rate.empty()) {
    o.transfer.limit_rate = parse_size_option("--limit-rate", a.limit_rate);
  }
  o.transfer.lock_timeout = std::chrono::milliseconds(static_cast<long long>(a.lock_timeout_s * 1000));
  o.observer = observer;
  o.cancel = &cancel_flag();
  return o;
}

void print_human(const PullResult& r, bool dry_run)
{
  if (dry_run) {
    std::size_t n = 0;
    for (const auto& f : r.files) {
      n += f.downloaded ? 1 : 0;
    }
    fmt::print("[dry-run] {} at {}: would download {} of {} files ({})\n", r.repo_id, r.commit.substr(0, 12),
               n, r.files.size(), r.bytes_to_download);
    for (const auto& f : r.files) {
      fmt::print("{}\t{}\t{}\n", f.downloaded ? "download" : "cached", f.size, f.path);
    }
    return;
  }
  for (const auto& f : r.files) {
    fmt::print("{}\n", f.local_path.string());
  }
}

} // namespace

void set_pull_command(CLI::App& app, GlobalOptions& global, int& exit_code)
{
  auto args = std::make_shared<PullArgs>();
  auto* cmd =
      app.add_subcommand("pull", "Download files or a whole repo snapshot into the Hugging Face cache");
  cmd->add_option("repo", args->repo,
                  "Repo id, e.g. BAAI/bge-m3; REPO:QUANT (e.g. org/X-GGUF:Q4_K_M) pulls the GGUF file(s) of "
                  "that quantization (all split parts, plus the mmproj file)");
  cmd->add_option("files", args->files, "Files to download (default: the whole snapshot)");
  cmd->add_option("--revision", args->revision, "Branch, tag, commit or refs/pr/N")->capture_default_str();
  cmd->add_option("--repo-type", args->repo_type, "model, dataset or space")
      ->check(CLI::IsMember({"model", "dataset", "space"}))
      ->capture_default_str();
  cmd->add_option("--include", args->include, "Glob of files to include (repeatable; 'dir/' = a folder)");
  cmd->add_option("--exclude", args->exclude, "Glob of files to exclude (repeatable)");
  cmd->add_option("--cache-dir", args->cache_dir,
                  "Cache directory (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)");
  cmd->add_option("--local-dir", args->local_dir, "Also export the files as plain files into this folder");
  cmd->add_option("--local-dir-link", args->local_dir_link,
                  "How files reach --local-dir: copy (independent files; a reflink where the file system "
                  "can) or hardlink (no extra space, but editing an exported file edits the cache blob)")
      ->check(CLI::IsMember({"copy", "hardlink"}))
      ->capture_default_str();
  cmd->add_option("--endpoint", args->endpoint,
                  "Hub endpoint (default: HF_ENDPOINT or https://huggingface.co)");
  cmd->add_option("--token", args->token, "Access token (default: HF_TOKEN or the token file)");
  cmd->add_flag("--offline", args->offline, "Use only the cache (like HF_HUB_OFFLINE=1)");
  cmd->add_flag("--dry-run", args->dry_run, "Resolve and show what would be downloaded");
  cmd->add_flag("--all", args->all, "Pull the default model set");
  // A vector of pairs: CLI11 takes exactly two values per --add and keeps every occurrence (a plain vector
  // with expected(2) rejects the second --add).
  cmd->add_option("--add", args->add, "REPO FILE: add a single file (repeatable)")->allow_extra_args(false);
  cmd->add_option("--connections", args->connections,
                  "Connections per file, fixed (default: automatic, grown per host while throughput rises)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--chunk-size", args->chunk_size,
                  "Range size for parallel downloads (e.g. 32M; default automatic)");
  cmd->add_option("--max-workers", args->max_workers,
                  "Connections in flight in total, fixed (default: automatic, at most 64 per host)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--limit-rate", args->limit_rate,
                  "Bandwidth cap across all connections, e.g. 50M (bytes/s)");
  cmd->add_option("--lock-timeout", args->lock_timeout_s, "Seconds to wait for another process's lock")
      ->capture_default_str();

  cmd->callback([args, cmd, &global, &exit_code] {
    // Asking for N connections on one file means at least N in total, unless the total was set too.
    if (cmd->count("--connections") > 0 && cmd->count("--max-workers") == 0) {
      args->max_workers = std::max(args->max_workers, args->connections);
    }
    std::vector<std::pair<std::string, std::vector<std::string>>> targets;
    if (args->all) {
      for (const auto& r : k_default_set) {
        targets.push_back({r, {}});
      }
    }
    for (const auto& [repo, file] : args->add) {
      targets.push_back({repo, {file}});
    }
    if (!args->repo.empty()) {
      targets.insert(targets.begin(), {args->repo, args->files});
    }
    if (targets.empty()) {
      throw ConfigurationError(
          "nothing to pull: no repo given",
          "usage: modelmgr pull REPO [FILE...], or --all for the default set, or --add REPO FILE",
          ErrorKind::usage);
    }
    auto renderer = make_progress_renderer(global);
    std::vector<PullResult> results;
    for (const auto& [repo, files] : targets) {
      results.push_back(pull(make_options(*args, repo, files, renderer.get())));
      if (!global.json) {
        print_human(results.back(), args->dry_run);
        // The paths are the output: when nobody reads them any more (a closed pipe), stop before the
        // next repo instead of downloading it for no one.
        flush_stdout();
      }
    }
    renderer.reset();
    if (global.json) {
      if (results.size() == 1) {
        fmt::print("{}\n", to_json(results.front()).dump());
      } else {
        nlohmann::json all = nlohmann::json::array();
        for (const auto& r : results) {
          all.push_back(to_json(r));
        }
        fmt::print("{}\n", nlohmann::json{{"repos", all}}.dump());
      }
    } else if ((args->all || !args->add.empty()) && !args->dry_run && !global.quiet) {
      fmt::print(stderr, "Models are in the cache. Set HF_HUB_OFFLINE=1 (and TRANSFORMERS_OFFLINE=1) so that "
                         "runtimes use only the cache.\n");
    }
    exit_code = 0;
  });
}

} // namespace modelmgr::cli
