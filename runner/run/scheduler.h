#pragma once
/// The scheduler behind Session::run(); not an interface outside runner/run.

#include <atomic>

#include "runner/base/result.h"
#include "runner/run/session.h"

namespace netplay {

/// Runs the session's plan once. `lua` is the session's scheduler-thread Lua state
/// (nullptr when the plan has no expressions).
RunReport schedule(const Session& session, ExprEngine* lua, Progress* progress,
                   const std::atomic<bool>& interrupt);

}  // namespace netplay
