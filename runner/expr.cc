/// The Lua engine behind when:, templates and hooks. Safety rests on four things: an
/// allow-listed environment table (no path back to the real globals), text-only loading,
/// an allocator that refuses to grow past the memory cap, and a count hook that enforces
/// the instruction budget and a monotonic deadline. Lua errors are longjmps, so every
/// entry from C++ is a lua_pcall and C functions keep C++ work out of raising paths.

#include "runner/expr.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>

#include "runner/expr_detail.h"

namespace netplay {
namespace {

using expr_detail::push_json;
using expr_detail::to_json;

constexpr int kHookEvery = 1000;  // instructions between two limit checks
constexpr char kExprChunk[] = "=expr";
constexpr char kHookChunk[] = "=hook";
constexpr char kLoadedKey[] = "netplay.loaded";  // registry: modules already required

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct StepEntry {
  Status status = Status::kPass;
  std::string message;
  json facts;
  int ref = LUA_NOREF;      // the Lua table for steps.<id>, built on first access
  unsigned version = 0;     // bumped when the result is replaced (a retry)
};

}  // namespace

/// The engine's state; C functions called from Lua reach it through the state's extra space.
struct ExprEngineState {
  ExprEngine::Limits limits;
  lua_State* L = nullptr;
  size_t used = 0;  // bytes held by the Lua state
  bool active = false;
  const std::string* tripped = nullptr;  // the limit that stopped this evaluation
  long long instructions = 0;
  Clock::time_point deadline;
  std::string time_msg, instr_msg, mem_msg;
  int sandbox_ref = LUA_NOREF;
  std::vector<int> compiled;  // id -> registry ref of the function
  std::unordered_map<std::string, StepEntry, StringHash, std::equal_to<>> steps;
  std::vector<std::filesystem::path> lua_dirs;
  std::string broken;  // the state could not be set up; every call reports this

  void begin() {
    instructions = 0;
    tripped = nullptr;
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(limits.time);
    active = true;
  }
};

using Impl = ExprEngineState;

namespace {

Impl* impl_of(lua_State* L) { return *static_cast<Impl**>(lua_getextraspace(L)); }

void* limited_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  auto* im = static_cast<Impl*>(ud);
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    im->used -= old;
    return nullptr;
  }
  // Lua requires shrinking to succeed; only growth counts against the cap.
  if (nsize > old && im->used - old + nsize > im->limits.memory_bytes) return nullptr;
  void* p = std::realloc(ptr, nsize);
  if (p) im->used = im->used - old + nsize;
  return p;
}

void limit_hook(lua_State* L, lua_Debug*) {
  Impl* im = impl_of(L);
  if (!im->active) return;
  im->instructions += kHookEvery;
  if (!im->tripped) {
    if (im->instructions > im->limits.instructions) {
      im->tripped = &im->instr_msg;
    } else if (Clock::now() > im->deadline) {
      im->tripped = &im->time_msg;
    }
  }
  // Once tripped, every later check raises again, so a script's own pcall cannot keep it alive.
  if (im->tripped) {
    lua_pushlstring(L, im->tripped->data(), im->tripped->size());
    lua_error(L);
  }
}

/// Message handler: keeps tagged verdicts and strings, turns anything else into a string.
int message_handler(lua_State* L) {
  int t = lua_type(L, 1);
  if (t == LUA_TSTRING) return 1;
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "netplay_status");
    bool tagged = lua_rawget(L, 1) == LUA_TSTRING;
    lua_pop(L, 1);
    if (tagged) {
      lua_settop(L, 1);
      return 1;
    }
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
  }
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

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

/// The error at the top of the stack as the text eval() returns.
std::string error_text(Impl& im, int status) {
  lua_State* L = im.L;
  if (im.tripped) return *im.tripped;
  if (status == LUA_ERRMEM) return im.mem_msg;
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushliteral(L, "netplay_status");
    lua_rawget(L, -2);
    lua_pushliteral(L, "message");
    lua_rawget(L, -3);
    std::string out;
    if (lua_type(L, -2) == LUA_TSTRING) {
      out = lua_tostring(L, -2);
      out += ": ";
      if (lua_type(L, -1) == LUA_TSTRING) out += lua_tostring(L, -1);
    }
    lua_pop(L, 2);
    if (!out.empty()) return out;
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n = 0;
    const char* p = lua_tolstring(L, -1, &n);
    return clean_message(std::string_view(p, n));
  }
  return "(error object is not a string)";
}

