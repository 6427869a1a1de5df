#pragma once
/// Running one registered step the way the runner does, for unit tests of steps.

#include <string_view>

#include "runner/step/services.h"
#include "runner/step/step.h"

namespace netplay {

/// Runs the registered step `name` with `params` (its declared defaults applied, as the
/// loader does) on `services` (e.g. a FakeServices; null: the real ones). Fails the calling
/// test when the step is missing or reports a fact its spec does not declare.
StepOutput run_step(std::string_view name, json params, StepServices* services,
                    StepContext ctx = {});

}  // namespace netplay
