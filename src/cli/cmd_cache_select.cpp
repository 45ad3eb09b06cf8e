// `modelmgr cache rm -i`: the cache as a SelectList (repos by size, revisions inside), driven by keys from
// the terminal; the total to free comes from cache::plan_delete, the planner `cache rm` itself uses, so a
// blob shared with an unticked revision is not counted.

#include "cache/delete.hpp"
#include "cli/cache_maint.hpp"
#include "cli/select_list.hpp"
#include "cli/terminal.hpp"
#include "util/size.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>

namespace modelmgr::cli {

namespace {

constexpr std::size_t k_short_commit = 12;

const char* const k_title = "Select what to delete (largest first): up/down move, space tick, right/left "
                            "expand, a all/none, Enter/d continue, q quit";

struct Model {
  std::vector<const cache::CachedRepo*> repos;                      // in list order
  std::vector<std::vector<const cache::CachedRevision*>> revisions; // per repo, in list order
};

Model make_model(const cache::CacheInfo& info)
{
  Model m;
  for (const auto& r : info.repos) {
    m.repos.push_back(&r);
  }
  std::sort(m.repos.begin(), m.repos.end(), [](const cache::CachedRepo* a, const cache::CachedRepo* b) {
    if (a->size_on_disk != b->size_on_disk) {
      return a->size_on_disk > b->size_on_disk;
    }
    return a->display_id() < b->display_id();
  });
  for (const auto* r : m.repos) {
    std::vector<const cache::CachedRevision*> revs;
    for (const auto& rev : r->revisions) {
      revs.push_back(&rev);
    }
    std::sort(revs.begin(), revs.end(), [](const cache::CachedRevision* a, const cache::CachedRevision* b) {
      if (a->last_modified != b->last_modified) {
        return a->last_modified > b->last_modified;
      }
      return a->commit < b->commit;
    });
    m.revisions.push_back(std::move(revs));
  }
  return m;
}

std::vector<SelectGroup> make_groups(const Model& m)
{
  const auto now = std::chrono::system_clock::now();
  std::vector<SelectGroup> groups;
  for (std::size_t i = 0; i < m.repos.size(); ++i) {
    const auto& r = *m.repos[i];
    SelectGroup g;
    g.entry.label = r.display_id();
    g.entry.detail =
        fmt::format("{:>7}  {} file(s), {} revision(s), accessed {}", util::format_size(r.size_on_disk),
                    r.nb_files, r.revisions.size(), util::format_time_ago(r.last_accessed, now));
    for (const auto* rev : m.revisions[i]) {
      std::string refs;
      for (const auto& ref : rev->refs) {
        refs += (refs.empty() ? "" : ", ") + ref;
      }
      SelectEntry e;
      e.label = rev->commit.substr(0, k_short_commit) + (refs.empty() ? " (detached)" : " (" + refs + ")");
      e.detail = fmt::format("{:>7}  {} file(s), modified {}", util::format_size(rev->size_on_disk),
                             rev->nb_files, util::format_time_ago(rev->last_modified, now));
      g.children.push_back(std::move(e));
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

std::vector<cache::DeleteTarget> targets_of(const Model& m, const SelectList& list)
{
  std::vector<cache::DeleteTarget> out;
  for (std::size_t g = 0; g < m.repos.size(); ++g) {
    const auto& repo = *m.repos[g];
    const auto tick = list.group_tick(g);
    if (tick == SelectList::Tick::all) {
      out.push_back({repo.type, repo.repo_id, std::nullopt});
    } else if (tick == SelectList::Tick::some) {
      for (std::size_t c = 0; c < m.revisions[g].size(); ++c) {
        if (list.child_ticked(g, c)) {
          out.push_back({repo.type, repo.repo_id, m.revisions[g][c]->commit});
        }
      }
    }
  }
  return out;
}

std::vector<std::string> footer(const cache::CacheInfo& info, const std::vector<cache::DeleteTarget>& targets)
{
  std::size_t repos = 0;
  std::size_t revisions = 0;
  for (const auto& t : targets) {
    (t.revision ? revisions : repos) += 1;
  }
  std::uint64_t freed = 0;
  if (!targets.empty()) {
    freed = cache::plan_delete(info, targets).freed();
  }
  return {"", fmt::format("Ticked: {} repo(s), {} revision(s). Will free {} of {}.", repos, revisions,
                          util::format_size(freed), util::format_size(info.size_on_disk))};
}

void write_all(int fd, const std::string& s)
{
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;
    }
    done += static_cast<std::size_t>(n);
  }
}

// Redraws the whole screen in one write: home, each line cleared to its end, the cursor row in reverse
// video. Output post-processing is off in raw mode, so lines end in "\r\n"; the last line gets none, so
// the screen never scrolls.
void draw(int fd, const SelectList::Frame& frame)
{
  std::string out = "\033[H";
  for (std::size_t i = 0; i < frame.lines.size(); ++i) {
    const bool cursor = static_cast<int>(i) == frame.cursor_line;
    out += cursor ? "\033[7m" + frame.lines[i] + "\033[0m" : frame.lines[i];
    out += "\033[K";
    if (i + 1 < frame.lines.size()) {
      out += "\r\n";
    }
  }
  out += "\033[J";
  write_all(fd, out);
}

} // namespace

SelectResult select_delete_targets(const cache::CacheInfo& info, int in_fd, int out_fd,
                                   const std::atomic<bool>* cancel)
{
  const Model model = make_model(info);
  SelectList list(make_groups(model), k_title);
  SelectResult result;
  RawMode raw(in_fd, out_fd);
  KeyReader keys(in_fd, cancel);
  auto targets = targets_of(model, list);
  auto bottom = footer(info, targets);
  for (;;) {
    const auto size = terminal_size(out_fd);
    draw(out_fd, list.render(size.rows, size.cols, bottom));
    const KeyPress key = keys.read();
    switch (list.handle(key)) {
    case SelectList::Outcome::running: break;
    case SelectList::Outcome::accept:
      result.how = SelectResult::How::accepted;
      result.targets = targets_of(model, list);
      return result;
    case SelectList::Outcome::cancel:
      result.how = key.key == Key::interrupt ? SelectResult::How::interrupted : SelectResult::How::quit;
      return result;
    }
    if (key.key == Key::space || key.key == Key::character) {
      targets = targets_of(model, list);
      bottom = footer(info, targets);
    }
  }
}

} // namespace modelmgr::cli