/// Runs f(ud) as a protected call with limits armed.
std::expected<void, std::string> protect(Impl& im, lua_CFunction f, void* ud) {
  lua_State* L = im.L;
  int base = lua_gettop(L);
  lua_pushcfunction(L, message_handler);
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, ud);
  im.begin();
  int status = lua_pcall(L, 1, 0, base + 1);
  im.active = false;
  std::expected<void, std::string> out;
  if (status != LUA_OK) out = std::unexpected(error_text(im, status));
  lua_settop(L, base);
  return out;
}

// ---- functions visible to scripts ----

int l_pcall(lua_State* L) {
  luaL_checkany(L, 1);
  int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  if (status != LUA_OK && impl_of(L)->tripped) return lua_error(L);
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
  if (status != LUA_OK && impl_of(L)->tripped) return lua_error(L);
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

/// netplay.fail/warn/skip(msg): a tagged error, told apart from a crash by the caller.
int l_verdict(lua_State* L) {
  luaL_tolstring(L, 1, nullptr);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setfield(L, -2, "netplay_status");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "message");
  return lua_error(L);
}

int l_ran(lua_State* L) {
  size_t n = 0;
  const char* id = luaL_checklstring(L, 1, &n);
  Impl* im = impl_of(L);
  lua_pushboolean(L, im->steps.find(std::string_view(id, n)) != im->steps.end());
  return 1;
}

/// __index of a steps.<id> table: converts facts on first access.
int l_step_facts(lua_State* L) {
  size_t n = 0;
  const char* key = lua_tolstring(L, 2, &n);
  if (lua_type(L, 2) != LUA_TSTRING || std::string_view(key, n) != "facts") return 0;
  auto* entry = static_cast<StepEntry*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (entry->version != static_cast<unsigned>(lua_tointeger(L, lua_upvalueindex(2))) ||
      !entry->facts.is_object()) {
    lua_newtable(L);  // replaced by a retry, or no facts: an empty table, not nil
  } else {
    push_json(L, entry->facts);
  }
  lua_pushliteral(L, "facts");
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);
  return 1;
}

int l_steps_index(lua_State* L) {
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  size_t n = 0;
  const char* id = lua_tolstring(L, 2, &n);
  Impl* im = impl_of(L);
  auto it = im->steps.find(std::string_view(id, n));
  if (it == im->steps.end()) return luaL_error(L, "step '%s' has not run", id);
  StepEntry& e = it->second;
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
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "id");
  lua_createtable(L, 0, 1);
  lua_pushlightuserdata(L, &e);
  lua_pushinteger(L, e.version);
  lua_pushcclosure(L, l_step_facts, 2);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  e.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

int l_read_only(lua_State* L) { return luaL_error(L, "steps is read-only"); }

/// Module source for `name`, from the lua/ directories only. Pure C++: no Lua calls here.
std::expected<std::string, std::string> read_module(const Impl& im, std::string_view name) {
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
        std::ifstream in(path, std::ios::binary);
        std::ostringstream text;
        text << in.rdbuf();
        if (!in) return std::unexpected(fmt::format("cannot read module '{}' ({})", name, path.string()));
        return std::move(text).str();
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
  Impl* im = impl_of(L);
  int status;
  {
    // Objects in this block are gone before anything can raise past them, except a
    // memory error while pushing the message (which then only leaks the message).
    auto src = read_module(*im, std::string_view(name, n));
    if (!src) {
      lua_pushlstring(L, src.error().data(), src.error().size());
      status = LUA_ERRFILE;
    } else {
      lua_pushfstring(L, "=%s.lua", name);
      status = luaL_loadbufferx(L, src->data(), src->size(), lua_tostring(L, -1), "t");
      lua_remove(L, -2);
    }
  }
  if (status != LUA_OK) return lua_error(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, im->sandbox_ref);
  lua_setupvalue(L, -2, 1);  // _ENV: the sandbox, never the real globals
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

/// The sandbox's __index: `net` is required on first use, other unknown names are nil.
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

/// tostring() for template parts: nil renders as "", tables as JSON.
int l_template_str(lua_State* L) {
  switch (lua_type(L, 1)) {
    case LUA_TNIL:
      lua_pushliteral(L, "");
      return 1;
    case LUA_TSTRING:
      lua_settop(L, 1);
      return 1;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, 1) == expr_detail::null_sentinel()) {
        lua_pushliteral(L, "");
        return 1;
      }
      break;
    case LUA_TTABLE: {
      if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) break;
      std::string text;
      bool ok = false;
      try {
        auto v = to_json(L, 1);
        ok = v.has_value();
        text = ok ? v->dump(-1, ' ', false, json::error_handler_t::replace) : v.error();
      } catch (const std::exception& e) {
        text = e.what();
      }
      // A memory error here leaks `text`; nothing worse.
      lua_pushlstring(L, text.data(), text.size());
      if (!ok) return lua_error(L);
      return 1;
    }
    default:
      break;
  }
  luaL_tolstring(L, 1, nullptr);
  return 1;
}

