#pragma once
/// The playbook model: what the loader builds from YAML (with positions kept) and the
/// scheduler runs. Expressions and templates are compiled by the loader into the
/// playbook's ExprEngine and referred to by id.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/lua/expr.h"
#include "runner/step/step.h"
#include "runner/base/types.h"

namespace netplay {

/// A compiled `when:` expression or `{{ }}` template; id < 0 means "none".
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
  json with = json::object();  // literal values; defaults are applied at run time
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

struct Playbook {
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
  /// Owns every compiled expression of this playbook. Not thread-safe: used by the
  /// scheduler thread only.
  std::shared_ptr<ExprEngine> engine;

  const StepDef* find_step(std::string_view id) const;
  const InputDef* find_input(std::string_view name) const;
};

}  // namespace netplay
