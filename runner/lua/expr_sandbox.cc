/// What scripts can reach: the allow-listed built-ins, `steps`, `netplay`, `require`
/// from lua/ only, plus the allocator, count hook and message handler that bound them.
/// These run on Lua's stack: a raised error is a longjmp, so C++ objects with destructors
/// are kept out of the paths that can raise (or, at worst, leak on a memory error).

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runner/base/read_file.h"
#include "runner/lua/expr_detail.h"
#include "runner/lua/expr_state.h"

namespace netplay::expr_detail {

void* limited_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* im = static_cast<State*>(ud);
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    im->used -= old;
    return nullptr;
  }
  if (nsize > old) {  // Lua requires shrinking to succeed; only growth can be refused
    if (im->used - old + nsize > im->limits.memory_bytes) return nullptr;
    // Large allocations come from C functions (string.rep, table.concat) that run no
    // instructions: check the deadline here too. The failure surfaces as a memory error
    // that error_text reports as the time limit.
    if (im->active && nsize >= kCheckedAllocBytes && !im->tripped && Clock::now() > im->deadline) {
      im->tripped = im->deadline_msg;
    }
    if (im->tripped) return nullptr;
  }
  void* p = std::realloc(ptr, nsize);
  if (p) im->used = im->used - old + nsize;
  return p;
}

/// Runs every kHookEvery instructions and on every function call, C functions included:
/// a loop around one expensive C call (table.sort of a big table) runs few instructions.
void limit_hook(lua_State* L, lua_Debug* ar) {
  State* im = state_of(L);
  if (!im->active) return;
  if (!im->tripped) {
    if (ar->event == LUA_HOOKCOUNT) im->instructions += kHookEvery;
    if (im->instructions > im->limits.instructions) {
      im->tripped = &im->instr_msg;
    } else if (Clock::now() > im->deadline) {
      im->tripped = im->deadline_msg;
    } else if (im->interrupt && im->interrupt->load(std::memory_order_relaxed)) {
      im->tripped = &im->interrupt_msg;
    }
  }
  // Once tripped, every later check raises again, so a script's own pcall cannot keep it alive.
  if (im->tripped) {
    lua_pushlstring(L, im->tripped->data(), im->tripped->size());
    lua_error(L);
  }
}

int message_handler(lua_State* L) {
  int t = lua_type(L, 1);
  if (t == LUA_TSTRING) return 1;
  if (t == LUA_TTABLE) {
    lua_settop(L, 1);
    if (verdict_of(L, 1)) return 1;
    // A table with __tostring says what it is; the caller shows any other as JSON.
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    lua_settop(L, 1);
    return 1;
  }
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

std::optional<std::pair<Status, std::string>> verdict_of(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return std::nullopt;
  lua_getfield(L, LUA_REGISTRYINDEX, kVerdictKey);
  bool is_verdict = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!is_verdict) return std::nullopt;
  lua_getfield(L, idx, "status");  // raw fields: the metatable has no __index
  lua_getfield(L, idx, "message");
  std::optional<Status> status =
      lua_type(L, -2) == LUA_TSTRING ? parse_status(lua_tostring(L, -2)) : std::nullopt;
  std::string message = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
  lua_pop(L, 2);
  if (!status) return std::nullopt;
  return std::pair(*status, std::move(message));
}

namespace {

int l_pcall(lua_State* L) {
  luaL_checkany(L, 1);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  if (status != LUA_OK && state_of(L)->tripped) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_insert(L, 1);
  return lua_gettop(L);
}

int l_xpcall(lua_State* L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 1);  // f, msgh, f, args...
  int status = lua_pcall(L, n - 2, LUA_MULTRET, 2);
  if (status != LUA_OK && state_of(L)->tripped) return lua_error(L);
  lua_pushboolean(L, status == LUA_OK);
  lua_replace(L, 1);
  lua_remove(L, 2);
  return lua_gettop(L);
}

