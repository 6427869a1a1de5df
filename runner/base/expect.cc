/// Matchers. Equality is JSON equality with one leniency: a number and a string that holds
/// a number compare as numbers ("4789" == 4789), because facts read from the kernel or a
/// command are often text while playbooks write numbers. Every matcher except `absent`
/// fails on an absent fact (null counts as absent): "could not see it" never passes.

#include "runner/base/expect.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <mutex>
#include <regex>

#include "runner/base/core.h"

namespace netplay {

namespace {

bool has_template(const json& v) {
  return v.is_string() && netplay::has_template(v.get_ref<const std::string&>());
}

std::optional<double> as_number(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  const auto& s = v.get_ref<const std::string&>();
  if (s.empty()) return std::nullopt;
  double d = 0;
  const char* b = s.data();
  if (*b == '+') ++b;
  auto [p, ec] = std::from_chars(b, s.data() + s.size(), d);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return d;
}

bool values_equal(const json& a, const json& b) {
  if (a.is_number() || b.is_number()) {
    auto x = as_number(a), y = as_number(b);
    if (x && y) return *x == *y;
  }
  return a == b;
}

/// A value as written in a matcher list: strings bare, the rest as JSON.
std::string bare(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string list_text(const json& v) {
  if (!v.is_array()) return describe_value(v);
  std::vector<std::string> items;
  for (const auto& e : v) items.push_back(bare(e));
  return fmt::format("[{}]", fmt::join(items, ", "));
}

/// "< 5", "one of [a, b]", "to match /x/": what follows "expected".
std::string describe_matcher(const std::string& m, const json& op) {
  if (m == "eq") return describe_value(op);
  if (m == "ne") return "!= " + describe_value(op);
  if (m == "lt") return "< " + describe_value(op);
  if (m == "le") return "<= " + describe_value(op);
  if (m == "gt") return "> " + describe_value(op);
  if (m == "ge") return ">= " + describe_value(op);
  if (m == "one_of") return "one of " + list_text(op);
  if (m == "contains") return "to contain " + describe_value(op);
  if (m == "not_contains") return "not to contain " + describe_value(op);
  if (m == "matches") return fmt::format("to match /{}/", bare(op));
  if (m == "absent") return op == json(false) ? "present" : "absent";
  if (m == "present") return op == json(false) ? "absent" : "present";
  if (m == "len") {
    if (!op.is_object()) return "length " + describe_value(op);
    std::vector<std::string> parts;
    for (const auto& [k, v] : op.items()) parts.push_back(describe_matcher(k, v));
    return "length " + fmt::format("{}", fmt::join(parts, " and "));
  }
  return m + " " + describe_value(op);
}

std::shared_ptr<const std::regex> cached_regex(const std::string& pattern, std::string* error) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const std::regex>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(pattern); it != cache.end()) return it->second;
  try {
    auto re = std::make_shared<const std::regex>(pattern, std::regex::ECMAScript);
    if (cache.size() > 1024) cache.clear();
    cache.emplace(pattern, re);
    return re;
  } catch (const std::regex_error& e) {
    if (error) *error = e.what();
    return nullptr;
  }
}

std::optional<int> compare(const json& actual, const json& op) {
  auto a = as_number(actual), b = as_number(op);
  if (a && b) return *a < *b ? -1 : (*a > *b ? 1 : 0);
  if (actual.is_string() && op.is_string()) {
    int c = actual.get_ref<const std::string&>().compare(op.get_ref<const std::string&>());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  return std::nullopt;
}

bool contains(const json& actual, const json& op) {
  if (actual.is_string())
    return actual.get_ref<const std::string&>().find(bare(op)) != std::string::npos;
  if (actual.is_array())
    return std::any_of(actual.begin(), actual.end(),
                       [&](const json& e) { return values_equal(e, op); });
  if (actual.is_object()) return actual.contains(bare(op));
  return false;
}

std::optional<size_t> length_of(const json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>().size();
  if (v.is_array() || v.is_object()) return v.size();
  return std::nullopt;
}

/// One matcher against a present-or-absent value. Returns ok.
bool apply(const std::string& m, const json& op, const json* actual) {
  const bool present = actual && !actual->is_null();
  if (m == "absent") return op == json(false) ? present : !present;
  if (m == "present") return op == json(false) ? !present : present;
  if (!present) return false;
  const json& a = *actual;
  if (m == "eq") return values_equal(a, op);
  if (m == "ne") return !values_equal(a, op);
  if (m == "lt" || m == "le" || m == "gt" || m == "ge") {
    auto c = compare(a, op);
    if (!c) return false;
    if (m == "lt") return *c < 0;
    if (m == "le") return *c <= 0;
    if (m == "gt") return *c > 0;
    return *c >= 0;
  }
  if (m == "one_of")
    return op.is_array() &&
           std::any_of(op.begin(), op.end(), [&](const json& e) { return values_equal(a, e); });
  if (m == "contains") return contains(a, op);
  if (m == "not_contains") return !contains(a, op);
  if (m == "matches") {
    auto re = cached_regex(bare(op), nullptr);
    return re && std::regex_search(bare(a), *re);
  }
  if (m == "len") {
    auto n = length_of(a);
    if (!n) return false;
    json len = *n;
    if (!op.is_object()) return values_equal(len, op);
    for (const auto& [k, v] : op.items())
      if (!apply(k, v, &len)) return false;
    return true;
  }
  return false;
}

std::string describe_actual(const std::string& m, const json* actual) {
  if (!actual || actual->is_null()) return "absent";
  if (m == "len") {
    if (auto n = length_of(*actual)) return fmt::format("length {}", *n);
  }
  return describe_value(*actual);
}

std::optional<std::string> check_operand(const std::string& m, const json& op, bool in_len) {
  if (has_template(op)) return std::nullopt;  // checked when the template is resolved
  if (m == "lt" || m == "le" || m == "gt" || m == "ge") {
    if (!as_number(op)) return fmt::format("{}: expected a number, got {}", m, describe_value(op));
  } else if (m == "one_of") {
    if (!op.is_array() || op.empty())
      return fmt::format("one_of: expected a non-empty list, got {}", describe_value(op));
  } else if (m == "contains" || m == "not_contains") {
    if (op.is_null() || op.is_object() || op.is_array())
      return fmt::format("{}: expected a string or number, got {}", m, describe_value(op));
  } else if (m == "matches") {
    if (!op.is_string())
      return fmt::format("matches: expected a regex string, got {}", describe_value(op));
    std::string error;
    if (!cached_regex(op.get<std::string>(), &error))
      return fmt::format("matches: invalid regex {}: {}", describe_value(op), error);
  } else if (m == "absent" || m == "present") {
    if (!op.is_boolean())
      return fmt::format("{}: expected true or false, got {}", m, describe_value(op));
  } else if (m == "len") {
    if (in_len) return "len: cannot be nested";
    if (op.is_object()) {
      if (op.empty()) return "len: empty matcher";
      for (const auto& [k, v] : op.items()) {
        static const std::vector<std::string> kNumeric = {"eq", "ne", "lt",    "le",
                                                          "gt", "ge", "one_of"};
        if (std::find(kNumeric.begin(), kNumeric.end(), k) == kNumeric.end()) {
          std::string hint = did_you_mean(k, kNumeric);
          return fmt::format("len: unknown matcher '{}'{}", k,
                             hint.empty() ? " (use eq, ne, lt, le, gt, ge, one_of)"
                                          : fmt::format(" (did you mean '{}'?)", hint));
        }
        if (auto e = check_operand(k, v, true)) return "len." + *e;
      }
    } else if (!(op.is_number_integer() && op.get<long long>() >= 0)) {
      return fmt::format("len: expected a length (an integer >= 0) or a matcher, got {}",
                         describe_value(op));
    }
  }
  return std::nullopt;
}

}  // namespace

const std::vector<std::string>& matcher_names() {
  static const std::vector<std::string> names = {
      "eq",       "ne",           "lt",      "le",     "gt",      "ge", "one_of",
      "contains", "not_contains", "matches", "absent", "present", "len"};
  return names;
}

std::optional<std::string> check_expectation(const json& value) {
  if (!value.is_object()) return std::nullopt;  // a plain value: equality
  if (value.empty()) return "empty matcher (compare with an empty map as {eq: {}})";
  for (const auto& [k, op] : value.items()) {
    const auto& names = matcher_names();
    if (std::find(names.begin(), names.end(), k) == names.end()) {
      std::string hint = did_you_mean(k, names);
      return fmt::format("unknown matcher '{}'{}", k,
                         hint.empty() ? fmt::format(" (matchers: {})", fmt::join(names, ", "))
                                      : fmt::format(" (did you mean '{}'?)", hint));
    }
    if (auto e = check_operand(k, op, false)) return e;
  }
  return std::nullopt;
}

const json* lookup_fact(const json& facts, std::string_view path) {
  const json* cur = &facts;
  std::string_view rest = path;
  while (true) {
    // A key may itself hold dots (sysctl names): the whole rest wins over a split.
    if (cur->is_object()) {
      auto it = cur->find(std::string(rest));
      if (it != cur->end()) return &*it;
    }
    auto dot = rest.find('.');
    std::string_view seg = rest.substr(0, dot);
    if (cur->is_object()) {
      auto it = cur->find(std::string(seg));
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      size_t i = 0;
      auto [p, ec] = std::from_chars(seg.data(), seg.data() + seg.size(), i);
      if (ec != std::errc() || p != seg.data() + seg.size() || seg.empty() || i >= cur->size())
        return nullptr;
      cur = &(*cur)[i];
    } else {
      return nullptr;
    }
    if (dot == std::string_view::npos) return cur;
    rest = rest.substr(dot + 1);
  }
}

std::vector<ExpectationResult> judge(const json& expect, const json& facts) {
  std::vector<ExpectationResult> out;
  if (!expect.is_object()) return out;
  for (const auto& [fact, spec] : expect.items()) {
    const json* actual = lookup_fact(facts, fact);
    auto one = [&](const std::string& m, const json& op) {
      ExpectationResult r;
      r.fact = fact;
      r.matcher = m;
      r.expected = op;
      r.actual = actual ? *actual : json();
      if (m == "len" && actual)
        if (auto n = length_of(*actual)) r.actual = *n;
      const auto& names = matcher_names();
      if (std::find(names.begin(), names.end(), m) == names.end()) {
        r.message = fmt::format("{}: unknown matcher '{}'", fact, m);
      } else {
        r.ok = apply(m, op, actual);
        r.message = fmt::format("{}: expected {}, got {}", fact, describe_matcher(m, op),
                                describe_actual(m, actual));
      }
      out.push_back(std::move(r));
    };
    if (spec.is_object() && !spec.empty()) {
      for (const auto& [m, op] : spec.items()) one(m, op);
    } else {
      one("eq", spec);
    }
  }
  return out;
}

}  // namespace netplay
