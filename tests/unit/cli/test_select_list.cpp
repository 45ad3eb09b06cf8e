// The `cache rm -i` list as a state machine (cli/select_list.hpp), without a terminal: moving, expanding,
// ticking groups and single children, all/none, accept/cancel keys, the scrolling window on a screen
// smaller than the list, cutting to the width; and the key decoder of cli/terminal.hpp on byte strings
// and through a pipe.

#include "cli/select_list.hpp"
#include "cli/terminal.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace modelmgr::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Row = SelectList::Row;
using Outcome = SelectList::Outcome;
using Tick = SelectList::Tick;

KeyPress key(Key k)
{
  return {k, 0};
}
KeyPress ch(char c)
{
  return {Key::character, c};
}

// big: 3 revisions; mid: 1 revision; leaf: no revisions (a repo without snapshots).
SelectList sample()
{
  std::vector<SelectGroup> g;
  g.push_back({{"model/org/big", "3.0G"}, {{"aaaa (main)", "2.0G"}, {"bbbb (v1)", "1.0G"}, {"cccc", "1M"}}});
  g.push_back({{"model/org/mid", "1.0G"}, {{"dddd (main)", "1.0G"}}});
  g.push_back({{"dataset/org/leaf", "0B"}, {}});
  return SelectList(std::move(g), "title");
}

TEST(SelectList, StartsCollapsedOnTheFirstGroupAndMovesWithinBounds)
{
  auto l = sample();
  EXPECT_EQ(l.rows().size(), 3u);
  EXPECT_EQ(l.cursor_row(), (Row{0, std::nullopt}));
  EXPECT_EQ(l.handle(key(Key::up)), Outcome::running);
  EXPECT_EQ(l.cursor_row(), (Row{0, std::nullopt})); // clamped at the top
  l.handle(ch('j'));
  EXPECT_EQ(l.cursor_row(), (Row{1, std::nullopt}));
  l.handle(key(Key::end));
  EXPECT_EQ(l.cursor_row(), (Row{2, std::nullopt}));
  l.handle(key(Key::down));
  EXPECT_EQ(l.cursor_row(), (Row{2, std::nullopt})); // clamped at the bottom
  l.handle(ch('k'));
  EXPECT_EQ(l.cursor_row(), (Row{1, std::nullopt}));
  l.handle(ch('g'));
  EXPECT_EQ(l.cursor_row(), (Row{0, std::nullopt}));
}

TEST(SelectList, RightExpandsLeftCollapsesFromAChildToItsGroup)
{
  auto l = sample();
  l.handle(key(Key::right));
  EXPECT_TRUE(l.expanded(0));
  EXPECT_EQ(l.rows().size(), 6u);
  l.handle(key(Key::down));
  l.handle(key(Key::down));
  EXPECT_EQ(l.cursor_row(), (Row{0, 1u}));
  l.handle(key(Key::left));
  EXPECT_FALSE(l.expanded(0));
  EXPECT_EQ(l.cursor_row(), (Row{0, std::nullopt}));
  // Enter with nothing ticked toggles the group under the cursor.
  EXPECT_EQ(l.handle(key(Key::enter)), Outcome::running);
  EXPECT_TRUE(l.expanded(0));
  EXPECT_EQ(l.handle(key(Key::enter)), Outcome::running);
  EXPECT_FALSE(l.expanded(0));
}

TEST(SelectList, SpaceTicksAGroupWithItsChildrenOrASingleChild)
{
  auto l = sample();
  l.handle(key(Key::space));
  EXPECT_EQ(l.group_tick(0), Tick::all);
  EXPECT_TRUE(l.child_ticked(0, 2));
  l.handle(key(Key::space));
  EXPECT_EQ(l.group_tick(0), Tick::none);

  l.handle(key(Key::right));
  l.handle(key(Key::down)); // child 0
  l.handle(key(Key::space));
  EXPECT_EQ(l.group_tick(0), Tick::some);
  EXPECT_TRUE(l.child_ticked(0, 0));
  EXPECT_FALSE(l.child_ticked(0, 1));
  l.handle(key(Key::up));
  l.handle(key(Key::space)); // partially ticked group → all
  EXPECT_EQ(l.group_tick(0), Tick::all);

  l.handle(key(Key::end)); // the group without children is ticked as a whole
  l.handle(key(Key::space));
  EXPECT_EQ(l.group_tick(2), Tick::all);

  auto frame = l.render(20, 80, {});
  EXPECT_THAT(frame.lines[1], HasSubstr("[x] - model/org/big"));
  EXPECT_THAT(frame.lines[2], HasSubstr("[x]   aaaa (main)"));
  EXPECT_THAT(frame.lines[5], HasSubstr("[ ] + model/org/mid"));
}

