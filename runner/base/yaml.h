#pragma once
/// YAML helpers of the loader: positions and YAML -> JSON with the YAML 1.2 core schema.
/// yaml-cpp keeps every scalar as text; these decide what a plain scalar means.

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/base/types.h"

namespace netplay::yamlx {

/// 1-based position of a node; {0, 0} for nodes without a mark.
Pos pos_of(const YAML::Node& n);

/// Scalars follow the core schema: true/false -> bool, integers, floats, null/~ -> null;
/// quoted scalars and !!str stay strings.
json to_json(const YAML::Node& n);

/// The text of a scalar as written (empty for non-scalars).
std::string scalar_text(const YAML::Node& n);

/// What the user wrote, for messages: 'text' for scalars, "a list"/"a map" otherwise.
std::string describe_node(const YAML::Node& n);

/// Aliases can make a document recursive (`a: &x [*x]`) or expand exponentially; every
/// walk below assumes this check passed. The error names the problem.
std::optional<std::string> check_limits(const YAML::Node& n);

/// True when a mapping anywhere under `n` has a non-scalar key (already reported by
/// check_structure): its value is not worth a second, confusing message.
bool has_complex_key(const YAML::Node& n);

/// Structural problems yaml-cpp accepts silently: duplicate keys in a mapping, and
/// non-scalar keys (usually an unquoted `{{ template }}`). Appended to `out`.
void check_structure(const YAML::Node& n, const std::string& file, std::vector<Diagnostic>& out);

}  // namespace netplay::yamlx
