// Progress rendering for the CLI: one throttled status line on a terminal, plain periodic lines otherwise,
// JSON lines with --json.

#include "cli/cli.hpp"
#include "util/env.hpp"
#include "util/size.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace modelmgr::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct FileProgress {
  std::uint64_t total = 0;
  std::uint64_t current = 0;
  std::uint64_t start = 0; // bytes present when it started (resume)
  bool started = false;
  bool finished = false;
};

class Totals {
public:
  void apply(const ProgressEvent& e)
  {
    const std::string key = e.repo_id + "\n" + e.path;
    auto& f = m_files[key];
    f.total = e.total;
    switch (e.type) {
    case EventType::planned:
      f.current = e.current;
      f.start = e.current;
      break;
    case EventType::cached:
      f.current = f.total;
      f.start = f.total;
      f.finished = true;
      break;
    case EventType::bytes:
    case EventType::started:
      f.started = true;
      f.current = std::max(f.current, e.current);
      break;
    case EventType::retrying:
    case EventType::stalled: f.current = std::max(f.current, e.current); break;
    case EventType::verifying: f.current = f.total; break;
    case EventType::done:
      f.current = f.total;
      f.finished = true;
      break;
    case EventType::failed: f.finished = true; break;
    case EventType::waiting_lock: break;
    }
  }
  std::uint64_t total() const
  {
    std::uint64_t t = 0;
    for (const auto& [k, f] : m_files) {
      t += f.total;
    }
    return t;
  }
  std::uint64_t current() const
  {
    std::uint64_t t = 0;
    for (const auto& [k, f] : m_files) {
      t += f.current;
    }
    return t;
  }
  std::uint64_t transferred() const
  {
    std::uint64_t t = 0;
    for (const auto& [k, f] : m_files) {
      t += f.current > f.start ? f.current - f.start : 0;
    }
    return t;
  }
  std::size_t files() const { return m_files.size(); }
  // Files being transferred now: (path, progress), at most `limit`.
  std::vector<std::pair<std::string, FileProgress>> active(std::size_t limit) const
  {
    std::vector<std::pair<std::string, FileProgress>> out;
    for (const auto& [key, f] : m_files) {
      if (f.started && !f.finished && out.size() < limit) {
        out.emplace_back(key.substr(key.find('\n') + 1), f);
      }
    }
    return out;
  }
  std::size_t finished() const
  {
    std::size_t n = 0;
    for (const auto& [k, f] : m_files) {
      n += f.finished ? 1 : 0;
    }
    return n;
  }

private:
  std::map<std::string, FileProgress> m_files;
};

