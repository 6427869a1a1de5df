#pragma once
/// Expressions and templates: Lua 5.4, sandboxed. One engine per playbook run; every
/// expression is compiled once (at load/validate time) and evaluated many times.
///
/// Scope of an expression: `inputs`, `steps.<id>.status|message|facts`, `env` (only the
/// variables the playbook allow-lists), and the helper library from lua/ as `net` (naming
/// helpers such as net.silk_host_iface("10.255.211.40") == "s-010255211040").
/// Sandbox: no io, os.execute, load of bytecode, debug; require only from lua/;
/// an instruction-count hook checks a monotonic deadline; an allocator caps memory.

#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runner/base/core.h"
#include "runner/base/types.h"

namespace netplay {

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
  /// Lua statements (a hook body). `return false` from a before-hook skips the step.
  std::expected<int, std::string> compile_chunk(std::string_view src);

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

  /// Errors are one-line messages. A deliberate verdict raised by a script through
  /// netplay.fail(msg) / netplay.warn(msg) / netplay.skip(msg) comes back prefixed
  /// "fail: " / "warn: " / "skip: " so callers can tell it from a crash (status error).
  /// Limits read "expression exceeded its time limit (2s)" / "... instruction limit ..." /
  /// "expression ran out of memory (...)". `steps.X` for a step without a result raises
  /// "step 'X' has not run" (netplay.ran('X') tests for it). Not thread-safe: one caller
  /// at a time.
  std::expected<json, std::string> eval(int id);
  std::expected<bool, std::string> eval_bool(int id);  // Lua truthiness

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace netplay
