#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "runner/step/netns.h"
#include "runner/step/step.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

StepOutput read_key(const std::string& key) { return run_step("sysctl", {{"key", key}}, nullptr); }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

TEST(SysctlStep, ReadsHostKey) {
  auto o = read_key("kernel.ostype");
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["value"], "Linux");
  EXPECT_FALSE(o.facts.contains("int"));
  EXPECT_EQ(o.message, "kernel.ostype = Linux");
}

TEST(SysctlStep, IntegerValue) {
  auto o = read_key("net.ipv4.ip_forward");
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["value"], slurp("/proc/sys/net/ipv4/ip_forward"));
  EXPECT_EQ(o.facts["int"], std::stoll(slurp("/proc/sys/net/ipv4/ip_forward")));
}

TEST(SysctlStep, SlashSeparatedKeyIsUsedAsIs) {
  auto o = read_key("kernel/ostype");
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["value"], "Linux");
}

TEST(SysctlStep, MultiValuedKeyKeepsFields) {
  auto o = read_key("net.ipv4.ip_local_port_range");
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_NE(o.facts["value"].get<std::string>().find('\t'), std::string::npos);
  EXPECT_FALSE(o.facts.contains("int"));
}

TEST(SysctlStep, MissingKeyIsAnErrorWithSuggestion) {
  auto o = read_key("net.ipv4.ip_forwrd");
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "no sysctl key 'net.ipv4.ip_forwrd' (did you mean 'ip_forward'?)");
  EXPECT_TRUE(o.facts.empty());  // never an empty value
}

TEST(SysctlStep, InvalidKeys) {
  for (const char* key : {"", "net..ipv4", "net.ipv4.", "../../etc/passwd", "kernel/../../etc"}) {
    auto o = read_key(key);
    EXPECT_EQ(o.status, Status::kError) << "'" << key << "': " << o.message;
  }
}

TEST(SysctlStep, DirectoryIsAnError) {
  auto o = read_key("net.ipv4");
  EXPECT_EQ(o.status, Status::kError);
}

/// net.* keys must be read in the namespace the calling thread entered (the scheduler's
/// worker does setns; the step opens /proc/sys on that thread).
TEST(SysctlStep, ReadsTheNamespaceTheThreadEntered) {
  ASSERT_EQ(::geteuid(), 0u) << "this test needs root (ip netns, setns)";
  std::string ns = "np-sysctl-" + std::to_string(::getpid());
  ASSERT_EQ(sh("ip netns add " + ns), 0) << "ip netns add failed";
  struct Cleanup {
    std::string ns;
    ~Cleanup() { sh("ip netns del " + ns); }
  } cleanup{ns};

  std::string host = slurp("/proc/sys/net/ipv4/ip_forward");
  ASSERT_TRUE(host == "0" || host == "1") << host;
  std::string inside = host == "1" ? "0" : "1";
  ASSERT_EQ(sh("ip netns exec " + ns + " sysctl -w net.ipv4.ip_forward=" + inside), 0);
  // An interface whose name holds a dot, reached with sysctl(8)'s '/' convention.
  ASSERT_EQ(sh("ip -n " + ns + " link add d0.5 type veth peer name d1"), 0);
  ASSERT_EQ(sh("ip netns exec " + ns + " sysctl -w net.ipv4.conf.d0/5.rp_filter=2"), 0);

  {
    auto scope = NetnsScope::enter(ns);
    ASSERT_TRUE(scope.has_value()) << scope.error();
    auto o = read_key("net.ipv4.ip_forward");
    EXPECT_EQ(o.status, Status::kPass) << o.message;
    EXPECT_EQ(o.facts["value"], inside);
    o = read_key("net.ipv4.conf.d0/5.rp_filter");
    EXPECT_EQ(o.status, Status::kPass) << o.message;
    EXPECT_EQ(o.facts["int"], 2);
    o = read_key("net/ipv4/conf/d0.5/rp_filter");
    EXPECT_EQ(o.facts["int"], 2);
    ASSERT_TRUE(scope->leave());
  }
  auto o = read_key("net.ipv4.ip_forward");
  EXPECT_EQ(o.facts["value"], host);
  o = read_key("net.ipv4.conf.d0/5.rp_filter");
  EXPECT_EQ(o.status, Status::kError);  // that interface only exists inside
}

}  // namespace
}  // namespace netplay