constexpr const char* kBaseNames[] = {"assert",  "error",    "ipairs",   "next",   "pairs",
                                      "select",  "tonumber", "tostring", "type",   "rawequal",
                                      "rawlen",  "rawget",   "getmetatable", "_VERSION"};
constexpr const char* kLibNames[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME,
                                     LUA_UTF8LIBNAME};

void set_fn(lua_State* L, const char* name, lua_CFunction f) {
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
}

int l_setup(lua_State* L) {
  Impl* im = impl_of(L);
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
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");  // getmetatable("") cannot reach the string methods
  lua_settop(L, 0);

  lua_newtable(L);  // the sandbox: what every chunk sees as _ENV
  for (const char* name : kBaseNames) {
    lua_getglobal(L, name);
    lua_setfield(L, 1, name);
  }
  for (const char* name : kLibNames) {
    lua_getglobal(L, name);
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
  lua_pushvalue(L, 1);
  lua_setfield(L, 1, "_G");

  lua_createtable(L, 0, 5);  // netplay
  for (const char* verdict : {"fail", "warn", "skip"}) {
    lua_pushstring(L, verdict);
    lua_pushcclosure(L, l_verdict, 1);
    lua_setfield(L, -2, verdict);
  }
  set_fn(L, "ran", l_ran);
  lua_pushlightuserdata(L, expr_detail::null_sentinel());
  lua_setfield(L, -2, "null");
  lua_setfield(L, 1, "netplay");

  lua_newtable(L);  // steps: entries appear through __index
  lua_createtable(L, 0, 3);
  set_fn(L, "__index", l_steps_index);
  set_fn(L, "__newindex", l_read_only);
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
  im->sandbox_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, kLoadedKey);
  return 0;
}

struct CompileArgs {
  std::string_view code;
  const char* chunk = kExprChunk;
  bool factory = false;  // the chunk returns the function to keep (templates)
  int ref = LUA_NOREF;
};

