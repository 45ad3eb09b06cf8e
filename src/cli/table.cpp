#include "cli/cli.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace modelmgr::cli {

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                 bool rule)
{
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) {
    width[i] = header[i].size();
    for (const auto& row : rows) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  const auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}  ", row[i], width[i]);
    }
    fmt::print("{}\n", line);
  };
  print_row(header);
  if (rule) {
    std::vector<std::string> dashes;
    for (auto w : width) {
      dashes.emplace_back(w, '-');
    }
    print_row(dashes);
  }
  for (const auto& row : rows) {
    print_row(row);
  }
}

} // namespace modelmgr::cli