/// setmetatable without __gc: a finalizer would run Lua code at some later allocation,
/// outside any evaluation's limits.
int l_setmetatable(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    bool gc = lua_rawget(L, 2) != LUA_TNIL;
    lua_pop(L, 1);
    if (gc) return luaL_error(L, "__gc metamethods are not allowed");
  }
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) {
    return luaL_error(L, "cannot change a protected metatable");
  }
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/// netplay.fail/warn/skip(msg): raises a verdict object, a table whose metatable (kept in
/// the registry, hidden by __metatable) marks it; the caller tells it from a crash by that
/// mark, never by the message's text.
int l_verdict(lua_State* L) {
  if (lua_isnoneornil(L, 1)) {
    lua_pushliteral(L, "(no message)");
  } else {
    luaL_tolstring(L, 1, nullptr);
  }
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setfield(L, -2, "status");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "message");
  lua_getfield(L, LUA_REGISTRYINDEX, kVerdictKey);
  lua_setmetatable(L, -2);
  return lua_error(L);
}

/// __tostring of a verdict, for scripts that catch one with pcall and print it.
int l_verdict_tostring(lua_State* L) {
  lua_getfield(L, 1, "status");
  lua_pushliteral(L, ": ");
  lua_getfield(L, 1, "message");
  lua_concat(L, 3);
  return 1;
}

int l_ran(lua_State* L) {
  size_t n = 0;
  const char* id = luaL_checklstring(L, 1, &n);
  State* im = state_of(L);
  lua_pushboolean(L, im->steps.find(std::string_view(id, n)) != im->steps.end());
  return 1;
}

/// __index of a steps.<id> view: the fields of its table (upvalue 3), and facts, converted
/// on first access.
int l_step_field(lua_State* L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(3)) != LUA_TNIL) return 1;
  size_t n = 0;
  const char* key = lua_tolstring(L, 2, &n);
  if (lua_type(L, 2) != LUA_TSTRING || std::string_view(key, n) != "facts") return 0;
  auto* entry = static_cast<StepEntry*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (entry->version != static_cast<unsigned>(lua_tointeger(L, lua_upvalueindex(2))) ||
      !(entry->facts.is_object() || entry->facts.is_array())) {
    lua_newtable(L);  // replaced by a retry, or no facts: an empty table, not nil
    make_read_only(L);
  } else {
    push_json(L, entry->facts);
  }
  lua_pushliteral(L, "facts");
  lua_pushvalue(L, -2);
  lua_rawset(L, lua_upvalueindex(3));
  return 1;
}

/// Pushes the read-only view of steps.<id>, building it on first access.
int push_step(lua_State* L, std::string_view id, StepEntry& e) {
  if (e.ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, e.ref);
    return 1;
  }
  lua_createtable(L, 0, 4);
  std::string_view status = to_string(e.status);
  lua_pushlstring(L, status.data(), status.size());
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, e.message.data(), e.message.size());
  lua_setfield(L, -2, "message");
  lua_pushlstring(L, id.data(), id.size());
  lua_setfield(L, -2, "id");
  lua_pushvalue(L, -1);
  make_read_only(L);  // table, view
  lua_getmetatable(L, -1);
  lua_pushlightuserdata(L, &e);
  lua_pushinteger(L, e.version);
  lua_pushvalue(L, -5);
  lua_pushcclosure(L, l_step_field, 3);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  e.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

int l_steps_index(lua_State* L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  size_t n = 0;
  const char* id = lua_tolstring(L, 2, &n);
  State* im = state_of(L);
  auto it = im->steps.find(std::string_view(id, n));
  if (it == im->steps.end()) return luaL_error(L, "step '%s' has not run", id);
  return push_step(L, it->first, it->second);
}

/// pairs(steps): the steps that have a result, in the order the results arrived.
int l_steps_next(lua_State* L) {
  State* im = state_of(L);
  auto i = static_cast<size_t>(lua_tointeger(L, lua_upvalueindex(1)));
  if (i >= im->step_order.size()) return 0;
  lua_pushinteger(L, static_cast<lua_Integer>(i + 1));
  lua_replace(L, lua_upvalueindex(1));
  const std::string& id = *im->step_order[i];
  lua_pushlstring(L, id.data(), id.size());
  push_step(L, id, im->steps.find(id)->second);
  return 2;
}

int l_steps_pairs(lua_State* L) {
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, l_steps_next, 1);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

int l_read_only(lua_State* L) { return luaL_error(L, "steps is read-only"); }

