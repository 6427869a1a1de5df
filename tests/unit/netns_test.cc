/// Network namespaces for real: needs root (CAP_SYS_ADMIN) and iproute2. Without them the
/// tests fail with a clear message; they never skip.

#include "runner/step/netns.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <string>
#include <thread>

#include "runner/run/session.h"

namespace netplay {
namespace {

unsigned long self_inode() {
  auto ino = netns_inode("/proc/thread-self/ns/net");
  EXPECT_TRUE(ino.has_value()) << ino.error();
  return ino.value_or(0);
}

/// Creates `ip netns add np-test-<pid>` for the test and deletes it afterwards.
class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "netns_test needs root (CAP_SYS_ADMIN) to create and enter "
                                  "network namespaces; run it as root";
    name_ = fmt::format("np-test-{}", ::getpid());
    std::system(fmt::format("ip netns delete {} 2>/dev/null", name_).c_str());
    ASSERT_EQ(std::system(fmt::format("ip netns add {}", name_).c_str()), 0)
        << "`ip netns add " << name_ << "` failed (is iproute2 installed?)";
    created_ = true;
  }
  void TearDown() override {
    if (created_) std::system(fmt::format("ip netns delete {}", name_).c_str());
  }
  std::string name_;
  bool created_ = false;
};

TEST(NetnsPath, Specs) {
  EXPECT_EQ(netns_path("host").value(), "");
  EXPECT_EQ(netns_path("cell9").value(), "/run/netns/cell9");
  EXPECT_EQ(netns_path("/var/run/docker/netns/abc").value(), "/var/run/docker/netns/abc");
  EXPECT_EQ(netns_path("pid:42").value(), "/proc/42/ns/net");
  EXPECT_FALSE(netns_path("pid:x").has_value());
  EXPECT_FALSE(netns_path("a/b").has_value());
  EXPECT_FALSE(netns_path("..").has_value());
}

TEST(NetnsScopeHost, HostIsANoOp) {
  unsigned long home = self_inode();
  auto s = NetnsScope::enter("host");
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_EQ(self_inode(), home);
  EXPECT_TRUE(s->leave());
}

TEST(NetnsScopeErrors, MissingNamespace) {
  auto s = NetnsScope::enter("np-test-missing");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(),
            "network namespace 'np-test-missing' not found (/run/netns/np-test-missing)");
}

TEST(NetnsScopeErrors, NotANamespace) {
  auto s = NetnsScope::enter("/proc/self/status");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), "/proc/self/status is not a network namespace");
}

TEST_F(NetnsTest, EnterAndLeave) {
  unsigned long home = self_inode();
  auto target = netns_inode("/run/netns/" + name_);
  ASSERT_TRUE(target.has_value()) << target.error();
  ASSERT_NE(*target, home);
  // Per thread: a thread started before (new threads inherit the creator's namespace)
  // stays home while this one is inside.
  std::promise<void> entered;
  std::promise<unsigned long> seen;
  std::jthread other([&] {
    entered.get_future().wait();
    seen.set_value(self_inode());
  });
  {
    auto s = NetnsScope::enter(name_);
    if (!s) entered.set_value();
    ASSERT_TRUE(s.has_value()) << s.error();
    EXPECT_EQ(self_inode(), *target);
    entered.set_value();
    EXPECT_EQ(seen.get_future().get(), home);
    EXPECT_TRUE(s->leave());
    EXPECT_EQ(self_inode(), home);
    EXPECT_TRUE(s->leave());  // a second leave is harmless
  }
  other.join();
  EXPECT_TRUE(thread_netns_home_ok());
}

TEST_F(NetnsTest, DestructorReturnsHome) {
  unsigned long home = self_inode();
  {
    auto s = NetnsScope::enter(name_);
    ASSERT_TRUE(s.has_value()) << s.error();
    auto moved = std::move(*s);
    EXPECT_NE(self_inode(), home);
  }
  EXPECT_EQ(self_inode(), home);
}

TEST_F(NetnsTest, PidSpec) {
  unsigned long home = self_inode();
  auto s = NetnsScope::enter(fmt::format("pid:{}", ::getpid()));
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_EQ(self_inode(), home);
}

/// Reports the network namespace its worker thread is in.
class WhereStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{.name = "test.where", .summary = "test: this thread's netns inode"};
    return s;
  }
  StepOutput run(StepContext& ctx, const Params&) const override {
    auto ino = netns_inode("/proc/thread-self/ns/net");
    if (!ino) return StepOutput::error(ino.error());
    StepOutput out;
    out.facts["inode"] = *ino;
    out.facts["netns"] = ctx.netns;
    return out;
  }
};

TEST_F(NetnsTest, SchedulerRunsEachStepInItsNamespace) {
  static const bool registered = Registry::instance().add(std::make_unique<WhereStep>()).has_value();
  ASSERT_TRUE(registered);
  unsigned long home = self_inode();
  unsigned long inside = netns_inode("/run/netns/" + name_).value_or(0);
  Plan pb;
  pb.name = "where";
  for (int i = 0; i < 12; ++i) {
    StepDef d;
    d.id = "s" + std::to_string(i);
    d.uses = "test.where";
    d.step = Registry::instance().find("test.where");
    d.netns = i % 3 == 0 ? "host" : i % 3 == 1 ? name_ : "/run/netns/" + name_;
    pb.steps.push_back(std::move(d));
  }
  RunOptions opts;
  opts.jobs = 2;
  std::atomic<bool> never{false};
  link_graph(pb);
  Session session(pb, opts);
  RunReport r = session.run(nullptr, never);
  ASSERT_EQ(r.steps.size(), 12u);
  for (size_t i = 0; i < r.steps.size(); ++i) {
    const auto& s = r.steps[i];
    ASSERT_EQ(s.status, Status::kPass) << s.id << ": " << s.message;
    EXPECT_EQ(s.facts["inode"], i % 3 == 0 ? home : inside) << s.id << " in " << s.netns;
  }
  EXPECT_EQ(self_inode(), home);
}

}  // namespace
}  // namespace netplay
