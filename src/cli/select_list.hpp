#pragma once
// A multi-select list of groups with children (repos → revisions for `cache rm -i`) as a pure state
// machine: the model (rows, cursor, ticks, expanded groups, scroll position), handle(key) → next state,
// render(height, width) → lines. No I/O: the caller reads keys (cli/terminal.hpp) and draws the lines,
// so the whole behaviour is unit-tested without a terminal.
//
// Keys: up/down (k/j), Home/End (g/G), PageUp/PageDown move; right (l) expands a group, left (h)
// collapses it (from a child: collapses its group and moves to it); space ticks the group under the cursor
// (all its children) or one child; `a` ticks everything or nothing; Enter and `d` accept once something is
// ticked (with nothing ticked, Enter expands/collapses the group under the cursor); q, Esc, Ctrl-C, Ctrl-D
// and a signal cancel.

#include "cli/terminal.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmgr::cli {

struct SelectEntry {
  std::string label;  // "model/org/name", "0123abcd4567 (main)"
  std::string detail; // shown after the label column: "3.2M  11 files"
};

struct SelectGroup {
  SelectEntry entry;
  std::vector<SelectEntry> children;
};

class SelectList {
public:
  enum class Outcome { running, accept, cancel };
  enum class Tick { none, some, all };

  // A visible row: a group, or one child of an expanded group.
  struct Row {
    std::size_t group = 0;
    std::optional<std::size_t> child;
    bool operator==(const Row&) const = default;
  };

  struct Frame {
    std::vector<std::string> lines; // exactly `height` lines (fewer only when height < 1), each ≤ width
    int cursor_line = -1;           // the index in `lines` of the cursor row, to highlight
  };

  // `title` is the first line of every frame (a help line).
  SelectList(std::vector<SelectGroup> groups, std::string title);

  // Applies one key and returns whether the list is still running, accepted or cancelled.
  Outcome handle(const KeyPress& key);

  // Returns the screen: the title (after "[first-last of N]" when the rows do not fit), the window of rows
  // around the cursor (scrolling as little as possible), then `footer` lines (the caller's totals) and a
  // hint line when a key needs one. Lines longer than `width` columns are cut with "...". Remembers the
  // scroll position and page size.
  Frame render(int height, int width, const std::vector<std::string>& footer);

  const std::vector<SelectGroup>& groups() const noexcept { return m_groups; }
  std::vector<Row> rows() const;
  Row cursor_row() const;
  bool expanded(std::size_t group) const { return m_expanded.at(group); }
  // A group without children is ticked as a whole (Tick::all or Tick::none).
  Tick group_tick(std::size_t group) const;
  bool child_ticked(std::size_t group, std::size_t child) const { return m_ticks.at(group).at(child); }
  bool any_ticked() const;
  // The hint set by the last key ("nothing ticked ..."), empty when none.
  const std::string& hint() const noexcept { return m_hint; }

private:
  void move(long delta);
  void set_group(std::size_t group, bool on);
  std::string row_text(const Row& row, bool at_cursor) const;

  std::vector<SelectGroup> m_groups;
  std::string m_title;
  std::vector<std::vector<bool>> m_ticks; // per group, per child
  std::vector<bool> m_leaf_ticks;         // per group without children
  std::vector<bool> m_expanded;
  std::size_t m_cursor = 0; // index into rows()
  std::size_t m_top = 0;    // first row shown
  std::size_t m_page = 10;  // rows shown by the last render
  std::size_t m_label_width = 0;
  std::string m_hint;
};

// Returns `text` cut to at most `width` columns (UTF-8 aware, one column per code point), ending in "..."
// when cut.
std::string fit_width(std::string_view text, int width);

} // namespace modelmgr::cli
