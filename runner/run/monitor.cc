#include "runner/run/monitor.h"

namespace netplay {

void RunMonitor::begin(RunReport initial, Clock::time_point start) {
  std::lock_guard lock(mu_);
  report_ = std::move(initial);
  state_.assign(report_.steps.size(), 0);
  start_ = start;
}

void RunMonitor::started(size_t step) {
  std::lock_guard lock(mu_);
  if (step < state_.size() && state_[step] == 0) state_[step] = 1;
}

void RunMonitor::finished(size_t step, const StepResult& result) {
  std::lock_guard lock(mu_);
  if (step >= state_.size()) return;
  report_.steps[step] = result;
  state_[step] = 2;
}

RunReport RunMonitor::partial(const std::string& reason, bool interrupted) const {
  std::lock_guard lock(mu_);
  RunReport r = report_;
  int evaluating = evaluating_.load(std::memory_order_acquire);
  for (size_t i = 0; i < r.steps.size(); ++i) {
    if (state_[i] == 2) continue;
    StepResult& s = r.steps[i];
    if (static_cast<int>(i) == evaluating) {
      s.status = Status::kError;
      s.message = reason;
    } else if (state_[i] == 1) {
      s.status = Status::kError;
      s.message = "not finished: " + reason;
    } else {
      s.status = Status::kSkip;
      s.message = "not run: " + reason;
    }
  }
  r.interrupted = interrupted;
  r.stopped = reason;
  r.duration_ms =
      std::chrono::duration_cast<Millis>(Clock::now() - start_).count();
  r.status = r.overall();
  return r;
}

}  // namespace netplay
