/// Steps: id, uses, with (params against the step's spec), expect, needs, when, retries,
/// hooks and on_fail collectors.

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>

#include "runner/base/expect.h"
#include "runner/load/loader_internal.h"
#include "runner/step/params.h"

namespace netplay::loader_detail {

bool Loader::load_step(const YAML::Node& n, StepDef& s, const std::string& parent, size_t index) {
  const bool collector = !parent.empty();
  if (!n.IsMap()) {
    err(n, fmt::format("{}: expected a map with {}uses, got {}",
                       collector ? fmt::format("{}.on_fail.{}", parent, index)
                                 : fmt::format("steps.{}", index),
                       collector ? "" : "id and ", describe_node(n)));
    return false;
  }
  s.pos = pos_of(n);
  check_keys(n, collector ? kCollectorKeys : kStepKeys);

  if (collector) {
    s.id = fmt::format("{}.on_fail[{}]", parent, index);
  } else if (const auto& v = n["id"]) {
    if (auto id = str(v, "id")) {
      s.id = *id;
      if (!std::regex_match(*id, step_id_re()))
        err(v, fmt::format("id: '{}' must match [a-z0-9_]+", *id));
      auto [first, inserted] = step_ids_.emplace(*id, pos_of(v));
      if (inserted)
        step_id_order_.push_back(*id);
      else
        err(v, fmt::format("duplicate step id '{}' (first at line {})", *id, first->second.line));
    }
  } else {
    err(n, "step has no id (id: a name such as check_vtep)");
    s.id = fmt::format("steps[{}]", index);
  }

  if (const auto& v = n["title"]) s.title = str(v, "title").value_or("");

  Pos uses_pos = s.pos;
  if (const auto& v = n["uses"]) {
    uses_pos = pos_of(v);
    if (auto u = str(v, "uses")) {
      s.uses = *u;
      s.step = Registry::instance().find(*u);
      if (!s.step)
        err(v, fmt::format("unknown step '{}'{}", *u, hint(*u, Registry::instance().names())));
    }
  } else {
    err(n, fmt::format("step '{}' has no uses (the step to run, e.g. uses: sysctl)", s.id));
  }

  if (const auto& v = n["netns"]) {
    if (v.IsScalar() && has_template(v.Scalar())) {
      s.netns = v.Scalar();
      s.netns_tmpl = compile(v, "netns", Kind::kTemplate);
    } else if (auto c = coerce_at(v, ValueType::kNetns, "netns")) {
      s.netns = c->get<std::string>();
    }
  }

  load_with(n["with"], s, uses_pos);
  if (!collector) load_expect(n["expect"], s);

  if (const auto& v = n["needs"]) {
    for (auto& [id, node] : str_list(v, "needs")) {
      s.needs.push_back(id);
      need_edges_[s.id].push_back({id, pos_of(node)});
    }
  }
  if (const auto& v = n["when"]) s.when = compile(v, "when", Kind::kExpr);
  if (const auto& v = n["timeout"]) {
    if (auto c = coerce_at(v, ValueType::kDuration, "timeout")) {
      if (c->get<double>() <= 0)
        err(v, fmt::format("timeout: expected a positive duration, got {}", describe_node(v)));
      else
        s.timeout = Millis(c->get<double>());
    }
  }
  if (const auto& v = n["retries"]) {
    if (auto c = coerce_at(v, ValueType::kInt, "retries")) {
      if (c->get<long long>() < 0)
        err(v, fmt::format("retries: expected an integer >= 0, got {}", describe_node(v)));
      else
        s.retries = static_cast<int>(std::min<long long>(c->get<long long>(), 1000));
    }
  }
  if (const auto& v = n["retry_delay"]) {
    if (auto c = coerce_at(v, ValueType::kDuration, "retry_delay"))
      s.retry_delay = Millis(c->get<double>());
  }
  if (const auto& v = n["severity"]) {
    auto sev = str(v, "severity");
    if (sev && *sev != "fail" && *sev != "warn")
      err(v, fmt::format("severity: expected one of [fail, warn], got {}", describe_node(v)));
    s.warn_only = sev && *sev == "warn";
  }
  if (const auto& v = n["background"]) {
    if (auto c = coerce_at(v, ValueType::kBool, "background")) {
      s.background = c->get<bool>();
      if (s.background && s.step && !s.step->spec().supports_background)
        err(v, fmt::format("background: step '{}' cannot run in the background", s.uses));
    }
  }
  if (const auto& v = n["hooks"]) load_hooks(v, s);
  if (const auto& v = n["on_fail"]) {
    if (!v.IsSequence()) {
      err(v, fmt::format("on_fail: expected a list of steps, got {}", describe_node(v)));
    } else {
      size_t i = 0;
      for (const auto& item : v) {
        StepDef c;
        if (load_step(item, c, s.id, i)) s.on_fail.push_back(std::move(c));
        ++i;
      }
    }
  }
  return true;
}

void Loader::load_with(const YAML::Node& n, StepDef& s, Pos fallback) {
  const StepSpec* spec = s.step ? &s.step->spec() : nullptr;
  if (n && !n.IsNull() && !n.IsMap()) {
    err(n, fmt::format("with: expected a map of params, got {}", describe_node(n)));
    return;
  }
  std::map<std::string, std::pair<Pos, Pos>> where;  // param -> positions of key, value
  json given = json::object();
  std::vector<std::string> reported;  // unquoted templates: already reported, not checked
  if (n && n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string key = it->first.Scalar();
      const YAML::Node v = it->second;  // a copy: the iterator yields temporaries
      if (given.contains(key)) continue;  // duplicate, reported by check_structure
      s.with_pos[key] = v.IsNull() ? pos_of(it->first) : pos_of(v);
      where[key] = {pos_of(it->first), s.with_pos[key]};
      std::vector<TemplateSlot> slots;
      const ParamSpec* ps = spec ? spec->param(key) : nullptr;
      templates_in(v, json::json_pointer() / key, "with." + key, slots,
                   ps && ps->shell_command ? Kind::kShellTemplate : Kind::kTemplate);
      for (auto& slot : slots) s.with_templates.push_back(std::move(slot));
      json value = to_json(v);
      if (value.is_null()) continue;  // not given: the default applies
      // An unquoted template was reported already; the value means nothing more.
      if (yamlx::has_complex_key(v)) {
        reported.push_back(key);
        continue;
      }
      given[key] = std::move(value);
    }
  }
  if (!spec) {
    s.with = std::move(given);
    return;
  }
  Pos map_at = n && n.IsMap() ? pos_of(n) : fallback;
  CheckedParams checked = check_params(*spec, given, /*load_time=*/true);
  for (const auto& p : checked.problems) {
    if (std::find(reported.begin(), reported.end(), p.param) != reported.end()) continue;
    auto it = where.find(p.param);
    Pos at = map_at;
    if (it != where.end() && p.at != ParamProblem::At::kMap)
      at = p.at == ParamProblem::At::kKey ? it->second.first : it->second.second;
    err(at, p.message);
  }
  // Canonical values (durations in ms): the scheduler coerces only what templates produce.
  s.with = std::move(checked.values);
}

