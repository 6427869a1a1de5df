#pragma once
/// YAML helpers of the loader: positions and YAML -> JSON with the YAML 1.2 core schema.
/// yaml-cpp keeps every scalar as text; these decide what a plain scalar means.

#include <yaml-cpp/yaml.h>

#include <expected>
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

/// How deep a document may nest (maps and lists in one another).
inline constexpr int kMaxDepth = 64;

/// Why a text is not YAML, and where.
struct ParseError {
  Pos pos;
  std::string message;
};

/// YAML::Load with messages that say what happened: a tab in indentation is named as such
/// (yaml-cpp says "illegal map value"), nesting too deep for yaml-cpp's parser as
/// "nesting deeper than 64 levels" (yaml-cpp says "bad file"). Never throws.
std::expected<YAML::Node, ParseError> parse(const std::string& text);

/// Aliases can make a document recursive (`a: &x [*x]`) or expand exponentially, and a
/// document may nest deeper than kMaxDepth; every walk below assumes this check passed.
/// The error names the problem; `at`, when given, receives where a plain (not recursive)
/// nesting went too deep, and is left alone otherwise.
std::optional<std::string> check_limits(const YAML::Node& n, Pos* at = nullptr);

/// True when a mapping anywhere under `n` has a non-scalar key (already reported by
/// check_structure): its value is not worth a second, confusing message.
bool has_complex_key(const YAML::Node& n);

/// Structural problems yaml-cpp accepts silently: duplicate keys in a mapping, and
/// non-scalar keys (usually an unquoted `{{ template }}`). Appended to `out`.
void check_structure(const YAML::Node& n, const std::string& file, std::vector<Diagnostic>& out);

}  // namespace netplay::yamlx
