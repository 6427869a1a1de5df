#pragma once
/// What another thread may know of a run in progress: the watchdog's view. The scheduler
/// publishes each step as it starts and finishes, and says whose Lua it is evaluating; when
/// the run cannot return (an evaluation stuck inside a C function, past every deadline),
/// the watchdog builds the report from here and ends the process itself.

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "runner/base/result.h"

namespace netplay {

class RunMonitor {
 public:
  /// No step's Lua is being evaluated; the diagnosis is.
  static constexpr int kNone = -1;
  static constexpr int kDiagnosis = -2;

  /// The run's header fields and every step it will report, not yet run.
  void begin(RunReport initial, Clock::time_point start);
  void started(size_t step);
  void finished(size_t step, const StepResult& result);
  /// Whose expressions the scheduler thread evaluates now: a step index, kNone or kDiagnosis.
  void evaluating(int step) { evaluating_.store(step, std::memory_order_release); }

  /// The report as far as the run got, stopped for `reason`: finished steps as they ended;
  /// the step whose Lua was being evaluated as an error saying `reason`, steps still
  /// running as errors ("not finished: <reason>"), the others skipped ("not run: <reason>"). The report's `stopped` says
  /// `reason` too. Safe to call from any thread.
  RunReport partial(const std::string& reason, bool interrupted) const;

 private:
  mutable std::mutex mu_;
  RunReport report_;
  std::vector<char> state_;  // per step: 0 waiting, 1 running, 2 finished
  Clock::time_point start_{};
  std::atomic<int> evaluating_{kNone};
};

}  // namespace netplay
