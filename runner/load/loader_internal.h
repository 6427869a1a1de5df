#pragma once
/// The loader's state and helpers, shared by loader.cc (document, inputs, diagnosis,
/// graph checks) and loader_steps.cc (steps). Not an interface: include only from those.

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/base/yaml.h"
#include "runner/load/plan.h"

namespace netplay::loader_detail {

using yamlx::describe_node;
using yamlx::pos_of;
using yamlx::to_json;

inline const std::vector<std::string> kTopKeys = {"apiVersion", "kind",  "metadata", "inputs",
                                                  "env",        "steps", "diagnosis"};
inline const std::vector<std::string> kMetaKeys = {"name", "title", "description", "references"};
inline const std::vector<std::string> kInputKeys = {"type", "default", "required", "description"};
inline const std::vector<std::string> kStepKeys = {
    "id",      "title",   "uses",        "netns",    "with",       "expect", "needs",  "when",
    "timeout", "retries", "retry_delay", "severity", "background", "hooks",  "on_fail"};
inline const std::vector<std::string> kCollectorKeys = {"uses", "with", "netns", "timeout",
                                                        "title"};
inline const std::vector<std::string> kHookKeys = {"before", "after"};
inline const std::vector<std::string> kDiagnosisKeys = {"id", "when", "finding", "next",
                                                        "references", "severity"};

inline const std::regex& name_re() {
  static const std::regex r("[a-z0-9-]+");
  return r;
}
inline const std::regex& step_id_re() {
  static const std::regex r("[a-z0-9_]+");
  return r;
}
inline const std::regex& ident_re() {
  static const std::regex r("[A-Za-z_][A-Za-z0-9_]*");
  return r;
}
/// A hook given as a file name rather than Lua source ("checks/arp.lua").
inline const std::regex& lua_file_re() {
  static const std::regex r(R"([A-Za-z0-9_./-]+\.lua)");
  return r;
}

/// Looks like a file path ("../x/y"): a hook that is not Lua was probably meant as one.
inline const std::regex& path_like_re() {
  static const std::regex r(R"([A-Za-z0-9_.-]*/[A-Za-z0-9_./-]*)");
  return r;
}

inline std::string hint(std::string_view word, const std::vector<std::string>& candidates) {
  std::string s = did_you_mean(word, candidates);
  return s.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", s);
}

using Kind = ExprKind;

struct PendingRefs {
  Pos pos;
  std::string field;
  std::vector<std::string> steps;
  std::string owner;  // the top-level step whose expression this is; empty in diagnosis
};

/// An ordering edge: `needs`, or a steps.X reference (which orders but does not skip).
struct NeedEdge {
  std::string id;
  Pos pos;
  bool is_ref = false;
};

class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) { pb_.file = file_; }

  std::expected<Plan, std::vector<Diagnostic>> run(const std::string& text);

 private:
  void err(Pos p, std::string msg) { diags_.push_back({file_, p, std::move(msg)}); }
  void err(const YAML::Node& n, std::string msg) { err(pos_of(n), std::move(msg)); }

  void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed);
  std::optional<std::string> str(const YAML::Node& n, std::string_view field);
  std::vector<std::pair<std::string, YAML::Node>> str_list(const YAML::Node& n,
                                                           std::string_view field);
  Expr compile(const YAML::Node& n, std::string_view field, Kind kind);
  std::expected<std::string, std::string> read_lua_file(const std::string& rel);
  static std::string file_compile_error(const std::string& rel, std::string message);
  void templates_in(const YAML::Node& n, const json::json_pointer& ptr, const std::string& field,
                    std::vector<TemplateSlot>& out, Kind kind = Kind::kTemplate);
  std::optional<json> coerce_at(const YAML::Node& n, ValueType t, std::string_view field);

  void load_top(const YAML::Node& root);
  void load_metadata(const YAML::Node& n);
  void load_inputs(const YAML::Node& n);
  void load_env(const YAML::Node& n);
  void load_steps(const YAML::Node& n);
  bool load_step(const YAML::Node& n, StepDef& s, const std::string& parent, size_t index);
  void load_with(const YAML::Node& n, StepDef& s, Pos fallback);
  void load_expect(const YAML::Node& n, StepDef& s);
  void load_hooks(const YAML::Node& n, StepDef& s);
  void load_diagnosis(const YAML::Node& n);
  void check_needs();
  void check_refs();

  std::string file_;
  Plan pb_;
  /// Compiles each expression once to validate it; thrown away with the loader, so no
  /// Lua state (and nothing a script did at load time) reaches a run.
  ExprEngine scratch_;
  std::vector<Diagnostic> diags_;
  std::vector<PendingRefs> refs_;
  std::map<std::string, Pos> step_ids_;
  std::vector<std::string> step_id_order_;
  std::map<std::string, std::vector<NeedEdge>> need_edges_;
  std::string current_step_;  // owner of the expressions being compiled
};

}  // namespace netplay::loader_detail
