/// json <-> Lua values. push_json runs inside protected calls (it may raise on memory);
/// to_json runs on the C++ side after a call returned, so it uses only Lua API functions
/// that never raise (no lua_tolstring on numbers, no metamethods).

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>

#include "runner/lua/expr_detail.h"
#include "runner/lua/expr_state.h"

namespace netplay::expr_detail {
namespace {

constexpr int kMaxDepth = 100;
char null_tag;
char frozen_tag;  // key, in a read-only view's metatable, of the table it shows

int l_frozen_write(lua_State* L) {
  return luaL_error(L, "cannot assign to a read-only table (inputs, env, steps, facts and the "
                       "libraries are read-only)");
}

/// The table a read-only view shows (arg 1 is the view).
void push_viewed(lua_State* L) {
  lua_getmetatable(L, 1);
  lua_rawgetp(L, -1, &frozen_tag);
  lua_remove(L, -2);
}

int l_frozen_len(lua_State* L) {
  push_viewed(L);
  lua_pushinteger(L, static_cast<lua_Integer>(lua_rawlen(L, -1)));
  return 1;
}

int l_frozen_pairs(lua_State* L) {
  lua_pushcfunction(L, frozen_next);
  push_viewed(L);
  lua_pushnil(L);
  return 3;
}

void push_json_at(lua_State* L, const json& v, int depth, bool in_array) {
  // (Tables are wrapped in read-only views once built, below.)
  if (depth > kMaxDepth) luaL_error(L, "value nested too deeply (more than %d levels)", kMaxDepth);
  luaL_checkstack(L, 4, "value nested too deeply");
  switch (v.type()) {
    case json::value_t::null:
      if (in_array) {
        lua_pushlightuserdata(L, null_sentinel());
      } else {
        lua_pushnil(L);
      }
      return;
    case json::value_t::boolean:
      lua_pushboolean(L, v.get<bool>());
      return;
    case json::value_t::number_integer:
      lua_pushinteger(L, v.get<std::int64_t>());
      return;
    case json::value_t::number_unsigned: {
      auto u = v.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<lua_Integer>::max())) {
        lua_pushinteger(L, static_cast<lua_Integer>(u));
      } else {
        lua_pushnumber(L, static_cast<lua_Number>(u));
      }
      return;
    }
    case json::value_t::number_float:
      lua_pushnumber(L, v.get<double>());
      return;
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      return;
    }
    case json::value_t::array: {
      const auto& a = v.get_ref<const json::array_t&>();
      lua_createtable(L, static_cast<int>(a.size()), 0);
      lua_Integer i = 1;
      for (const auto& e : a) {
        push_json_at(L, e, depth + 1, true);
        lua_rawseti(L, -2, i++);
      }
      make_read_only(L);
      return;
    }
    case json::value_t::object: {
      const auto& o = v.get_ref<const json::object_t&>();
      lua_createtable(L, 0, static_cast<int>(o.size()));
      for (const auto& [key, val] : o) {
        if (val.is_null()) continue;
        lua_pushlstring(L, key.data(), key.size());
        push_json_at(L, val, depth + 1, false);
        lua_rawset(L, -3);
      }
      make_read_only(L);
      return;
    }
    default:  // binary, discarded: nothing a playbook can produce
      lua_pushnil(L);
      return;
  }
}

json string_at(lua_State* L, int idx) {
  size_t n = 0;
  const char* p = lua_tolstring(L, idx, &n);  // a string already: no conversion, no raise
  std::string_view s(p, n);
  for (unsigned char c : s) {
    if (c >= 0x80) return valid_utf8(s);  // json strings must be valid UTF-8
  }
  return std::string(s);
}

json number_at(lua_State* L, int idx) {
  int is_int = 0;
  lua_Integer i = lua_tointegerx(L, idx, &is_int);
  if (lua_isinteger(L, idx) && is_int) return static_cast<std::int64_t>(i);
  return lua_tonumber(L, idx);
}

/// What a conversion may still spend: a value built from shared references (one 16 MiB
/// string referenced 200,000 times, a table nested 60 deep by two references to the one
/// below) is small in Lua and enormous as JSON. The JSON is held to the state's memory
/// cap and the evaluation's deadline; exceeding either trips the limit (State::tripped).
struct Budget {
  State* im = nullptr;
  size_t bytes_left = 0;
  unsigned until_clock = 0;  // nodes until the next look at the clock

  bool spend(size_t bytes) {
    if (im->tripped) return false;
    if (bytes > bytes_left) {
      im->tripped = &im->convert_msg;
      return false;
    }
    bytes_left -= bytes;
    if (until_clock-- == 0) {
      until_clock = 1024;
      if (im->active && Clock::now() > im->deadline) {
        im->tripped = im->deadline_msg;
        return false;
      }
    }
    return true;
  }
  std::unexpected<std::string> failed() const { return std::unexpected(*im->tripped); }
};

