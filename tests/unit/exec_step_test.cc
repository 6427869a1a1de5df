#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

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

TEST(ExecStep, ArgvAndCmdTogetherIsAnError) {
  auto o = run_exec({{"cmd", "echo hi"}, {"argv", {"echo"}}, {"shell", true}});
  EXPECT_EQ(o.status, Status::kError);
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

TEST(ExecStep, TimeoutIsAnErrorWithOutputSoFar) {
  StepContext ctx;
  ctx.deadline = Clock::now() + 400ms;
  auto t0 = Clock::now();
  auto o = run_exec({{"cmd", "echo partial; sleep 30"}, {"shell", true}}, ctx);
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "timed out after 400ms");
  EXPECT_EQ(o.facts["timed_out"], true);
  EXPECT_EQ(o.facts["stdout"], "partial");
  EXPECT_EQ(system_services().registry().live(), 0u);
}

TEST(ExecStep, BackgroundStopPassesWithWhatItGathered) {
  std::atomic<bool> stop{false};
  StepContext ctx;
  ctx.stop_requested = &stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    stop = true;
  });
  auto o = run_exec({{"cmd", "echo listening; exec sleep 30"}, {"shell", true}}, ctx);
  stopper.join();
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message.rfind("stopped after ", 0), 0u) << o.message;
  EXPECT_EQ(o.facts["stdout"], "listening");
  EXPECT_EQ(o.facts["timed_out"], false);
}

TEST(ExecStep, HardCancelIsAnError) {
  std::atomic<bool> cancel{false};
  StepContext ctx;
  ctx.cancelled = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  auto o = run_exec({{"argv", {"sleep", "30"}}}, ctx);
  canceller.join();
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message.rfind("cancelled after ", 0), 0u) << o.message;
}

}  // namespace
}  // namespace netplay
