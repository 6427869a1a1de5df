#include "runner/load/plan.h"

#include <algorithm>
#include <map>

namespace netplay {

const StepDef* Plan::find_step(std::string_view id) const {
  for (const auto& s : steps)
    if (s.id == id) return &s;
  return nullptr;
}

const InputDef* Plan::find_input(std::string_view n) const {
  for (const auto& i : inputs)
    if (i.name == n) return &i;
  return nullptr;
}

Expr Plan::add_expr(ExprKind kind, std::string code, std::string src, Pos pos) {
  Expr e;
  e.src = std::move(src);
  e.pos = pos;
  e.id = static_cast<int>(exprs.size());
  exprs.push_back({kind, std::move(code)});
  return e;
}

namespace {

void add_refs(std::vector<std::string>& out, const Expr& e) {
  if (!e) return;
  for (auto& id : ExprEngine::step_refs(e.src))
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(std::move(id));
}

void add_unique(std::vector<size_t>& v, size_t i) {
  if (std::find(v.begin(), v.end(), i) == v.end()) v.push_back(i);
}

}  // namespace

std::vector<std::string> expression_step_refs(const StepDef& def) {
  std::vector<std::string> out;
  add_refs(out, def.when);
  add_refs(out, def.netns_tmpl);
  for (const auto& s : def.with_templates) add_refs(out, s.tmpl);
  for (const auto& s : def.expect_templates) add_refs(out, s.tmpl);
  add_refs(out, def.hook_before);
  add_refs(out, def.hook_after);
  for (const auto& c : def.on_fail)
    for (auto& id : expression_step_refs(c))
      if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(std::move(id));
  std::erase(out, def.id);
  return out;
}

void link_graph(Plan& plan) {
  std::map<std::string_view, size_t> index;
  for (size_t i = 0; i < plan.steps.size(); ++i) index.emplace(plan.steps[i].id, i);
  plan.graph.assign(plan.steps.size(), {});
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    StepEdges& e = plan.graph[i];
    for (const auto& d : plan.steps[i].needs)
      if (auto it = index.find(d); it != index.end() && it->second != i) add_unique(e.needs, it->second);
    // Also when the step `needs` it: a background step counts as started for `needs`,
    // but whoever reads its facts must wait for them.
    for (const auto& r : expression_step_refs(plan.steps[i]))
      if (auto it = index.find(r); it != index.end() && it->second != i) add_unique(e.refs, it->second);
  }
  for (size_t i = 0; i < plan.steps.size(); ++i)
    for (size_t d : plan.graph[i].needs) plan.graph[d].needed_by.push_back(i);
}

}  // namespace netplay
