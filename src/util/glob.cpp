#include "util/glob.hpp"

#include <algorithm>
#include <cstdint>
#include <variant>

namespace modelmgr::util {

namespace {

// Decodes UTF-8; an invalid byte becomes U+DC80..U+DCFF (Python's surrogateescape) so it still matches
// only itself.
std::u32string decode(std::string_view s)
{
  std::u32string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int len = 0;
    char32_t cp = 0;
    if (b < 0x80) {
      len = 1;
      cp = b;
    } else if ((b & 0xe0) == 0xc0) {
      len = 2;
      cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
      len = 3;
      cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
      len = 4;
      cp = b & 0x07;
    }
    bool ok = len > 0 && i + static_cast<std::size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      if ((c & 0xc0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (c & 0x3f);
      }
    }
    if (!ok) {
      out += static_cast<char32_t>(0xdc00 + b);
      ++i;
      continue;
    }
    out += cp;
    i += static_cast<std::size_t>(len);
  }
  return out;
}

struct Star {};
struct AnyChar {};
struct Literal {
  char32_t c;
};
struct CharSet {
  bool negated = false;
  std::vector<std::pair<char32_t, char32_t>> ranges; // inclusive; a literal is [c, c]
  bool matches(char32_t c) const
  {
    bool hit = std::any_of(ranges.begin(), ranges.end(),
                           [c](const auto& r) { return r.first <= c && c <= r.second; });
    return hit != negated;
  }
};
using Token = std::variant<Star, AnyChar, Literal, CharSet>;

// Builds a set from pat[begin, end) (the text between "[" and "]", "!" excluded) exactly as
// fnmatch.translate does: split at the hyphens that form ranges, drop reversed ranges, everything else
// literal.
CharSet make_set(const std::u32string& pat, std::size_t begin, std::size_t end, bool negated)
{
  std::vector<std::u32string> chunks;
  std::size_t i = begin;
  std::size_t k = begin + 1; // a hyphen in first position is literal
  for (;;) {
    std::size_t found = std::u32string::npos;
    for (std::size_t p = k; p < end; ++p) {
      if (pat[p] == U'-') {
        found = p;
        break;
      }
    }
    if (found == std::u32string::npos) {
      break;
    }
    chunks.push_back(pat.substr(i, found - i));
    i = found + 1;
    k = found + 3; // the range's end cannot start another range
  }
  std::u32string last = pat.substr(i, end - i);
  bool trailing_hyphen = false;
  if (!last.empty()) {
    chunks.push_back(last);
  } else if (!chunks.empty()) {
    trailing_hyphen = true; // "[a-]": the hyphen is literal
  }
  // Remove empty ranges (z-a), merging their neighbours, as Python does to keep the regex valid.
  for (std::size_t c = chunks.size(); c-- > 1;) {
    if (!chunks[c - 1].empty() && !chunks[c].empty() && chunks[c - 1].back() > chunks[c].front()) {
      chunks[c - 1] = chunks[c - 1].substr(0, chunks[c - 1].size() - 1) + chunks[c].substr(1);
      chunks.erase(chunks.begin() + static_cast<std::ptrdiff_t>(c));
    }
  }
  CharSet set;
  set.negated = negated;
  for (std::size_t c = 0; c < chunks.size(); ++c) {
    const std::u32string& chunk = chunks[c];
    for (std::size_t p = 0; p < chunk.size(); ++p) {
      const bool range_start = p + 1 == chunk.size() && c + 1 < chunks.size() && !chunks[c + 1].empty();
      const bool range_end = p == 0 && c > 0 && !chunks[c - 1].empty();
      if (range_end) {
        continue; // consumed by the previous chunk's range
      }
      if (range_start) {
        set.ranges.emplace_back(chunk[p], chunks[c + 1][0]);
      } else {
        set.ranges.emplace_back(chunk[p], chunk[p]);
      }
    }
  }
  if (trailing_hyphen) {
    set.ranges.emplace_back(U'-', U'-');
  }
  // "[!]"-like sets emptied by range removal: an empty negated set matches any character, an empty set
  // none, which falls out of CharSet::matches.
  return set;
}

std::vector<Token> compile(std::string_view pattern)
{
  const std::u32string pat = decode(pattern);
  std::vector<Token> tokens;
  const std::size_t n = pat.size();
  std::size_t i = 0;
  while (i < n) {
    const char32_t c = pat[i++];
    if (c == U'*') {
      if (tokens.empty() || !std::holds_alternative<Star>(tokens.back())) {
        tokens.emplace_back(Star{});
      }
    } else if (c == U'?') {
      tokens.emplace_back(AnyChar{});
    } else if (c == U'[') {
      std::size_t j = i;
      if (j < n && pat[j] == U'!') {
        ++j;
      }
      if (j < n && pat[j] == U']') {
        ++j;
      }
      while (j < n && pat[j] != U']') {
        ++j;
      }
      if (j >= n) {
        tokens.emplace_back(Literal{U'['});
        continue;
      }
      const bool negated = pat[i] == U'!';
      const std::size_t begin = negated ? i + 1 : i;
      tokens.emplace_back(make_set(pat, begin, j, negated));
      i = j + 1;
    } else {
      tokens.emplace_back(Literal{c});
    }
  }
  return tokens;
}

bool matches_one(const Token& token, char32_t c)
{
  if (std::holds_alternative<AnyChar>(token)) {
    return true;
  }
  if (const auto* lit = std::get_if<Literal>(&token)) {
    return lit->c == c;
  }
  return std::get<CharSet>(token).matches(c);
}

// Every token but Star consumes exactly one character, so the classic "remember the last star and
// retry one character later" scan is complete and runs in O(|path| * |pattern|) at worst.
bool match_tokens(const std::vector<Token>& tokens, const std::u32string& text)
{
  std::size_t t = 0;
  std::size_t p = 0;
  std::size_t star_token = std::string::npos;
  std::size_t star_text = 0;
  while (t < text.size()) {
    if (p < tokens.size() && std::holds_alternative<Star>(tokens[p])) {
      star_token = p++;
      star_text = t;
    } else if (p < tokens.size() && matches_one(tokens[p], text[t])) {
      ++p;
      ++t;
    } else if (star_token != std::string::npos) {
      p = star_token + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < tokens.size() && std::holds_alternative<Star>(tokens[p])) {
    ++p;
  }
  return p == tokens.size();
}

std::string backslash_to_slash(std::string_view s)
{
  std::string out(s);
  std::replace(out.begin(), out.end(), '\\', '/');
  return out;
}

} // namespace

bool fnmatch(std::string_view path, std::string_view pattern)
{
  return match_tokens(compile(pattern), decode(path));
}

std::string normalize_pattern(std::string_view pattern)
{
  std::string out = backslash_to_slash(pattern);
  if (!out.empty() && out.back() == '/') {
    out += '*';
  }
  return out;
}

bool matches_any(std::string_view path, std::span<const std::string> patterns)
{
  const std::u32string text = decode(backslash_to_slash(path));
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& pattern) {
    return match_tokens(compile(normalize_pattern(pattern)), text);
  });
}

std::vector<std::string> filter_paths(std::span<const std::string> paths,
                                      std::span<const std::string> include,
                                      std::span<const std::string> exclude)
{
  std::vector<std::vector<Token>> inc;
  std::vector<std::vector<Token>> exc;
  for (const auto& pattern : include) {
    inc.push_back(compile(normalize_pattern(pattern)));
  }
  for (const auto& pattern : exclude) {
    exc.push_back(compile(normalize_pattern(pattern)));
  }
  std::vector<std::string> kept;
  for (const auto& path : paths) {
    const std::u32string text = decode(backslash_to_slash(path));
    auto hit = [&](const std::vector<Token>& tokens) { return match_tokens(tokens, text); };
    if (!inc.empty() && std::none_of(inc.begin(), inc.end(), hit)) {
      continue;
    }
    if (std::any_of(exc.begin(), exc.end(), hit)) {
      continue;
    }
    kept.push_back(path);
  }
  return kept;
}

} // namespace modelmgr::util
