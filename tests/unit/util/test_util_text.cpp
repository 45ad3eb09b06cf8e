// util/text: server text made safe for a terminal.

#include "util/text.hpp"

#include <gtest/gtest.h>

namespace modelmgr::util {
namespace {

TEST(EscapeForTerminal, ControlsAndInvalidUtf8BecomeHexEscapes)
{
  EXPECT_EQ(escape_for_terminal("plain text/with a\\b"), "plain text/with a\\b");
  EXPECT_EQ(escape_for_terminal("données élan ✓ 😀"), "données élan ✓ 😀");
  EXPECT_EQ(escape_for_terminal("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  EXPECT_EQ(escape_for_terminal(std::string("a\0b\r\n\t\x7f", 7)), "a\\x00b\\x0d\\x0a\\x09\\x7f");
  EXPECT_EQ(escape_for_terminal("\xc2\x9b"
                                "2J"),
            "\\xc2\\x9b2J"); // U+009B, the 8-bit CSI
  EXPECT_EQ(escape_for_terminal("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escape_for_terminal("\xc0\xaf"), "\\xc0\\xaf");          // overlong '/'
  EXPECT_EQ(escape_for_terminal("\xed\xa0\x80"), "\\xed\\xa0\\x80"); // a surrogate
  EXPECT_EQ(escape_for_terminal("\xe2\x82"), "\\xe2\\x82");          // cut short
}

TEST(EscapeForTerminal, DetectsWhatItWouldChange)
{
  EXPECT_FALSE(has_terminal_controls("sub/dir/données.txt"));
  EXPECT_TRUE(has_terminal_controls("a\x1b"));
  EXPECT_TRUE(has_terminal_controls("\xc2\x85"));
  EXPECT_TRUE(has_terminal_controls("\x80"));
}

} // namespace
} // namespace modelmgr::util