/// Module source for `name`, from the lua/ directories only. Pure C++: no Lua calls here.
std::expected<std::string, std::string> read_module(const State& im, std::string_view name) {
  try {
    std::string rel;
    bool valid = !name.empty();
    bool segment_start = true;
    for (char c : name) {
      if (c == '.') {
        valid = valid && !segment_start;
        segment_start = true;
        rel.push_back('/');
        continue;
      }
      bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      valid = valid && ok && !(segment_start && std::isdigit(static_cast<unsigned char>(c)));
      segment_start = false;
      rel.push_back(c);
    }
    if (!valid || segment_start) {
      return std::unexpected(fmt::format(
          "invalid module name '{}': require loads only modules from lua/ by name (e.g. 'net')",
          name));
    }
    rel += ".lua";
    std::string searched;
    for (const auto& dir : im.lua_dirs) {
      auto path = dir / rel;
      std::error_code ec;
      if (std::filesystem::is_regular_file(path, ec)) {
        auto text = read_file_bounded(path.string(), {.max_bytes = kMaxLuaBytes});
        if (!text)
          return std::unexpected(fmt::format("cannot read module '{}' ({}): {}", name,
                                             path.string(), text.error()));
        return std::move(*text);
      }
      searched += searched.empty() ? "" : ", ";
      searched += path.string();
    }
    return std::unexpected(fmt::format("module '{}' not found (searched {})", name, searched));
  } catch (const std::exception& e) {
    return std::unexpected(fmt::format("cannot load module '{}': {}", name, e.what()));
  }
}

