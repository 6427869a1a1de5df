#include "tests/unit/support/step_run.h"

#include <gtest/gtest.h>

namespace netplay {

StepOutput run_step(std::string_view name, json params, StepServices* services,
                    StepContext ctx) {
  const Step* step = Registry::instance().find(name);
  if (!step) {
    ADD_FAILURE() << "no step '" << name << "' is registered";
    return StepOutput::error("no such step");
  }
  for (const auto& p : step->spec().params)
    if (!params.contains(p.name) && !p.default_value.is_null()) params[p.name] = p.default_value;
  ctx.services = services;
  if (ctx.step_id.empty()) ctx.step_id = std::string(name);
  StepOutput out = step->run(ctx, Params(std::move(params)));
  for (const auto& fact : undeclared_facts(step->spec(), out.facts))
    ADD_FAILURE() << name << " reports fact '" << fact << "', which its spec does not declare";
  return out;
}

}  // namespace netplay
