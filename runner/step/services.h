#pragma once
/// What a step may touch of the system, handed to it through StepContext as services:
/// child processes and the clock. Each real implementation honours the step's
/// deadline and cancellation; each has a fake (runner/step/fakes.h), so a step's logic can be
/// unit-tested without root, without namespaces and without waiting.
///
/// Whoever owns a run owns its services (the CLI today, a Session later) and keeps them
/// alive for the whole run; steps get them with ctx.processes() and ctx.clock().

#include <atomic>
#include <chrono>
#include <expected>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/step.h"

namespace netplay {

// ---- Child processes ----

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] looked up in PATH when it has no '/'
  std::map<std::string, std::string> env;  // added to (or replacing) the inherited env
  bool inherit_env = true;
  std::string cwd;
  std::string stdin_data;
  size_t max_output = 1u << 20;  // per stream; output past it is dropped and flagged
};

struct ProcessResult {
  std::optional<int> exit_code;  // none when killed by a signal
  int term_signal = 0;
  std::string out;
  std::string err;
  bool timed_out = false;  // deadline hit: killed
  bool cancelled = false;  // cancel/stop requested: killed
  bool truncated = false;
  Millis duration{0};
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  /// Runs to completion, until ctx's deadline, or until ctx.should_stop(); on the last two
  /// the whole process group gets SIGTERM, then SIGKILL after a short grace. Error only
  /// when the process could not be started ("no such command 'foo'").
  virtual std::expected<ProcessResult, std::string> run(const ProcessSpec& spec,
                                                        const StepContext& ctx) = 0;
  /// Kills every child process group still running (Ctrl-C, the global timeout).
  virtual void kill_all() = 0;
};

// ---- Clock ----

class StepClock {
 public:
  virtual ~StepClock() = default;
  /// Monotonic time: durations and deadlines.
  virtual Clock::time_point now() const = 0;
  /// Wall-clock time: what reports print.
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
};

// ---- Placeholders for services built later ----
// A DNS resolver (c-ares) and a packet source (pcap) will join here, each with a fake.

/// The services of one run.
class StepServices {
 public:
  virtual ~StepServices() = default;
  virtual ProcessRunner& processes() = 0;
  virtual StepClock& clock() = 0;
};

class ProcessRegistry;

/// The real services: real child processes (tracked in a ProcessRegistry that
/// the run's owner holds, so that Ctrl-C can kill them), the system clocks.
class RealServices : public StepServices {
 public:
  /// `registry` must outlive these services.
  explicit RealServices(ProcessRegistry& registry);
  ~RealServices() override;
  RealServices(const RealServices&) = delete;
  RealServices& operator=(const RealServices&) = delete;

  ProcessRunner& processes() override;
  StepClock& clock() override;
  ProcessRegistry& registry() { return registry_; }

 private:
  ProcessRegistry& registry_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Real services for code that runs steps without bringing its own (a StepContext or
/// RunOptions without services, e.g. in tests): one set per process.
RealServices& system_services();

}  // namespace netplay
