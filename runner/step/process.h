#pragma once
/// Child processes (Boost.Process): argv only (no shell unless the caller builds one),
/// deadline and cancellation honoured, every child in its own process group, and a
/// registry so that Ctrl-C kills whatever is still running.

#include <expected>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/step.h"

namespace netplay {

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
  bool timed_out = false;   // deadline hit: killed
  bool cancelled = false;   // cancel/stop requested: killed
  bool truncated = false;
  Millis duration{0};
};

/// Runs to completion, until ctx's deadline, or until ctx.should_stop(); on the last two
/// the whole process group gets SIGTERM, then SIGKILL after a short grace.
/// Error only when the process could not be started ("no such command 'foo'").
std::expected<ProcessResult, std::string> run_process(const ProcessSpec& spec,
                                                      const StepContext& ctx);

/// Kills every child process group still registered (used on interruption and exit).
void kill_all_children();
/// Number of children currently registered (for tests and shutdown checks).
size_t live_children();

}  // namespace netplay
