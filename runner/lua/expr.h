#pragma once
/// Expressions and templates: Lua 5.4, sandboxed. The loader compiles every expression
/// once in a scratch engine to validate it; each run (a Session) makes engines of its own
/// from the Plan's sources (compile_all) and evaluates them many times. Engines share
/// nothing: one per run, or one per worker thread.
///
/// Scope of an expression: `inputs`, `steps.<id>.status|message|facts`, `env` (only the
/// variables the playbook allow-lists), and the helper library from lua/ as `net` (naming
/// helpers such as net.silk_host_iface("10.255.211.40") == "s-010255211040").
/// Sandbox: no io, os.execute, load of bytecode, debug; require only from lua/;
/// an instruction-count hook checks a monotonic deadline; an allocator caps memory.

#include <atomic>
#include <expected>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runner/base/core.h"
#include "runner/base/types.h"

namespace netplay {

/// What kind of source an expression is, and how it is compiled.
enum class ExprKind {
  kExpr,      // a Lua expression: `when:`, diagnosis `when:`
  kTemplate,  // a string with {{ }} parts
  kChunk,     // Lua statements: a hook body
  kShellTemplate,  // a template that is a /bin/sh command line: every {{ }} value is
                   // quoted as one word of literal text, unless marked netplay.raw(v)
};

/// One expression of a playbook as the loader validated it; a Plan holds these as data and
/// every run compiles them into a Lua state of its own.
struct ExprSource {
  ExprKind kind = ExprKind::kExpr;
  std::string code;
};

/// Why an evaluation did not produce a value. Never parsed back from text: a script's
/// deliberate verdict (netplay.fail/warn/skip), a limit, or any other error each keep
/// their kind, whatever the message says.
struct ExprError {
  enum class Kind {
    kError,    // a Lua error: error("..."), a bad index, an error object of any type
    kVerdict,  // netplay.fail(msg) / netplay.warn(msg) / netplay.skip(msg)
    kLimit,    // the instruction, time or memory limit of the evaluation
  };
  Kind kind = Kind::kError;
  Status verdict = Status::kError;  // kVerdict: kFail, kWarn or kSkip
  std::string message;

  bool is_verdict() const { return kind == Kind::kVerdict; }
};

class ExprEngine {
 public:
  struct Limits {
    long long instructions = 10'000'000;  // per evaluation
    size_t memory_bytes = 64u << 20;      // whole state
    Millis time{2'000};                   // per evaluation
  };

  explicit ExprEngine(Limits limits);
  ExprEngine() : ExprEngine(Limits{}) {}
  ~ExprEngine();
  ExprEngine(const ExprEngine&) = delete;
  ExprEngine& operator=(const ExprEngine&) = delete;

  /// A Lua expression, e.g. "steps.vtep.status == 'pass' and inputs.count > 2".
  /// Error: Lua's message without the chunk name, e.g. "unexpected symbol near '='".
  std::expected<int, std::string> compile_expr(std::string_view src);
  /// A string with `{{ expr }}` parts. When the whole string is a single template the
  /// result keeps the expression's type (number, boolean, table); otherwise it is a string
  /// in which nil renders as "" and tables as compact JSON.
  std::expected<int, std::string> compile_template(std::string_view src);
  /// A template that is a POSIX shell command line: the result is always a string in
  /// which every `{{ }}` part is its text (as in a mixed template) quoted for sh as one
  /// word, e.g. `echo {{ inputs.name }}` with name `$(id)` gives `echo '$(id)'`. A value
  /// marked `netplay.raw(v)` is pasted as it is, for authors who build shell syntax.
  std::expected<int, std::string> compile_shell_template(std::string_view src);
  /// Lua statements (a hook body). `return false` from a before-hook skips the step.
  std::expected<int, std::string> compile_chunk(std::string_view src);
  /// Any of the three, by kind.
  std::expected<int, std::string> compile(const ExprSource& src);
  /// Compiles a whole program in order, so that expression i gets id i (a Plan's
  /// expressions). Stops at the first error, which names the expression's index; the
  /// engine then answers every evaluation with that error.
  std::expected<void, std::string> compile_all(const std::vector<ExprSource>& program);

  /// Step ids referenced as steps.X or steps["X"] / steps['X'] in src, skipping string
  /// literals and comments. When src holds `{{ }}` parts only those parts are scanned.
  static std::vector<std::string> step_refs(std::string_view src);
  /// Input names referenced as inputs.X in src.
  static std::vector<std::string> input_refs(std::string_view src);

  void set_inputs(const json& inputs);
  void set_env(const json& env);
  /// Makes a finished step visible as steps.<id>; facts are converted lazily on access.
  void set_step_result(const std::string& id, Status status, const std::string& message,
                       const json& facts);

  /// Errors carry a kind and a one-line message. A deliberate verdict raised by a script
  /// through netplay.fail(msg) / netplay.warn(msg) / netplay.skip(msg) is kVerdict with
  /// that status and msg; nothing else is (error("fail: x", 0) is an ordinary error).
  /// Limits (kLimit) read "expression exceeded its time limit (2s)" / "... instruction
  /// limit ..." / "expression ran out of memory (...)". `steps.X` for a step without a
  /// result raises "step 'X' has not run" (netplay.ran('X') tests for it). Not
  /// thread-safe: one caller at a time.
  std::expected<json, ExprError> eval(int id);
  std::expected<bool, ExprError> eval_bool(int id);  // Lua truthiness

  /// No evaluation outlives the run's own deadline (--timeout): one that reaches it ends
  /// with `message` ("run timed out after 2s") as a limit.
  void set_run_deadline(Clock::time_point deadline, std::string message);
  /// While *flag is true (Ctrl-C) every evaluation ends at its next check, as a limit
  /// ("interrupted").
  void set_interrupt(const std::atomic<bool>* flag);

  /// For a watchdog on another thread: the limit an evaluation of any engine has overrun
  /// by more than `grace`, which means it is stuck inside a C function no check reaches.
  /// Such an evaluation will not return in time; the caller must end the run without it.
  static std::optional<std::string> overdue(Clock::time_point now, Clock::duration grace);
  /// Whether any engine is evaluating now. Once Ctrl-C has been seen for a moment, an
  /// evaluation still going is stuck in C (in Lua it would have ended at its next check).
  static bool any_busy();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace netplay
