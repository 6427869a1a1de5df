#include "runner/lua/expr.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace netplay {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

/// An evaluation error as text: the message, after "verdict <status>: " for a verdict.
std::string text(const ExprError& err) {
  if (err.is_verdict())
    return "verdict " + std::string(to_string(err.verdict)) + ": " + err.message;
  return err.message;
}

std::expected<json, std::string> eval_text(ExprEngine& e, int id) {
  auto v = e.eval(id);
  if (!v) return std::unexpected(text(v.error()));
  return std::move(*v);
}

/// Compiles and evaluates; failures in either phase come back as the error string.
std::expected<json, std::string> run(ExprEngine& e, std::string_view src) {
  auto id = e.compile_expr(src);
  if (!id) return std::unexpected("compile: " + id.error());
  return eval_text(e, *id);
}

std::expected<json, std::string> run_template(ExprEngine& e, std::string_view src) {
  auto id = e.compile_template(src);
  if (!id) return std::unexpected("compile: " + id.error());
  return eval_text(e, *id);
}

std::expected<json, std::string> run_chunk(ExprEngine& e, std::string_view src) {
  auto id = e.compile_chunk(src);
  if (!id) return std::unexpected("compile: " + id.error());
  return eval_text(e, *id);
}

/// The typed error of a chunk (kind, verdict, message).
ExprError chunk_error(ExprEngine& e, std::string_view src) {
  auto id = e.compile_chunk(src);
  if (!id) return {ExprError::Kind::kError, Status::kError, "compile: " + id.error()};
  auto v = e.eval(*id);
  if (v) return {ExprError::Kind::kError, Status::kError, "no error, got " + v->dump()};
  return v.error();
}

std::string error_of(const std::expected<json, std::string>& r) {
  return r ? "no error, got " + r->dump() : r.error();
}

TEST(Expr, EvaluatesAgainstInputsKeepingTypes) {
  ExprEngine e;
  e.set_inputs(json{{"a", 1}, {"rate", 0.5}, {"name", "silk"}, {"on", true}});
  EXPECT_EQ(run(e, "inputs.a == 1"), json(true));
  auto sum = run(e, "inputs.a + 41");
  ASSERT_TRUE(sum) << sum.error();
  EXPECT_TRUE(sum->is_number_integer());
  EXPECT_EQ(*sum, 42);
  auto half = run(e, "inputs.rate");
  ASSERT_TRUE(half);
  EXPECT_TRUE(half->is_number_float());
  EXPECT_EQ(run(e, "inputs.name .. '-vtep'"), json("silk-vtep"));
  EXPECT_EQ(run(e, "inputs.missing"), json(nullptr));
  EXPECT_EQ(run(e, "{1, 2, {a = 3}}"), json::parse(R"([1, 2, {"a": 3}])"));
  EXPECT_EQ(run(e, "{b = 1, a = 2}").value().dump(), R"({"a":2,"b":1})");  // sorted keys
  EXPECT_EQ(run(e, "{}"), json::array());
}

TEST(Expr, CompileOnceEvaluateMany) {
  ExprEngine e;
  auto id = e.compile_expr("inputs.n * 2");
  ASSERT_TRUE(id);
  for (int n : {1, 5, 21}) {
    e.set_inputs(json{{"n", n}});
    EXPECT_EQ(e.eval(*id), json(n * 2));
  }
}

TEST(Expr, EvalBoolUsesLuaTruthiness) {
  ExprEngine e;
  for (auto [src, want] : {std::pair{"0", true},
                           {"''", true},
                           {"nil", false},
                           {"false", false},
                           {"1 > 2", false},
                           {"{}", true}}) {
    auto id = e.compile_expr(src);
    ASSERT_TRUE(id) << src;
    auto b = e.eval_bool(*id);
    ASSERT_TRUE(b) << src << ": " << b.error().message;
    EXPECT_EQ(*b, want) << src;
  }
}

TEST(Expr, ArraysKeepNullsAndPositions) {
  ExprEngine e;
  e.set_inputs(json::parse(R"({"l": [1, null, 3], "o": {"x": null, "y": 2}})"));
  EXPECT_EQ(run(e, "#inputs.l"), json(3));
  EXPECT_EQ(run(e, "inputs.l[2] == netplay.null"), json(true));
  EXPECT_EQ(run(e, "inputs.l"), json::parse("[1, null, 3]"));
  EXPECT_EQ(run(e, "inputs.o.x == nil and inputs.o.y == 2"), json(true));
  auto big = run(e, "9007199254740993");  // 2^53 + 1: must not pass through a double
  ASSERT_TRUE(big);
  EXPECT_EQ(big->get<long long>(), 9007199254740993LL);
}

TEST(Expr, ValuesThatCannotBeConverted) {
  ExprEngine e;
  EXPECT_EQ(error_of(run(e, "print or function() end")), "cannot convert a function to a value");
  EXPECT_THAT(error_of(run_chunk(e, "local t = {} t.t = t return t")),
              HasSubstr("nested too deeply"));
  auto bad = run(e, "'\\255ok'");  // invalid UTF-8 must not poison later json dumps
  ASSERT_TRUE(bad);
  EXPECT_NO_THROW((void)bad->dump());
}