void Loader::load_expect(const YAML::Node& n, StepDef& s) {
  if (!n || n.IsNull()) return;
  if (!n.IsMap()) {
    err(n, fmt::format("expect: expected a map of fact: value, got {}", describe_node(n)));
    return;
  }
  const StepSpec* spec = s.step ? &s.step->spec() : nullptr;
  std::vector<std::string> facts;
  if (spec)
    for (const auto& f : spec->facts) facts.push_back(f.name);
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    const std::string key = it->first.Scalar();
    const YAML::Node v = it->second;  // a copy: the iterator yields temporaries
    const std::string where = "expect." + key;
    if (s.expect.contains(key)) continue;
    std::string top = key.substr(0, key.find('.'));
    // Steps that declare no facts (e.g. Lua steps) report whatever they like.
    if (spec && !facts.empty() && !spec->fact(top)) {
      err(it->first,
          fmt::format("{}: unknown fact of '{}'{}", where, spec->name, hint(top, facts)));
    }
    templates_in(v, json::json_pointer() / key, where, s.expect_templates);
    json value = to_json(v);
    if (yamlx::has_complex_key(v)) continue;
    if (auto problem = check_expectation(value)) err(v, fmt::format("{}: {}", where, *problem));
    s.expect[key] = std::move(value);
  }
}

void Loader::load_hooks(const YAML::Node& n, StepDef& s) {
  if (!n.IsMap()) {
    err(n, fmt::format("hooks: expected a map with before and/or after, got {}", describe_node(n)));
    return;
  }
  check_keys(n, kHookKeys);
  if (const auto& v = n["before"]) s.hook_before = compile(v, "hooks.before", Kind::kChunk);
  if (const auto& v = n["after"]) s.hook_after = compile(v, "hooks.after", Kind::kChunk);
}

}  // namespace netplay::loader_detail