TEST(SelectList, AllTicksEverythingThenNothing)
{
  auto l = sample();
  l.handle(ch('a'));
  for (std::size_t g = 0; g < 3; ++g) {
    EXPECT_EQ(l.group_tick(g), Tick::all) << g;
  }
  l.handle(ch('a'));
  EXPECT_FALSE(l.any_ticked());
  l.handle(key(Key::space)); // some ticked → a ticks all
  l.handle(ch('a'));
  EXPECT_EQ(l.group_tick(1), Tick::all);
}

TEST(SelectList, AcceptNeedsATickAndQuitKeysCancel)
{
  auto l = sample();
  EXPECT_EQ(l.handle(ch('d')), Outcome::running);
  EXPECT_THAT(l.hint(), HasSubstr("Nothing ticked"));
  EXPECT_THAT(l.render(10, 80, {}).lines.back(), HasSubstr("Nothing ticked"));
  l.handle(key(Key::down));
  EXPECT_TRUE(l.hint().empty());
  l.handle(key(Key::space));
  EXPECT_EQ(l.handle(key(Key::enter)), Outcome::accept);
  EXPECT_EQ(l.handle(ch('d')), Outcome::accept);
  for (const auto& k : {ch('q'), key(Key::escape), key(Key::ctrl_c), key(Key::eof), key(Key::interrupt)}) {
    auto fresh = sample();
    EXPECT_EQ(fresh.handle(k), Outcome::cancel);
  }
  EXPECT_EQ(l.handle(key(Key::resize)), Outcome::running);
}

TEST(SelectList, ScrollsAWindowAroundTheCursorOnASmallScreen)
{
  std::vector<SelectGroup> g;
  for (int i = 0; i < 30; ++i) {
    g.push_back({{"repo" + std::to_string(i), ""}, {}});
  }
  SelectList l(std::move(g), "title");
  const std::vector<std::string> footer{"total: 0B"};
  // 8 lines: title + 6 rows + footer.
  auto f = l.render(8, 40, footer);
  ASSERT_EQ(f.lines.size(), 8u);
  EXPECT_THAT(f.lines[0], HasSubstr("[1-6 of 30]"));
  EXPECT_EQ(f.cursor_line, 1);
  EXPECT_EQ(f.lines.back(), "total: 0B");
  for (int i = 0; i < 8; ++i) {
    l.handle(key(Key::down));
  }
  f = l.render(8, 40, footer);
  ASSERT_EQ(f.lines.size(), 8u);
  EXPECT_THAT(f.lines[0], HasSubstr("[4-9 of 30]")); // scrolled just enough to show row 9
  EXPECT_EQ(f.cursor_line, 6);
  EXPECT_THAT(f.lines[6], StartsWith("> [ ]   repo8"));
  l.handle(key(Key::up));
  f = l.render(8, 40, footer);
  EXPECT_THAT(f.lines[0], HasSubstr("[4-9 of 30]")); // moving up inside the window does not scroll
  EXPECT_EQ(f.cursor_line, 5);
  l.handle(key(Key::page_down));
  l.handle(key(Key::page_down));
  l.handle(key(Key::page_down));
  l.handle(key(Key::page_down));
  f = l.render(8, 40, footer);
  EXPECT_THAT(f.lines[0], HasSubstr("[25-30 of 30]"));
  EXPECT_THAT(f.lines[6], HasSubstr("repo29"));
  // A screen of 1 line still shows the cursor row; 0 lines shows nothing.
  f = l.render(1, 40, footer);
  ASSERT_EQ(f.lines.size(), 1u);
  EXPECT_THAT(f.lines[0], HasSubstr("repo29"));
  EXPECT_TRUE(l.render(0, 40, footer).lines.empty());
}

