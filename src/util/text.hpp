#pragma once
// Text from outside (a server's error message, a file name from a listing) made safe to show on a terminal.

#include <string>
#include <string_view>

namespace modelmgr::util {

// `s` with every byte that could drive a terminal shown as a `\xNN` escape: C0 controls (including ESC,
// CR, LF and TAB), DEL, the UTF-8 encodings of the C1 controls U+0080..U+009F (CSI and friends), and bytes
// that are not part of valid UTF-8. A backslash stays as it is; printable ASCII and valid UTF-8 of other
// code points pass unchanged.
std::string escape_for_terminal(std::string_view s);

// Whether escape_for_terminal(s) would change `s`.
bool has_terminal_controls(std::string_view s) noexcept;

} // namespace modelmgr::util
