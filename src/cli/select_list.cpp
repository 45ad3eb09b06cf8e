#include "cli/select_list.hpp"

#include <algorithm>

namespace modelmgr::cli {

namespace {

constexpr std::string_view k_nothing_ticked = "Nothing ticked: space ticks the line, q quits.";

std::size_t columns(std::string_view s)
{
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

std::string pad(std::string s, std::size_t width)
{
  const std::size_t n = columns(s);
  if (n < width) {
    s.append(width - n, ' ');
  }
  return s;
}

} // namespace

std::string fit_width(std::string_view text, int width)
{
  if (width <= 0) {
    return {};
  }
  const auto w = static_cast<std::size_t>(width);
  if (columns(text) <= w) {
    return std::string(text);
  }
  const std::size_t keep = w > 3 ? w - 3 : w;
  std::string out;
  std::size_t cols = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool starts = (static_cast<unsigned char>(text[i]) & 0xc0) != 0x80;
    if (starts && cols == keep) {
      break;
    }
    cols += starts ? 1 : 0;
    out += text[i];
  }
  if (w > 3) {
    out += "...";
  }
  return out;
}

SelectList::SelectList(std::vector<SelectGroup> groups, std::string title)
    : m_groups(std::move(groups)), m_title(std::move(title))
{
  m_ticks.resize(m_groups.size());
  m_leaf_ticks.assign(m_groups.size(), false);
  m_expanded.assign(m_groups.size(), false);
  for (std::size_t g = 0; g < m_groups.size(); ++g) {
    m_ticks[g].assign(m_groups[g].children.size(), false);
    m_label_width = std::max(m_label_width, columns(m_groups[g].entry.label));
    for (const auto& c : m_groups[g].children) {
      m_label_width = std::max(m_label_width, 2 + columns(c.label));
    }
  }
}

std::vector<SelectList::Row> SelectList::rows() const
{
  std::vector<Row> out;
  for (std::size_t g = 0; g < m_groups.size(); ++g) {
    out.push_back({g, std::nullopt});
    if (m_expanded[g]) {
      for (std::size_t c = 0; c < m_groups[g].children.size(); ++c) {
        out.push_back({g, c});
      }
    }
  }
  return out;
}

SelectList::Row SelectList::cursor_row() const
{
  const auto r = rows();
  return r.empty() ? Row{} : r[std::min(m_cursor, r.size() - 1)];
}

SelectList::Tick SelectList::group_tick(std::size_t group) const
{
  const auto& t = m_ticks.at(group);
  if (t.empty()) {
    return m_leaf_ticks[group] ? Tick::all : Tick::none;
  }
  const auto n = static_cast<std::size_t>(std::count(t.begin(), t.end(), true));
  return n == 0 ? Tick::none : n == t.size() ? Tick::all : Tick::some;
}

bool SelectList::any_ticked() const
{
  for (std::size_t g = 0; g < m_groups.size(); ++g) {
    if (group_tick(g) != Tick::none) {
      return true;
    }
  }
  return false;
}

void SelectList::move(long delta)
{
  const auto n = static_cast<long>(rows().size());
  if (n == 0) {
    return;
  }
  const long to = std::clamp(static_cast<long>(m_cursor) + delta, 0L, n - 1);
  m_cursor = static_cast<std::size_t>(to);
}

void SelectList::set_group(std::size_t group, bool on)
{
  std::fill(m_ticks[group].begin(), m_ticks[group].end(), on);
  m_leaf_ticks[group] = on;
}

SelectList::Outcome SelectList::handle(const KeyPress& key)
{
  m_hint.clear();
  if (m_groups.empty()) {
    return key.key == Key::resize || key.key == Key::none ? Outcome::running : Outcome::cancel;
  }
  const Row row = cursor_row();
  const auto page = static_cast<long>(std::max<std::size_t>(m_page, 1));
  Key k = key.key;
  if (k == Key::character) {
    switch (key.ch) {
    case 'k': k = Key::up; break;
    case 'j': k = Key::down; break;
    case 'h': k = Key::left; break;
    case 'l': k = Key::right; break;
    case 'g': k = Key::home; break;
    case 'G': k = Key::end; break;
    case 'q':
    case 'Q': return Outcome::cancel;
    case 'd':
    case 'D':
      if (any_ticked()) {
        return Outcome::accept;
      }
      m_hint = k_nothing_ticked;
      return Outcome::running;
    case 'a':
    case 'A': {
      bool all = true;
      for (std::size_t g = 0; g < m_groups.size(); ++g) {
        all = all && group_tick(g) == Tick::all;
      }
      for (std::size_t g = 0; g < m_groups.size(); ++g) {
        set_group(g, !all);
      }
      return Outcome::running;
    }
    default: return Outcome::running;
    }
  }
  switch (k) {
  case Key::up: move(-1); break;
  case Key::down: move(1); break;
  case Key::page_up: move(-page); break;
  case Key::page_down: move(page); break;
  case Key::home: move(-static_cast<long>(rows().size())); break;
  case Key::end: move(static_cast<long>(rows().size())); break;
  case Key::right:
    if (!row.child) {
      m_expanded[row.group] = true;
    }
    break;
  case Key::left:
    if (row.child) {
      m_cursor -= *row.child + 1; // the group's row comes right before its children
    }
    m_expanded[row.group] = false;
    break;
  case Key::space:
    if (row.child) {
      m_ticks[row.group][*row.child] = !m_ticks[row.group][*row.child];
    } else {
      set_group(row.group, group_tick(row.group) != Tick::all);
    }
    break;
  case Key::enter:
    if (any_ticked()) {
      return Outcome::accept;
    }
    if (!row.child && !m_groups[row.group].children.empty()) {
      m_expanded[row.group] = !m_expanded[row.group];
    } else {
      m_hint = k_nothing_ticked;
    }
    break;
  case Key::escape:
  case Key::ctrl_c:
  case Key::eof:
  case Key::interrupt: return Outcome::cancel;
  default: break;
  }
  return Outcome::running;
}

std::string SelectList::row_text(const Row& row, bool at_cursor) const
{
  const auto& group = m_groups[row.group];
  std::string s = at_cursor ? "> " : "  ";
  if (row.child) {
    const auto& e = group.children[*row.child];
    s += "    [";
    s += m_ticks[row.group][*row.child] ? "x" : " ";
    s += "] ";
    s += pad("  " + e.label, m_label_width);
    s += "  " + e.detail;
    return s;
  }
  const Tick t = group_tick(row.group);
  s += t == Tick::all ? "[x] " : t == Tick::some ? "[-] " : "[ ] ";
  s += group.children.empty() ? "  " : m_expanded[row.group] ? "- " : "+ ";
  s += pad(group.entry.label, m_label_width);
  s += "  " + group.entry.detail;
  return s;
}

SelectList::Frame SelectList::render(int height, int width, const std::vector<std::string>& footer)
{
  Frame f;
  if (height < 1) {
    return f;
  }
  const auto all = rows();
  std::vector<std::string> bottom = footer;
  if (!m_hint.empty()) {
    bottom.push_back(m_hint);
  }
  // Title, at least one row, then as much of the footer as fits.
  const auto h = static_cast<std::size_t>(height);
  const std::size_t title_lines = h >= 2 ? 1 : 0;
  const std::size_t footer_lines = std::min(bottom.size(), h > title_lines + 1 ? h - title_lines - 1 : 0);
  const std::size_t visible = std::max<std::size_t>(h - title_lines - footer_lines, 0);
  m_page = std::max<std::size_t>(visible, 1);
  if (!all.empty()) {
    m_cursor = std::min(m_cursor, all.size() - 1);
  }
  if (m_cursor < m_top) {
    m_top = m_cursor;
  }
  if (visible > 0 && m_cursor >= m_top + visible) {
    m_top = m_cursor + 1 - visible;
  }
  m_top = std::min(m_top, all.size() > visible ? all.size() - visible : 0);

  if (title_lines > 0) {
    // The position goes first: a narrow screen cuts the end of the title.
    std::string title = m_title;
    if (all.size() > visible) {
      title = "[" + std::to_string(m_top + 1) + "-" + std::to_string(std::min(m_top + visible, all.size())) +
              " of " + std::to_string(all.size()) + "] " + m_title;
    }
    f.lines.push_back(fit_width(title, width));
  }
  for (std::size_t i = 0; i < visible; ++i) {
    const std::size_t r = m_top + i;
    if (r < all.size()) {
      if (r == m_cursor) {
        f.cursor_line = static_cast<int>(f.lines.size());
      }
      f.lines.push_back(fit_width(row_text(all[r], r == m_cursor), width));
    } else {
      f.lines.emplace_back();
    }
  }
  for (std::size_t i = 0; i < footer_lines; ++i) {
    f.lines.push_back(fit_width(bottom[i], width));
  }
  return f;
}

} // namespace modelmgr::cli