constexpr size_t kNodeBytes = sizeof(json);

std::expected<json, std::string> convert(lua_State* L, int idx, int depth, Budget& b);

std::expected<std::string, std::string> key_text(lua_State* L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      return string_at(L, idx).get<std::string>();
    case LUA_TNUMBER: {
      json n = number_at(L, idx);
      return n.is_number_integer() ? std::to_string(n.get<std::int64_t>())
                                   : fmt::format("{:.14g}", n.get<double>());
    }
    case LUA_TBOOLEAN:
      return std::string(lua_toboolean(L, idx) ? "true" : "false");
    default:
      return std::unexpected(
          fmt::format("cannot use a {} as a key", lua_typename(L, lua_type(L, idx))));
  }
}

std::expected<json, std::string> convert_table(lua_State* L, int idx, int depth, Budget& b) {
  if (depth > kMaxDepth) {
    return std::unexpected(
        fmt::format("value nested too deeply (more than {} levels, a cycle?)", kMaxDepth));
  }
  if (!lua_checkstack(L, 4)) return std::unexpected("value nested too deeply");
  idx = lua_absindex(L, idx);
  // Pass 1: is it a sequence 1..n?
  lua_Integer count = 0, max_key = 0;
  bool sequence = true;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    ++count;
    lua_pop(L, 1);
    if (sequence && lua_isinteger(L, -1)) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k < 1) sequence = false;
      if (k > max_key) max_key = k;
    } else {
      sequence = false;
    }
  }
  if (sequence && max_key == count) {
    json arr = json::array();
    for (lua_Integer i = 1; i <= count; ++i) {
      lua_rawgeti(L, idx, i);
      auto v = convert(L, -1, depth + 1, b);
      lua_pop(L, 1);
      if (!v) return v;
      arr.push_back(std::move(*v));
    }
    return arr;
  }
  std::map<std::string, json> sorted;  // Lua's table order varies from run to run
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    auto key = key_text(L, -2);
    if (key && !b.spend(key->size() + kNodeBytes)) key = b.failed();
    auto v = key ? convert(L, -1, depth + 1, b) : std::unexpected(key.error());
    lua_pop(L, 1);
    if (!v) {
      lua_pop(L, 1);
      return v;
    }
    sorted.emplace(std::move(*key), std::move(*v));
  }
  json obj = json::object();
  for (auto& [k, v] : sorted) obj.emplace(k, std::move(v));
  return obj;
}

std::expected<json, std::string> convert(lua_State* L, int idx, int depth, Budget& b) {
  size_t len = 0;
  if (lua_type(L, idx) == LUA_TSTRING) lua_tolstring(L, idx, &len);
  if (!b.spend(kNodeBytes + len)) return b.failed();
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
      return json(nullptr);
    case LUA_TBOOLEAN:
      return json(lua_toboolean(L, idx) != 0);
    case LUA_TNUMBER:
      return number_at(L, idx);
    case LUA_TSTRING:
      return string_at(L, idx);
    case LUA_TTABLE: {
      if (!lua_checkstack(L, 2)) return std::unexpected("value nested too deeply");
      if (!push_read_only_target(L, idx)) return convert_table(L, idx, depth, b);
      auto v = convert_table(L, -1, depth, b);
      lua_pop(L, 1);
      return v;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == null_sentinel()) return json(nullptr);
      [[fallthrough]];
    default:
      return std::unexpected(
          fmt::format("cannot convert a {} to a value", lua_typename(L, lua_type(L, idx))));
  }
}

}  // namespace

void* null_sentinel() { return &null_tag; }

void make_read_only(lua_State* L) {
  luaL_checkstack(L, 3, "value nested too deeply");
  lua_createtable(L, 0, 0);  // the view
  lua_createtable(L, 0, 7);  // its metatable
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "__index");
  lua_pushvalue(L, -3);
  lua_rawsetp(L, -2, &frozen_tag);
  lua_pushcfunction(L, l_frozen_write);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, l_frozen_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, l_frozen_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_replace(L, -2);
}

bool push_read_only_target(lua_State* L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return false;
  if (lua_rawgetp(L, -1, &frozen_tag) != LUA_TTABLE) {
    lua_pop(L, 2);
    return false;
  }
  lua_remove(L, -2);
  return true;
}

int frozen_next(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (push_read_only_target(L, 1)) lua_replace(L, 1);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

void push_json(lua_State* L, const json& v) { push_json_at(L, v, 0, false); }

std::expected<json, std::string> to_json(lua_State* L, int idx) {
  Budget b{state_of(L), state_of(L)->limits.memory_bytes};
  return convert(L, idx, 0, b);
}

}  // namespace netplay::expr_detail
