#pragma once
/// Runs a playbook's step graph: list order plus `needs` (and references to steps.X in
/// `when:`/templates, which order but do not skip), independent steps concurrently on
/// worker threads, each inside its namespace, with per-attempt timeouts, retries, a global
/// timeout, fail-fast, background steps, on_fail collectors and the diagnosis.

#include <atomic>
#include <string>
#include <vector>

#include "runner/load/playbook.h"
#include "runner/base/result.h"

namespace netplay {

class StepServices;

struct RunOptions {
  int jobs = 4;
  Millis global_timeout{0};  // 0: none
  bool fail_fast = false;
  std::vector<std::string> only;  // step ids; their `needs` are pulled in
  json inputs = json::object();   // resolved
  /// What steps touch of the system (netlink, processes, clock); null: the real ones
  /// (system_services()). Must outlive the run.
  StepServices* services = nullptr;
};

/// `interrupt` is set by the signal handler (Ctrl-C/SIGTERM): no new steps start, running
/// ones are cancelled and their children killed, and the partial report is returned with
/// interrupted = true.
RunReport run_playbook(const Playbook& pb, const RunOptions& opts, Progress* progress,
                       const std::atomic<bool>& interrupt);

}  // namespace netplay
