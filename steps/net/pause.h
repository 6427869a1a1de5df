#pragma once
/// Waiting between the repeats of a probe (`interval`).

#include <algorithm>
#include <chrono>
#include <thread>

#include "runner/base/core.h"
#include "runner/step/step.h"

namespace netplay {

/// Waits `d` of real time (a pause measures nothing) in slices of at most 50 ms, so that
/// cancellation and the step's deadline are seen promptly; false when the step was
/// cancelled or ran out of time meanwhile.
inline bool pause(const StepContext& ctx, Millis d) {
  const Clock::time_point until = Clock::now() + std::chrono::duration_cast<Clock::duration>(d);
  for (;;) {
    if (ctx.is_cancelled() || ctx.expired()) return false;
    auto left = std::chrono::duration_cast<Millis>(until - Clock::now());
    if (left <= Millis(0)) return true;
    std::this_thread::sleep_for(std::min(left, Millis(50)));
  }
}

}  // namespace netplay