TEST(Expr, SingleTemplateKeepsType) {
  ExprEngine e;
  e.set_inputs(json{{"count", 3}, {"on", false}, {"ports", {4789, 8472}}});
  auto n = run_template(e, "{{ inputs.count }}");
  ASSERT_TRUE(n) << n.error();
  EXPECT_TRUE(n->is_number_integer());
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(run_template(e, "{{inputs.on}}"), json(false));
  EXPECT_EQ(run_template(e, "{{ inputs.ports }}"), json::parse("[4789, 8472]"));
  EXPECT_EQ(run_template(e, "{{ 1.5 }}"), json(1.5));
}

TEST(Expr, MixedTemplateIsAString) {
  ExprEngine e;
  e.set_inputs(json{{"port", 4789}, {"ok", true}, {"l", {1, 2}}});
  EXPECT_EQ(run_template(e, "UDP {{ inputs.port }}/udp"), json("UDP 4789/udp"));
  EXPECT_EQ(run_template(e, "{{ inputs.port }} {{ inputs.ok }}"), json("4789 true"));
  EXPECT_EQ(run_template(e, "[{{ inputs.nothing }}]"), json("[]"));  // nil renders empty
  EXPECT_EQ(run_template(e, "l={{ inputs.l }}"), json("l=[1,2]"));   // tables as JSON
  EXPECT_EQ(run_template(e, "no braces here"), json("no braces here"));
  EXPECT_EQ(run_template(e, ""), json(""));
  // Literal text survives quoting exactly, whatever it holds.
  std::string nasty = "q\"uote\\ ]] ]=] \n\t\x01 1 \\049{{ 1 }}2";
  EXPECT_EQ(run_template(e, nasty), json("q\"uote\\ ]] ]=] \n\t\x01 1 \\04912"));
}

std::expected<json, std::string> run_shell(ExprEngine& e, std::string_view src) {
  auto id = e.compile_shell_template(src);
  if (!id) return std::unexpected("compile: " + id.error());
  return eval_text(e, *id);
}

TEST(Expr, ShellTemplateQuotesEveryValueAsOneWord) {
  ExprEngine e;
  e.set_inputs(json{{"name", "$(touch x)"},
                    {"quote", "it's; rm -rf ~"},
                    {"ip", "10.0.0.1"},
                    {"port", 4789},
                    {"empty", ""},
                    {"l", {1, 2}},
                    {"assign", "PATH=/tmp"}});
  EXPECT_EQ(run_shell(e, "echo {{ inputs.name }}"), json("echo '$(touch x)'"));
  EXPECT_EQ(run_shell(e, "echo {{ inputs.quote }}!"), json(R"(echo 'it'\''s; rm -rf ~'!)"));
  // Plain values stay readable; what a shell would read specially is quoted.
  EXPECT_EQ(run_shell(e, "ping -c 1 {{ inputs.ip }} -p {{ inputs.port }}"),
            json("ping -c 1 10.0.0.1 -p 4789"));
  EXPECT_EQ(run_shell(e, "x {{ inputs.empty }} {{ inputs.nothing }} y"), json("x '' '' y"));
  EXPECT_EQ(run_shell(e, "{{ inputs.assign }}"), json("'PATH=/tmp'"));
  EXPECT_EQ(run_shell(e, "echo {{ inputs.l }}"), json("echo '[1,2]'"));
  // A whole-string template is a string too, and still one word.
  EXPECT_EQ(run_shell(e, "{{ inputs.name }}"), json("'$(touch x)'"));
  EXPECT_EQ(run_shell(e, "{{ inputs.port }}"), json("4789"));
  EXPECT_EQ(run_shell(e, "no templates | here"), json("no templates | here"));
  EXPECT_EQ(run_shell(e, ""), json(""));
  EXPECT_EQ(error_of(run_shell(e, "echo {{ '\\0' }}")), "a shell command cannot hold a NUL byte");
}

TEST(Expr, NetplayRawOptsOutOfShellQuoting) {
  ExprEngine e;
  e.set_inputs(json{{"filter", "| grep -c ."}, {"n", 3}});
  EXPECT_EQ(run_shell(e, "ip route {{ netplay.raw(inputs.filter) }}"),
            json("ip route | grep -c ."));
  EXPECT_EQ(run_shell(e, "{{ netplay.raw(inputs.n) }}{{ netplay.raw(nil) }}"), json("3"));
  // Elsewhere a raw value renders as its text.
  EXPECT_EQ(run_template(e, "f={{ netplay.raw(inputs.filter) }}"), json("f=| grep -c ."));
  // A lookalike table is quoted like any other value; the marker cannot be forged.
  EXPECT_EQ(run_shell(e, "{{ setmetatable({'$(id)'}, {__tostring = function(t) return t[1] end}) }}"),
            json("'$(id)'"));
  EXPECT_EQ(run(e, "getmetatable(netplay.raw('x'))"), json(false));
}

