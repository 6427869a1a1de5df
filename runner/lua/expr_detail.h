#pragma once
/// Internals of the expression engine shared by its source files: conversion between
/// json and Lua values, and the text scanners (templates, references, quoting).

#include <expected>
#include <lua.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "runner/base/types.h"

namespace netplay::expr_detail {

/// Stands for a JSON null inside arrays, where a Lua nil would end the sequence.
void* null_sentinel();

/// Pushes `v` as a Lua value. Raises a Lua error (memory, nesting) so it must run inside
/// a protected call. Nulls in objects are left out; nulls in arrays become the sentinel.
void push_json(lua_State* L, const json& v);

/// Replaces the table on top of the stack with a read-only view of it: reads, `#`,
/// pairs, ipairs and next see the table, writes raise. Scripts cannot reach the table
/// behind it, so a hook cannot change what later expressions see.
void make_read_only(lua_State* L);
/// Pushes the table behind the read-only view at `idx` and returns true; false (nothing
/// pushed) when it is not a view. Never raises.
bool push_read_only_target(lua_State* L, int idx);
/// next() that walks a read-only view's table (the sandbox's `next`).
int frozen_next(lua_State* L);

/// Converts the Lua value at `idx` without raising: a table with keys 1..n is an array
/// (an empty table too), any other table an object with sorted keys.
std::expected<json, std::string> to_json(lua_State* L, int idx);

struct TemplatePart {
  bool is_expr = false;
  std::string_view text;  // literal text, or the Lua expression between the braces
};
/// Splits "a {{ x }} b" into literal and expression parts. Braces and strings inside an
/// expression are respected, so "{{ {1, {2}} }}" is one expression.
std::expected<std::vector<TemplatePart>, std::string> split_template(std::string_view src);

/// A Lua string literal for `s` that any byte sequence survives.
std::string lua_quote(std::string_view s);

/// Names X referenced as ROOT.X, ROOT["X"] or ROOT['X'], outside strings and comments,
/// unique and in order of first appearance.
std::vector<std::string> scan_refs(std::string_view src, std::string_view root);

}  // namespace netplay::expr_detail
