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

std::expected<json, std::string> check_scalar(ValueType t, const std::vector<std::string>& choices,
                                              const json& v, const std::string& where) {
  auto c = coerce(t, v);
  if (!c) return std::unexpected(fmt::format("{}: {}", where, c.error()));
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

std::expected<json, std::string> check_param(const ParamSpec& p, const json& v,
                                             std::string_view where, bool allow_templates) {
  std::string w(where);
  if (allow_templates && is_template(v)) return v;
  if (p.type != ValueType::kList) return check_scalar(p.type, p.choices, v, w);
  auto list = coerce(ValueType::kList, v);
  if (!list) return std::unexpected(fmt::format("{}: {}", w, list.error()));
  json out = json::array();
  for (size_t i = 0; i < list->size(); ++i) {
    const json& item = (*list)[i];
    if (allow_templates && is_template(item)) {
      out.push_back(item);
      continue;
    }
    auto c = check_scalar(p.item_type, p.choices, item, fmt::format("{}.{}", w, i));
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

json apply_defaults(const StepSpec& spec, json with) {
  if (!with.is_object()) with = json::object();
  for (const auto& p : spec.params) {
    if (p.default_value.is_null()) continue;
    auto it = with.find(p.name);
    if (it == with.end() || it->is_null()) with[p.name] = default_of(p);
  }
  return with;
}

std::expected<json, std::string> finalize_params(const StepSpec& spec, json with) {
  if (with.is_null()) with = json::object();
  if (!with.is_object())
    return std::unexpected(fmt::format("with: expected a map, got {}", describe_value(with)));
  std::vector<std::string> names;
  for (const auto& p : spec.params) names.push_back(p.name);
  for (const auto& [k, v] : with.items()) {
    if (spec.param(k)) continue;
    std::string hint = did_you_mean(k, names);
    return std::unexpected(
        fmt::format("with.{}: unknown param of '{}'{}", k, spec.name,
                    hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
  }
  json out = json::object();
  for (const auto& p : spec.params) {
    auto it = with.find(p.name);
    if (it != with.end() && !it->is_null()) {
      auto c = check_param(p, *it, "with." + p.name);
      if (!c) return std::unexpected(c.error());
      out[p.name] = std::move(*c);
    } else if (!p.default_value.is_null()) {
      out[p.name] = default_of(p);
    } else if (p.required) {
      return std::unexpected(fmt::format("with.{}: missing (required by '{}')", p.name, spec.name));
    }
  }
  for (const auto& group : spec.one_of) {
    bool any = std::any_of(group.begin(), group.end(),
                           [&](const std::string& n) { return out.contains(n); });
    if (!any) {
      return std::unexpected(
          fmt::format("with: one of {} is required by '{}'", fmt::join(group, ", "), spec.name));
    }
  }
  return out;
}

}  // namespace netplay
