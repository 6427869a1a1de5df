#pragma once
/// The neutral result tree of a run; reporters render it, the exit code derives from it.

#include <map>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/base/types.h"

namespace netplay {

struct ExpectationResult {
  std::string fact;     // dotted path, e.g. "dstport" or "entries.0.dst"
  std::string matcher;  // eq, lt, one_of, ...
  json expected;
  json actual;          // null when the fact is absent
  bool ok = false;
  std::string message;  // "dstport: expected 4789, got 8472"
};

struct StepResult {
  std::string id;
  std::string title;
  std::string uses;
  std::string netns;
  Status status = Status::kSkip;
  std::string message;
  json facts = json::object();
  std::vector<ExpectationResult> expectations;
  std::vector<std::string> evidence;
  double started_ms = 0;  // since the start of the run
  double duration_ms = 0;
  int attempts = 0;
  bool background = false;
};

struct Finding {
  std::string id;
  std::string finding;
  std::vector<std::string> next;
  std::vector<std::string> references;
  Severity severity = Severity::kFail;  // of the rule that matched
};

struct RunReport {
  std::string version;
  std::string playbook_name;
  std::string playbook_title;
  std::string playbook_file;
  std::string playbook_sha256;
  json inputs = json::object();
  std::string started_at;  // RFC 3339, UTC
  double duration_ms = 0;
  Status status = Status::kPass;
  std::vector<StepResult> steps;  // in playbook order
  std::vector<Finding> findings;
  bool interrupted = false;
  /// Why the run was cut short when it could not end by itself (an evaluation stuck past
  /// every deadline; the watchdog wrote this report): empty normally.
  std::string stopped;

  std::map<Status, int> summary() const;
  /// pass unless: fail if a step failed or a `fail` finding matched; else error if a step
  /// errored or the run was interrupted; else warn if a step warned or a `warn` finding
  /// matched. `info` findings never change it.
  Status overall() const;
};

/// Live progress of a run: the scheduler calls it on its own thread as steps start and
/// finish; the text reporter implements it. `on_start` sees the result being built (id,
/// title, uses and the namespace it runs in are set).
class Progress {
 public:
  virtual ~Progress() = default;
  virtual void on_start(const StepResult& step) = 0;
  virtual void on_finish(const StepResult& result) = 0;
  virtual void on_tick() {}  // ~10 times a second while something runs
};

/// 0 nothing failed (warnings and warn/info findings allowed), 1 a step failed or a `fail`
/// finding matched, 3 steps errored but none failed, 130 interrupted.
int exit_code(const RunReport& r);

}  // namespace netplay
