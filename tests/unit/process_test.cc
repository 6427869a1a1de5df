#include "runner/step/process.h"

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace netplay {
namespace {

using namespace std::chrono_literals;

/// The registry these tests' children are tracked in (a run's owner holds one).
ProcessRegistry registry;

std::expected<ProcessResult, std::string> run(const ProcessSpec& spec, const StepContext& ctx) {
  return run_process(spec, ctx, registry);
}

ProcessSpec sh(const std::string& script) {
  ProcessSpec s;
  s.argv = {"/bin/sh", "-c", script};
  return s;
}

StepContext with_deadline(Millis d) {
  StepContext c;
  c.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(d);
  return c;
}

/// Running (not merely an unreaped zombie: orphans are reaped by whatever pid 1 is, which in
/// a container may take its time or never happen).
bool alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

/// A pid written by the child to a file (waits for the file to appear).
pid_t read_pid(const std::string& file) {
  for (int i = 0; i < 3000; ++i) {
    std::ifstream in(file);
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    std::this_thread::sleep_for(10ms);
  }
  return 0;
}

/// Orphans are reaped by pid 1, on its own schedule: wait for that, with a limit that only
/// ends a broken test.
bool gone(pid_t pid) {
  for (int i = 0; i < 3000 && alive(pid); ++i) std::this_thread::sleep_for(10ms);
  return !alive(pid);
}

/// Waits for the child to create `path`, so a test acts once the child got somewhere.
bool wait_for_file(const std::string& path) {
  for (int i = 0; i < 3000; ++i) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/netplay-proc-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST(Process, ExitCodeAndOutput) {
  StepContext ctx;
  auto r = run(sh("echo out; echo err >&2; exit 3"), ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_TRUE(r->exit_code.has_value());
  EXPECT_EQ(*r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->timed_out);
  EXPECT_FALSE(r->truncated);
  EXPECT_EQ(r->term_signal, 0);
  EXPECT_EQ(registry.live(), 0u);
}

TEST(Process, SearchesPath) {
  StepContext ctx;
  ProcessSpec s;
  s.argv = {"echo", "a b", "c"};
  auto r = run(s, ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->out, "a b c\n");
  EXPECT_EQ(r->exit_code, 0);
}

TEST(Process, MissingCommand) {
  StepContext ctx;
  ProcessSpec s;
  s.argv = {"netplay-no-such-command-xyz"};
  auto r = run(s, ctx);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "no such command 'netplay-no-such-command-xyz'");
  s.argv = {"/nonexistent/bin/tool"};
  r = run(s, ctx);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), "no such command '/nonexistent/bin/tool'");
}

TEST(Process, MissingCwd) {
  StepContext ctx;
  auto s = sh("pwd");
  s.cwd = "/nonexistent-netplay-dir";
  auto r = run(s, ctx);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("/nonexistent-netplay-dir"), std::string::npos) << r.error();
}

TEST(Process, KilledBySignal) {
  StepContext ctx;
  auto r = run(sh("kill -9 $$"), ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_FALSE(r->exit_code.has_value());
  EXPECT_EQ(r->term_signal, SIGKILL);
}

TEST(Process, LargeOutputIsTruncatedButDrained) {
  StepContext ctx;
  auto s = sh("head -c 1000000 /dev/zero; echo done >&2");
  s.max_output = 1000;
  auto r = run(s, ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->err, "done\n");  // the child was not blocked on a full pipe
  EXPECT_EQ(r->exit_code, 0);
}

TEST(Process, EnvInheritAndOverride) {
  ::setenv("NETPLAY_PROC_TEST_INHERITED", "yes", 1);
  StepContext ctx;
  auto s = sh("echo \"$NETPLAY_PROC_TEST_INHERITED/$NETPLAY_X\"");
  s.env["NETPLAY_X"] = "over";
  auto r = run(s, ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->out, "yes/over\n");

  s.inherit_env = false;
  r = run(s, ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->out, "/over\n");
}

TEST(Process, Cwd) {
  TempDir dir;
  StepContext ctx;
  auto s = sh("pwd");
  s.cwd = dir.path.string();
  auto r = run(s, ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->out, dir.path.string() + "\n");
}

TEST(Process, Stdin) {
  StepContext ctx;
  ProcessSpec s;
  s.argv = {"tr", "a-z", "A-Z"};
  s.stdin_data = "hello\nworld\n";
  auto r = run(s, ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->out, "HELLO\nWORLD\n");
}

TEST(Process, StdinIgnoredByChildIsNotFatal) {
  StepContext ctx;
  auto s = sh("exit 0");
  s.stdin_data = std::string(1 << 20, 'x');  // more than a pipe holds; child never reads
  auto r = run(s, ctx);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->exit_code, 0);
}

TEST(Process, NoStdinMeansDevNull) {
  StepContext ctx;
  auto r = run(sh("cat; echo rc=$?"), with_deadline(5s));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->out, "rc=0\n");
  EXPECT_FALSE(r->timed_out);
}

