/// The Lua engine behind when:, templates and hooks. Safety rests on four things: an
/// allow-listed environment table (no path back to the real globals), text-only loading,
/// an allocator that refuses to grow past the memory cap, and a count hook that enforces
/// the instruction budget and a monotonic deadline (expr_sandbox.cc). Lua errors are
/// longjmps, so every entry from C++ is a lua_pcall with a message handler.

#include "runner/lua/expr.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "runner/lua/expr_detail.h"
#include "runner/lua/expr_state.h"

namespace netplay {
namespace {

using namespace expr_detail;

constexpr char kExprChunk[] = "=expr";
constexpr char kHookChunk[] = "=hook";

/// "expr:1: msg" -> "msg"; "hook:3: msg" -> "line 3: msg". Other prefixes (a module's
/// "net.lua:12:") stay: they say where the problem is.
std::string clean_message(std::string_view msg) {
  for (std::string_view chunk : {std::string_view("expr:"), std::string_view("hook:")}) {
    if (!msg.starts_with(chunk)) continue;
    size_t i = chunk.size();
    size_t digits = i;
    while (digits < msg.size() && std::isdigit(static_cast<unsigned char>(msg[digits]))) ++digits;
    if (digits == i || msg.substr(digits, 2) != ": ") break;
    std::string_view rest = msg.substr(digits + 2);
    if (chunk == "expr:") return std::string(rest);
    return fmt::format("line {}: {}", msg.substr(i, digits - i), rest);
  }
  return std::string(msg);
}

/// The error at the top of the stack, typed. A verdict is recognised by its metatable,
/// which scripts can neither read nor forge; any other table is an ordinary error shown
/// as compact JSON.
ExprError error_of(State& im, int status) {
  lua_State* L = im.L;
  if (im.tripped) return {ExprError::Kind::kLimit, Status::kError, *im.tripped};
  if (status == LUA_ERRMEM) return {ExprError::Kind::kLimit, Status::kError, im.mem_msg};
  if (lua_type(L, -1) == LUA_TTABLE) {
    if (auto verdict = verdict_of(L, -1))
      return {ExprError::Kind::kVerdict, verdict->first, std::move(verdict->second)};
    auto j = to_json(L, -1);
    std::string text = j ? j->dump(-1, ' ', false, json::error_handler_t::replace) : "?";
    if (text.size() > 200) text = text.substr(0, 200) + "...";
    return {ExprError::Kind::kError, Status::kError, "error object " + text};
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n = 0;
    const char* p = lua_tolstring(L, -1, &n);
    return {ExprError::Kind::kError, Status::kError, clean_message(std::string_view(p, n))};
  }
  return {ExprError::Kind::kError, Status::kError,
          fmt::format("error object is a {} value", luaL_typename(L, -1))};
}

/// Runs f(ud) as a protected call with limits armed.
std::expected<void, ExprError> protect(State& im, lua_CFunction f, void* ud) {
  lua_State* L = im.L;
  int base = lua_gettop(L);
  lua_pushcfunction(L, message_handler);
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, ud);
  im.begin();
  int status = lua_pcall(L, 1, 0, base + 1);
  im.end();
  std::expected<void, ExprError> out;
  if (status != LUA_OK) out = std::unexpected(error_of(im, status));
  lua_settop(L, base);
  return out;
}

struct CompileArgs {
  std::string_view code;
  const char* chunk = kExprChunk;
  bool factory = false;  // the chunk returns the function to keep (templates)
  bool shell = false;    // the factory also takes shell_word (shell templates)
  int ref = LUA_NOREF;
};

int l_compile(lua_State* L) {
  auto* a = static_cast<CompileArgs*>(lua_touserdata(L, 1));
  State* im = state_of(L);
  if (luaL_loadbufferx(L, a->code.data(), a->code.size(), a->chunk, "t") != LUA_OK) {
    return lua_error(L);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, im->sandbox_ref);
  lua_setupvalue(L, -2, 1);
  if (a->factory) {
    lua_pushcfunction(L, template_str);
    if (a->shell) lua_pushcfunction(L, shell_word);
    lua_call(L, a->shell ? 2 : 1, 1);
  }
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

struct SetArgs {
  const char* name;
  const json* value;
};

int l_set_global(lua_State* L) {
  auto* a = static_cast<SetArgs*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, state_of(L)->base_ref);
  lua_pushstring(L, a->name);
  if (a->value->is_object() || a->value->is_array()) {
    push_json(L, *a->value);
  } else {
    lua_newtable(L);
    make_read_only(L);
  }
  lua_rawset(L, -3);
  return 0;
}

std::string format_bytes(size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) return fmt::format("{} MiB", n >> 20);
  if (n >= (1u << 10)) return fmt::format("{} KiB", n >> 10);
  return fmt::format("{} bytes", n);
}