TEST(SelectList, LinesAreCutToTheWidth)
{
  auto l = sample();
  l.handle(key(Key::right));
  const auto f = l.render(10, 16, {"a footer longer than sixteen"});
  for (const auto& line : f.lines) {
    EXPECT_LE(line.size(), 16u) << line;
  }
  EXPECT_EQ(f.lines[1], "> [ ] - model...");
  EXPECT_EQ(fit_width("héllo wörld", 8), "héllo...");
  EXPECT_EQ(fit_width("short", 8), "short");
  EXPECT_EQ(fit_width("abcdef", 2), "ab");
  EXPECT_EQ(fit_width("abc", 0), "");
}

TEST(SelectList, AnEmptyListOnlyCancels)
{
  SelectList l({}, "title");
  EXPECT_EQ(l.handle(key(Key::resize)), Outcome::running);
  EXPECT_EQ(l.handle(key(Key::enter)), Outcome::cancel);
  EXPECT_EQ(l.render(5, 20, {}).lines.size(), 5u);
}

KeyPress decode_one(const std::string& bytes, std::size_t& used, bool more = false)
{
  return KeyReader::decode(bytes, used, more);
}

TEST(KeyDecoding, ArrowsEnterEscAndControlKeys)
{
  std::size_t used = 0;
  EXPECT_EQ(decode_one("\033[A", used).key, Key::up);
  EXPECT_EQ(used, 3u);
  EXPECT_EQ(decode_one("\033[B", used).key, Key::down);
  EXPECT_EQ(decode_one("\033OC", used).key, Key::right); // SS3 (application cursor mode)
  EXPECT_EQ(decode_one("\033[D", used).key, Key::left);
  EXPECT_EQ(decode_one("\033[5~", used).key, Key::page_up);
  EXPECT_EQ(used, 4u);
  EXPECT_EQ(decode_one("\033[6~", used).key, Key::page_down);
  EXPECT_EQ(decode_one("\033[H", used).key, Key::home);
  EXPECT_EQ(decode_one("\033[4~", used).key, Key::end);
  EXPECT_EQ(decode_one("\r", used).key, Key::enter);
  EXPECT_EQ(decode_one("\n", used).key, Key::enter);
  EXPECT_EQ(decode_one(" ", used).key, Key::space);
  EXPECT_EQ(decode_one("\x03", used).key, Key::ctrl_c);
  EXPECT_EQ(decode_one("\x04", used).key, Key::eof);
  const auto q = decode_one("q", used);
  EXPECT_EQ(q.key, Key::character);
  EXPECT_EQ(q.ch, 'q');
  // A lone ESC: wait for more while more may follow, else it is the Esc key.
  decode_one("\033", used, true);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(decode_one("\033", used, false).key, Key::escape);
  decode_one("\033[1", used, true);
  EXPECT_EQ(used, 0u);
  // Unknown sequences are swallowed whole.
  EXPECT_EQ(decode_one("\033[99~x", used).key, Key::none);
  EXPECT_EQ(used, 5u);
}

TEST(KeyDecoding, ReaderSplitsSeveralKeysFromOneWriteAndEndsAtEof)
{
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  const std::string bytes = "\033[B \033[Aq\r";
  ASSERT_EQ(::write(p[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(p[1]);
  KeyReader r(p[0]);
  EXPECT_EQ(r.read().key, Key::down);
  EXPECT_EQ(r.read().key, Key::space);
  EXPECT_EQ(r.read().key, Key::up);
  EXPECT_EQ(r.read().ch, 'q');
  EXPECT_EQ(r.read().key, Key::enter);
  EXPECT_EQ(r.read().key, Key::eof);
  ::close(p[0]);
}

} // namespace
} // namespace modelmgr::cli
