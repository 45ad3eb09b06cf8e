#pragma once
// The terminal for full-screen interactive commands (`cache rm -i`, later `models select`): raw mode as
// RAII, key decoding, the window size. POSIX termios only; no curses.
//
// Restoring the terminal is the point of RawMode: its destructor runs on every normal and exceptional
// exit, and while it is active a SIGINT/SIGTERM/SIGHUP handler restores the terminal before handing the
// signal on to the handler that was installed before (the CLI's cancel flag), so even a hard exit on a
// second Ctrl-C leaves the shell usable.

#include <atomic>
#include <string>

namespace modelmgr::cli {

struct TerminalSize {
  int rows = 24;
  int cols = 80;
};

// Returns the size of the terminal on `fd` (TIOCGWINSZ), else $LINES/$COLUMNS, else 24×80.
TerminalSize terminal_size(int fd);

// Returns a descriptor to read keys from: standard input when it is a terminal, else a new descriptor on
// /dev/tty (the caller closes it) when the process has a controlling terminal, else -1.
int open_key_input();

// Puts a terminal in raw mode for a full-screen UI: no echo, no line buffering, no signal keys (Ctrl-C
// arrives as Key::ctrl_c), the alternate screen and a hidden cursor. Only one may be active at a time.
class RawMode {
public:
  // `in_fd` is the terminal to read keys from, `out_fd` the one drawn on (both may be the same).
  // Throws std::system_error when `in_fd` is not a terminal or its attributes cannot be set.
  RawMode(int in_fd, int out_fd);
  // Restores the saved attributes, shows the cursor and leaves the alternate screen.
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

  // Returns true (once) when a SIGWINCH arrived since the last call.
  static bool take_resized() noexcept;
};

enum class Key {
  none,
  character, // a printable ASCII character, in KeyPress::ch
  up,
  down,
  left,
  right,
  home,
  end,
  page_up,
  page_down,
  enter,
  space,
  tab,
  backspace,
  escape,
  ctrl_c,
  eof,       // the terminal went away (read returned 0) or Ctrl-D
  interrupt, // a signal set the cancel flag while waiting for a key
  resize,    // the window size changed while waiting for a key
};

struct KeyPress {
  Key key = Key::none;
  char ch = 0; // for Key::character
};

// Decodes key presses from a raw-mode terminal: arrows (CSI and SS3 forms), Home/End/PageUp/PageDown,
// Enter (CR or LF), Esc, space, Tab, Backspace, Ctrl-C, Ctrl-D. Unknown escape sequences are swallowed.
class KeyReader {
public:
  // `cancel` (optional) is checked when a signal interrupts the wait: set → Key::interrupt.
  explicit KeyReader(int fd, const std::atomic<bool>* cancel = nullptr);
  // Blocks until a key arrives, the terminal closes, the window is resized or a signal sets `cancel`.
  KeyPress read();

  // Returns the key at the start of `bytes` and how many bytes it used (0: an incomplete escape
  // sequence, wait for more). Exposed for tests.
  static KeyPress decode(const std::string& bytes, std::size_t& used, bool more_may_follow);

private:
  int m_fd;
  const std::atomic<bool>* m_cancel;
  std::string m_pending;
};

} // namespace modelmgr::cli