std::string format_eta(double seconds)
{
  if (seconds < 0 || seconds > 99 * 3600) {
    return "--:--";
  }
  auto s = static_cast<long>(seconds);
  if (s >= 3600) {
    return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  }
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

// Renderers are called on the library's download threads (inside libcurl's write callback): nothing may
// throw back into them. A failed write (the reader of a pipe went away, a full disk) stops all rendering and
// asks the command to stop, as Ctrl-C does; main() then turns the recorded reason into the exit status.
class GuardedRenderer : public ProgressObserver {
public:
  void on_event(const ProgressEvent& e) final
  {
    if (m_failed.load()) {
      return;
    }
    try {
      render_event(e);
    } catch (...) {
      m_failed.store(true);
      output_failed(std::current_exception());
    }
  }

protected:
  virtual void render_event(const ProgressEvent& e) = 0;
  // For destructors: runs `step` unless rendering failed before, recording a failure of its own.
  template <class Step> void guarded(Step&& step) noexcept
  {
    if (m_failed.load()) {
      return;
    }
    try {
      step();
    } catch (...) {
      m_failed.store(true);
      output_failed(std::current_exception());
    }
  }

private:
  std::atomic<bool> m_failed{false};
};

// Shared speed/ETA bookkeeping for the human renderers.
class HumanRenderer : public GuardedRenderer {
public:
  explicit HumanRenderer(bool tty) : m_tty(tty), m_start(Clock::now()) {}
  ~HumanRenderer() override
  {
    guarded([this] { summary(); });
  }

protected:
  void render_event(const ProgressEvent& e) override
  {
    std::lock_guard lock(m_mutex);
    m_totals.apply(e);
    const auto now = Clock::now();
    switch (e.type) {
    case EventType::retrying:
    case EventType::stalled:
    case EventType::failed:
    case EventType::waiting_lock:
      message(fmt::format("{} {}: {}", e.path,
                          e.type == EventType::stalled        ? "stalled, retrying"
                          : e.type == EventType::failed       ? "failed"
                          : e.type == EventType::waiting_lock ? "waiting for lock"
                                                              : "retrying",
                          e.message));
      break;
    case EventType::done:
      if (!m_tty) {
        message(fmt::format("{}: done ({})", e.path, util::format_size(e.total)));
      }
      break;
    default: break;
    }
    const auto interval = m_tty ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000);
    if (now - m_last_render >= interval || e.type == EventType::done) {
      if (m_tty || now - m_last_render >= interval) {
        render(now, e);
      }
    }
  }

private:
  void summary()
  {
    std::lock_guard lock(m_mutex);
    erase();
    if (m_totals.files() > 0 && m_totals.transferred() > 0) {
      const double secs = std::chrono::duration<double>(Clock::now() - m_start).count();
      fmt::print(stderr, "downloaded {} in {:.1f} s ({}/s)\n", util::format_size(m_totals.transferred()),
                 secs,
                 util::format_size(static_cast<std::uint64_t>(static_cast<double>(m_totals.transferred()) /
                                                              std::max(secs, 0.001))));
    }
    std::fflush(stderr);
  }

  void message(const std::string& text)
  {
    erase();
    fmt::print(stderr, "{}\n", text);
  }

  // Removes the live lines drawn last time (terminal only); the cursor ends where they started.
  void erase()
  {
    if (!m_tty || m_lines_shown == 0) {
      return;
    }
    std::fputs("\r\033[K", stderr);
    for (std::size_t i = 1; i < m_lines_shown; ++i) {
      std::fputs("\033[1A\033[K", stderr);
    }
    m_lines_shown = 0;
  }

  void render(Clock::time_point now, const ProgressEvent& last)
  {
    m_last_render = now;
    const double secs = std::chrono::duration<double>(now - m_start).count();
    const double speed = secs > 0.2 ? static_cast<double>(m_totals.transferred()) / secs : 0.0;
    const std::uint64_t total = m_totals.total();
    const std::uint64_t cur = m_totals.current();
    const double eta = speed > 0 ? static_cast<double>(total - std::min(total, cur)) / speed : -1;
    const int pct =
        total ? static_cast<int>(100.0 * static_cast<double>(cur) / static_cast<double>(total)) : 100;
    std::string line =
        fmt::format("[{}/{} files] {} / {} {:3}% {}/s ETA {}  {}", m_totals.finished(), m_totals.files(),
                    util::format_size(cur), util::format_size(total), pct,
                    util::format_size(static_cast<std::uint64_t>(speed)), format_eta(eta), last.path);
    if (m_tty) {
      winsize ws{};
      std::size_t width = 100;
      if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) {
        width = ws.ws_col - 1;
      }
      // One line per file in flight (at most 4), then the total.
      std::vector<std::string> out;
      for (const auto& [path, f] : m_totals.active(4)) {
        const int fpct =
            f.total ? static_cast<int>(100.0 * static_cast<double>(f.current) / static_cast<double>(f.total))
                    : 100;
        out.push_back(fmt::format("  {:3}% {:>8} / {:<8} {}", fpct, util::format_size(f.current),
                                  util::format_size(f.total), path));
      }
      out.push_back(fmt::format("[{}/{} files] {} / {} {:3}% {}/s ETA {}", m_totals.finished(),
                                m_totals.files(), util::format_size(cur), util::format_size(total), pct,
                                util::format_size(static_cast<std::uint64_t>(speed)), format_eta(eta)));
      erase();
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i].size() > width) {
          out[i].resize(width);
        }
        fmt::print(stderr, "{}{}", out[i], i + 1 < out.size() ? "\n" : "");
      }
      m_lines_shown = out.size();
    } else {
      fmt::print(stderr, "{}\n", line);
    }
    std::fflush(stderr);
  }

  bool m_tty;
  std::mutex m_mutex;
  Totals m_totals;
  Clock::time_point m_start;
  Clock::time_point m_last_render{};
  std::size_t m_lines_shown = 0;
};

class JsonRenderer : public GuardedRenderer {
protected:
  void render_event(const ProgressEvent& e) override
  {
    nlohmann::json j{{"event", to_string(e.type)},
                     {"repo_id", e.repo_id},
                     {"path", e.path},
                     {"total", e.total},
                     {"current", e.current}};
    if (e.attempt) {
      j["attempt"] = e.attempt;
    }
    if (!e.message.empty()) {
      j["message"] = e.message;
    }
    std::lock_guard lock(m_mutex);
    fmt::print(stderr, "{}\n", j.dump());
    std::fflush(stderr);
  }

private:
  std::mutex m_mutex;
};

} // namespace

std::unique_ptr<ProgressObserver> make_progress_renderer(const GlobalOptions& global)
{
  if (global.quiet) {
    return nullptr;
  }
  if (global.json) {
    return std::make_unique<JsonRenderer>();
  }
  const auto& env = util::Env::process();
  if (auto v = env.get("HF_HUB_DISABLE_PROGRESS_BARS"); v && util::is_truthy(*v)) {
    return nullptr;
  }
  return std::make_unique<HumanRenderer>(::isatty(STDERR_FILENO) == 1);
}

std::uint64_t parse_size_option(const std::string& option, const std::string& value)
{
  try {
    return util::parse_size(value);
  } catch (const std::exception& e) {
    throw CLI::ValidationError(option, e.what());
  }
}

} // namespace modelmgr::cli
