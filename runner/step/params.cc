#include "runner/step/params.h"

#include <fmt/format.h>

#include <algorithm>

#include "runner/base/core.h"

namespace netplay {

namespace {

bool is_template(const json& v) {
  return v.is_string() && has_template(v.get_ref<const std::string&>());
}

std::string choices_list(const std::vector<std::string>& choices) {
  return fmt::format("[{}]", fmt::join(choices, ", "));
}

std::expected<json, std::string> check_scalar(const ParamSpec& p, ValueType t, const json& v,
                                              const std::string& where) {
  const auto& choices = p.choices;
  auto c = coerce(t, v);
  if (!c) return std::unexpected(fmt::format("{}: {}", where, c.error()));
  if (c->is_number() && ((p.min && c->get<double>() < *p.min) ||
                         (p.max && c->get<double>() > *p.max))) {
    std::string got = t == ValueType::kDuration ? format_duration(Millis(c->get<double>()))
                                                 : describe_value(*c);
    return std::unexpected(fmt::format("{}: expected {}, got {}", where, range_text(p), got));
  }
  if (!choices.empty() && c->is_string() &&
      std::find(choices.begin(), choices.end(), c->get<std::string>()) == choices.end()) {
    std::string hint = did_you_mean(c->get<std::string>(), choices);
    return std::unexpected(fmt::format(
        "{}: expected one of {}, got {}{}", where, choices_list(choices), describe_value(*c),
        hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
  }
  return c;
}

}  // namespace

std::string range_text(const ParamSpec& p) {
  std::string what = p.type == ValueType::kList ? "items" : "a value";
  if (p.type == ValueType::kInt || p.item_type == ValueType::kInt) what = "an integer";
  if (p.type == ValueType::kDuration) {
    // Canonical durations are milliseconds; say them as a playbook writes them.
    what = "a duration";
    auto d = [](double ms) { return format_duration(Millis(ms)); };
    if (p.min && p.max) return fmt::format("{} from {} to {}", what, d(*p.min), d(*p.max));
    if (p.min) return fmt::format("{} >= {}", what, d(*p.min));
    if (p.max) return fmt::format("{} <= {}", what, d(*p.max));
  }
  if (p.min && p.max) return fmt::format("{} from {} to {}", what, *p.min, *p.max);
  if (p.min) return fmt::format("{} >= {}", what, *p.min);
  if (p.max) return fmt::format("{} <= {}", what, *p.max);
  return what;
}

std::expected<json, std::string> check_param(const ParamSpec& p, const json& v,
                                             std::string_view where, bool allow_templates) {
  std::string w(where);
  if (allow_templates && is_template(v)) return v;
  if (p.type != ValueType::kList) return check_scalar(p, p.type, v, w);
  if (p.scalar_as_list && !v.is_array() && !v.is_null()) {
    // One item given as itself: checked (and reported) as the item it is.
    auto c = check_scalar(p, p.item_type, v, w);
    if (!c) return c;
    return json::array({std::move(*c)});
  }
  auto list = coerce(ValueType::kList, v);
  if (!list) return std::unexpected(fmt::format("{}: {}", w, list.error()));
  json out = json::array();
  for (size_t i = 0; i < list->size(); ++i) {
    const json& item = (*list)[i];
    if (allow_templates && is_template(item)) {
      out.push_back(item);
      continue;
    }
    auto c = check_scalar(p, p.item_type, item, fmt::format("{}.{}", w, i));
    if (!c) return c;
    out.push_back(std::move(*c));
  }
  return out;
}

json default_of(const ParamSpec& p) {
  if (p.default_value.is_null()) return nullptr;
  // Durations are canonical in milliseconds: a numeric default already is.
  if (p.type == ValueType::kDuration && p.default_value.is_number()) return p.default_value;
  auto c = check_param(p, p.default_value, p.name);
  return c ? *c : p.default_value;
}

namespace {

/// Given for a `one_of` or `exclusive` group: present (at load time, a default counts)
/// and, for a bool, true: `all: false` is not a choice of `all`.
bool given_in_group(const StepSpec& spec, const json& values, const std::string& name,
                    bool load_time) {
  const json* v = nullptr;
  if (auto it = values.find(name); it != values.end() && !it->is_null()) v = &*it;
  const ParamSpec* p = spec.param(name);
  if (!v && load_time && p && !p->default_value.is_null()) v = &p->default_value;
  if (!v) return false;
  return !(v->is_boolean() && !v->get<bool>());
}

}  // namespace

CheckedParams check_params(const StepSpec& spec, const json& with, bool load_time,
                           const std::vector<std::string>* fresh) {
  CheckedParams r;
  auto problem = [&](std::string param, ParamProblem::At at, std::string msg) {
    r.problems.push_back({std::move(param), at, std::move(msg)});
  };
  if (!with.is_null() && !with.is_object()) {
    problem("", ParamProblem::At::kMap,
            fmt::format("with: expected a map of params, got {}", describe_value(with)));
    return r;
  }
  const json& given = with.is_object() ? with : r.values;  // r.values is an empty object here
  std::vector<std::string> names;
  for (const auto& p : spec.params) names.push_back(p.name);
  for (const auto& [k, v] : given.items()) {
    if (spec.param(k)) continue;
    std::string hint = did_you_mean(k, names);
    problem(k, ParamProblem::At::kKey,
            fmt::format("with.{}: unknown param of '{}'{}", k, spec.name,
                        hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
  }
  auto is_fresh = [&](const std::string& name) {
    return !fresh || std::find(fresh->begin(), fresh->end(), name) != fresh->end();
  };
  json values = json::object();
  for (const auto& p : spec.params) {
    auto it = given.find(p.name);
    if (it != given.end() && !it->is_null()) {
      if (load_time || is_fresh(p.name)) {
        auto c = check_param(p, *it, "with." + p.name, /*allow_templates=*/load_time);
        if (!c) {
          problem(p.name, ParamProblem::At::kValue, c.error());
          continue;
        }
        values[p.name] = std::move(*c);
      } else {
        values[p.name] = *it;
      }
    } else if (!load_time && !p.default_value.is_null()) {
      values[p.name] = default_of(p);
    } else if (p.required) {
      problem(p.name, ParamProblem::At::kMap,
              fmt::format("with.{}: missing (required by '{}')", p.name, spec.name));
    }
  }
  for (const auto& group : spec.one_of) {
    bool any = std::any_of(group.begin(), group.end(), [&](const std::string& n) {
      return given_in_group(spec, values, n, load_time);
    });
    if (!any)
      problem("", ParamProblem::At::kMap,
              fmt::format("with: one of {} is required by '{}'", fmt::join(group, ", "),
                          spec.name));
  }
  for (const auto& group : spec.exclusive) {
    std::vector<std::string> set;
    for (const auto& n : group)
      if (given_in_group(spec, values, n, load_time)) set.push_back(n);
    if (set.size() > 1)
      problem("", ParamProblem::At::kMap,
              fmt::format("with: {} cannot be combined ('{}' takes at most one of {})",
                          fmt::join(set, " and "), spec.name, fmt::join(group, ", ")));
  }
  r.values = std::move(values);
  return r;
}

std::expected<json, std::string> finalize_params(const StepSpec& spec, const json& with,
                                                 const std::vector<std::string>* fresh) {
  CheckedParams r = check_params(spec, with, /*load_time=*/false, fresh);
  if (!r.problems.empty()) return std::unexpected(std::move(r.problems.front().message));
  return std::move(r.values);
}

}  // namespace netplay
