#pragma once
/// The real child-process runner (Boost.Process): argv only (no shell unless the caller
/// builds one), deadline and cancellation honoured, every child in its own process group,
/// tracked in the run's ProcessRegistry so that Ctrl-C kills whatever is still running.
/// Steps reach it through ctx.processes() (runner/step/services.h), never directly.

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <expected>
#include <string>

#include "runner/step/services.h"

namespace netplay {

/// The live child process groups of a run. A fixed table of atomics rather than a
/// mutex-guarded set, so that kill_all() can be called from a signal handler without
/// risking a deadlock on a held lock.
class ProcessRegistry {
 public:
  /// One process group's place in the table, freed when the Slot is destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept;
    Slot& operator=(Slot&&) = delete;
    ~Slot();
    /// False when the table was full: the child runs, but kill_all() cannot reach it.
    bool tracked() const { return registry_ != nullptr; }

   private:
    friend class ProcessRegistry;
    Slot(ProcessRegistry* r, size_t i) : registry_(r), index_(i) {}
    ProcessRegistry* registry_ = nullptr;
    size_t index_ = 0;
  };

  ProcessRegistry() = default;
  ProcessRegistry(const ProcessRegistry&) = delete;
  ProcessRegistry& operator=(const ProcessRegistry&) = delete;

  /// Tracks the process group `pgid` for as long as the returned Slot lives.
  [[nodiscard]] Slot track(pid_t pgid);
  /// SIGKILL to every tracked group. Async-signal-safe.
  void kill_all();
  /// Groups currently tracked (for tests and shutdown checks).
  size_t live() const;

 private:
  static constexpr size_t kCapacity = 512;
  std::array<std::atomic<pid_t>, kCapacity> groups_{};
};

/// Runs one child process (see ProcessRunner::run); its group is tracked in `registry`
/// while it runs.
std::expected<ProcessResult, std::string> run_process(const ProcessSpec& spec,
                                                      const StepContext& ctx,
                                                      ProcessRegistry& registry);

/// The ProcessRunner of RealServices.
class SystemProcessRunner : public ProcessRunner {
 public:
  explicit SystemProcessRunner(ProcessRegistry& registry) : registry_(registry) {}
  std::expected<ProcessResult, std::string> run(const ProcessSpec& spec,
                                                const StepContext& ctx) override {
    return run_process(spec, ctx, registry_);
  }
  void kill_all() override { registry_.kill_all(); }

 private:
  ProcessRegistry& registry_;
};

}  // namespace netplay
