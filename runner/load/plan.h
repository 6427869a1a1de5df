#pragma once
/// The Plan: what the loader builds from a playbook's YAML (positions kept) and every run
/// executes. Immutable once loaded and holding no Lua state: expressions are sources
/// (`exprs`, validated by the loader) that each run compiles into Lua states of its own,
/// and the step graph is built once (`graph`). One Plan can run twice, in parallel, or
/// against fakes.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/lua/expr.h"
#include "runner/step/step.h"
#include "runner/base/types.h"

namespace netplay {

/// A `when:` expression, `{{ }}` template or hook; `id` indexes Plan::exprs (< 0: none).
struct Expr {
  std::string src;
  Pos pos;
  int id = -1;
  explicit operator bool() const { return id >= 0; }
};

/// A string inside `with:`/`expect:` that holds a template, and where it goes.
struct TemplateSlot {
  json::json_pointer ptr;
  Expr tmpl;
};

struct StepDef {
  std::string id;
  std::string title;
  std::string uses;
  Pos pos;                    // of the step's mapping (the `- id:` line)
  const Step* step = nullptr; // resolved from the registry by the loader
  std::string netns = "host"; // literal, or the template's source when netns_tmpl is set
  Expr netns_tmpl;
  /// Params in canonical form (durations in ms, ports as numbers); values holding
  /// templates stay text until run time. Defaults are applied at run time.
  json with = json::object();
  std::vector<TemplateSlot> with_templates;
  std::map<std::string, Pos> with_pos;  // param name -> position, for run-time messages
  json expect = json::object();
  std::vector<TemplateSlot> expect_templates;
  std::vector<std::string> needs;
  Expr when;
  Millis timeout{10'000};
  int retries = 0;
  Millis retry_delay{1'000};
  bool warn_only = false;  // severity: warn
  bool background = false;
  Expr hook_before;  // Lua, evaluated before the step; may skip it (return false)
  Expr hook_after;   // Lua, evaluated after; may change status via netplay.fail/warn
  std::vector<StepDef> on_fail;  // collectors (ids are "<parent>.on_fail[N]")
};

struct InputDef {
  std::string name;
  ValueType type = ValueType::kString;
  json default_value;  // null: none
  bool required = false;
  std::string description;
  Pos pos;
};

struct DiagnosisRule {
  std::string id;
  Pos pos;
  Expr when;
  Expr finding;             // template
  std::vector<Expr> next;   // templates
  std::vector<std::string> references;
  Severity severity = Severity::kFail;
};

/// The step graph, one entry per top-level step (parallel to Plan::steps), as indices.
struct StepEdges {
  std::vector<size_t> needs;      // hard edges: skipped if one of these did not pass
  std::vector<size_t> refs;       // read via steps.X in expressions: wait, whatever the status
  std::vector<size_t> needed_by;  // reverse of `needs`
};

struct Plan {
  std::string file;    // as given on the command line
  std::string sha256;  // of the file's bytes
  std::string api_version;
  std::string kind;
  std::string name;
  std::string title;
  std::string description;
  std::vector<std::string> references;
  std::vector<InputDef> inputs;
  std::vector<std::string> env_allow;  // `env: [NAME, ...]`: variables visible as env.NAME
  std::vector<StepDef> steps;
  std::vector<DiagnosisRule> diagnosis;
  /// Every expression of the playbook, in the order Expr ids refer to them.
  std::vector<ExprSource> exprs;
  /// Built by link_graph() from `needs` and the steps.X references of each step's
  /// expressions; unknown ids are left out (the loader reports them).
  std::vector<StepEdges> graph;

  const StepDef* find_step(std::string_view id) const;
  const InputDef* find_input(std::string_view name) const;
  /// Appends an expression source and returns the Expr that refers to it.
  Expr add_expr(ExprKind kind, std::string code, std::string src, Pos pos = {});
};

/// Step ids read by the step's expressions (when, netns, with/expect templates, hooks and
/// those of its on_fail collectors), in order of first appearance, without the step itself.
std::vector<std::string> expression_step_refs(const StepDef& def);

/// Builds Plan::graph. The loader calls it once; code that assembles a Plan by hand (tests)
/// calls it after adding the steps.
void link_graph(Plan& plan);

}  // namespace netplay
