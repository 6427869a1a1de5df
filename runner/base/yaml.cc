#include "runner/base/yaml.h"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <regex>

namespace netplay::yamlx {

Pos pos_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0 || m.column < 0) return {};
  return {m.line + 1, m.column + 1};
}

std::string scalar_text(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : std::string(); }

std::string describe_node(const YAML::Node& n) {
  if (n.IsScalar()) return describe_value(to_json(n));
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  return "null";
}

namespace {

std::optional<long long> parse_int(const std::string& s) {
  std::string_view v = s;
  bool neg = false;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    neg = v[0] == '-';
    v.remove_prefix(1);
  }
  int base = 10;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'o')) {
    if (neg || s[0] == '+') return std::nullopt;  // the core schema has no signed hex/octal
    base = v[1] == 'x' ? 16 : 8;
    v.remove_prefix(2);
  }
  if (v.empty()) return std::nullopt;
  unsigned long long u = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), u, base);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  if (u > static_cast<unsigned long long>(std::numeric_limits<long long>::max()))
    return std::nullopt;
  long long n = static_cast<long long>(u);
  return neg ? -n : n;
}

std::optional<double> parse_float(const std::string& s) {
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(s, kFloat)) return std::strtod(s.c_str(), nullptr);
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF")
    return std::numeric_limits<double>::infinity();
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return std::nullopt;
}

json plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (auto n = parse_int(s)) return *n;
  if (auto d = parse_float(s)) return *d;
  return s;
}

}  // namespace

json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& tag = n.Tag();
      // "!" marks a quoted (non-plain) scalar in yaml-cpp 0.7; "?" a plain one.
      if (tag == "?") return plain_scalar(n.Scalar());
      if (tag == "tag:yaml.org,2002:int") {
        if (auto i = parse_int(n.Scalar())) return *i;
      } else if (tag == "tag:yaml.org,2002:float") {
        if (auto d = parse_float(n.Scalar())) return *d;
      } else if (tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
        return plain_scalar(n.Scalar());
      }
      return n.Scalar();
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : n) out.push_back(to_json(item));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (auto it = n.begin(); it != n.end(); ++it) {
        std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
        if (!out.contains(key)) out[key] = to_json(it->second);
      }
      return out;
    }
  }
  return nullptr;
}

namespace {

constexpr long kMaxNodes = 200'000;

/// Where a walk stopped: the node too deep, and whether it is one of its own ancestors.
struct Stop {
  Pos at;
  bool recursive = false;
};

bool within(const YAML::Node& n, std::vector<YAML::Node>& path, long& budget, Stop& stop) {
  if (static_cast<int>(path.size()) > kMaxDepth || --budget < 0) {
    stop.at = pos_of(n);
    for (const auto& up : path) stop.recursive = stop.recursive || up.is(n);
    return false;
  }
  path.push_back(n);
  bool ok = true;
  if (n.IsSequence()) {
    for (const auto& item : n)
      if (!(ok = within(item, path, budget, stop))) break;
  } else if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end() && ok; ++it)
      ok = within(it->first, path, budget, stop) && within(it->second, path, budget, stop);
  }
  path.pop_back();
  return ok;
}

/// The 1-based column of the first tab in the indentation of `line`, 0 when none; a line
/// holding only blanks has no indentation to speak of.
int tab_in_indentation(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i == line.size() || line[i] == '\r' || line[i] == '#') return 0;
  size_t tab = line.substr(0, i).find('\t');
  return tab == std::string_view::npos ? 0 : static_cast<int>(tab) + 1;
}

/// Line `n` (1-based) of `text`, without its newline; empty past the end.
std::string_view line_of(std::string_view text, int n) {
  size_t start = 0;
  for (int i = 1; i < n; ++i) {
    start = text.find('\n', start);
    if (start == std::string_view::npos) return {};
    ++start;
  }
  size_t end = text.find('\n', start);
  return text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

}  // namespace

std::expected<YAML::Node, ParseError> parse(const std::string& text) {
  try {
    return YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    Pos p = e.mark.is_null() ? Pos{} : Pos{e.mark.line + 1, e.mark.column + 1};
    return std::unexpected(ParseError{p, fmt::format("nesting deeper than {} levels", kMaxDepth)});
  } catch (const YAML::Exception& e) {
    Pos p = e.mark.is_null() ? Pos{} : Pos{e.mark.line + 1, e.mark.column + 1};
    // yaml-cpp reports a tab used for indentation as a confusing error on that line or the
    // next ("illegal map value", "end of map not found"): name the tab instead.
    for (int line = p.line; line >= 1 && line >= p.line - 1; --line) {
      if (int col = tab_in_indentation(line_of(text, line)))
        return std::unexpected(
            ParseError{{line, col}, "tab character in indentation (YAML allows only spaces)"});
    }
    return std::unexpected(ParseError{p, e.msg});
  } catch (const std::exception& e) {
    return std::unexpected(ParseError{{}, e.what()});
  }
}

std::optional<std::string> check_limits(const YAML::Node& n, Pos* at) {
  long budget = kMaxNodes;
  Stop stop;
  std::vector<YAML::Node> path;
  if (within(n, path, budget, stop)) return std::nullopt;
  if (budget < 0)
    return fmt::format("the document expands to more than {} values (aliases?)", kMaxNodes);
  if (stop.recursive)
    return fmt::format("the document nests deeper than {} levels (a recursive alias?)",
                       kMaxDepth);
  if (at) *at = stop.at;
  return fmt::format("nesting deeper than {} levels", kMaxDepth);
}

bool has_complex_key(const YAML::Node& n) {
  if (n.IsSequence()) {
    for (const auto& item : n)
      if (has_complex_key(item)) return true;
  } else if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it)
      if (!it->first.IsScalar() || has_complex_key(it->second)) return true;
  }
  return false;
}

void check_structure(const YAML::Node& n, const std::string& file, std::vector<Diagnostic>& out) {
  if (n.IsSequence()) {
    for (const auto& item : n) check_structure(item, file, out);
    return;
  }
  if (!n.IsMap()) return;
  std::map<std::string, Pos> seen;
  for (auto it = n.begin(); it != n.end(); ++it) {
    // A copy: the iterator's value is a temporary, a reference into it would dangle.
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      // `target: {{ inputs.x }}` parses as a flow map whose key is another map.
      out.push_back({file, pos_of(key),
                     key.IsMap() ? "a template must be quoted: \"{{ ... }}\""
                                 : "mapping keys must be plain strings"});
      continue;
    }
    auto [first, inserted] = seen.emplace(key.Scalar(), pos_of(key));
    if (!inserted) {
      out.push_back(
          {file, pos_of(key),
           fmt::format("duplicate key '{}' (first at line {})", key.Scalar(), first->second.line)});
    }
    check_structure(it->second, file, out);
  }
}

}  // namespace netplay::yamlx