std::vector<std::string> refs(std::string_view src, std::string_view root) {
  if (has_template(src)) {
    if (auto parts = expr_detail::split_template(src)) {
      std::vector<std::string> out;
      for (const auto& p : *parts) {
        if (!p.is_expr) continue;
        for (auto& name : expr_detail::scan_refs(p.text, root)) {
          if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
        }
      }
      return out;
    }
  }
  return expr_detail::scan_refs(src, root);
}

}  // namespace

struct ExprEngine::Impl : expr_detail::State {};

namespace {

/// Every live engine, for ExprEngine::overdue on the watchdog's thread.
std::mutex& watch_mutex() {
  static std::mutex m;
  return m;
}
std::vector<const State*>& watched() {
  static std::vector<const State*> v;
  return v;
}

}  // namespace

ExprEngine::ExprEngine(Limits limits) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.limits = limits;
  im.time_msg =
      fmt::format("expression exceeded its time limit ({})", format_duration(limits.time));
  im.instr_msg = fmt::format("expression exceeded its instruction limit ({} instructions)",
                             limits.instructions);
  im.mem_msg =
      fmt::format("expression ran out of memory (limit {})", format_bytes(limits.memory_bytes));
  im.convert_msg = fmt::format("expression's value is too large to convert (limit {})",
                               format_bytes(limits.memory_bytes));
  {
    std::lock_guard lock(watch_mutex());
    watched().push_back(&im);
  }
  if (const char* path = std::getenv("NETPLAY_LUA_PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      size_t colon = rest.find(':');
      std::string_view dir = rest.substr(0, colon);
      if (!dir.empty()) im.lua_dirs.emplace_back(dir);
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    }
  }
#ifdef NETPLAY_SOURCE_DIR
  im.lua_dirs.emplace_back(NETPLAY_SOURCE_DIR "/lua");
#endif
  im.L = lua_newstate(limited_alloc, &im);
  if (!im.L) {
    im.broken = im.mem_msg;
    return;
  }
  *static_cast<State**>(lua_getextraspace(im.L)) = &im;
  lua_sethook(im.L, limit_hook, LUA_MASKCOUNT | LUA_MASKCALL, kHookEvery);
  if (auto ok = protect(im, setup_sandbox, nullptr); !ok)
    im.broken = "cannot set up Lua: " + ok.error().message;
}

ExprEngine::~ExprEngine() {
  {
    std::lock_guard lock(watch_mutex());
    std::erase(watched(), impl_.get());
  }
  if (impl_->L) lua_close(impl_->L);
}

