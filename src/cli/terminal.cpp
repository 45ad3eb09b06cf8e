#include "cli/terminal.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

namespace modelmgr::cli {

namespace {

// How long to wait for the rest of an escape sequence before taking a lone ESC as the Esc key. Terminals
// send a sequence in one write, so this only matters for a real Esc press.
constexpr int k_escape_wait_ms = 50;

constexpr char k_leave_screen[] = "\033[?25h\033[?1049l";
constexpr char k_enter_screen[] = "\033[?1049h\033[?25l";

// State the signal handler needs: plain globals, written only while no RawMode is active.
volatile std::sig_atomic_t g_active = 0;
int g_in_fd = -1;
int g_out_fd = -1;
termios g_saved{};
volatile std::sig_atomic_t g_resized = 0;

constexpr int k_signals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction g_previous[3];
struct sigaction g_previous_winch;

void write_all(int fd, const char* s, std::size_t n) noexcept
{
  while (n > 0) {
    const ssize_t w = ::write(fd, s, n);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return;
    }
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Async-signal-safe: tcsetattr and write only.
void restore_terminal() noexcept
{
  if (g_active == 0) {
    return;
  }
  g_active = 0;
  ::tcsetattr(g_in_fd, TCSAFLUSH, &g_saved);
  write_all(g_out_fd, k_leave_screen, sizeof k_leave_screen - 1);
}

extern "C" void on_terminal_signal(int sig)
{
  const int saved_errno = errno;
  restore_terminal();
  for (std::size_t i = 0; i < std::size(k_signals); ++i) {
    if (k_signals[i] != sig) {
      continue;
    }
    const auto& prev = g_previous[i];
    if ((prev.sa_flags & SA_SIGINFO) == 0 && prev.sa_handler == SIG_IGN) {
      break;
    }
    if ((prev.sa_flags & SA_SIGINFO) == 0 && prev.sa_handler != SIG_DFL && prev.sa_handler != nullptr) {
      prev.sa_handler(sig);
      break;
    }
    // Default action: terminate the way the signal would have.
    ::sigaction(sig, &prev, nullptr);
    ::raise(sig);
  }
  errno = saved_errno;
}

extern "C" void on_winch(int)
{
  g_resized = 1;
}

bool is_final_byte(char c)
{
  return c >= 0x40 && c <= 0x7e;
}

} // namespace

TerminalSize terminal_size(int fd)
{
  TerminalSize size;
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
    size.rows = ws.ws_row;
    size.cols = ws.ws_col;
    return size;
  }
  if (const char* l = std::getenv("LINES"); l && std::atoi(l) > 0) {
    size.rows = std::atoi(l);
  }
  if (const char* c = std::getenv("COLUMNS"); c && std::atoi(c) > 0) {
    size.cols = std::atoi(c);
  }
  return size;
}

int open_key_input()
{
  if (::isatty(STDIN_FILENO) == 1) {
    return STDIN_FILENO;
  }
  const int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0 && ::isatty(fd) != 1) {
    ::close(fd);
    return -1;
  }
  return fd;
}

