/// Text scanners over Lua source: template splitting, reference scanning, quoting. They
/// know just enough of Lua's lexical rules (strings, long brackets, comments) to not be
/// fooled by text inside a string literal.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "runner/lua/expr_detail.h"

namespace netplay::expr_detail {
namespace {

constexpr auto npos = std::string_view::npos;

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

/// Level of a long bracket opening at i ("[[" -> 0, "[==[" -> 2), or -1.
int long_bracket_level(std::string_view s, size_t i) {
  if (i >= s.size() || s[i] != '[') return -1;
  size_t j = i + 1;
  while (j < s.size() && s[j] == '=') ++j;
  return j < s.size() && s[j] == '[' ? static_cast<int>(j - i - 1) : -1;
}

/// Index just past the long bracket string opening at i, or npos when unterminated.
size_t skip_long_bracket(std::string_view s, size_t i, int level) {
  // Built by append: GCC 12 at -O3 misreads `"]" + std::string(n, '=')` as a huge copy.
  std::string close;
  close.reserve(static_cast<size_t>(level) + 2);
  close.push_back(']');
  close.append(static_cast<size_t>(level), '=');
  close.push_back(']');
  size_t end = s.find(close, i + static_cast<size_t>(level) + 2);
  return end == npos ? npos : end + close.size();
}

/// Index just past the quoted string opening at i, or npos when unterminated.
size_t skip_quoted(std::string_view s, size_t i) {
  char q = s[i];
  for (size_t j = i + 1; j < s.size(); ++j) {
    if (s[j] == '\\') {
      ++j;
    } else if (s[j] == q) {
      return j + 1;
    } else if (s[j] == '\n') {
      return npos;
    }
  }
  return npos;
}

/// If a string literal, long string or comment starts at i, the index just past it
/// (s.size() when unterminated); otherwise i.
size_t skip_non_code(std::string_view s, size_t i) {
  char c = s[i];
  if (c == '"' || c == '\'') {
    size_t e = skip_quoted(s, i);
    return e == npos ? s.size() : e;
  }
  if (c == '[') {
    int level = long_bracket_level(s, i);
    if (level < 0) return i;
    size_t e = skip_long_bracket(s, i, level);
    return e == npos ? s.size() : e;
  }
  if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
    int level = long_bracket_level(s, i + 2);
    if (level >= 0) {
      size_t e = skip_long_bracket(s, i + 2, level);
      return e == npos ? s.size() : e;
    }
    size_t nl = s.find('\n', i);
    return nl == npos ? s.size() : nl + 1;
  }
  return i;
}

size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

std::string_view trim(std::string_view s) {
  size_t b = skip_space(s, 0);
  size_t e = s.size();
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

/// The name after ROOT at i (just past the identifier), or empty.
std::string_view ref_after(std::string_view s, size_t i) {
  i = skip_space(s, i);
  if (i >= s.size()) return {};
  if (s[i] == '.' && (i + 1 >= s.size() || s[i + 1] != '.')) {
    size_t b = skip_space(s, i + 1);
    size_t e = b;
    if (e < s.size() && ident_start(s[e])) {
      while (e < s.size() && ident_char(s[e])) ++e;
    }
    return s.substr(b, e - b);
  }
  if (s[i] == '[') {
    size_t b = skip_space(s, i + 1);
    if (b >= s.size() || (s[b] != '"' && s[b] != '\'')) return {};
    size_t e = skip_quoted(s, b);
    if (e == npos) return {};
    std::string_view name = s.substr(b + 1, e - b - 2);
    if (name.find('\\') != npos) return {};  // escapes: not a plain step id
    return name;
  }
  return {};
}

}  // namespace

std::expected<std::vector<TemplatePart>, std::string> split_template(std::string_view src) {
  std::vector<TemplatePart> parts;
  size_t pos = 0;
  while (true) {
    size_t open = src.find("{{", pos);
    if (open == npos) break;
    if (open > pos) parts.push_back({false, src.substr(pos, open - pos)});
    size_t j = open + 2;
    int depth = 0;
    size_t close = npos;
    while (j < src.size()) {
      size_t k = skip_non_code(src, j);
      if (k != j) {
        j = k;
        continue;
      }
      char c = src[j];
      if (c == '{') {
        ++depth;
      } else if (c == '}') {
        if (depth > 0) {
          --depth;
        } else if (j + 1 < src.size() && src[j + 1] == '}') {
          close = j;
          break;
        }
      }
      ++j;
    }
    if (close == npos) return std::unexpected("unterminated '{{'");
    std::string_view expr = trim(src.substr(open + 2, close - open - 2));
    if (expr.empty()) return std::unexpected("empty '{{ }}'");
    parts.push_back({true, expr});
    pos = close + 2;
  }
  if (pos < src.size()) parts.push_back({false, src.substr(pos)});
  return parts;
}

std::string lua_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\{:03d}", c);  // always 3 digits: a following digit stays literal
    }
  }
  out.push_back('"');
  return out;
}

std::vector<std::string> scan_refs(std::string_view src, std::string_view root) {
  std::vector<std::string> names;
  char prev = 0;  // last significant character before the current token
  size_t i = 0;
  while (i < src.size()) {
    size_t k = skip_non_code(src, i);
    if (k != i) {
      i = k;
      prev = 'x';
      continue;
    }
    char c = src[i];
    if (ident_start(c)) {
      size_t e = i;
      while (e < src.size() && ident_char(src[e])) ++e;
      std::string_view word = src.substr(i, e - i);
      if (word == root && prev != '.' && prev != ':') {
        std::string_view name = ref_after(src, e);
        if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end()) {
          names.emplace_back(name);
        }
      }
      prev = 'x';
      i = e;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {  // 1e5, 0x1f: not identifiers
      while (i < src.size() && (ident_char(src[i]) || src[i] == '.')) ++i;
      prev = '0';
      continue;
    }
    if (c == '.' && prev == '.') {
      prev = '+';  // "..": concatenation, so `a..steps.x` still refers to x
    } else if (!std::isspace(static_cast<unsigned char>(c))) {
      prev = c;
    }
    ++i;
  }
  return names;
}

}  // namespace netplay::expr_detail