TEST(Expr, TemplateBracesAndStringsInsideExpressions) {
  ExprEngine e;
  EXPECT_EQ(run_template(e, "{{ #{1, {2}} }}"), json(2));
  EXPECT_EQ(run_template(e, "x{{ 'a}}b' }}y"), json("xa}}by"));
  EXPECT_EQ(run_template(e, "{{{a = 1}}}"), json::parse(R"({"a": 1})"));
}

TEST(Expr, TemplateErrors) {
  ExprEngine e;
  EXPECT_EQ(e.compile_template("port {{ inputs.port").error(), "unterminated '{{'");
  EXPECT_EQ(e.compile_template("a {{ }} b").error(), "empty '{{ }}'");
  auto bad = e.compile_template("x {{ a = }} y");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error(), Not(HasSubstr("expr:")));
  EXPECT_TRUE(has_template("a {{ b }}"));
  EXPECT_FALSE(has_template("a { b }"));
}

TEST(Expr, SyntaxErrorsReadWithoutChunkNames) {
  ExprEngine e;
  auto eq = e.compile_expr("a ==");
  ASSERT_FALSE(eq);
  EXPECT_EQ(eq.error(), "unexpected symbol near ')'");
  auto assign = e.compile_expr("steps.x = 1");
  ASSERT_FALSE(assign);
  EXPECT_THAT(assign.error(), HasSubstr("near '='"));
  EXPECT_THAT(assign.error(), Not(HasSubstr("expr")));
  EXPECT_EQ(e.compile_expr("  ").error(), "empty expression");
  EXPECT_TRUE(e.compile_expr("inputs.x -- trailing comment"));
  auto hook = e.compile_chunk("local x = 1\nif then end");
  ASSERT_FALSE(hook);
  EXPECT_EQ(hook.error(), "line 2: unexpected symbol near 'then'");
  EXPECT_EQ(error_of(run(e, "nil + 1")), "attempt to perform arithmetic on a nil value");
  EXPECT_EQ(error_of(run_chunk(e, "\n\nerror('boom')")), "line 3: boom");
  EXPECT_EQ(error_of(eval_text(e, 9999)), "unknown expression id 9999");
}

TEST(Expr, ChunksReturnTheirFirstValue) {
  ExprEngine e;
  EXPECT_EQ(run_chunk(e, "local x = 2\nreturn x * 3, 'ignored'"), json(6));
  EXPECT_EQ(run_chunk(e, "local x = 2"), json(nullptr));
  EXPECT_EQ(run_chunk(e, "return false"), json(false));
}

