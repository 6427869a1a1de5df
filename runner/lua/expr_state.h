#pragma once
/// The state behind an ExprEngine, shared by its source files. C functions called from
/// Lua reach it through the lua_State's extra space.

#include <atomic>
#include <filesystem>
#include <lua.hpp>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runner/lua/expr.h"

namespace netplay::expr_detail {

inline constexpr int kHookEvery = 1000;                 // instructions between limit checks
inline constexpr size_t kCheckedAllocBytes = 64 << 10;  // allocations that check the deadline
inline constexpr char kLoadedKey[] = "netplay.loaded";  // registry: modules already required

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct StepEntry {
  Status status = Status::kPass;
  std::string message;
  json facts;
  int ref = LUA_NOREF;   // the Lua table for steps.<id>, built on first access
  unsigned version = 0;  // bumped when the result is replaced (a retry)
};

struct State {
  ExprEngine::Limits limits;
  lua_State* L = nullptr;
  size_t used = 0;  // bytes held by the Lua state
  bool active = false;
  const std::string* tripped = nullptr;  // the limit that stopped this evaluation
  long long instructions = 0;
  Clock::time_point deadline;
  std::string time_msg, instr_msg, mem_msg;
  std::string convert_msg;  // a value too large to convert to JSON
  /// The run's own deadline (--timeout), which no evaluation outlives, and what reaching
  /// it is called ("run timed out after 2s").
  std::optional<Clock::time_point> cap;
  std::string cap_msg;
  const std::string* deadline_msg = &time_msg;  // time_msg or cap_msg: whichever is sooner
  const std::atomic<bool>* interrupt = nullptr;  // Ctrl-C: ends an evaluation at once
  std::string interrupt_msg = "interrupted";
  /// The deadline of the evaluation in progress (0: none), for the watchdog thread.
  std::atomic<Clock::rep> busy_until{0};
  int base_ref = LUA_NOREF;     // built-ins, inputs, steps, env: names scripts cannot assign
  int sandbox_ref = LUA_NOREF;  // _ENV of every chunk: script globals, __index = base
  std::vector<int> compiled;    // id -> registry ref of the function
  std::unordered_map<std::string, StepEntry, StringHash, std::equal_to<>> steps;
  std::vector<const std::string*> step_order;  // ids in the order results arrived
  std::vector<std::filesystem::path> lua_dirs;
  std::string broken;  // the state could not be set up; every call reports this

  void begin() {
    instructions = 0;
    tripped = nullptr;
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(limits.time);
    deadline_msg = &time_msg;
    if (cap && *cap < deadline) {
      deadline = *cap;
      deadline_msg = &cap_msg;
    }
    active = true;
    busy_until.store(deadline.time_since_epoch().count(), std::memory_order_release);
  }
  void end() {
    active = false;
    busy_until.store(0, std::memory_order_release);
  }
};

/// Registry key of the metatable that marks a verdict raised by netplay.fail/warn/skip.
inline constexpr char kVerdictKey[] = "netplay.verdict";

/// The status and message of the verdict at `idx`, or none when the value is not one.
std::optional<std::pair<Status, std::string>> verdict_of(lua_State* L, int idx);

inline State* state_of(lua_State* L) { return *static_cast<State**>(lua_getextraspace(L)); }

/// lua_Alloc that refuses to grow the state past limits.memory_bytes.
void* limited_alloc(void* ud, void* ptr, size_t osize, size_t nsize);
/// Count and call hook: raises once the instruction budget or the deadline is exceeded.
void limit_hook(lua_State* L, lua_Debug* ar);
/// Message handler of every pcall: keeps strings and tables (verdicts among them),
/// stringifies the rest.
int message_handler(lua_State* L);
/// Builds the sandbox (protected call; no arguments).
int setup_sandbox(lua_State* L);
/// Pushes `text` as a Lua string in a protected call, so that a memory error cannot unwind
/// past the C++ frame that owns `text` (and leak it). Returns the pcall status; on failure
/// the error is pushed instead.
int push_protected(lua_State* L, const std::string& text);
/// tostring() for the parts of a mixed template: nil renders as "", tables as JSON.
int template_str(lua_State* L);
/// The parts of a shell template (expr_shell.cc): the value's text as one word of literal
/// text for POSIX sh (as it is when no shell reads any of its characters specially, else in
/// single quotes, a ' becoming '\''), or a netplay.raw value's text as it is.
int shell_word(lua_State* L);
/// netplay.raw(v): marks v's text to be pasted into a shell command unquoted.
int shell_raw(lua_State* L);

}  // namespace netplay::expr_detail
