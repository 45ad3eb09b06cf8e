#include "modelmgr/pull.hpp"

#include "modelmgr/errors.hpp"

#include "cache/local_dir.hpp"
#include "cache/paths.hpp"
#include "cache/repo_cache.hpp"
#include "hub/http_options.hpp"
#include "hub/hub_client.hpp"
#include "manager/gguf_select.hpp"
#include "transfer/engine.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"
#include "util/glob.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

namespace modelmgr {

namespace fs = std::filesystem;

namespace {

cache::RepoType parse_type(const std::string& t)
{
  auto type = cache::parse_repo_type(t);
  if (!type) {
    throw ConfigurationError(fmt::format("unknown repo type '{}'", t),
                             "use --repo-type model, dataset or space", ErrorKind::usage);
  }
  return *type;
}

bool offline_from_env(const util::Env& env)
{
  if (auto v = env.get("HF_HUB_OFFLINE"); v && !v->empty()) {
    return util::is_truthy(*v);
  }
  return util::env_bool(env, "TRANSFORMERS_OFFLINE");
}

struct Wanted {
  std::string path;
  std::string etag;
  std::uint64_t size = 0;
  std::string url;
};

// Checks every repo path before anything touches the disk: a Hub file name is untrusted input.
void check_paths(const std::vector<std::string>& paths, const hub::RepoId& repo)
{
  for (const auto& p : paths) {
    if (auto err = util::relative_path_error(p)) {
      throw ConfigurationError(fmt::format("refusing file name '{}' of {}: {}", p, repo.describe(), *err),
                               "file names must be relative paths inside the repo", ErrorKind::usage);
    }
  }
}

std::string fetch_hint(const PullOptions& o)
{
  std::string cmd = fmt::format("modelmgr pull {}", o.repo_id);
  if (o.repo_type != "model") {
    cmd += " --repo-type " + o.repo_type;
  }
  if (o.revision != "main") {
    cmd += " --revision " + o.revision;
  }
  for (const auto& f : o.files) {
    cmd += " '" + f + "'";
  }
  return fmt::format("run `{}` with network access (without HF_HUB_OFFLINE=1 / --offline) to fetch it", cmd);
}

std::vector<std::string> filter(const std::vector<std::string>& all, const PullOptions& o)
{
  std::vector<std::string> out;
  for (const auto& p : all) {
    if (!o.include.empty() && !util::matches_any(p, o.include)) {
      continue;
    }
    if (util::matches_any(p, o.exclude)) {
      continue;
    }
    out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The files a snapshot pull takes from a listing: the GGUF selection of `REPO:QUANT` (model parts in order,
// then mmproj), else include/exclude.
std::vector<std::string> select_paths(const std::vector<std::string>& all, const PullOptions& o)
{
  if (o.gguf_quant) {
    auto quant = o.gguf_quant->empty() ? std::nullopt : o.gguf_quant;
    return manager::select_gguf(all, quant, o.repo_id).files();
  }
  return filter(all, o);
}

// An exported file that is still the one we put there (its metadata names this etag, and it was not
// modified after the metadata was written) is left alone, as huggingface_hub does: re-running a pull
// copies nothing. Only the metadata follows a new commit.
bool export_is_current(const fs::path& local_dir, const PulledFile& f)
{
  const auto meta = cache::read_local_metadata(local_dir, f.path);
  if (!meta || meta->etag != f.etag) {
    return false;
  }
  std::error_code ec;
  const auto size = fs::file_size(cache::local_file_path(local_dir, f.path), ec);
  return !ec && size == f.size;
}

void export_local(PullResult& result, const cache::RepoCache& rc, const fs::path& local_dir, bool hardlink)
{
  const auto mode = hardlink ? cache::ExportMode::hardlink : cache::ExportMode::copy;
  for (auto& f : result.files) {
    f.local_path = cache::local_file_path(local_dir, f.path);
    if (export_is_current(local_dir, f)) {
      if (cache::read_local_metadata(local_dir, f.path)->commit != result.commit) {
        cache::write_local_metadata(local_dir, f.path, result.commit, f.etag);
      }
      continue;
    }
    // The blob itself, not the snapshot symlink: link(2) would hard-link the symlink.
    const fs::path source = fs::canonical(rc.snapshot_file(result.commit, f.path));
    cache::export_file(source, local_dir, f.path, mode);
    cache::write_local_metadata(local_dir, f.path, result.commit, f.etag);
  }
  result.root = local_dir;
}

PullResult pull_offline(const PullOptions& o, const hub::RepoId& repo, const cache::RepoCache& rc)
{
  PullResult result;
  result.offline = true;
  auto commit = rc.resolve_offline(o.revision);
  if (!commit || !fs::is_directory(rc.snapshot_dir(*commit))) {
    throw MissingModelError(
        fmt::format("{} at revision '{}' is not in the cache {} (offline mode: the network is not used)",
                    repo.describe(), o.revision, rc.cache_root().string()),
        fetch_hint(o));
  }
  result.commit = *commit;
  std::vector<std::string> paths;
  if (!o.files.empty()) {
    std::vector<std::string> missing;
    for (const auto& p : o.files) {
      if (!rc.has_snapshot_file(*commit, p)) {
        missing.push_back(rc.is_marked_no_exist(*commit, p) ? p + " (the Hub said it does not exist)" : p);
      }
    }
    if (!missing.empty()) {
      throw MissingModelError(fmt::format("not in the cache for {} at {} (offline mode): {}", repo.describe(),
                                          commit->substr(0, 12), fmt::join(missing, ", ")),
                              fetch_hint(o));
    }
    paths = o.files;
  } else {
    std::vector<std::string> listed;
    if (auto tree = rc.read_tree_cache(*commit)) {
      // The full listing is known: a snapshot with files missing is incomplete, not smaller.
      for (const auto& f : *tree) {
        listed.push_back(f.path);
      }
      paths = select_paths(listed, o);
      std::vector<std::string> missing;
      for (const auto& p : paths) {
        if (!rc.has_snapshot_file(*commit, p)) {
          missing.push_back(p);
        }
      }
      if (!missing.empty()) {
        throw MissingModelError(
            fmt::format("the cached snapshot {} of {} is incomplete (offline mode); missing: {}",
                        commit->substr(0, 12), repo.describe(), fmt::join(missing, ", ")),
            fetch_hint(o));
      }
    } else {
      paths = select_paths(rc.snapshot_files(*commit), o);
    }
  }
  for (const auto& p : paths) {
    PulledFile f;
    f.path = p;
    f.local_path = rc.snapshot_file(*commit, p);
    std::error_code ec;
    f.size = fs::file_size(f.local_path, ec);
    auto target = fs::read_symlink(f.local_path, ec);
    if (!ec) {
      f.etag = target.filename().string();
    }
    result.files.push_back(std::move(f));
  }
  return result;
}

} // namespace

PullResult pull(const PullOptions& o)
{
  const util::Env& env = util::Env::process();
  if (auto why = cache::repo_id_error(o.repo_id)) {
    throw ConfigurationError(fmt::format("invalid repo id '{}': {}", o.repo_id, *why),
                             "use the form 'namespace/name' as shown on the Hub, e.g. BAAI/bge-m3",
                             ErrorKind::usage);
  }
  if (o.revision.empty()) {
    throw ConfigurationError("empty --revision", "give a branch, tag or commit, e.g. main", ErrorKind::usage);
  }
  if (o.gguf_quant && !o.files.empty()) {
    throw ConfigurationError("REPO:QUANT picks the GGUF files itself: do not name files with it",
                             "drop the file names, or drop the :QUANT tag", ErrorKind::usage);
  }
  hub::RepoId repo{parse_type(o.repo_type), o.repo_id};
  check_paths(o.files, repo);
  const fs::path cache_root = cache::resolve_cache_dir(o.cache_dir, env);
  cache::RepoCache rc(cache_root, repo.type, repo.id);

  PullResult result;
  const bool offline = o.offline.value_or(offline_from_env(env));
  if (offline) {
    result = pull_offline(o, repo, rc);
  } else {
    hub::HubConfig config = hub::hub_config_from_env(env);
    if (o.endpoint) {
      config.endpoint = hub::normalize_endpoint(*o.endpoint);
    }
    if (o.token) {
      config.token = *o.token;
    }
    net::Client http(hub::http_options_from_env(env));
    hub::HubClient hub(config, http, o.cancel);

    std::string commit;
    std::vector<Wanted> wanted;
    if (!o.files.empty()) {
      // Named files: the revision is resolved with one request (none for a commit); files already in that
      // snapshot need nothing more, the others get a HEAD on /resolve/ for etag and size.
      std::vector<std::string> missing;
      std::vector<std::string> todo = o.files;
      commit = hub::is_commit_hash(o.revision) ? o.revision : hub.revision_info(repo, o.revision).sha;
      for (std::size_t i = 0; i < todo.size(); ++i) {
        const std::string& p = todo[i];
        if (!commit.empty() && rc.has_snapshot_file(commit, p)) {
          continue;
        }
        std::string missing_commit;
        auto meta = hub.try_file_metadata(repo, commit.empty() ? o.revision : commit, p, missing_commit);
        if (!meta) {
          if (!missing_commit.empty()) {
            rc.mark_no_exist(missing_commit, p);
            if (commit.empty()) {
              commit = missing_commit;
            }
          }
          missing.push_back(p);
          continue;
        }
        if (commit.empty()) {
          commit = meta->commit;
        }
        if (rc.has_snapshot_file(commit, p)) {
          continue;
        }
        wanted.push_back({p, meta->etag, meta->size, meta->location});
      }
      if (!missing.empty()) {
        if (!commit.empty() && o.revision != commit) {
          rc.write_ref(o.revision, commit);
        }
        throw MissingModelError(
            fmt::format("{} {} not found in {} at revision '{}'", missing.size() == 1 ? "file" : "files",
                        fmt::join(missing, ", "), repo.describe(), o.revision),
            fmt::format("check the names: `modelmgr pull {} --dry-run` lists the repo's files", o.repo_id));
      }
      result.files.reserve(o.files.size());
      for (const auto& p : o.files) {
        result.files.push_back({p, rc.snapshot_file(commit, p), 0, {}, false});
      }
    } else {
      commit = hub::is_commit_hash(o.revision) ? o.revision : hub.revision_info(repo, o.revision).sha;
      std::vector<cache::TreeFile> tree;
      if (auto cached = rc.read_tree_cache(commit)) {
        tree = std::move(*cached);
      } else {
        tree = hub.list_files(repo, commit);
        std::vector<std::string> names;
        for (const auto& f : tree) {
          names.push_back(f.path);
        }
        check_paths(names, repo);
        if (!o.dry_run) {
          rc.ensure_layout();
          rc.write_tree_cache(commit, tree);
        }
      }
      std::map<std::string, const cache::TreeFile*> by_path;
      std::vector<std::string> names;
      for (const auto& f : tree) {
        by_path[f.path] = &f;
        names.push_back(f.path);
      }
      auto selected = select_paths(names, o);
      if (selected.empty()) {
        throw MissingModelError(fmt::format("no file of {} at revision '{}' matches the --include/--exclude "
                                            "patterns ({} files in the repo)",
                                            repo.describe(), o.revision, names.size()),
                                "check the patterns: '*' also matches '/', and 'dir/' selects a folder");
      }
      for (const auto& p : selected) {
        const cache::TreeFile& f = *by_path[p];
        result.files.push_back({p, rc.snapshot_file(commit, p), f.size, f.etag(), false});
        if (!rc.has_snapshot_file(commit, p)) {
          wanted.push_back({p, f.etag(), f.size, hub.resolve_url(repo, commit, p)});
        }
      }
    }
    result.commit = commit;

    // Files whose blob is already there (another revision had them) only need a link.
    std::vector<transfer::FileJob> jobs;
    std::set<std::string> queued;
    for (const auto& w : wanted) {
      if (util::etag_kind(w.etag) == util::EtagKind::opaque) {
        // Without a hash the bytes cannot be verified: refuse rather than cache unverified data.
        throw DownloadError(ErrorKind::network,
                            fmt::format("the server gave no usable hash for '{}' of {} (etag '{}')", w.path,
                                        repo.describe(), w.etag),
                            "check HF_ENDPOINT: it does not behave like the Hugging Face Hub");
      }
      if (!rc.has_blob(w.etag, w.size) && queued.insert(w.etag).second) {
        jobs.push_back({repo, w.path, w.etag, w.size, w.url});
      }
    }
    transfer::TransferOptions topt;
    topt.connections_per_file = o.transfer.connections_per_file;
    topt.chunk_size = o.transfer.chunk_size;
    topt.max_connections = o.transfer.max_workers;
    topt.rate_limit = o.transfer.limit_rate;
    topt.lock_timeout = o.transfer.lock_timeout;
    if (auto v = env.get("MODELMGR_TEST_FREE_SPACE"); v && !v->empty()) {
      topt.free_space_override = std::stoull(*v);
    }
    transfer::Engine engine(hub, cache_root, topt, o.observer);
    result.bytes_to_download = engine.bytes_needed(jobs);
    if (o.dry_run) {
      for (auto& f : result.files) {
        f.downloaded =
            std::any_of(wanted.begin(), wanted.end(), [&](const Wanted& w) { return w.path == f.path; });
      }
      result.http_requests = hub.requests_sent();
    } else {
      rc.ensure_layout();
      if (o.revision != commit) {
        rc.write_ref(o.revision, commit);
      }
      auto outcomes = engine.run(jobs);
      std::exception_ptr first_error;
      std::vector<std::string> failed;
      std::set<std::string> fetched;
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (!outcomes[i].ok) {
          failed.push_back(jobs[i].repo_path);
          if (!first_error) {
            first_error = outcomes[i].error;
          }
        } else if (outcomes[i].downloaded) {
          fetched.insert(jobs[i].etag);
        }
      }
      std::set<std::string> failed_paths(failed.begin(), failed.end());
      std::set<std::string> failed_etags;
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (!outcomes[i].ok) {
          failed_etags.insert(jobs[i].etag);
        }
      }
      util::DirSyncBatch link_dirs;
      for (const auto& w : wanted) {
        if (failed_etags.count(w.etag) == 0) {
          rc.link_snapshot(commit, w.path, w.etag, &link_dirs);
        }
      }
      link_dirs.flush();
      if (first_error) {
        if (failed.size() == 1) {
          std::rethrow_exception(first_error);
        }
        try {
          std::rethrow_exception(first_error);
        } catch (const ModelManagerError& e) {
          throw DownloadError(e.kind(),
                              fmt::format("{} of {} files failed ({}); first error: {}", failed.size(),
                                          jobs.size(), fmt::join(failed, ", "), e.what()),
                              e.hint());
        }
      }
      for (auto& f : result.files) {
        for (const auto& w : wanted) {
          if (w.path == f.path && fetched.count(w.etag)) {
            f.downloaded = true;
          }
        }
      }
      result.http_requests = hub.requests_sent();
    }
  }

  result.repo_id = o.repo_id;
  result.repo_type = o.repo_type;
  result.revision = o.revision;
  result.cache_dir = cache_root;
  result.root = rc.snapshot_dir(result.commit);
  if (!o.dry_run) {
    for (auto& f : result.files) {
      std::error_code ec;
      if (f.size == 0) {
        f.size = fs::file_size(f.local_path, ec);
      }
      if (f.etag.empty()) {
        auto target = fs::read_symlink(f.local_path, ec);
        f.etag = ec ? std::string() : target.filename().string();
      }
    }
    if (o.local_dir) {
      export_local(result, rc, fs::absolute(*o.local_dir), o.local_dir_hardlink);
    }
  }
  return result;
}

} // namespace modelmgr
