#include "server/demo_cache.hpp"

#include "cache/repo_cache.hpp"
#include "emulator/repo_model.hpp"
#include "util/env.hpp"
#include "util/fs.hpp"

#include <vector>

namespace modelmgr::server {

namespace fs = std::filesystem;

DemoCacheResult write_demo_cache(const fs::path& root)
{
  DemoCacheResult result;
  util::create_directories(root);
  for (const auto& spec : emulator::demo_repo_specs()) {
    auto type = cache::parse_repo_type(spec.type).value_or(cache::RepoType::model);
    cache::RepoCache rc(root, type, spec.id, util::MapEnv{});
    rc.ensure_layout();
    std::string last;
    for (std::size_t i = 0; i < spec.commits.size(); ++i) {
      const auto& commit_spec = spec.commits[i];
      const std::string commit =
          commit_spec.sha.empty() ? emulator::derived_commit_sha(spec.id, i) : commit_spec.sha;
      std::vector<cache::TreeFile> listing;
      for (const auto& file_spec : commit_spec.files) {
        emulator::RepoFile file(file_spec);
        const std::string& etag = file.etag();
        if (!rc.has_blob(etag, file.size())) {
          auto temp = util::TempFile::create_beside(rc.blob_path(etag));
          // Generated in 1 MiB pieces: the demo files are a few MiB, but nothing needs them whole in memory.
          for (std::uint64_t offset = 0; offset < file.size();) {
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(1 << 20, file.size() - offset));
            temp.write(file.read(offset, n));
            offset += n;
          }
          temp.commit(rc.blob_path(etag));
          ++result.files_written;
          result.bytes_written += file.size();
        }
        rc.link_snapshot(commit, file.path(), etag);
        cache::TreeFile t;
        t.path = file.path();
        t.size = file.size();
        t.blob_id = file.blob_id();
        if (file.is_lfs()) {
          t.lfs_sha256 = file.sha256();
          t.lfs_size = file.size();
        }
        listing.push_back(std::move(t));
      }
      rc.write_tree_cache(commit, listing);
      last = commit;
    }
    rc.write_ref("main", last);
    ++result.repos;
  }
  return result;
}

fs::path default_demo_cache_dir()
{
  const auto& env = util::Env::process();
  if (auto xdg = env.get("XDG_CACHE_HOME"); xdg && !xdg->empty()) {
    return fs::path(*xdg) / "modelmgr" / "demo-hub";
  }
  auto home = env.get("HOME");
  return fs::path(home && !home->empty() ? *home : ".") / ".cache" / "modelmgr" / "demo-hub";
}

} // namespace modelmgr::server
