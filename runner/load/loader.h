#pragma once
/// Loads and validates a playbook: every error of a file at once, each with file:line:col.

#include <expected>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/load/plan.h"

namespace netplay {

/// Parses `path`, resolves steps from the registry, checks params/expect/needs/when and
/// compiles every expression and template into a new ExprEngine owned by the playbook.
/// On failure: all diagnostics found, in file order.
std::expected<Plan, std::vector<Diagnostic>> load_playbook(const std::string& path);
/// Same from text (for tests and stdin); `display_name` is used in messages.
std::expected<Plan, std::vector<Diagnostic>> load_playbook_text(const std::string& text,
                                                                    const std::string& display_name);

/// Resolves inputs: defaults, then --vars FILE (YAML/JSON map), then --set NAME=VALUE (later
/// wins). Each is checked against the input's type; unknown names get a did-you-mean.
/// Errors name the flag or file, e.g. "--set count=three: expected an integer, got 'three'".
std::expected<json, std::vector<Diagnostic>> resolve_inputs(
    const Plan& pb, const std::vector<std::string>& vars_files,
    const std::vector<std::string>& sets);

}  // namespace netplay
