#pragma once
/// Expectations: one set of matchers for every step's facts.
/// `expect:` maps a fact name (dotted for structured facts, e.g. `entries.0.dst`) to a
/// value (equality) or a matcher object {eq, ne, lt, le, gt, ge, one_of, contains,
/// not_contains, matches, absent, present, len}, combinable ({gt: 0, lt: 10}).

#include <optional>
#include <string>
#include <vector>

#include "runner/base/result.h"
#include "runner/base/types.h"

namespace netplay {

const std::vector<std::string>& matcher_names();

/// Load-time check of one expectation's value; the error names the problem, e.g.
/// "unknown matcher 'greater' (did you mean 'gt'?)" or "matches: invalid regex ...".
std::optional<std::string> check_expectation(const json& value);

/// Judges resolved expectations against facts, in the order written.
std::vector<ExpectationResult> judge(const json& expect, const json& facts);

/// Looks up a dotted path ("entries.0.dst") in facts; nullptr when absent.
const json* lookup_fact(const json& facts, std::string_view path);

}  // namespace netplay
