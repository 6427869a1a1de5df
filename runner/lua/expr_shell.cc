/// Templates of a shell command line (ExprKind::kShellTemplate): every `{{ }}` value is
/// quoted for POSIX sh, so it reaches the command as one word of literal text whatever it
/// holds ("$(touch x)", "; rm", quotes, newlines). netplay.raw(v) is the one way out: a
/// playbook author who builds shell syntax on purpose marks the value, which is then
/// pasted as it is.

#include <cctype>
#include <cstring>
#include <string>
#include <string_view>

#include "runner/lua/expr_detail.h"
#include "runner/lua/expr_state.h"

namespace netplay::expr_detail {
namespace {

constexpr char kRawKey[] = "netplay.raw";  // registry: the metatable of netplay.raw values

/// __tostring of a raw value: its text, so it renders as such in any other template.
int raw_tostring(lua_State* L) {
  lua_rawgeti(L, 1, 1);
  return 1;
}

/// Pushes the metatable of raw values, creating it on first use.
void push_raw_metatable(lua_State* L) {
  if (luaL_getmetatable(L, kRawKey) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, raw_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, kRawKey);
}

/// Characters no POSIX shell reads specially anywhere in a word. Not `=` (a first word
/// `A=b` is an assignment) nor `~` (tilde expansion).
bool plain_word(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c == '\0' || !(std::isalnum(c) || std::strchr("_-./:@%+,", c) != nullptr)) return false;
  }
  return true;
}

}  // namespace

int shell_word(lua_State* L) {
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
    push_raw_metatable(L);
    bool raw = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (raw) {
      lua_rawgeti(L, 1, 1);
      return 1;
    }
  }
  template_str(L);  // the value's text, as in any template: pushed on top
  size_t n = 0;
  const char* p = lua_tolstring(L, -1, &n);
  std::string_view text(p, n);
  if (text.find('\0') != std::string_view::npos)
    return luaL_error(L, "a shell command cannot hold a NUL byte");
  if (plain_word(text)) return 1;
  // Built in a Lua buffer: a memory error (a longjmp) must find no C++ object to leak.
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '\'');
  for (char c : text) {
    if (c == '\'')
      luaL_addstring(&b, "'\\''");
    else
      luaL_addchar(&b, c);
  }
  luaL_addchar(&b, '\'');
  luaL_pushresult(&b);
  return 1;
}

int shell_raw(lua_State* L) {
  lua_settop(L, 1);
  template_str(L);  // pushes the text
  lua_createtable(L, 1, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  push_raw_metatable(L);
  lua_setmetatable(L, -2);
  return 1;
}

}  // namespace netplay::expr_detail