RawMode::RawMode(int in_fd, int out_fd)
{
  if (g_active != 0) {
    throw std::system_error(EBUSY, std::generic_category(), "terminal: raw mode is already active");
  }
  termios saved{};
  if (::tcgetattr(in_fd, &saved) != 0) {
    throw std::system_error(errno, std::generic_category(), "terminal: cannot read the terminal settings");
  }
  termios raw = saved;
  raw.c_iflag &= ~static_cast<tcflag_t>(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
  raw.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  raw.c_cflag |= CS8;
  raw.c_lflag &= ~static_cast<tcflag_t>(ECHO | ICANON | IEXTEN | ISIG);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;

  g_in_fd = in_fd;
  g_out_fd = out_fd;
  g_saved = saved;
  g_resized = 0;
  // Handlers first, so a signal arriving right after tcsetattr already finds them.
  struct sigaction sa {};
  sa.sa_handler = on_terminal_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; // no SA_RESTART: a blocking read() returns EINTR so the UI can react
  for (std::size_t i = 0; i < std::size(k_signals); ++i) {
    ::sigaction(k_signals[i], &sa, &g_previous[i]);
  }
  struct sigaction winch {};
  winch.sa_handler = on_winch;
  sigemptyset(&winch.sa_mask);
  ::sigaction(SIGWINCH, &winch, &g_previous_winch);
  g_active = 1;
  if (::tcsetattr(in_fd, TCSAFLUSH, &raw) != 0) {
    const int err = errno;
    g_active = 0;
    for (std::size_t i = 0; i < std::size(k_signals); ++i) {
      ::sigaction(k_signals[i], &g_previous[i], nullptr);
    }
    ::sigaction(SIGWINCH, &g_previous_winch, nullptr);
    throw std::system_error(err, std::generic_category(), "terminal: cannot switch to raw mode");
  }
  write_all(out_fd, k_enter_screen, sizeof k_enter_screen - 1);
}

RawMode::~RawMode()
{
  restore_terminal();
  for (std::size_t i = 0; i < std::size(k_signals); ++i) {
    ::sigaction(k_signals[i], &g_previous[i], nullptr);
  }
  ::sigaction(SIGWINCH, &g_previous_winch, nullptr);
}

bool RawMode::take_resized() noexcept
{
  if (g_resized == 0) {
    return false;
  }
  g_resized = 0;
  return true;
}

KeyReader::KeyReader(int fd, const std::atomic<bool>* cancel) : m_fd(fd), m_cancel(cancel) {}

KeyPress KeyReader::decode(const std::string& bytes, std::size_t& used, bool more_may_follow)
{
  used = 0;
  if (bytes.empty()) {
    return {};
  }
  const char c = bytes[0];
  used = 1;
  switch (c) {
  case '\r':
  case '\n': return {Key::enter};
  case ' ': return {Key::space};
  case '\t': return {Key::tab};
  case 0x03: return {Key::ctrl_c};
  case 0x04: return {Key::eof};
  case 0x08:
  case 0x7f: return {Key::backspace};
  default: break;
  }
  if (c != '\033') {
    if (c >= 0x20 && c < 0x7f) {
      return {Key::character, c};
    }
    return {}; // other control bytes and non-ASCII: ignored
  }
  if (bytes.size() == 1) {
    if (more_may_follow) {
      used = 0;
      return {};
    }
    return {Key::escape};
  }
  const char intro = bytes[1];
  if (intro != '[' && intro != 'O') {
    return {Key::escape}; // ESC followed by something else (Alt+key): take the Esc, keep the rest
  }
  // CSI: ESC [ params final; SS3: ESC O final.
  std::size_t i = 2;
  std::string params;
  while (i < bytes.size() && !is_final_byte(bytes[i])) {
    params += bytes[i];
    ++i;
  }
  if (i >= bytes.size()) {
    if (more_may_follow) {
      used = 0;
      return {};
    }
    used = bytes.size();
    return {};
  }
  used = i + 1;
  switch (bytes[i]) {
  case 'A': return {Key::up};
  case 'B': return {Key::down};
  case 'C': return {Key::right};
  case 'D': return {Key::left};
  case 'H': return {Key::home};
  case 'F': return {Key::end};
  case '~':
    if (params == "1" || params == "7") {
      return {Key::home};
    }
    if (params == "4" || params == "8") {
      return {Key::end};
    }
    if (params == "5") {
      return {Key::page_up};
    }
    if (params == "6") {
      return {Key::page_down};
    }
    return {};
  default: return {};
  }
}

KeyPress KeyReader::read()
{
  for (;;) {
    if (!m_pending.empty()) {
      std::size_t used = 0;
      KeyPress k = decode(m_pending, used, true);
      if (used == 0) {
        // An incomplete escape sequence: give the terminal a moment for the rest.
        pollfd p{m_fd, POLLIN, 0};
        const int r = ::poll(&p, 1, k_escape_wait_ms);
        if (r <= 0 || (p.revents & POLLIN) == 0) {
          k = decode(m_pending, used, false);
        }
      }
      if (used > 0) {
        m_pending.erase(0, used);
        if (k.key != Key::none) {
          return k;
        }
        continue;
      }
    }
    char buf[64];
    const ssize_t n = ::read(m_fd, buf, sizeof buf);
    if (n > 0) {
      m_pending.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      return {Key::eof};
    }
    if (errno == EINTR) {
      // g_active == 0: a signal handler already restored the terminal, so the UI must end.
      if ((m_cancel != nullptr && m_cancel->load()) || g_active == 0) {
        return {Key::interrupt};
      }
      if (RawMode::take_resized()) {
        return {Key::resize};
      }
      continue;
    }
    return {Key::eof}; // EIO: the terminal is gone
  }
}

} // namespace modelmgr::cli