TEST(Process, TimeoutKillsWholeGroupIncludingGrandchild) {
  TempDir dir;
  std::string pidfile = (dir.path / "grandchild.pid").string();
  // The grandchild ignores nothing special; the shell waits on it, so only a group kill
  // ends both.
  auto s = sh("sleep 100 & echo $! > " + pidfile + "; echo started; wait");
  auto r = run(s, with_deadline(500ms));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->cancelled);
  EXPECT_EQ(r->out, "started\n");  // output so far is kept
  pid_t grandchild = read_pid(pidfile);
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(gone(grandchild)) << "grandchild " << grandchild << " survived";
  EXPECT_EQ(registry.live(), 0u);
}

TEST(Process, TermIgnoredThenKill) {
  // Stopped once the trap is in place (a deadline could strike before the shell set it).
  TempDir dir;
  std::string ready = (dir.path / "ready").string();
  std::atomic<bool> cancel{false};
  StepContext ctx;
  ctx.cancelled = &cancel;
  std::thread t([&] {
    wait_for_file(ready);
    cancel = true;
  });
  auto r = run(sh("trap '' TERM; touch " + ready + "; while :; do sleep 0.05; done"), ctx);
  t.join();
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->cancelled);
  EXPECT_EQ(r->term_signal, SIGKILL);
}

TEST(Process, CancelFlag) {
  TempDir dir;
  std::string ready = (dir.path / "ready").string();
  std::atomic<bool> cancel{false};
  StepContext ctx;
  ctx.cancelled = &cancel;
  std::thread t([&] {
    wait_for_file(ready);
    cancel = true;
  });
  auto r = run(sh("echo hi; touch " + ready + "; exec sleep 100"), ctx);
  t.join();
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->out, "hi\n");
  EXPECT_EQ(r->term_signal, SIGTERM);
}

TEST(Process, StopRequested) {
  std::atomic<bool> stop{false};
  StepContext ctx;
  ctx.stop_requested = &stop;
  std::thread t([&] {
    std::this_thread::sleep_for(150ms);
    stop = true;
  });
  auto r = run(sh("sleep 100"), ctx);
  t.join();
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->cancelled);
}

TEST(Process, KillAllKillsTrackedGroups) {
  TempDir dir;
  std::string pidfile = (dir.path / "gc.pid").string();
  std::optional<std::expected<ProcessResult, std::string>> r;
  std::thread t([&] { r = run(sh("sleep 100 & echo $! > " + pidfile + "; wait"), {}); });
  pid_t grandchild = read_pid(pidfile);
  ASSERT_GT(grandchild, 0);
  // The child may write its pid file before the runner has tracked its group: wait for it.
  for (int i = 0; i < 200 && registry.live() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(registry.live(), 1u);
  registry.kill_all();
  t.join();
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->has_value()) << r->error();
  EXPECT_EQ((*r)->term_signal, SIGKILL);
  EXPECT_TRUE(gone(grandchild));
  EXPECT_EQ(registry.live(), 0u);
}

TEST(Process, BackgroundGrandchildHoldingOutputDoesNotHang) {
  TempDir dir;
  std::string pidfile = (dir.path / "gc.pid").string();
  // Had the run waited for the grandchild to close its output, the deadline would end it.
  auto r = run(sh("sleep 100 & echo $! > " + pidfile + "; echo hi"), with_deadline(60s));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->out, "hi\n");
  EXPECT_FALSE(r->timed_out);
  pid_t grandchild = read_pid(pidfile);
  EXPECT_TRUE(gone(grandchild));
}

TEST(Process, SignalsAreResetInChild) {
  // Block SIGTERM and ignore SIGINT in this thread; the child must not inherit either.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  struct sigaction ign {
  }, prev{};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ign, &prev);
  StepContext ctx;
  ProcessSpec s;  // no shell in between: it might reset the mask itself
  s.argv = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"};
  auto r = run(s, ctx);
  sigaction(SIGINT, &prev, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_NE(r->out.find("SigBlk:\t0000000000000000"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("SigIgn:\t0000000000000000"), std::string::npos) << r->out;
}

TEST(Process, DescriptorsDoNotLeakIntoChild) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);  // not close-on-exec: must still not reach the child
  StepContext ctx;
  auto r = run(sh("for fd in " + std::to_string(fds[0]) + " " + std::to_string(fds[1]) +
                          "; do [ -e /proc/$$/fd/$fd ] && echo leaked $fd; done; echo end"),
                       ctx);
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->out, "end\n");
}

TEST(Process, ConcurrentRunsFromFourThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 5; ++j) {
        // Concurrent children must not hold each other's pipes: each sees only 0, 1 and 2.
        std::string id = std::to_string(i) + "-" + std::to_string(j);
        auto s = sh("sleep 0.1; echo " + id + "; ls /proc/$$/fd");
        auto r = run(s, with_deadline(60s));
        if (r && r->exit_code == 0 && !r->timed_out && r->out == id + "\n0\n1\n2\n") ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 20);
  EXPECT_EQ(registry.live(), 0u);
}

}  // namespace
}  // namespace netplay
