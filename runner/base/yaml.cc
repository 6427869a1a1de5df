#include "runner/base/yaml.h"

#include <fmt/format.h>

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

constexpr int kMaxDepth = 64;
constexpr long kMaxNodes = 200'000;

bool within(const YAML::Node& n, int depth, long& budget) {
  if (depth > kMaxDepth || --budget < 0) return false;
  if (n.IsSequence()) {
    for (const auto& item : n)
      if (!within(item, depth + 1, budget)) return false;
  } else if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it)
      if (!within(it->first, depth + 1, budget) || !within(it->second, depth + 1, budget))
        return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> check_limits(const YAML::Node& n) {
  long budget = kMaxNodes;
  if (within(n, 0, budget)) return std::nullopt;
  return budget < 0
             ? fmt::format("the document expands to more than {} values (aliases?)", kMaxNodes)
             : fmt::format("the document nests deeper than {} levels (a recursive alias?)",
                           kMaxDepth);
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
