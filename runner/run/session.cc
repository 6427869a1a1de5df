#include "runner/run/session.h"

#include <cstdlib>

#include "runner/run/scheduler.h"

namespace netplay {

Session::Session(const Plan& plan, RunOptions opts) : plan_(plan), opts_(std::move(opts)) {
  for (const auto& name : plan_.env_allow)
    if (const char* v = std::getenv(name.c_str())) env_[name] = v;
}

Session::~Session() = default;

std::unique_ptr<ExprEngine> Session::new_lua() const {
  auto lua = std::make_unique<ExprEngine>();
  lua->compile_all(plan_.exprs);  // on failure every evaluation reports the error
  lua->set_inputs(opts_.inputs);
  lua->set_env(env_);
  return lua;
}

RunReport Session::run(Progress* progress, const std::atomic<bool>& interrupt) {
  // Fresh for this run: no Lua global, step result or hook side effect of another run
  // (or of validation) is visible here.
  std::unique_ptr<ExprEngine> lua;
  if (!plan_.exprs.empty()) lua = new_lua();
  return schedule(*this, lua.get(), progress, interrupt);
}

}  // namespace netplay
