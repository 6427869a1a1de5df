#include "runner/run/scheduler_eval.h"

#include <fmt/format.h>

#include <algorithm>

#include "runner/base/expect.h"
#include "runner/step/params.h"

namespace netplay {
namespace {

std::string as_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

/// "/a/0/b" -> "a.0.b", the way a playbook author names the place.
std::string dotted(const json::json_pointer& p) {
  std::string s = p.to_string();
  if (!s.empty() && s.front() == '/') s.erase(0, 1);
  std::replace(s.begin(), s.end(), '/', '.');
  return s;
}

/// A hook's deliberate verdict (netplay.fail/warn/skip) keeps its status; any other
/// error, whatever its text, is the hook's error.
Verdict verdict_from_error(const ExprError& err) {
  if (err.is_verdict()) return {err.verdict, err.message};
  return {Status::kError, "hook error: " + err.message};
}

std::optional<Verdict> no_engine(const char* what) {
  return Verdict{Status::kError, fmt::format("{}: no expression engine", what)};
}

std::expected<void, std::string> fill_slots(ExprEngine* engine, json& target,
                                            const std::vector<TemplateSlot>& slots,
                                            std::string_view what) {
  for (const auto& slot : slots) {
    if (!engine) return std::unexpected(fmt::format("{}: no expression engine", what));
    auto v = engine->eval(slot.tmpl.id);
    if (!v)
      return std::unexpected(fmt::format("{}.{}: {}", what, dotted(slot.ptr), v.error().message));
    target[slot.ptr] = std::move(*v);
  }
  return {};
}

}  // namespace

std::optional<Verdict> gate_step(ExprEngine* engine, const StepDef& def) {
  if (def.when) {
    if (!engine) return no_engine("when");
    auto ok = engine->eval_bool(def.when.id);
    if (!ok) return Verdict{Status::kError, "when: " + ok.error().message};
    if (!*ok) return Verdict{Status::kSkip, fmt::format("when: {} is false", def.when.src)};
  }
  if (def.hook_before) {
    if (!engine) return no_engine("hooks.before");
    auto r = engine->eval(def.hook_before.id);
    if (!r) return verdict_from_error(r.error());
    if (r->is_boolean() && !r->get<bool>()) return Verdict{Status::kSkip, "skipped by before-hook"};
  }
  return std::nullopt;
}

std::expected<PreparedStep, std::string> prepare_step(ExprEngine* engine, const StepDef& def,
                                                      const std::string* inherit_netns) {
  PreparedStep p;
  if (def.netns_tmpl) {
    if (!engine) return std::unexpected("netns: no expression engine");
    auto v = engine->eval(def.netns_tmpl.id);
    if (!v) return std::unexpected("netns: " + v.error().message);
    if (!v->is_string())
      return std::unexpected(fmt::format("netns: expected a string, got {}", describe_value(*v)));
    p.netns = v->get<std::string>();
    // Never "host" by accident: an input left empty must not run a check elsewhere.
    if (p.netns.empty())
      return std::unexpected(
          "netns: the template gave an empty namespace name (write host for the host's "
          "namespace)");
  } else if (inherit_netns && (def.netns.empty() || def.netns == "host")) {
    p.netns = *inherit_netns;
  } else {
    p.netns = def.netns.empty() ? "host" : def.netns;
  }

  json with = def.with;
  if (auto r = fill_slots(engine, with, def.with_templates, "with"); !r)
    return std::unexpected(r.error());
  if (!def.step) return std::unexpected(fmt::format("unknown step '{}'", def.uses));
  // Literal params are canonical since load time; only what templates produced is checked.
  std::vector<std::string> fresh;
  for (const auto& slot : def.with_templates) {
    std::string top = slot.ptr.to_string().substr(1);
    top = top.substr(0, top.find('/'));
    top = json::json_pointer("/" + top).back();  // unescape ~0 ~1
    if (std::find(fresh.begin(), fresh.end(), top) == fresh.end()) fresh.push_back(top);
  }
  auto params = finalize_params(def.step->spec(), with, &fresh);
  if (!params) return std::unexpected(params.error());
  p.params = std::move(*params);

  if (!def.expect_templates.empty()) {
    json expect = def.expect;
    if (auto r = fill_slots(engine, expect, def.expect_templates, "expect"); !r)
      return std::unexpected(r.error());
    p.expect = std::move(expect);
  }
  return p;
}

std::optional<Verdict> run_after_hook(ExprEngine* engine, const StepDef& def) {
  if (!def.hook_after) return std::nullopt;
  if (!engine) return no_engine("hooks.after");
  auto r = engine->eval(def.hook_after.id);
  if (!r) return verdict_from_error(r.error());
  return std::nullopt;
}

Judgement judge_attempt(const StepDef& def, const json& expect, Status out_status,
                        std::string out_message, const json& facts) {
  Judgement j;
  j.status = out_status;
  j.message = std::move(out_message);
  bool judged = out_status == Status::kPass || out_status == Status::kWarn;
  if (judged && expect.is_object() && !expect.empty()) {
    j.expectations = judge(expect, facts);
    const ExpectationResult* first = nullptr;
    size_t failed = 0;
    for (const auto& e : j.expectations) {
      if (e.ok) continue;
      if (!first) first = &e;
      ++failed;
    }
    if (first) {
      j.status = def.warn_only ? Status::kWarn : Status::kFail;
      j.message =
          failed > 1 ? fmt::format("{} (+{} more)", first->message, failed - 1) : first->message;
      j.retryable = true;
    }
  }
  if (j.status == Status::kFail || j.status == Status::kError) j.retryable = true;
  if (j.status == Status::kFail && def.warn_only) j.status = Status::kWarn;
  return j;
}

std::vector<Finding> diagnose(ExprEngine* engine, const Plan& pb,
                              const std::vector<std::string>* ran) {
  std::vector<Finding> out;
  if (!engine) return out;
  auto in_run = [&](const std::string& id) {
    return std::find(ran->begin(), ran->end(), id) != ran->end();
  };
  for (const auto& rule : pb.diagnosis) {
    if (!rule.when) continue;
    if (ran) {
      auto refs = ExprEngine::step_refs(rule.when.src);
      if (!std::all_of(refs.begin(), refs.end(), in_run)) continue;
    }
    auto broken = [&](std::string_view field, const ExprError& err) {
      Finding f;
      f.id = rule.id;
      f.severity = Severity::kError;
      f.finding = field == "when" ? fmt::format("diagnosis rule '{}' could not be evaluated: "
                                                "when: {}", rule.id, err.message)
                                  : fmt::format("diagnosis rule '{}' matched but its {} could "
                                                "not be rendered: {}", rule.id, field, err.message);
      f.references = rule.references;
      return f;
    };
    auto hit = engine->eval_bool(rule.when.id);
    if (!hit) {
      out.push_back(broken("when", hit.error()));
      continue;
    }
    if (!*hit) continue;
    Finding f;
    f.id = rule.id;
    f.references = rule.references;
    f.severity = rule.severity;
    std::optional<Finding> problem;
    auto text = [&](const Expr& e, std::string_view field) -> std::string {
      if (!e) return e.src;
      auto v = engine->eval(e.id);
      if (v) return as_text(*v);
      if (!problem) problem = broken(field, v.error());
      return {};
    };
    f.finding = text(rule.finding, "finding");
    for (size_t i = 0; i < rule.next.size(); ++i)
      f.next.push_back(text(rule.next[i], fmt::format("next.{}", i)));
    if (problem) {
      // The rule matched: its finding is reported, with the error in place of its text.
      problem->next = std::move(f.next);
      std::erase(problem->next, std::string());
      if (rule.severity == Severity::kFail) problem->severity = Severity::kFail;
      f = std::move(*problem);
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace netplay
