/// netns::walk (steps/net/netns_walk.h) over namespaces this test creates: every namespace
/// visited once, inside it; the step's cancellation and deadline end the walk; the calling
/// thread comes back. Root required: fails, never skips, without it.

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "runner/step/netns.h"
#include "steps/net/netns_walk.h"

namespace netplay {
namespace {

using namespace std::chrono_literals;

unsigned long inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

unsigned long here() { return inode_of("/proc/thread-self/ns/net"); }

/// 40 namespaces: enough for the walk to hand work to the shared threads.
class NetnsWalk : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0u) << "netns walk tests need root (network namespaces)";
    std::string batch = fmt::format("/tmp/netplay-walk-{}.ip", getpid());
    {
      std::ofstream out(batch);
      for (int i = 0; i < kCount; ++i) {
        std::string ns = fmt::format("npw{}-{}", getpid() % 100000, i);
        names_.push_back(ns);
        out << "netns add " << ns << "\n";
      }
    }
    ASSERT_EQ(std::system(("ip -batch " + batch).c_str()), 0);
    std::remove(batch.c_str());
    for (const auto& n : names_) paths_.push_back("/run/netns/" + n);
  }
  static void TearDownTestSuite() {
    for (const auto& n : names_) std::system(("ip netns del " + n + " 2>/dev/null").c_str());
  }

  static constexpr int kCount = 40;
  static inline std::vector<std::string> names_, paths_;
};

TEST_F(NetnsWalk, VisitsEveryNamespaceOnceFromInsideIt) {
  unsigned long home = here();
  std::mutex m;
  std::multiset<size_t> seen;
  std::set<std::thread::id> threads;
  size_t wrong_place = 0;
  StepContext ctx;
  ctx.deadline = Clock::now() + 20s;
  bool complete = netns::walk(
      paths_,
      [&](size_t i, const StepContext& c) {
        bool inside = here() == inode_of(paths_[i]);
        std::this_thread::sleep_for(1ms);  // long enough for the shared threads to join in
        std::lock_guard lock(m);
        seen.insert(i);
        threads.insert(std::this_thread::get_id());
        if (!inside) ++wrong_place;
        EXPECT_EQ(&c, &ctx);
        return true;
      },
      [&](size_t i, const std::string& e) {
        ADD_FAILURE() << paths_[i] << ": " << e;
        return false;
      },
      ctx);
  EXPECT_TRUE(complete);
  EXPECT_EQ(seen.size(), paths_.size());
  for (size_t i = 0; i < paths_.size(); ++i) EXPECT_EQ(seen.count(i), 1u) << i;
  EXPECT_EQ(wrong_place, 0u);
  EXPECT_GE(threads.size(), std::thread::hardware_concurrency() > 1 ? 2u : 1u);
  EXPECT_EQ(here(), home);
  EXPECT_TRUE(thread_netns_home_ok());
}

TEST_F(NetnsWalk, CancellationStopsTheWalkAndReachesRunningVisits) {
  unsigned long home = here();
  std::atomic<bool> cancel{false};
  std::atomic<int> visits{0}, saw_cancel{0};
  StepContext ctx;
  ctx.cancelled = &cancel;
  std::thread ctrl_c([&] {
    std::this_thread::sleep_for(100ms);
    cancel = true;
  });
  auto t0 = Clock::now();
  bool complete = netns::walk(
      paths_,
      [&](size_t, const StepContext& c) {
        ++visits;
        // A visit waiting on the kernel: its context says when to give up.
        for (auto until = Clock::now() + 5s; Clock::now() < until && !c.is_cancelled();)
          std::this_thread::sleep_for(1ms);
        if (c.is_cancelled()) ++saw_cancel;
        return true;
      },
      [](size_t, const std::string&) { return true; }, ctx);
  ctrl_c.join();
  EXPECT_FALSE(complete);
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_LT(visits.load(), static_cast<int>(paths_.size()));
  EXPECT_EQ(saw_cancel.load(), visits.load());
  EXPECT_EQ(here(), home);
}

TEST_F(NetnsWalk, PassedDeadlineVisitsNothing) {
  StepContext ctx;
  ctx.deadline = Clock::now() - 1ms;
  int visits = 0;
  bool complete = netns::walk(
      paths_, [&](size_t, const StepContext&) { return ++visits > 0; },
      [](size_t, const std::string&) { return true; }, ctx);
  EXPECT_FALSE(complete);
  EXPECT_EQ(visits, 0);
}

TEST_F(NetnsWalk, NamespaceThatCannotBeEnteredGoesToFailed) {
  std::vector<std::string> paths = {paths_[0], "/run/netns/npw-none-such", paths_[1]};
  std::atomic<int> visits{0};
  std::string error;
  bool complete = netns::walk(
      paths, [&](size_t, const StepContext&) { return ++visits > 0; },
      [&](size_t i, const std::string& e) {
        EXPECT_EQ(i, 1u);
        error = e;
        return true;
      },
      StepContext{});
  EXPECT_TRUE(complete);
  EXPECT_EQ(visits.load(), 2);
  EXPECT_NE(error.find("not found"), std::string::npos) << error;
  // A callback that gives up ends the walk.
  bool ended = netns::walk(
      paths, [&](size_t, const StepContext&) { return true; },
      [&](size_t, const std::string&) { return false; }, StepContext{});
  EXPECT_FALSE(ended);
}

}  // namespace
}  // namespace netplay
