/// resolve_inputs: defaults, then --vars FILE, then --set NAME=VALUE (later wins).

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "runner/base/read_file.h"
#include "runner/base/yaml.h"
#include "runner/load/loader.h"

namespace netplay {

namespace {

std::string input_hint(const Plan& pb, std::string_view name) {
  std::vector<std::string> names;
  for (const auto& in : pb.inputs) names.push_back(in.name);
  std::string s = did_you_mean(name, names);
  return s.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", s);
}

void load_vars_file(const Plan& pb, const std::string& path, json& values,
                    std::vector<Diagnostic>& errors) {
  // A FIFO or /dev/stdin (`--vars <(generate)`) is fine too, within the same limit.
  auto text = read_file_bounded(path, {.max_bytes = kMaxVarsBytes, .allow_stream = true});
  if (!text) {
    errors.push_back({path, {}, "cannot read: " + text.error()});
    return;
  }
  auto parsed = yamlx::parse(*text);  // JSON is YAML, so one parser serves both
  if (!parsed) {
    errors.push_back({path, parsed.error().pos, parsed.error().message});
    return;
  }
  const YAML::Node root = *parsed;
  if (root.IsNull()) return;  // an empty file sets nothing
  Pos too_deep{1, 1};
  if (auto problem = yamlx::check_limits(root, &too_deep)) {
    errors.push_back({path, too_deep, *problem});
    return;
  }
  if (!root.IsMap()) {
    errors.push_back(
        {path, yamlx::pos_of(root),
         fmt::format("expected a map of NAME: VALUE, got {}", yamlx::describe_node(root))});
    return;
  }
  yamlx::check_structure(root, path, errors);
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    const std::string name = it->first.Scalar();
    const InputDef* def = pb.find_input(name);
    if (!def) {
      errors.push_back({path, yamlx::pos_of(it->first),
                        fmt::format("unknown input '{}'{}", name, input_hint(pb, name))});
      continue;
    }
    auto c = coerce(def->type, yamlx::to_json(it->second));
    if (!c) {
      errors.push_back({path, yamlx::pos_of(it->second), fmt::format("{}: {}", name, c.error())});
      continue;
    }
    values[name] = std::move(*c);
  }
}

void apply_set(const Plan& pb, const std::string& arg, json& values,
               std::vector<Diagnostic>& errors) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) {
    errors.push_back({"", {}, fmt::format("--set {}: expected NAME=VALUE", arg)});
    return;
  }
  const std::string name = arg.substr(0, eq);
  const std::string text = arg.substr(eq + 1);
  const InputDef* def = pb.find_input(name);
  if (!def) {
    errors.push_back({"", {}, fmt::format("--set {}: unknown input{}", arg, input_hint(pb, name))});
    return;
  }
  json raw = text;
  // Maps and lists may be written inline in YAML flow style: --set ports=[80,443].
  if ((def->type == ValueType::kMap || def->type == ValueType::kList ||
       def->type == ValueType::kAny) &&
      !text.empty() && (text[0] == '{' || text[0] == '[')) {
    auto node = yamlx::parse(text);
    if (!node) {
      errors.push_back({"", {}, fmt::format("--set {}: {}", arg, node.error().message)});
      return;
    }
    if (auto problem = yamlx::check_limits(*node)) {
      errors.push_back({"", {}, fmt::format("--set {}: {}", arg, *problem)});
      return;
    }
    raw = yamlx::to_json(*node);
  }
  auto c = coerce(def->type, raw, /*from_text=*/true);
  if (!c) {
    errors.push_back({"", {}, fmt::format("--set {}: {}", arg, c.error())});
    return;
  }
  values[name] = std::move(*c);
}

}  // namespace

std::expected<json, std::vector<Diagnostic>> resolve_inputs(
    const Plan& pb, const std::vector<std::string>& vars_files,
    const std::vector<std::string>& sets) {
  json values = json::object();
  for (const auto& in : pb.inputs) values[in.name] = in.default_value;
  std::vector<Diagnostic> errors;
  for (const auto& f : vars_files) load_vars_file(pb, f, values, errors);
  for (const auto& s : sets) apply_set(pb, s, values, errors);
  for (const auto& in : pb.inputs) {
    if (in.required && values[in.name].is_null()) {
      errors.push_back(
          {"",
           {},
           fmt::format("input '{}' is required (give it with --set {}=VALUE)", in.name, in.name)});
    }
  }
  if (!errors.empty()) return std::unexpected(std::move(errors));
  // Durations leave as text ("250ms"), not milliseconds: a template such as
  // `interval: "{{ inputs.wait }}"` hands the value to a duration param, where a bare number
  // means seconds; the text reads back exactly and reads well in findings.
  for (const auto& in : pb.inputs) {
    json& v = values[in.name];
    if (in.type == ValueType::kDuration && v.is_number())
      v = format_duration(Millis(v.get<double>()));
  }
  return values;
}

}  // namespace netplay
