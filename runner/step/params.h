#pragma once
/// Step params: one checker for the loader (literal values, at validate time) and the
/// scheduler (after templates are resolved, at run time), so both speak the same words:
/// "with.count: expected an integer, got 'three'".

#include <expected>
#include <string>
#include <string_view>

#include "runner/step/step.h"
#include "runner/base/types.h"

namespace netplay {

/// Checks one param value and converts it to canonical form (coerce(), list item types,
/// choices). `where` prefixes the error ("with.count"). With `allow_templates`, strings
/// holding `{{` are left for run time.
std::expected<json, std::string> check_param(const ParamSpec& p, const json& v,
                                             std::string_view where, bool allow_templates = false);

/// A param's default in canonical form. Defaults are written as a playbook would write
/// them ("5s", 4789), except that a numeric default of a duration param is taken as
/// already canonical milliseconds (5000), so both ways a step author may write it work.
json default_of(const ParamSpec& p);

/// Fills in the defaults (canonical, see default_of) of params not given (missing or null).
json apply_defaults(const StepSpec& spec, json with);

/// Run-time view of a step's `with` after templates were resolved: rejects unknown params,
/// coerces every given param, applies defaults, checks required params and one_of groups.
/// The result holds exactly the params that have a value, in spec order.
std::expected<json, std::string> finalize_params(const StepSpec& spec, json with);

}  // namespace netplay
