#pragma once
/// Step params: one checker for the loader (literal values, at validate time) and the
/// scheduler (after templates are resolved, at run time), so both speak the same words:
/// "with.count: expected an integer, got 'three'".

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "runner/step/step.h"
#include "runner/base/types.h"

namespace netplay {

/// Checks one param value and converts it to canonical form (coerce(), list item types,
/// choices). `where` prefixes the error ("with.count"). With `allow_templates`, strings
/// holding `{{` are left for run time.
std::expected<json, std::string> check_param(const ParamSpec& p, const json& v,
                                             std::string_view where, bool allow_templates = false);

/// A number param's bounds in words: "an integer from 0 to 16777216", "an integer >= 1".
std::string range_text(const ParamSpec& p);

/// A param's default in canonical form. Defaults are written as a playbook would write
/// them ("5s", 4789), except that a numeric default of a duration param is taken as
/// already canonical milliseconds (5000), so both ways a step author may write it work.
json default_of(const ParamSpec& p);

/// One problem with a step's `with`, e.g. "with.count: expected an integer, got 'three'".
struct ParamProblem {
  enum class At { kValue, kKey, kMap };  // where to point: the value, its key, the whole map
  std::string param;  // the param concerned; "" for a group (one_of, exclusive)
  At at = At::kValue;
  std::string message;
};

/// The one checker of a step's `with`, for the loader and the scheduler alike:
/// unknown params (with did-you-mean), each value against its type and choices, required
/// params, `one_of` groups (at least one given) and `exclusive` groups (at most one given);
/// in both groups a bool counts as given only when true.
///
/// At load time (`load_time`), values holding a `{{ }}` template are left as written and
/// count as given; defaults are not filled in. At run time the templates are resolved:
/// `fresh` names the params whose value came from a template (nullptr: all of them) and
/// only those are coerced, since the loader already made the others canonical (a duration
/// is in milliseconds by then and must not be read again as seconds); defaults are filled
/// in. `values` holds exactly the params that have a value, in spec order.
struct CheckedParams {
  json values = json::object();
  std::vector<ParamProblem> problems;
};
CheckedParams check_params(const StepSpec& spec, const json& with, bool load_time,
                           const std::vector<std::string>* fresh = nullptr);

/// Run time: check_params() and the first problem as the error.
std::expected<json, std::string> finalize_params(const StepSpec& spec, const json& with,
                                                 const std::vector<std::string>* fresh = nullptr);

}  // namespace netplay
