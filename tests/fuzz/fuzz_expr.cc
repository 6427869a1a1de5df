/// libFuzzer target: any bytes as a Lua expression, template, shell template or chunk,
/// compiled and evaluated in a sandboxed ExprEngine with small limits. The first byte picks
/// the kind; the rest is the source. Errors (syntax, limits, verdicts) are answers; a crash,
/// a leak, a hang past the limits or an escape from the sandbox is a bug.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "runner/lua/expr.h"

namespace {

netplay::ExprEngine::Limits small_limits() {
  netplay::ExprEngine::Limits l;
  l.instructions = 200'000;
  l.memory_bytes = 8u << 20;
  l.time = netplay::Millis(250);
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using netplay::ExprEngine;
  using netplay::ExprKind;
  using netplay::json;
  if (size == 0) return 0;
  std::string_view src(reinterpret_cast<const char*>(data) + 1, size - 1);
  static constexpr ExprKind kKinds[] = {ExprKind::kExpr, ExprKind::kTemplate,
                                        ExprKind::kShellTemplate, ExprKind::kChunk};
  ExprKind kind = kKinds[data[0] % 4];

  (void)ExprEngine::step_refs(src);
  (void)ExprEngine::input_refs(src);
  (void)netplay::has_template(src);

  ExprEngine engine(small_limits());
  engine.set_inputs(json{{"name", "$(id)"}, {"port", 4789}, {"list", {1, "two", nullptr}},
                         {"map", {{"k", "v"}}}, {"flag", true}});
  engine.set_env(json{{"HOME", "/root"}});
  engine.set_step_result("a", netplay::Status::kPass, "ok",
                         json{{"value", "Linux"}, {"n", 3}, {"nested", {{"x", {1, 2}}}}});
  auto id = engine.compile({kind, std::string(src)});
  if (!id) return 0;
  // Twice: the second evaluation sees what the first left behind (globals, memory).
  for (int i = 0; i < 2; ++i) {
    auto v = engine.eval(*id);
    if (v) (void)v->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  (void)engine.eval_bool(*id);
  return 0;
}