int l_compile(lua_State* L) {
  auto* a = static_cast<CompileArgs*>(lua_touserdata(L, 1));
  Impl* im = impl_of(L);
  if (luaL_loadbufferx(L, a->code.data(), a->code.size(), a->chunk, "t") != LUA_OK) {
    return lua_error(L);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, im->sandbox_ref);
  lua_setupvalue(L, -2, 1);
  if (a->factory) {
    lua_pushcfunction(L, l_template_str);
    lua_call(L, 1, 1);
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
  lua_rawgeti(L, LUA_REGISTRYINDEX, impl_of(L)->sandbox_ref);
  lua_pushstring(L, a->name);
  if (a->value->is_object() || a->value->is_array()) {
    push_json(L, *a->value);
  } else {
    lua_newtable(L);
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
  if (ExprEngine::has_template(src)) {
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

struct ExprEngine::Impl : ExprEngineState {};

ExprEngine::ExprEngine(Limits limits) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.limits = limits;
  im.time_msg = fmt::format("expression exceeded its time limit ({})", format_duration(limits.time));
  im.instr_msg =
      fmt::format("expression exceeded its instruction limit ({} instructions)", limits.instructions);
  im.mem_msg = fmt::format("expression ran out of memory (limit {})", format_bytes(limits.memory_bytes));
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
  *static_cast<Impl**>(lua_getextraspace(im.L)) = &im;
  lua_sethook(im.L, limit_hook, LUA_MASKCOUNT, kHookEvery);
  if (auto ok = protect(im, l_setup, nullptr); !ok) im.broken = "cannot set up Lua: " + ok.error();
}

ExprEngine::~ExprEngine() {
  if (impl_->L) lua_close(impl_->L);
}

namespace {

std::expected<int, std::string> compile(Impl& im, CompileArgs args) {
  if (!im.broken.empty()) return std::unexpected(im.broken);
  if (auto ok = protect(im, l_compile, &args); !ok) return std::unexpected(ok.error());
  im.compiled.push_back(args.ref);
  return static_cast<int>(im.compiled.size() - 1);
}

bool blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

/// Calls compiled function `id`; on success its first result is on top of the stack
/// above `base`.
std::expected<int, std::string> call(Impl& im, int id) {
  if (!im.broken.empty()) return std::unexpected(im.broken);
  if (id < 0 || static_cast<size_t>(id) >= im.compiled.size()) {
    return std::unexpected(fmt::format("unknown expression id {}", id));
  }
  lua_State* L = im.L;
  int base = lua_gettop(L);
  lua_pushcfunction(L, message_handler);
  lua_rawgeti(L, LUA_REGISTRYINDEX, im.compiled[static_cast<size_t>(id)]);
  im.begin();
  int status = lua_pcall(L, 0, 1, base + 1);
  im.active = false;
  if (status != LUA_OK) {
    std::string err = error_text(im, status);
    lua_settop(L, base);
    return std::unexpected(std::move(err));
  }
  return base;
}

}  // namespace

std::expected<int, std::string> ExprEngine::compile_expr(std::string_view src) {
  if (blank(src)) return std::unexpected("empty expression");
  // The newline keeps a trailing "-- comment" from swallowing the parenthesis.
  return compile(*impl_, {fmt::format("return ({}\n)", src), kExprChunk});
}

std::expected<int, std::string> ExprEngine::compile_template(std::string_view src) {
  auto parts = expr_detail::split_template(src);
  if (!parts) return std::unexpected(parts.error());
  if (parts->size() == 1 && (*parts)[0].is_expr) {
    return compile(*impl_, {fmt::format("return ({}\n)", (*parts)[0].text), kExprChunk});
  }
  if (parts->empty()) return compile(*impl_, {"return \"\"", kExprChunk});
  std::string body;
  for (const auto& p : *parts) {
    if (!body.empty()) body += " .. ";
    body += p.is_expr ? fmt::format("str(({}\n))", p.text) : expr_detail::lua_quote(p.text);
  }
  return compile(*impl_,
                 {fmt::format("local str = ...\nreturn function() return {} end", body), kExprChunk, true});
}

std::expected<int, std::string> ExprEngine::compile_chunk(std::string_view src) {
  return compile(*impl_, {src, kHookChunk});
}

bool ExprEngine::has_template(std::string_view s) { return s.find("{{") != std::string_view::npos; }

std::vector<std::string> ExprEngine::step_refs(std::string_view src) { return refs(src, "steps"); }

std::vector<std::string> ExprEngine::input_refs(std::string_view src) { return refs(src, "inputs"); }

void ExprEngine::set_inputs(const json& inputs) {
  Impl& im = *impl_;
  if (!im.broken.empty()) return;
  SetArgs args{"inputs", &inputs};
  if (auto ok = protect(im, l_set_global, &args); !ok) im.broken = "cannot load inputs: " + ok.error();
}

void ExprEngine::set_env(const json& env) {
  Impl& im = *impl_;
  if (!im.broken.empty()) return;
  SetArgs args{"env", &env};
  if (auto ok = protect(im, l_set_global, &args); !ok) im.broken = "cannot load env: " + ok.error();
}

void ExprEngine::set_step_result(const std::string& id, Status status, const std::string& message,
                                 const json& facts) {
  Impl& im = *impl_;
  StepEntry& e = im.steps[id];
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

std::expected<json, std::string> ExprEngine::eval(int id) {
  auto base = call(*impl_, id);
  if (!base) return std::unexpected(base.error());
  auto v = to_json(impl_->L, -1);
  lua_settop(impl_->L, *base);
  return v;
}

std::expected<bool, std::string> ExprEngine::eval_bool(int id) {
  auto base = call(*impl_, id);
  if (!base) return std::unexpected(base.error());
  bool v = lua_toboolean(impl_->L, -1) != 0;
  lua_settop(impl_->L, *base);
  return v;
}

}  // namespace netplay