namespace {

std::expected<int, std::string> compile_into(State& im, CompileArgs args) {
  if (!im.broken.empty()) return std::unexpected(im.broken);
  if (auto ok = protect(im, l_compile, &args); !ok) return std::unexpected(ok.error().message);
  im.compiled.push_back(args.ref);
  return static_cast<int>(im.compiled.size() - 1);
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

/// Calls compiled function `id`; on success its first result is on top of the stack
/// above `base`.
std::expected<int, ExprError> call(State& im, int id) {
  if (!im.broken.empty()) return std::unexpected(ExprError{.message = im.broken});
  if (id < 0 || static_cast<size_t>(id) >= im.compiled.size()) {
    return std::unexpected(ExprError{.message = fmt::format("unknown expression id {}", id)});
  }
  lua_State* L = im.L;
  int base = lua_gettop(L);
  lua_pushcfunction(L, message_handler);
  lua_rawgeti(L, LUA_REGISTRYINDEX, im.compiled[static_cast<size_t>(id)]);
  im.begin();
  int status = lua_pcall(L, 0, 1, base + 1);
  if (status != LUA_OK) {
    im.end();
    ExprError err = error_of(im, status);
    lua_settop(L, base);
    return std::unexpected(std::move(err));
  }
  return base;  // still active: the caller converts the result within the limits, then ends
}

}  // namespace

std::expected<int, std::string> ExprEngine::compile_expr(std::string_view src) {
  if (blank(src)) return std::unexpected("empty expression");
  // The newline keeps a trailing "-- comment" from swallowing the parenthesis.
  return compile_into(*impl_, {fmt::format("return ({}\n)", src), kExprChunk});
}

std::expected<int, std::string> ExprEngine::compile_template(std::string_view src) {
  auto parts = expr_detail::split_template(src);
  if (!parts) return std::unexpected(parts.error());
  if (parts->size() == 1 && (*parts)[0].is_expr) {
    return compile_into(*impl_, {fmt::format("return ({}\n)", (*parts)[0].text), kExprChunk});
  }
  if (parts->empty()) return compile_into(*impl_, {"return \"\"", kExprChunk});
  std::string body;
  for (const auto& p : *parts) {
    if (!body.empty()) body += " .. ";
    body += p.is_expr ? fmt::format("str(({}\n))", p.text) : expr_detail::lua_quote(p.text);
  }
  return compile_into(*impl_, {fmt::format("local str = ...\nreturn function() return {} end", body),
                          kExprChunk, true});
}

std::expected<int, std::string> ExprEngine::compile_shell_template(std::string_view src) {
  auto parts = expr_detail::split_template(src);
  if (!parts) return std::unexpected(parts.error());
  std::string body;
  for (const auto& p : *parts) {
    if (!body.empty()) body += " .. ";
    body += p.is_expr ? fmt::format("shq(({}\n))", p.text) : expr_detail::lua_quote(p.text);
  }
  if (body.empty()) body = "\"\"";
  std::string code = fmt::format("local str, shq = ...\nreturn function() return {} end", body);
  CompileArgs args{code, kExprChunk, true};
  args.shell = true;
  return compile_into(*impl_, args);
}

std::expected<int, std::string> ExprEngine::compile_chunk(std::string_view src) {
  return compile_into(*impl_, {src, kHookChunk});
}

std::expected<int, std::string> ExprEngine::compile(const ExprSource& src) {
  switch (src.kind) {
    case ExprKind::kExpr:
      return compile_expr(src.code);
    case ExprKind::kTemplate:
      return compile_template(src.code);
    case ExprKind::kChunk:
      return compile_chunk(src.code);
    case ExprKind::kShellTemplate:
      return compile_shell_template(src.code);
  }
  return std::unexpected("unknown expression kind");
}

std::expected<void, std::string> ExprEngine::compile_all(const std::vector<ExprSource>& program) {
  std::string problem;
  for (size_t i = 0; i < program.size() && problem.empty(); ++i) {
    auto id = compile(program[i]);
    if (!id)
      problem = fmt::format("expression {} does not compile: {}", i, id.error());
    else if (static_cast<size_t>(*id) != i)
      problem = fmt::format("expression {} compiled as {}", i, *id);
  }
  if (problem.empty()) return {};
  if (impl_->broken.empty()) impl_->broken = problem;  // every evaluation reports it
  return std::unexpected(problem);
}


std::vector<std::string> ExprEngine::step_refs(std::string_view src) { return refs(src, "steps"); }

std::vector<std::string> ExprEngine::input_refs(std::string_view src) {
  return refs(src, "inputs");
}

void ExprEngine::set_inputs(const json& inputs) {
  Impl& im = *impl_;
  if (!im.broken.empty()) return;
  SetArgs args{"inputs", &inputs};
  if (auto ok = protect(im, l_set_global, &args); !ok)
    im.broken = "cannot load inputs: " + ok.error().message;
}

void ExprEngine::set_env(const json& env) {
  Impl& im = *impl_;
  if (!im.broken.empty()) return;
  SetArgs args{"env", &env};
  if (auto ok = protect(im, l_set_global, &args); !ok)
    im.broken = "cannot load env: " + ok.error().message;
}

void ExprEngine::set_step_result(const std::string& id, Status status, const std::string& message,
                                 const json& facts) {
  Impl& im = *impl_;
  auto [it, inserted] = im.steps.try_emplace(id);
  if (inserted) im.step_order.push_back(&it->first);
  StepEntry& e = it->second;
  e.status = status;
  e.message = message;
  e.facts = facts;
  ++e.version;
  if (e.ref != LUA_NOREF && im.L) {
    // Only rewrites existing registry slots: cannot allocate, so cannot raise.
    luaL_unref(im.L, LUA_REGISTRYINDEX, e.ref);
    e.ref = LUA_NOREF;
  }
}

std::expected<json, ExprError> ExprEngine::eval(int id) {
  auto base = call(*impl_, id);
  if (!base) return std::unexpected(base.error());
  auto v = to_json(impl_->L, -1);
  impl_->end();
  lua_settop(impl_->L, *base);
  if (!v) {
    auto kind = impl_->tripped ? ExprError::Kind::kLimit : ExprError::Kind::kError;
    return std::unexpected(ExprError{kind, Status::kError, std::move(v.error())});
  }
  return std::move(*v);
}

std::expected<bool, ExprError> ExprEngine::eval_bool(int id) {
  auto base = call(*impl_, id);
  if (!base) return std::unexpected(base.error());
  bool v = lua_toboolean(impl_->L, -1) != 0;
  impl_->end();
  lua_settop(impl_->L, *base);
  return v;
}

void ExprEngine::set_run_deadline(Clock::time_point deadline, std::string message) {
  impl_->cap = deadline;
  impl_->cap_msg = std::move(message);
}

void ExprEngine::set_interrupt(const std::atomic<bool>* flag) { impl_->interrupt = flag; }

bool ExprEngine::any_busy() {
  std::lock_guard lock(watch_mutex());
  for (const State* im : watched())
    if (im->busy_until.load(std::memory_order_acquire) != 0) return true;
  return false;
}

std::optional<std::string> ExprEngine::overdue(Clock::time_point now, Clock::duration grace) {
  std::lock_guard lock(watch_mutex());
  for (const State* im : watched()) {
    Clock::rep until = im->busy_until.load(std::memory_order_acquire);
    if (until != 0 && now > Clock::time_point(Clock::duration(until)) + grace)
      return *im->deadline_msg;
  }
  return std::nullopt;
}

}  // namespace netplay