#pragma once
/// The playbook JSON Schema (draft 2020-12), generated from the step registry so editors
/// complete and check `uses:`, `with:` and `expect:` for every registered step.
/// schemas/playbook.schema.json is `netplay schema` checked in; a unit test keeps it current.

#include "runner/base/types.h"

namespace netplay {

/// Deterministic: steps in registry (name) order, params and facts in spec order.
json playbook_schema();

}  // namespace netplay
