#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "runner/step/params.h"
#include "runner/step/process.h"
#include "runner/step/step.h"

namespace netplay {
namespace {

using namespace std::chrono_literals;

StepOutput run_exec(json params, StepContext ctx = {}) {
  const Step* step = Registry::instance().find("exec");
  EXPECT_NE(step, nullptr);
  if (!step) return StepOutput::error("exec step not registered");
  return step->run(ctx, Params(std::move(params)));
}

/// Waits for the command to create `path`: the moment to stop or cancel it is when it got
/// somewhere, not after a guess at how long that takes. The limit only ends a broken test.
bool wait_for_file(const std::string& path) {
  for (int i = 0; i < 3000; ++i) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::string marker_path(const char* name) {
  return "/tmp/netplay-exec-" + std::to_string(::getpid()) + "-" + name;
}

TEST(ExecStep, Registered) {
  const Step* step = Registry::instance().find("exec");
  ASSERT_NE(step, nullptr);
  EXPECT_TRUE(step->spec().supports_background);
  EXPECT_NE(step->spec().param("argv"), nullptr);
  EXPECT_NE(step->spec().fact("exit_code"), nullptr);
}

TEST(ExecStep, ArgvEachElementIsOneArgument) {
  // "a b" and "$(id)" must reach the program verbatim: no shell, no word splitting.
  auto o = run_exec({{"argv", {"printf", "%s|", "a b", "$(id)", "*"}}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["stdout"], "a b|$(id)|*|");
  EXPECT_EQ(o.facts["exit_code"], 0);
  EXPECT_EQ(o.facts["timed_out"], false);
  EXPECT_EQ(o.facts["truncated"], false);
  ASSERT_FALSE(o.evidence.empty());
  EXPECT_EQ(o.evidence[0], "$ printf '%s|' 'a b' '$(id)' '*'");
}

TEST(ExecStep, CmdWithShell) {
  auto o = run_exec({{"cmd", "echo one; echo two"}, {"shell", true}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["stdout"], "one\ntwo");  // one trailing newline removed
  EXPECT_EQ(o.facts["lines"], 2);
  EXPECT_TRUE(o.facts["duration_ms"].is_number());
}

TEST(ExecStep, CmdWithoutShellIsAnError) {
  auto o = run_exec({{"cmd", "echo hi"}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_NE(o.message.find("shell: true"), std::string::npos) << o.message;
  EXPECT_TRUE(o.facts.empty());
}

TEST(ExecStep, ArgvAndCmdTogetherIsRefusedBeforeRunning) {
  // The params checker refuses it, at load time and after templates; run() never sees it.
  auto p = finalize_params(Registry::instance().find("exec")->spec(),
                           {{"cmd", "echo hi"}, {"argv", {"echo"}}, {"shell", true}});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error(), "with: argv and cmd cannot be combined ('exec' takes at most one of argv, cmd)");
}

TEST(ExecStep, NonZeroExitFailsWithFirstStderrLine) {
  auto o = run_exec({{"cmd", "echo 'bad thing' >&2; echo more >&2; exit 2"}, {"shell", true}});
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "exit code 2: bad thing");
  EXPECT_EQ(o.facts["exit_code"], 2);
  EXPECT_EQ(o.facts["stderr"], "bad thing\nmore");
  // Evidence: the command line and the end of stderr.
  ASSERT_GE(o.evidence.size(), 3u);
  EXPECT_EQ(o.evidence[1], "  bad thing");
}

TEST(ExecStep, CheckFalseLeavesExitCodeToExpect) {
  auto o = run_exec({{"argv", {"sh", "-c", "exit 3"}}, {"check", false}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["exit_code"], 3);
  EXPECT_EQ(o.message, "exit code 3");
}

TEST(ExecStep, KilledBySignalFails) {
  auto o = run_exec({{"cmd", "kill -TERM $$"}, {"shell", true}});
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "killed by SIGTERM");
  EXPECT_FALSE(o.facts.contains("exit_code"));
  EXPECT_EQ(o.facts["signal"], 15);
}

TEST(ExecStep, MissingCommandIsAnError) {
  auto o = run_exec({{"argv", {"netplay-no-such-tool"}}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "no such command 'netplay-no-such-tool'");
}

TEST(ExecStep, JsonOutput) {
  auto o = run_exec(
      {{"argv", {"echo", R"({"ifname": "eth0", "mtu": 1450, "addrs": [1, 2]})"}}, {"json", true}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["json"]["mtu"], 1450);
  EXPECT_EQ(o.facts["json"]["addrs"].size(), 2u);
}

TEST(ExecStep, BrokenJsonIsAnErrorNamingThePosition) {
  auto o = run_exec({{"argv", {"printf", "{\"a\": 1,\n \"b\": nope}"}}, {"json", true}});
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message.rfind("stdout is not JSON: ", 0), 0u) << o.message;
  EXPECT_NE(o.message.find("line 2, column"), std::string::npos) << o.message;
  EXPECT_FALSE(o.facts.contains("json"));
  EXPECT_EQ(o.facts["exit_code"], 0);  // the other facts are still there
}

TEST(ExecStep, EnvCwdStdin) {
  auto o = run_exec({{"cmd", "echo \"$GREETING $(pwd)\"; cat"},
                     {"shell", true},
                     {"env", {{"GREETING", "hello"}, {"N", 3}}},
                     {"cwd", "/tmp"},
                     {"stdin", "from stdin\n"}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["stdout"], "hello /tmp\nfrom stdin");
}

TEST(ExecStep, MaxOutputTruncates) {
  auto o = run_exec({{"cmd", "seq 1 100000"}, {"shell", true}, {"max_output", 10}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["stdout"], "1\n2\n3\n4\n5");
  EXPECT_EQ(o.facts["truncated"], true);
}

TEST(ExecStep, InvalidUtf8IsReplacedNotFatal) {
  auto o = run_exec({{"argv", {"printf", "ok\\377\\376"}}});
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  std::string dumped = o.facts.dump();  // would throw on invalid UTF-8
  EXPECT_NE(dumped.find("ok"), std::string::npos);
}

TEST(ExecStep, ExitCodeJudgedByThePlaybookIsNotCheckedByTheStep) {
  StepContext ctx;
  ctx.expected_facts = {"exit_code"};
  auto o = run_exec({{"cmd", "exit 3"}, {"shell", true}}, ctx);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["exit_code"], 3);
  EXPECT_EQ(o.message, "exit code 3");
  ctx.expected_facts = {"exit_code.x"};  // a part of it: still the playbook's judgement
  EXPECT_TRUE(ctx.expects("exit_code"));
  ctx.expected_facts = {"stdout"};
  EXPECT_FALSE(ctx.expects("exit_code"));
  EXPECT_EQ(run_exec({{"cmd", "exit 3"}, {"shell", true}}, ctx).status, Status::kFail);
  ctx.expected_facts = {"exit_code"};
  auto checked = run_exec({{"cmd", "exit 3"}, {"shell", true}, {"check", true}}, ctx);
  EXPECT_EQ(checked.status, Status::kFail);
}

TEST(ExecStep, TimeoutIsAnErrorWithOutputSoFar) {
  StepContext ctx;
  ctx.deadline = Clock::now() + 400ms;
  auto o = run_exec({{"cmd", "echo partial; sleep 30"}, {"shell", true}}, ctx);
  EXPECT_EQ(o.status, Status::kError);
  // The figure is what was left of the budget when the command started: not asserted.
  EXPECT_EQ(o.message.rfind("timed out after ", 0), 0u) << o.message;
  EXPECT_EQ(o.facts["timed_out"], true);
  EXPECT_EQ(o.facts["stdout"], "partial");
  EXPECT_EQ(system_services().registry().live(), 0u);
}

TEST(ExecStep, BackgroundStopPassesWithWhatItGathered) {
  std::atomic<bool> stop{false};
  StepContext ctx;
  ctx.stop_requested = &stop;
  std::string ready = marker_path("listening");
  std::thread stopper([&] {
    wait_for_file(ready);
    stop = true;
  });
  auto o = run_exec(
      {{"cmd", "echo listening; touch " + ready + "; exec sleep 30"}, {"shell", true}}, ctx);
  stopper.join();
  std::filesystem::remove(ready);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message.rfind("stopped after ", 0), 0u) << o.message;
  EXPECT_EQ(o.facts["stdout"], "listening");
  EXPECT_EQ(o.facts["timed_out"], false);
}

TEST(ExecStep, HardCancelIsAnError) {
  std::atomic<bool> cancel{false};
  StepContext ctx;
  ctx.cancelled = &cancel;
  std::string ready = marker_path("cancel");
  std::thread canceller([&] {
    wait_for_file(ready);
    cancel = true;
  });
  auto o = run_exec({{"cmd", "touch " + ready + "; exec sleep 30"}, {"shell", true}}, ctx);
  canceller.join();
  std::filesystem::remove(ready);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message.rfind("cancelled after ", 0), 0u) << o.message;
}

}  // namespace
}  // namespace netplay
