/// The step services: the process registry, the fakes, exec's logic on a fake process
/// runner, and the scheduler handing a run's services to every step.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "runner/run/session.h"
#include "runner/step/fakes.h"
#include "runner/step/process.h"
#include "runner/step/services.h"
#include "runner/step/step.h"

namespace netplay {
namespace {

using namespace std::chrono_literals;

TEST(ProcessRegistry, SlotsAreFreedWhenTheyGo) {
  ProcessRegistry r;
  {
    // Never kill_all() here: these are not our process groups.
    auto a = r.track(999'991);
    auto b = r.track(999'992);
    EXPECT_TRUE(a.tracked());
    EXPECT_EQ(r.live(), 2u);
    ProcessRegistry::Slot moved(std::move(b));
    EXPECT_FALSE(b.tracked());
    EXPECT_EQ(r.live(), 2u);
  }
  EXPECT_EQ(r.live(), 0u);
}

TEST(ProcessRegistry, FullTableRunsUntracked) {
  ProcessRegistry r;
  std::vector<ProcessRegistry::Slot> slots;
  for (int i = 0; i < 512; ++i) slots.push_back(r.track(999'000 + i));
  EXPECT_EQ(r.live(), 512u);
  auto extra = r.track(998'999);
  EXPECT_FALSE(extra.tracked());
  slots.clear();
  EXPECT_EQ(r.live(), 0u);
}

TEST(FakeClock, MovesOnlyWhenTold) {
  FakeClock c;
  auto t0 = c.now();
  auto w0 = c.wall_now();
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(c.now(), t0);
  c.advance(Millis(1500));
  EXPECT_EQ(c.now() - t0, std::chrono::milliseconds(1500));
  EXPECT_EQ(c.wall_now() - w0, std::chrono::milliseconds(1500));
  EXPECT_EQ(std::chrono::system_clock::to_time_t(w0), FakeClock::kWallStartSeconds);
}

TEST(StepContext, DeadlineIsMeasuredOnTheServicesClock) {
  FakeServices fakes;
  StepContext ctx;
  ctx.services = &fakes;
  ctx.deadline = fakes.fake_clock.now() + 2s;
  EXPECT_FALSE(ctx.expired());
  EXPECT_EQ(ctx.remaining(), Millis(2000));
  fakes.fake_clock.advance(Millis(2000));
  EXPECT_TRUE(ctx.expired());
  EXPECT_EQ(ctx.remaining(), Millis(0));
}

// ---- exec on a fake process runner ----

StepOutput run_exec(FakeServices& fakes, json params, StepContext ctx = {}) {
  const Step* step = Registry::instance().find("exec");
  EXPECT_NE(step, nullptr);
  if (!step) return StepOutput::error("exec step not registered");
  for (const auto& p : step->spec().params)
    if (!params.contains(p.name) && !p.default_value.is_null()) params[p.name] = p.default_value;
  ctx.services = &fakes;
  return step->run(ctx, Params(std::move(params)));
}

TEST(ExecOnFakes, HandsTheCommandToTheRunner) {
  FakeServices fakes;
  fakes.fake_processes.answer(ProcessResult{.exit_code = 0, .out = "hello\n"});
  auto o = run_exec(fakes, {{"argv", {"echo", "hello"}},
                            {"env", {{"A", "1"}}},
                            {"stdin", "in"},
                            {"max_output", 10}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["stdout"], "hello");
  EXPECT_EQ(o.facts["exit_code"], 0);
  auto runs = fakes.fake_processes.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].argv, (std::vector<std::string>{"echo", "hello"}));
  EXPECT_EQ(runs[0].env.at("A"), "1");
  EXPECT_EQ(runs[0].stdin_data, "in");
  EXPECT_EQ(runs[0].max_output, 10u);
}

TEST(ExecOnFakes, ShellCommandGoesThroughBinSh) {
  FakeServices fakes;
  fakes.fake_processes.answer(ProcessResult{.exit_code = 0});
  run_exec(fakes, {{"cmd", "echo a | wc -l"}, {"shell", true}});
  ASSERT_EQ(fakes.fake_processes.runs().size(), 1u);
  EXPECT_EQ(fakes.fake_processes.runs()[0].argv,
            (std::vector<std::string>{"/bin/sh", "-c", "echo a | wc -l"}));
}

TEST(ExecOnFakes, NonZeroExitFailsWithFirstStderrLine) {
  FakeServices fakes;
  fakes.fake_processes.answer(ProcessResult{.exit_code = 2, .err = "bad thing\nmore\n"});
  auto o = run_exec(fakes, {{"argv", {"tool"}}});
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "exit code 2: bad thing");
  auto lenient = run_exec(fakes, {{"argv", {"tool"}}, {"check", false}});
  EXPECT_EQ(lenient.status, Status::kPass);
  EXPECT_EQ(lenient.facts["exit_code"], 2);
}

TEST(ExecOnFakes, KilledBySignal) {
  FakeServices fakes;
  fakes.fake_processes.answer(ProcessResult{.term_signal = SIGKILL});
  auto o = run_exec(fakes, {{"argv", {"tool"}}});
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "killed by SIGKILL");
  EXPECT_EQ(o.facts["signal"], SIGKILL);
  EXPECT_FALSE(o.facts.contains("exit_code"));
}

TEST(ExecOnFakes, CommandThatCannotStartIsAnError) {
  FakeServices fakes;
  fakes.fake_processes.fail_to_start("no such command 'nope'");
  auto o = run_exec(fakes, {{"argv", {"nope", "x"}}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "no such command 'nope'");
  ASSERT_EQ(o.evidence.size(), 1u);
  EXPECT_EQ(o.evidence[0], "$ nope x");
}

TEST(ExecOnFakes, DeadlinePassedWhileRunningIsATimeout) {
  FakeServices fakes;
  // The command takes 7 s of (fake) time; the step has 5.
  fakes.fake_processes.answer([&](const ProcessSpec&, const StepContext&) {
    fakes.fake_clock.advance(Millis(7000));
    return std::expected<ProcessResult, std::string>(ProcessResult{.out = "partial\n"});
  });
  StepContext ctx;
  ctx.deadline = fakes.fake_clock.now() + 5s;
  auto o = run_exec(fakes, {{"argv", {"slow"}}}, ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "timed out after 5s");
  EXPECT_EQ(o.facts["timed_out"], true);
  EXPECT_EQ(o.facts["stdout"], "partial");
}

TEST(ExecOnFakes, CancelledIsAnErrorAndStopPasses) {
  FakeServices fakes;
  fakes.fake_processes.answer(ProcessResult{.out = "gathered\n", .duration = Millis(40)});
  std::atomic<bool> cancel{true};
  StepContext ctx;
  ctx.cancelled = &cancel;
  auto o = run_exec(fakes, {{"argv", {"x"}}}, ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "cancelled after 40 ms");

  std::atomic<bool> stop{true};
  StepContext bg;
  bg.stop_requested = &stop;
  auto s = run_exec(fakes, {{"argv", {"x"}}}, bg);
  EXPECT_EQ(s.status, Status::kPass) << s.message;
  EXPECT_EQ(s.message, "stopped after 40 ms");
  EXPECT_EQ(s.facts["stdout"], "gathered");
}

TEST(ExecOnFakes, JsonOutputThatDoesNotParseIsAnError) {
  FakeServices fakes;
  fakes.fake_processes.answer(ProcessResult{.exit_code = 0, .out = "{\"a\": 1"});
  auto o = run_exec(fakes, {{"argv", {"x"}}, {"json", true}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message.rfind("stdout is not JSON: ", 0), 0u) << o.message;
  fakes.fake_processes.answer(ProcessResult{.exit_code = 0, .out = "{\"a\": [1, 2]}"});
  auto ok = run_exec(fakes, {{"argv", {"x"}}, {"json", true}});
  EXPECT_EQ(ok.status, Status::kPass) << ok.message;
  EXPECT_EQ(ok.facts["json"]["a"][1], 2);
}

// ---- The scheduler hands the run's services to its steps ----

/// Reports which services it was given; with `wait: true` waits to be cancelled.
class ServicesProbeStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "test.services",
        .summary = "test: which services a step gets",
        .params = {{.name = "wait", .type = ValueType::kBool, .default_value = false}},
        .facts = {{"fake", "bool", ""}, {"wall", "int", ""}},
    };
    return s;
  }
  StepOutput run(StepContext& ctx, const Params& p) const override {
    if (p.boolean("wait")) {
      auto until = Clock::now() + 5s;
      while (!ctx.is_cancelled() && Clock::now() < until) std::this_thread::sleep_for(2ms);
    }
    StepOutput o;
    o.facts["fake"] = dynamic_cast<FakeServices*>(&ctx.services_or_system()) != nullptr;
    o.facts["wall"] = std::chrono::system_clock::to_time_t(ctx.clock().wall_now());
    return o;
  }
};

Plan probe_playbook(bool wait) {
  if (!Registry::instance().find("test.services")) {
    EXPECT_TRUE(Registry::instance().add(std::make_unique<ServicesProbeStep>()));
  }
  Plan pb;
  pb.name = "services";
  for (const char* id : {"a", "b"}) {
    StepDef d;
    d.id = id;
    d.uses = "test.services";
    d.step = Registry::instance().find("test.services");
    d.with = {{"wait", wait}};
    pb.steps.push_back(std::move(d));
  }
  link_graph(pb);
  return pb;
}

RunReport run_playbook(const Plan& plan, RunOptions opts, const std::atomic<bool>& interrupt) {
  Session session(plan, std::move(opts));
  return session.run(nullptr, interrupt);
}

TEST(SchedulerServices, EveryStepGetsTheRunsServices) {
  FakeServices fakes;
  RunOptions opts;
  opts.services = &fakes;
  std::atomic<bool> never{false};
  RunReport r = run_playbook(probe_playbook(false), opts, never);
  ASSERT_EQ(r.steps.size(), 2u);
  for (const auto& s : r.steps) {
    ASSERT_EQ(s.status, Status::kPass) << s.id << ": " << s.message;
    EXPECT_EQ(s.facts["fake"], true);
    EXPECT_EQ(s.facts["wall"], FakeClock::kWallStartSeconds);
  }
  RunReport real = run_playbook(probe_playbook(false), RunOptions{}, never);
  EXPECT_EQ(real.steps[0].facts["fake"], false);
}

TEST(SchedulerServices, InterruptKillsTheRunsChildren) {
  FakeServices fakes;
  RunOptions opts;
  opts.services = &fakes;
  std::atomic<bool> interrupt{false};
  std::thread ctrl_c([&] {
    std::this_thread::sleep_for(100ms);
    interrupt = true;
  });
  RunReport r = run_playbook(probe_playbook(true), opts, interrupt);
  ctrl_c.join();
  EXPECT_TRUE(r.interrupted);
  EXPECT_GE(fakes.fake_processes.kill_all_calls(), 1);
}

}  // namespace
}  // namespace netplay
