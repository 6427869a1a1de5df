#pragma once
/// What the scheduler asks of expressions, always on the scheduler thread (ExprEngine is
/// single-threaded): `when`, hooks, templates of netns/with/expect, params, the judgement
/// of facts and the diagnosis. Steps without expressions never touch Lua here.

#include <expected>
#include <optional>
#include <string>
#include <vector>

#include "runner/load/plan.h"
#include "runner/base/result.h"

namespace netplay {

/// An outcome decided without (or instead of) running the step.
struct Verdict {
  Status status = Status::kError;
  std::string message;
};

/// A ready step, resolved: where it runs, its final params and what to expect.
struct PreparedStep {
  std::string netns = "host";
  json params = json::object();
  std::optional<json> expect;  // only when templates were resolved; else StepDef::expect
  const json& expect_of(const StepDef& def) const { return expect ? *expect : def.expect; }
};

/// `when:` then the before-hook; a verdict when the step must not run as planned.
std::optional<Verdict> gate_step(ExprEngine* engine, const StepDef& def);

/// Resolves the netns/with/expect templates and finalizes params (defaults, coercion).
/// `inherit_netns` (collectors) replaces a def that names no namespace of its own.
std::expected<PreparedStep, std::string> prepare_step(ExprEngine* engine, const StepDef& def,
                                                      const std::string* inherit_netns);

/// Runs the after-hook; a verdict when the hook decides the outcome (netplay.fail/warn/skip)
/// or fails ("hook error: ...").
std::optional<Verdict> run_after_hook(ExprEngine* engine, const StepDef& def);

/// Status and message of one finished attempt judged against its expectations.
/// `failed_check` is true when the attempt should be retried (fail, error or unmet).
struct Judgement {
  Status status = Status::kPass;
  std::string message;
  std::vector<ExpectationResult> expectations;
  bool retryable = false;
};
Judgement judge_attempt(const StepDef& def, const json& expect, Status out_status,
                        std::string out_message, const json& facts);

/// Every diagnosis rule whose `when` holds, rendered. A rule that cannot be evaluated (its
/// `when`, finding or a `next` raises) is never taken for "not matched": it gives a finding
/// of severity error naming the rule, the field and Lua's message (a matched `fail` rule
/// whose text cannot be rendered stays `fail`). `ran`, when given, holds the ids of the
/// steps in this run: a rule that reads a step left out of it (`--only`) is not evaluated.
std::vector<Finding> diagnose(ExprEngine* engine, const Plan& pb,
                              const std::vector<std::string>* ran = nullptr);

}  // namespace netplay
