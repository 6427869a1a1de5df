#pragma once
/// A Session is one run of a Plan: it owns everything the run changes (its Lua states, its
/// child processes, the clock readings, the report being built) while the Plan stays
/// immutable. Two Sessions of one Plan, one after the other or at once, share nothing
/// mutable.
///
/// The run: list order plus `needs` (and references to steps.X in `when:`/templates,
/// which order but do not skip), independent steps concurrently on worker threads (inline
/// on the calling thread with jobs = 1), each inside its namespace, with per-attempt
/// timeouts, retries, a global timeout, fail-fast, background steps, on_fail collectors
/// and the diagnosis.

#include <atomic>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "runner/base/result.h"
#include "runner/load/plan.h"
#include "runner/lua/expr.h"
#include "runner/run/monitor.h"
#include "runner/step/services.h"

namespace netplay {

struct RunOptions {
  int jobs = 4;
  Millis global_timeout{0};  // 0: none
  bool fail_fast = false;
  std::vector<std::string> only;  // step ids; their `needs` are pulled in
  json inputs = json::object();   // resolved
  /// What steps touch of the system (netlink, processes, clock); null: the real ones
  /// (system_services()). Must outlive the run, and any step abandoned after a timeout.
  StepServices* services = nullptr;
};

class Session {
 public:
  Session(const Plan& plan, RunOptions opts);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Runs the plan once and returns the report. `interrupt` is set by the signal handler
  /// (Ctrl-C/SIGTERM): no new steps start, running ones are cancelled and their children
  /// killed, and the partial report is returned with interrupted = true.
  RunReport run(Progress* progress, const std::atomic<bool>& interrupt);

  /// A new Lua state with the plan's expressions compiled and this run's inputs and
  /// allow-listed environment set: the scheduler's own, or one per worker for steps
  /// written in Lua. Expressions that fail to compile make every evaluation say so.
  std::unique_ptr<ExprEngine> new_lua() const;

  /// The report as far as a run in progress got, stopped for `reason` (see
  /// RunMonitor::partial): for a watchdog on another thread when run() cannot return.
  RunReport partial_report(const std::string& reason, bool interrupted) const {
    return monitor_.partial(reason, interrupted);
  }
  /// The scheduler publishes the run's progress here.
  RunMonitor& monitor() const { return monitor_; }

  const Plan& plan() const { return plan_; }
  const RunOptions& options() const { return opts_; }

 private:
  const Plan& plan_;
  const RunOptions opts_;
  json env_ = json::object();
  mutable RunMonitor monitor_;
};

}  // namespace netplay