int l_require(lua_State* L) {
  size_t n = 0;
  const char* name = luaL_checklstring(L, 1, &n);
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, kLoadedKey);  // 2
  if (lua_getfield(L, 2, name) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  State* im = state_of(L);
  lua_pushfstring(L, "=%s.lua", name);  // 3: the chunk name
  int status;
  {
    // Objects in this block are gone before anything can raise past them: what could
    // raise inside it runs protected (loading reports a memory error as a status).
    auto src = read_module(*im, std::string_view(name, n));
    if (!src) {
      push_protected(L, src.error());
      status = LUA_ERRFILE;
    } else {
      status = luaL_loadbufferx(L, src->data(), src->size(), lua_tostring(L, 3), "t");
    }
  }
  lua_remove(L, 3);
  if (status != LUA_OK) return lua_error(L);
  // _ENV: a table of its own over the built-ins, never the real globals; a module's
  // globals stay private to it.
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, im->base_ref);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_setupvalue(L, -2, 1);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  // What a module exports is shared by every later expression: read-only, like the
  // libraries (the module's own code keeps its table and may change it).
  if (lua_type(L, -1) == LUA_TTABLE) make_read_only(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

/// __index of the built-ins: `net` is required on first use, other unknown names are nil.
int l_global_index(lua_State* L) {
  size_t n = 0;
  const char* key = lua_tolstring(L, 2, &n);
  if (lua_type(L, 2) != LUA_TSTRING || std::string_view(key, n) != "net") return 0;
  lua_pushcfunction(L, l_require);
  lua_pushliteral(L, "net");
  lua_call(L, 1, 1);
  lua_pushliteral(L, "net");
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

/// Raises the limit that ended the evaluation: the caller's check found it tripped.
[[noreturn]] void raise_tripped(lua_State* L, State* im) {
  lua_pushlstring(L, im->tripped->data(), im->tripped->size());
  lua_error(L);
  std::abort();  // lua_error does not return
}

/// The deadline and Ctrl-C, checked by C functions that loop where the count hook cannot
/// reach (the hook itself runs only between Lua instructions and on calls).
void check_deadline(lua_State* L) {
  State* im = state_of(L);
  if (!im->active) return;
  if (!im->tripped) {
    if (Clock::now() > im->deadline)
      im->tripped = im->deadline_msg;
    else if (im->interrupt && im->interrupt->load(std::memory_order_relaxed))
      im->tripped = &im->interrupt_msg;
  }
  if (im->tripped) raise_tripped(L, im);
}

/// Lua's pattern matcher backtracks in C, where no hook can stop it. Two defences:
/// a pattern with two or more backtracking items must have a worst case within budget
/// (about a second of matching), and an unanchored find/match with one such item on a long
/// string tries each start position as a separate anchored match, with the deadline
/// checked between them (one anchored try of one item is linear in the string). A try
/// costs tens of nanoseconds (a recursive call of Lua's matcher): at 1e9, fuzzing found
/// string.rep('a', 1000):find('a-a-ab') running for over 10 s.
constexpr double kPatternBudget = 4e7;
/// Subjects up to this size are matched by Lua directly: one backtracking item costs at
/// most about n^2 / 2 steps there, a few milliseconds.
constexpr size_t kDirectMatchBytes = 4096;

/// Backtracking items of a Lua pattern: repetitions (`*`, `+`, `-`) and balanced matches
/// (`%bxy`, which scan to the end of the subject when unbalanced).
int backtracking_items(std::string_view p) {
  int k = 0;
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (c == '%') {
      if (i + 1 < p.size() && p[i + 1] == 'b') {
        i += 4;  // %bxy: a balanced match
        ++k;
        continue;
      }
      if (i + 1 < p.size() && p[i + 1] == 'f') {
        i += 2;  // %f[set]: a frontier, the set follows
        continue;
      }
      i += 2;
    } else if (c == '[') {
      ++i;
      if (i < p.size() && p[i] == '^') ++i;
      if (i < p.size() && p[i] == ']') ++i;
      while (i < p.size() && p[i] != ']') i += p[i] == '%' ? 2 : 1;
      ++i;
    } else {
      ++i;
    }
    if (i < p.size() && (p[i] == '*' || p[i] == '+' || p[i] == '-')) {
      ++k;
      ++i;
    }
  }
  return k;
}

/// The byte every match of `p` must start with, when its first item is a plain character
/// that is not optional; 0 otherwise.
char literal_start(std::string_view p) {
  if (p.empty() || std::string_view("^$*+?.([%-]").find(p[0]) != std::string_view::npos) return 0;
  if (p.size() > 1 && (p[1] == '*' || p[1] == '-' || p[1] == '?')) return 0;
  return p[0];
}

enum class PatternFn { kFind, kMatch, kOther };

/// find/match of an unanchored pattern, one anchored try per start position (stack: s, p,
/// init; upvalue 1: the original function). Same results as Lua's own loop.
int match_by_position(lua_State* L, std::string_view subject, std::string_view pattern) {
  auto n = static_cast<lua_Integer>(subject.size());
  lua_Integer init = luaL_optinteger(L, 3, 1);
  if (init < 0) init = std::max<lua_Integer>(n + init + 1, 1);
  if (init == 0) init = 1;
  if (init > n + 1) {
    lua_pushnil(L);
    return 1;
  }
  lua_settop(L, 2);
  lua_pushliteral(L, "^");
  lua_pushvalue(L, 2);
  lua_concat(L, 2);  // 3: the anchored pattern
  char first = literal_start(pattern);
  for (lua_Integer pos = init; pos <= n + 1; ++pos) {
    if (first) {
      const void* hit = pos <= n ? std::memchr(subject.data() + pos - 1, first,
                                               static_cast<size_t>(n - pos + 1))
                                 : nullptr;
      if (!hit) break;
      pos = static_cast<const char*>(hit) - subject.data() + 1;
    }
    if ((pos & 0xff) == 0) check_deadline(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_pushinteger(L, pos);
    lua_call(L, 3, LUA_MULTRET);
    if (lua_gettop(L) > 3 && !lua_isnil(L, 4)) return lua_gettop(L) - 3;
    lua_settop(L, 3);
  }
  lua_pushnil(L);
  return 1;
}

/// Wraps string.find/match/gmatch/gsub (upvalue 1: the original function; upvalue 2:
/// which one, a PatternFn).
int l_guarded_pattern(lua_State* L) {
  size_t n = 0, m = 0;
  const char* subject = lua_tolstring(L, 1, &n);
  const char* pattern = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &m) : nullptr;
  auto fn = static_cast<PatternFn>(lua_tointeger(L, lua_upvalueindex(2)));
  // find(s, p, init, true) matches plainly.
  bool plain = fn == PatternFn::kFind && lua_toboolean(L, 4);
  if (subject && pattern && !plain) {
    std::string_view pat(pattern, m);
    bool anchored = pat.starts_with("^") && fn != PatternFn::kOther;
    int k = backtracking_items(pat);
    if (k >= 2) {
      // k nested repetitions choose k split points: about n^k / k! tries per start position.
      double cost = std::pow(static_cast<double>(n) + 1, k + (anchored ? 0 : 1)) /
                    std::tgamma(k + 1);
      if (cost > kPatternBudget) {
        return luaL_error(L,
                          "pattern '%s' has %d backtracking repetitions: too costly for a %d-byte "
                          "string (anchor it with ^, or split the work)",
                          pattern, k, static_cast<int>(n));
      }
    } else if (k == 1 && !anchored && n > kDirectMatchBytes && fn != PatternFn::kOther) {
      return match_by_position(L, std::string_view(subject, n), pat);
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/// string.rep without its two escapes from every limit: an empty string repeated 2^62
/// times loops in C for years, a long result is refused before it is built.
int l_bounded_rep(lua_State* L) {
  size_t len = 0, sep_len = 0;
  luaL_checklstring(L, 1, &len);
  lua_Integer count = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &sep_len);
  if (count <= 0 || len + sep_len == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  State* im = state_of(L);
  if (static_cast<lua_Unsigned>(count) > im->limits.memory_bytes / (len + sep_len) + 1) {
    if (!im->active) return luaL_error(L, "%s", im->mem_msg.c_str());
    im->tripped = &im->mem_msg;  // the memory limit, as if the allocation had failed
    raise_tripped(L, im);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/// table.move over a bounded range: moving nils allocates nothing, so a range of 2^53
/// elements would loop in C far past every deadline.
int l_bounded_move(lua_State* L) {
  lua_Integer first = luaL_checkinteger(L, 2);
  lua_Integer last = luaL_checkinteger(L, 3);
  State* im = state_of(L);
  auto most = static_cast<lua_Unsigned>(im->limits.memory_bytes / 4);
  if (last >= first && static_cast<lua_Unsigned>(last) - static_cast<lua_Unsigned>(first) >= most) {
    return luaL_error(L, "table.move: a range of more than %I elements", static_cast<lua_Integer>(most));
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/// Replaces lib[name] with `wrapper`, which finds the original as upvalue 1 (the table is
/// on top of the stack).
void wrap_fn(lua_State* L, const char* name, lua_CFunction wrapper) {
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, wrapper, 1);
  lua_setfield(L, -2, name);
}

}  // namespace

namespace {

int push_text(lua_State* L) {
  const auto* text = static_cast<const std::string*>(lua_touserdata(L, 1));
  lua_pushlstring(L, text->data(), text->size());
  return 1;
}

}  // namespace

int push_protected(lua_State* L, const std::string& text) {
  lua_pushcfunction(L, push_text);
  lua_pushlightuserdata(L, const_cast<std::string*>(&text));
  return lua_pcall(L, 1, 1, 0);
}

int template_str(lua_State* L) {
  switch (lua_type(L, 1)) {
    case LUA_TNIL:
      lua_pushliteral(L, "");
      return 1;
    case LUA_TSTRING:
      lua_settop(L, 1);
      return 1;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, 1) == null_sentinel()) {
        lua_pushliteral(L, "");
        return 1;
      }
      break;
    case LUA_TTABLE: {
      if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) break;
      bool ok = false;
      int pushed;
      {
        std::string text;
        try {
          auto v = to_json(L, 1);
          ok = v.has_value();
          text = ok ? v->dump(-1, ' ', false, json::error_handler_t::replace) : v.error();
        } catch (const std::exception& e) {
          text = e.what();
        }
        pushed = push_protected(L, text);
      }  // `text` is freed here, before anything below can raise past it
      if (pushed != LUA_OK || !ok) return lua_error(L);
      return 1;
    }
    default:
      break;
  }
  luaL_tolstring(L, 1, nullptr);
  return 1;
}

namespace {

constexpr const char* kBaseNames[] = {"assert",   "error",    "ipairs",   "pairs",
                                      "select",   "tonumber", "tostring", "type",
                                      "rawequal", "getmetatable", "_VERSION"};
constexpr const char* kLibNames[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME,
                                     LUA_UTF8LIBNAME};

void set_fn(lua_State* L, const char* name, lua_CFunction f) {
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
}

/// rawlen and rawget (upvalue 1) see the table behind a read-only view, as next does.
int l_raw_through_view(lua_State* L) {
  if (push_read_only_target(L, 1)) lua_replace(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/// __newindex of the sandbox: scripts may create globals, but not shadow what netplay
/// provides (a hook assigning `steps = ...` would break every later expression).
int l_assign_global(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t n = 0;
    const char* key = lua_tolstring(L, 2, &n);
    lua_rawgeti(L, LUA_REGISTRYINDEX, state_of(L)->base_ref);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL || std::string_view(key, n) == "net") {
      return luaL_error(L, "cannot assign to '%s': it is provided by netplay", key);
    }
  }
  lua_settop(L, 3);
  lua_rawset(L, 1);
  return 0;
}

}  // namespace

int setup_sandbox(lua_State* L) {
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
  lua_settop(L, 0);

  // string.dump is the one way to produce bytecode; strings share this table as methods.
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  for (auto [fn, kind] : {std::pair("find", PatternFn::kFind), std::pair("match", PatternFn::kMatch),
                           std::pair("gmatch", PatternFn::kOther), std::pair("gsub", PatternFn::kOther)}) {
    lua_getfield(L, -1, fn);
    lua_pushinteger(L, static_cast<lua_Integer>(kind));
    lua_pushcclosure(L, l_guarded_pattern, 2);
    lua_setfield(L, -2, fn);
  }
  wrap_fn(L, "rep", l_bounded_rep);
  lua_getglobal(L, LUA_TABLIBNAME);
  wrap_fn(L, "move", l_bounded_move);
  lua_pop(L, 1);
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");  // getmetatable("") cannot reach the string methods
  lua_settop(L, 0);

  lua_newtable(L);  // 1: base, everything netplay provides
  for (const char* name : kBaseNames) {
    lua_getglobal(L, name);
    lua_setfield(L, 1, name);
  }
  for (const char* name : {"rawlen", "rawget"}) {
    lua_getglobal(L, name);
    lua_pushcclosure(L, l_raw_through_view, 1);
    lua_setfield(L, 1, name);
  }
  set_fn(L, "next", frozen_next);
  // The libraries are read-only views: a hook cannot replace string.upper for later
  // expressions (strings' own methods are the real table, reachable only for reading).
  for (const char* name : kLibNames) {
    lua_getglobal(L, name);
    make_read_only(L);
    lua_setfield(L, 1, name);
  }
  lua_getglobal(L, LUA_TABLIBNAME);
  lua_getfield(L, -1, "unpack");
  lua_setfield(L, 1, "unpack");
  lua_pop(L, 1);
  set_fn(L, "pcall", l_pcall);
  set_fn(L, "xpcall", l_xpcall);
  set_fn(L, "setmetatable", l_setmetatable);
  set_fn(L, "require", l_require);

  lua_createtable(L, 0, 2);  // the verdict metatable
  set_fn(L, "__tostring", l_verdict_tostring);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setfield(L, LUA_REGISTRYINDEX, kVerdictKey);

  lua_createtable(L, 0, 5);  // netplay
  for (const char* verdict : {"fail", "warn", "skip"}) {
    lua_pushstring(L, verdict);
    lua_pushcclosure(L, l_verdict, 1);
    lua_setfield(L, -2, verdict);
  }
  set_fn(L, "ran", l_ran);
  set_fn(L, "raw", shell_raw);
  lua_pushlightuserdata(L, null_sentinel());
  lua_setfield(L, -2, "null");
  make_read_only(L);
  lua_setfield(L, 1, "netplay");

  lua_newtable(L);  // steps: entries appear through __index
  lua_createtable(L, 0, 4);
  set_fn(L, "__index", l_steps_index);
  set_fn(L, "__newindex", l_read_only);
  set_fn(L, "__pairs", l_steps_pairs);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_setfield(L, 1, "steps");
  lua_newtable(L);
  lua_setfield(L, 1, "inputs");
  lua_newtable(L);
  lua_setfield(L, 1, "env");
  lua_createtable(L, 0, 2);
  set_fn(L, "__index", l_global_index);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, 1);

  lua_newtable(L);  // 2: the sandbox, _ENV of every chunk
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "__index");
  set_fn(L, "__newindex", l_assign_global);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, 2);
  lua_pushvalue(L, 2);
  lua_setfield(L, 1, "_G");

  State* im = state_of(L);
  im->sandbox_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  im->base_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, kLoadedKey);
  return 0;
}

}  // namespace netplay::expr_detail