TEST(Expr, StepRefsFindAllForms) {
  EXPECT_EQ(
      ExprEngine::step_refs(
          R"(steps.a.status == 'pass' and steps["b"].facts.x > 0 or steps [ 'c' ] or steps.a)"),
      (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ExprEngine::step_refs("steps . spaced"), (std::vector<std::string>{"spaced"}));
  EXPECT_EQ(ExprEngine::step_refs("'..'..steps.cat"), (std::vector<std::string>{"cat"}));
}

TEST(Expr, StepRefsSkipStringsCommentsAndFields) {
  EXPECT_TRUE(ExprEngine::step_refs("'steps.a' .. \"steps.b\" .. [[steps.c]] -- steps.d").empty());
  EXPECT_TRUE(ExprEngine::step_refs("--[==[ steps.e ]==] x.steps.f  mysteps.g").empty());
  EXPECT_EQ(ExprEngine::step_refs("--[[ steps.e ]] steps.real"),
            (std::vector<std::string>{"real"}));
  // In a template only the expressions count; the apostrophe in the text is not Lua.
  EXPECT_EQ(ExprEngine::step_refs("it's {{ steps.vtep.facts.dstport }}, see steps.other"),
            (std::vector<std::string>{"vtep"}));
}

TEST(Expr, InputRefs) {
  EXPECT_EQ(ExprEngine::input_refs("inputs.port + inputs.count + inputs.port + steps.x.y"),
            (std::vector<std::string>{"port", "count"}));
  EXPECT_EQ(ExprEngine::input_refs("ping {{ inputs.remote_underlay }} in {{ inputs.cell_netns }}"),
            (std::vector<std::string>{"remote_underlay", "cell_netns"}));
}

TEST(Expr, StepsExposeStatusMessageAndFacts) {
  ExprEngine e;
  e.set_step_result("vtep", Status::kPass, "VTEP up", json{{"dstport", 4789}, {"gbp", true}});
  e.set_step_result("overlay", Status::kFail, "100% loss", json{{"loss_pct", 100}});
  EXPECT_EQ(run(e, "steps.vtep.status"), json("pass"));
  EXPECT_EQ(run(e, "steps.overlay.status == 'fail' and steps.vtep.status == 'pass'"), json(true));
  EXPECT_EQ(run(e, "steps.overlay.message"), json("100% loss"));
  EXPECT_EQ(run(e, "steps.vtep.facts.dstport"), json(4789));
  EXPECT_EQ(run(e, "steps['vtep'].facts.gbp"), json(true));
  EXPECT_EQ(run(e, "steps.overlay.facts.missing"), json(nullptr));
  EXPECT_EQ(error_of(run(e, "steps.nope.status")), "step 'nope' has not run");
  EXPECT_EQ(run(e, "netplay.ran('vtep') and not netplay.ran('nope')"), json(true));
  EXPECT_THAT(error_of(run_chunk(e, "steps.vtep = 1")), HasSubstr("read-only"));
}

TEST(Expr, ReplacedStepResultIsSeen) {
  ExprEngine e;
  e.set_step_result("s", Status::kFail, "first", json{{"n", 1}});
  ASSERT_EQ(run(e, "steps.s.facts.n"), json(1));
  e.set_step_result("s", Status::kPass, "retry", json{{"n", 2}});
  EXPECT_EQ(run(e, "steps.s.status .. steps.s.message .. steps.s.facts.n"), json("passretry2"));
}

TEST(Expr, FactsAreConvertedOnlyWhenUsed) {
  ExprEngine e;
  // Facts too deep to convert: status must still be readable, facts must fail.
  json deep = json::object();
  json* cur = &deep;
  for (int i = 0; i < 150; ++i) cur = &((*cur)["x"] = json::object());
  e.set_step_result("deep", Status::kWarn, "w", json{{"tree", deep}});
  EXPECT_EQ(run(e, "steps.deep.status"), json("warn"));
  EXPECT_THAT(error_of(run(e, "steps.deep.facts.tree")), HasSubstr("nested too deeply"));
}

TEST(Expr, PairsOverStepsFollowsArrivalOrder) {
  ExprEngine e;
  e.set_step_result("b", Status::kPass, "", json::object());
  e.set_step_result("a", Status::kFail, "", json::object());
  e.set_step_result("b", Status::kWarn, "", json::object());  // a retry keeps its place
  EXPECT_EQ(
      run_chunk(
          e,
          "local out = {} for id, s in pairs(steps) do out[#out + 1] = id .. '=' .. s.status end "
          "return table.concat(out, ',')"),
      json("b=warn,a=fail"));
}

TEST(Expr, ScriptsCannotReplaceWhatNetplayProvides) {
  ExprEngine e;
  e.set_inputs(json{{"a", 1}});
  for (const char* src :
       {"inputs = {}", "steps = nil", "netplay = 1", "string = nil", "net = 1", "_G.env = 2"}) {
    EXPECT_THAT(error_of(run_chunk(e, src)), HasSubstr("provided by netplay")) << src;
  }
  EXPECT_EQ(run(e, "inputs.a"), json(1));
  // Globals of a hook are visible to later expressions of the same run.
  ASSERT_TRUE(run_chunk(e, "seen = (seen or 0) + 1"));
  EXPECT_EQ(run(e, "seen"), json(1));
}

TEST(Expr, EnvHoldsOnlyWhatWasGiven) {
  ExprEngine e;
  EXPECT_EQ(run(e, "env.HOME"), json(nullptr));
  e.set_env(json{{"CF_CELL", "cell-7"}});
  EXPECT_EQ(run(e, "env.CF_CELL"), json("cell-7"));
  EXPECT_EQ(run(e, "env.PATH"), json(nullptr));
}

TEST(Expr, SandboxHasNoEscapeHatches) {
  ExprEngine e;
  for (const char* name : {"io", "os", "load", "loadfile", "dofile", "loadstring", "debug",
                           "package", "collectgarbage", "print", "coroutine", "string.dump",
                           "('').dump", "_G.io", "_G.os", "rawset"}) {
    EXPECT_EQ(run(e, name), json(nullptr)) << name;
  }
  EXPECT_EQ(run(e, "getmetatable('')"), json(false));
  EXPECT_EQ(run(e, "getmetatable(steps)"), json(false));
  EXPECT_THAT(error_of(run(e, "os.execute('true')")), HasSubstr("attempt to index a nil value"));
  EXPECT_THAT(error_of(run(e, "io.open('/etc/passwd')")),
              HasSubstr("attempt to index a nil value"));
  EXPECT_THAT(error_of(run_chunk(e, "setmetatable({}, {__gc = function() end})")),
              HasSubstr("__gc metamethods are not allowed"));
  // Globals a hook sets stay in the sandbox; the real globals are never reachable.
  EXPECT_EQ(run_chunk(e, "_G.x = 1 return x"), json(1));
}

TEST(Expr, RequireLoadsOnlyFromTheLibrary) {
  ExprEngine e;
  EXPECT_EQ(run(e, "require('net') == net"), json(true));
  EXPECT_THAT(error_of(run(e, "require('../../etc/passwd')")), HasSubstr("invalid module name"));
  EXPECT_THAT(error_of(run(e, "require('/etc/passwd')")), HasSubstr("invalid module name"));
  EXPECT_THAT(error_of(run(e, "require('os')")), HasSubstr("module 'os' not found"));
  EXPECT_THAT(error_of(run(e, "require('net..x')")), HasSubstr("invalid module name"));
}

TEST(Expr, LuaPathEnvironmentVariableAddsLibraryDirectories) {
  auto dir =
      std::filesystem::temp_directory_path() / ("netplay-expr-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "site");
  std::ofstream(dir / "site" / "extra.lua") << "helper = 1\nreturn {answer = 42, h = helper}\n";
  std::ofstream(dir / "binary.lua") << "\x1bLua\x54";
  ::setenv("NETPLAY_LUA_PATH", dir.c_str(), 1);
  ExprEngine e;
  ::unsetenv("NETPLAY_LUA_PATH");
  EXPECT_EQ(run(e, "require('site.extra').answer"), json(42));
  EXPECT_EQ(run(e, "require('site.extra').h"), json(1));
  EXPECT_EQ(run(e, "helper"), json(nullptr));  // a module's globals stay its own
  EXPECT_THAT(error_of(run(e, "require('binary')")), HasSubstr("binary chunk"));
  EXPECT_EQ(run(e, "net.silk_host_iface('10.0.0.1')"), json("s-010000000001"));  // source lua/ too
  std::filesystem::remove_all(dir);
}

TEST(Expr, BytecodeIsRejected) {
  ExprEngine e;
  auto chunk = e.compile_chunk(std::string("\x1bLua\x54\x00\x19\x93\r\n\x1a\n", 12));
  ASSERT_FALSE(chunk);
  EXPECT_THAT(chunk.error(), HasSubstr("binary chunk"));
}

TEST(Expr, EndlessLoopHitsTheDeadline) {
  ExprEngine e(ExprEngine::Limits{.instructions = 1LL << 60, .time = Millis(200)});
  for (const char* src :
       {"while true do end", "while true do pcall(function() while true do end end) end",
        "local f f = function() return pcall(f) end while true do f() end",
        // Few instructions, much work inside C functions:
        "while true do local s = string.rep('x', 1e7) end",
        "local t = {} for i = 1, 2e5 do t[i] = -i end while true do table.sort(t) end"}) {
    auto id = e.compile_chunk(src);
    ASSERT_TRUE(id);
    // Without the deadline these never end; the message names the configured limit.
    EXPECT_EQ(error_of(eval_text(e, *id)), "expression exceeded its time limit (200ms)") << src;
  }
  EXPECT_EQ(run(e, "1 + 1"), json(2));  // the engine is usable afterwards
}

TEST(Expr, CatastrophicPatternsAreRefusedUpFront) {
  // Refused before running: the words are the pattern checker's, not the deadline's.
  ExprEngine e(ExprEngine::Limits{.time = Millis(200)});
  EXPECT_THAT(error_of(run(e, "string.rep('a', 2000):find('a-a-a-b')")),
              HasSubstr("backtracking repetitions: too costly for a 2000-byte string"));
  EXPECT_THAT(error_of(run(e, "('a'):rep(5000):match('.-.-.-x')")), HasSubstr("too costly"));
  EXPECT_THAT(error_of(run_chunk(e, "for _ in ('a'):rep(5000):gmatch('a*a*a*b') do end")),
              HasSubstr("too costly"));
  // Found by fuzz_expr: two repetitions, unanchored, 1000 bytes ran for over 10 s.
  EXPECT_THAT(error_of(run(e, "string.rep('a', 1000):find('a-a-a\xd3\x9d')")),
              HasSubstr("too costly for a 1000-byte string"));
  // Ordinary patterns, plain finds and short subjects are untouched.
  EXPECT_EQ(run(e, "('  silk-vtep  '):match('^%s*(.-)%s*$')"), json("silk-vtep"));
  EXPECT_EQ(run(e, "string.rep('a', 2000):find('a-a-a-b', 1, true)"), json(nullptr));
  EXPECT_EQ(run(e, "select(2, ('a,b,c'):gsub('[^,]+', '%0%0'))"), json(3));
  EXPECT_EQ(run(e, "('4789 8472'):match('(%d+)%s+(%d+)')"), json("4789"));
}

TEST(Expr, InstructionBudget) {
  ExprEngine e(ExprEngine::Limits{.instructions = 100'000});
  EXPECT_THAT(error_of(run_chunk(e, "local n = 0 for i = 1, 1e9 do n = n + i end return n")),
              StartsWith("expression exceeded its instruction limit"));
  EXPECT_EQ(run_chunk(e, "local n = 0 for i = 1, 100 do n = n + i end return n"), json(5050));
}

TEST(Expr, MemoryBombsFailWithoutCrashing) {
  ExprEngine e(ExprEngine::Limits{
      .instructions = 1LL << 60, .memory_bytes = 16u << 20, .time = Millis(10'000)});
  EXPECT_EQ(error_of(run(e, "string.rep('x', 1 << 30)")),
            "expression ran out of memory (limit 16 MiB)");
  EXPECT_EQ(error_of(run_chunk(e, "local t = {} for i = 1, 1e9 do t[i] = i end")),
            "expression ran out of memory (limit 16 MiB)");
  EXPECT_EQ(error_of(run_chunk(e, "local s = 'x' while true do s = s .. s end")),
            "expression ran out of memory (limit 16 MiB)");
  EXPECT_EQ(run(e, "#string.rep('x', 1000)"), json(1000));  // garbage was reclaimed
}

TEST(Expr, CFunctionsThatLoopStayWithinTheLimits) {
  // Each of these once ran inside a C function for hours, where no hook fires.
  ExprEngine e(ExprEngine::Limits{.time = Millis(200)});
  EXPECT_EQ(run(e, "#string.rep('', 2^62)"), json(0));
  EXPECT_EQ(run(e, "#string.rep('', 2^62, '')"), json(0));
  EXPECT_EQ(error_of(run(e, "#string.rep('', 2^62, ',')")),
            "expression ran out of memory (limit 64 MiB)");
  EXPECT_THAT(error_of(run(e, "table.move({}, 1, 2^53, 2)")),
              HasSubstr("table.move: a range of more than"));
  for (const char* src : {"string.rep('a', 300000):find('.-b')",
                          "string.rep('(', 300000):find('%b()')",
                          "string.rep('a', 300000):match('a-b')"}) {
    ExprError err = chunk_error(e, std::string("return ") + src);
    EXPECT_EQ(err.kind, ExprError::Kind::kLimit) << src;
    EXPECT_EQ(err.message, "expression exceeded its time limit (200ms)") << src;
  }
  EXPECT_EQ(run(e, "1 + 1"), json(2));  // the engine is usable afterwards
}

TEST(Expr, LongSubjectsMatchAsLuaWould) {
  // Long subjects take the bounded path (one anchored try per start position); the results
  // are Lua's own.
  ExprEngine e;
  std::string pad = "string.rep('x', 10000)";
  EXPECT_EQ(run(e, "{(" + pad + " .. 'abc'):find('a.-c')}"), json({10001, 10003}));
  EXPECT_EQ(run(e, "{(" + pad + " .. 'k=42;'):find('k=(%d+)')}"), json({10001, 10004, "42"}));
  EXPECT_EQ(run(e, "(" + pad + " .. ' inet 10.0.0.1/24 '):match('inet (%S+)')"),
            json("10.0.0.1/24"));
  EXPECT_EQ(run(e, "(" + pad + " .. 'ab' .. " + pad + " .. 'ab'):find('a%a+', -5)"),
            json(20003));
  EXPECT_EQ(run(e, "{(" + pad + "):find('()x+$')}"), json({1, 10000, 1}));
  EXPECT_EQ(run(e, "(" + pad + "):find('y-z', 20000)"), json(nullptr));
  EXPECT_EQ(run(e, "(" + pad + "):find('x*', 10001)"), json(10001));  // empty match at the end
  EXPECT_EQ(run(e, "(" + pad + " .. '(a(b)c)'):match('%b()')"), json("(a(b)c)"));
  EXPECT_EQ(run(e, "(" + pad + "):match('x+y')"), json(nullptr));
}

TEST(Expr, ConversionToJsonIsBounded) {
  ExprEngine e(ExprEngine::Limits{.memory_bytes = 32u << 20, .time = Millis(2'000)});
  // 200,000 references to one 1 MiB string: 200 GB as JSON.
  ExprError wide = chunk_error(
      e, "local s = string.rep('x', 1 << 20) local t = {} for i = 1, 200000 do t[i] = s end "
         "return t");
  EXPECT_EQ(wide.kind, ExprError::Kind::kLimit);
  EXPECT_EQ(wide.message, "expression's value is too large to convert (limit 32 MiB)");
  // 2^60 paths through 60 levels of shared references.
  ExprError deep = chunk_error(e, "local t = {} for i = 1, 60 do t = {t, t} end return t");
  EXPECT_EQ(deep.kind, ExprError::Kind::kLimit);
  // The same inside a template's text.
  auto id = e.compile_template("x{{ (function() local t = {} for i = 1, 60 do t = {t, t} end "
                               "return t end)() }}");
  ASSERT_TRUE(id.has_value()) << id.error();
  auto v = e.eval(*id);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().kind, ExprError::Kind::kLimit);
  EXPECT_EQ(run(e, "{1, {2}}"), json::parse("[1,[2]]"));
}

TEST(Expr, AnErrorInsideATemplatesTextLeaksNothing) {
  // The text part of a template converts tables to JSON in C++ and raises on failure; the
  // C++ string holding the message must be gone before the raise (LeakSanitizer checks
  // this under the sanitizer build).
  ExprEngine e;
  EXPECT_EQ(error_of(run_template(e, "x{{ {f = function() end} }}")),
            "cannot convert a function to a value");
  EXPECT_EQ(error_of(run_template(e, "x{{ {[{}] = 1} }}")), "cannot use a table as a key");
}

TEST(Expr, InputsStepsAndLibrariesAreReadOnly) {
  ExprEngine e;
  e.set_inputs(json{{"port", 4789}, {"hosts", {"a", "b"}}, {"m", {{"k", "v"}}}});
  e.set_step_result("vtep", Status::kFail, "down", json{{"mtu", 1450}, {"list", {1, 2}}});
  for (const char* src : {"inputs.port = 1", "inputs.hosts[1] = 'z'", "inputs.m.k = 'w'",
                          "string.upper = nil", "table.insert = nil", "math.pi = 3",
                          "steps.vtep.status = 'pass'", "steps.vtep.facts.mtu = 9000",
                          "table.insert(inputs.hosts, 'c')", "netplay.fail = nil",
                          "net.silk_host_iface = nil"}) {
    EXPECT_THAT(error_of(run_chunk(e, src)), HasSubstr("read-only")) << src;
  }
  // Reading works as on any table.
  EXPECT_EQ(run(e, "#inputs.hosts"), json(2));
  EXPECT_EQ(run_chunk(e, "local n = 0 for _ in pairs(inputs.m) do n = n + 1 end return n"),
            json(1));
  EXPECT_EQ(run_chunk(e, "local s = '' for _, h in ipairs(inputs.hosts) do s = s .. h end "
                         "return s"),
            json("ab"));
  EXPECT_EQ(run(e, "next(inputs.hosts) ~= nil and rawlen(inputs.hosts) == 2 and "
                   "rawget(inputs.hosts, 2) == 'b'"),
            json(true));
  EXPECT_EQ(run(e, "table.concat(inputs.hosts, ',')"), json("a,b"));
  EXPECT_EQ(run(e, "inputs"), json::parse(R"({"hosts":["a","b"],"m":{"k":"v"},"port":4789})"));
  EXPECT_EQ(run(e, "steps.vtep.facts"), json::parse(R"({"list":[1,2],"mtu":1450})"));
  EXPECT_EQ(run(e, "steps.vtep.status .. steps.vtep.message"), json("faildown"));
  EXPECT_EQ(run(e, "string.upper('x') .. ('y'):upper()"), json("XY"));
}

TEST(Expr, InterruptEndsAnEvaluation) {
  ExprEngine e;
  std::atomic<bool> flag{false};
  e.set_interrupt(&flag);
  auto id = e.compile_chunk("while true do end");
  ASSERT_TRUE(id.has_value());
  flag = true;  // Ctrl-C
  auto v = e.eval(*id);
  ASSERT_FALSE(v.has_value());
  ExprError err = v.error();
  EXPECT_EQ(err.kind, ExprError::Kind::kLimit);
  EXPECT_EQ(err.message, "interrupted");
  flag = false;
  EXPECT_EQ(run(e, "1 + 1"), json(2));
}

TEST(Expr, TheRunDeadlineCapsEveryEvaluation) {
  ExprEngine e(ExprEngine::Limits{.instructions = 1LL << 60});  // 2 s of its own
  e.set_run_deadline(Clock::now() + std::chrono::milliseconds(50), "run timed out after 50ms");
  ExprError err = chunk_error(e, "while true do end");
  EXPECT_EQ(err.kind, ExprError::Kind::kLimit);
  EXPECT_EQ(err.message, "run timed out after 50ms");
}

TEST(Expr, DeliberateVerdictsAreTyped) {
  ExprEngine e;
  EXPECT_EQ(error_of(run_chunk(e, "netplay.fail('route to 10.255.0.0/16 missing')")),
            "verdict fail: route to 10.255.0.0/16 missing");
  EXPECT_EQ(error_of(run_chunk(e, "netplay.warn('slow')")), "verdict warn: slow");
  EXPECT_EQ(error_of(run_chunk(e, "netplay.skip('not a Silk cell')")),
            "verdict skip: not a Silk cell");
  EXPECT_EQ(error_of(run_chunk(e, "error('crash')")), "line 1: crash");
  EXPECT_EQ(error_of(run_chunk(e, "netplay.fail()")), "verdict fail: (no message)");
  // A verdict caught by the script's own pcall is the script's business.
  EXPECT_EQ(run_chunk(e, "return (pcall(netplay.fail, 'x'))"), json(false));
  // Caught and printed, a verdict says what it is.
  EXPECT_EQ(run_chunk(e, "local _, v = pcall(netplay.warn, 'slow') return tostring(v)"),
            json("warn: slow"));
}

TEST(Expr, OnlyRealVerdictsAreVerdicts) {
  ExprEngine e;
  // Text that looks like a verdict is an ordinary error.
  ExprError text = chunk_error(e, "error('fail: route missing', 0)");
  EXPECT_EQ(text.kind, ExprError::Kind::kError);
  EXPECT_EQ(text.message, "fail: route missing");
  // So is a table shaped like one: only netplay.fail/warn/skip make verdicts.
  ExprError forged = chunk_error(e, "error({status = 'fail', message = 'x'})");
  EXPECT_EQ(forged.kind, ExprError::Kind::kError);
  EXPECT_EQ(forged.message, R"(error object {"message":"x","status":"fail"})");
  ExprError old_tag = chunk_error(e, "error({netplay_status = 'skip', message = 'x'})");
  EXPECT_EQ(old_tag.kind, ExprError::Kind::kError);
  EXPECT_EQ(chunk_error(e, "error({})").message, "error object []");
  EXPECT_EQ(chunk_error(e, "error(setmetatable({}, {__tostring = function() return 'T' end}))")
                .message,
            "T");
  // The verdict's metatable cannot be read, so it cannot be forged.
  EXPECT_EQ(run_chunk(e, "local _, v = pcall(netplay.fail, 'x') return getmetatable(v)"),
            json(false));
  ExprError real = chunk_error(e, "netplay.fail('route missing')");
  EXPECT_EQ(real.kind, ExprError::Kind::kVerdict);
  EXPECT_EQ(real.verdict, Status::kFail);
  EXPECT_EQ(real.message, "route missing");
  // Limits are their own kind.
  ExprEngine small(ExprEngine::Limits{.instructions = 100'000});
  ExprError limit = chunk_error(small, "while true do end");
  EXPECT_EQ(limit.kind, ExprError::Kind::kLimit);
  EXPECT_THAT(limit.message, StartsWith("expression exceeded its instruction limit"));
}

TEST(Expr, NetHelpers) {
  ExprEngine e;
  EXPECT_EQ(run(e, "net.silk_host_iface('10.255.211.40')"), json("s-010255211040"));
  EXPECT_EQ(run(e, "net.silk_container_iface('10.255.211.40')"), json("c-010255211040"));
  EXPECT_EQ(run(e, "net.silk_iface_ip('c-010255211040')"), json("10.255.211.40"));
  EXPECT_EQ(run(e, "net.silk_mac('aa:aa', '10.255.211.40')"), json("aa:aa:0a:ff:d3:28"));
  EXPECT_EQ(run(e, "net.silk_host_mac('10.255.211.40')"), json("aa:aa:0a:ff:d3:28"));
  EXPECT_EQ(run(e, "net.silk_container_mac('10.255.211.40')"), json("ee:ee:0a:ff:d3:28"));
  EXPECT_EQ(run(e, "net.ip_hex('10.255.211.40', ':')"), json("0a:ff:d3:28"));
  EXPECT_EQ(run(e, "net.in_cidr('10.255.211.40', '10.255.0.0/16')"), json(true));
  EXPECT_EQ(run(e, "net.in_cidr('10.254.211.40', '10.255.0.0/16')"), json(false));
  EXPECT_EQ(run(e, "net.in_cidr('fe80::1', 'fe80::/10')"), json(true));
  EXPECT_EQ(run(e, "net.in_cidr('10.0.0.1', 'fe80::/10')"), json(false));
  EXPECT_EQ(
      run(e,
          "{net.is_ip('10.1.2.3'), net.is_ip('::1'), net.is_ip('10.1.2'), net.is_ip('1.2.3.256')}"),
      json::parse("[true, true, false, false]"));
  EXPECT_EQ(error_of(run(e, "net.silk_host_iface('10.1')")),
            "net.silk_host_iface: invalid IPv4 address \"10.1\"");
  EXPECT_THAT(error_of(run(e, "net.in_cidr('10.0.0.1', '10.0.0.0/33')")),
              HasSubstr("invalid CIDR"));
}

/// Many evaluations of one compiled expression and many recorded results stay correct.
/// What they cost is for benchmarks (tests/bench) to measure, not for a test to bound.
TEST(Expr, RepeatedEvaluationStaysCorrect) {
  ExprEngine e;
  e.set_inputs(json{{"a", 1}});
  auto id = e.compile_expr("inputs.a == 1");
  ASSERT_TRUE(id);
  constexpr int kN = 200'000;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE(e.eval_bool(*id).value());
}

TEST(Expr, RecordingManyStepResults) {
  ExprEngine e;
  json facts = json::object();
  for (int i = 0; i < 50; ++i) facts["fact_" + std::to_string(i)] = i;
  for (int i = 0; i < 500; ++i) {
    e.set_step_result("step_" + std::to_string(i), Status::kPass, "ok", facts);
  }
  EXPECT_EQ(run(e, "steps.step_499.facts.fact_49"), json(49));
  EXPECT_EQ(run(e, "steps.step_0.facts.fact_0"), json(0));
}

TEST(Expr, ArbitraryTextNeverCrashesTheScannersOrTheEngine) {
  // Deterministic token soup: every outcome is a value or an error, never a crash or hang.
  static constexpr const char* kTokens[] = {
      "{{", "}}",  "{", "}", "'",   "\"", "[[",  "]]",  "[=[", "--", "steps", "inputs",
      ".",  "..",  "[", "]", "(",   ")",  "x",   "1",   " ",   "\\", "\n",    "=",
      "==", "net", ":", "#", "nil", "or", "and", "not", ",",   "%"};
  ExprEngine e(ExprEngine::Limits{.time = Millis(100)});
  e.set_inputs(json{{"x", 1}});
  e.set_step_result("x", Status::kPass, "", json{{"x", {1, 2}}});
  unsigned seed = 12345;
  int compiled = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string src;
    int n = 1 + static_cast<int>((seed = seed * 1103515245u + 12345u) >> 16) % 12;
    for (int k = 0; k < n; ++k) {
      seed = seed * 1103515245u + 12345u;
      src += kTokens[(seed >> 16) % std::size(kTokens)];
    }
    (void)ExprEngine::step_refs(src);
    (void)ExprEngine::input_refs(src);
    for (auto id : {e.compile_expr(src), e.compile_template(src), e.compile_chunk(src)}) {
      if (!id) continue;
      ++compiled;
      auto v = e.eval(*id);
      if (v) {
        EXPECT_NO_THROW((void)v->dump()) << src;
      }
    }
  }
  EXPECT_GT(compiled, 300);  // the soup must exercise evaluation, not just syntax errors
  EXPECT_EQ(run(e, "inputs.x + steps.x.facts.x[2]"), json(3));
}

}  // namespace
}  // namespace netplay
