/// Netlink steps: formatters on canned values, then the steps themselves run inside a
/// network namespace this test creates (root required: fails, never skips, without it).

#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runner/step/netlink_socket.h"
#include "runner/step/netns.h"
#include "runner/step/step.h"
#include "steps/net/netlink.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

using ::testing::HasSubstr;

// ---- Pure helpers ----

TEST(NetlinkFormat, Mac) {
  const unsigned char mac[] = {0xaa, 0xaa, 0x0a, 0xff, 0xd3, 0x28};
  EXPECT_EQ(nl::format_mac(mac, 6), "aa:aa:0a:ff:d3:28");
  EXPECT_EQ(nl::format_mac(mac, 0), "");
}

TEST(NetlinkFormat, OperState) {
  EXPECT_EQ(nl::oper_state_name(6), "UP");
  EXPECT_EQ(nl::oper_state_name(2), "DOWN");
  EXPECT_EQ(nl::oper_state_name(3), "LOWERLAYERDOWN");
  EXPECT_EQ(nl::oper_state_name(0), "UNKNOWN");
  EXPECT_EQ(nl::oper_state_name(99), "UNKNOWN");
}

TEST(NetlinkFormat, LinkFlagsInIpOrder) {
  unsigned f = IFF_UP | IFF_BROADCAST | IFF_MULTICAST | IFF_LOWER_UP | IFF_RUNNING;
  EXPECT_THAT(nl::link_flag_names(f),
              ::testing::ElementsAre("BROADCAST", "MULTICAST", "UP", "LOWER_UP"));
  EXPECT_THAT(nl::link_flag_names(IFF_UP | IFF_BROADCAST),
              ::testing::ElementsAre("NO-CARRIER", "BROADCAST", "UP"));
}

TEST(NetlinkFormat, NeighStates) {
  EXPECT_EQ(nl::neigh_state_main(NUD_PERMANENT), "PERMANENT");
  EXPECT_EQ(nl::neigh_state_main(NUD_STALE), "STALE");
  EXPECT_EQ(nl::neigh_state_main(0), "NONE");
  EXPECT_THAT(nl::neigh_state_names(NUD_REACHABLE | NUD_NOARP),
              ::testing::ElementsAre("NOARP", "REACHABLE"));
  EXPECT_THAT(nl::neigh_flag_names(NTF_SELF | NTF_ROUTER),
              ::testing::ElementsAre("self", "router"));
}

TEST(NetlinkFormat, ScopeAndIp) {
  EXPECT_EQ(nl::scope_name(RT_SCOPE_UNIVERSE), "global");
  EXPECT_EQ(nl::scope_name(RT_SCOPE_LINK), "link");
  EXPECT_EQ(nl::scope_name(RT_SCOPE_HOST), "host");
  EXPECT_EQ(nl::scope_name(17), "17");
  auto a = nl::parse_ip("10.255.211.40");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(nl::addr_str(a->get()), "10.255.211.40");
  auto b = nl::parse_ip("fe80::1");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(nl::addr_str(b->get()), "fe80::1");
  auto bad = nl::parse_ip("10.0.0.1/24");
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error(), HasSubstr("not an IP address"));
}

TEST(NetlinkSocket, WaitEndsAtTheDeadline) {
  auto sock = NetlinkSocket::open(NETLINK_ROUTE, Clock::now() + std::chrono::milliseconds(80),
                                  nullptr);
  ASSERT_TRUE(sock.has_value()) << sock.error();
  auto r = (*sock)->receive(4242, "test");  // nothing was asked: nothing will come
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "test: timed out waiting for the kernel");
  EXPECT_EQ(r.error().kernel_errno, 0);
  // Past the deadline, nothing is even sent.
  auto late = (*sock)->request(RTM_GETLINK, {}, "late");
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().message, "late: timed out waiting for the kernel");
}

TEST(NetlinkSocket, CancellationEndsAWait) {
  std::atomic<bool> cancel{false};
  auto sock = NetlinkSocket::open(NETLINK_ROUTE, Clock::now() + std::chrono::seconds(20), &cancel);
  ASSERT_TRUE(sock.has_value()) << sock.error();
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel = true;
  });
  auto r = (*sock)->receive(4242, "neighbour dump");
  canceller.join();
  ASSERT_FALSE(r.has_value());
  // Cancelled, not timed out: the 20 s deadline is far away.
  EXPECT_EQ(r.error().message, "neighbour dump: cancelled");
}

TEST(NetlinkSocket, KernelErrorsCarryTheirErrno) {
  auto sock = NetlinkSocket::open(NETLINK_ROUTE, Clock::now() + std::chrono::seconds(5), nullptr);
  ASSERT_TRUE(sock.has_value()) << sock.error();
  ifinfomsg ifi{};
  ifi.ifi_index = 0x7ffffff0;  // no such interface
  auto r = (*sock)->request(RTM_GETLINK, nl::bytes_of(ifi), "link lookup");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kernel_errno, ENODEV);
  EXPECT_EQ(r.error().message, "link lookup: No such device");
}

// ---- Steps in a namespace of our own ----

void sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << "command failed: " << cmd;
}

class NetlinkNs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0u) << "netlink step tests need root (network namespaces)";
    ns_ = fmt::format("npu{}", getpid());
    std::string x = "ip -n " + ns_ + " ";
    std::system(("ip netns del " + ns_ + " 2>/dev/null").c_str());
    sh("ip netns add " + ns_);
    sh(x + "link set lo up");
    // No dummy driver everywhere: a veth pair stands in for an uplink.
    sh(x + "link add dummy0 mtu 1400 address 02:00:00:00:00:01 type veth peer name uplink");
    sh(x + "link set uplink up");
    sh(x + "link set dummy0 up");
    sh(x + "addr add 192.0.2.1/24 dev dummy0");
    sh(x + "addr add 2001:db8::1/64 dev dummy0 nodad");
    sh(x + "link add s-010255000002 address aa:aa:0a:ff:00:02 type veth peer name "
               "c-010255000002 address ee:ee:0a:ff:00:02");
    sh(x + "addr add 169.254.0.1 peer 10.255.0.2/32 dev s-010255000002");
    sh(x + "link set s-010255000002 up");
    sh(x + "link add br0 type bridge");
    sh(x + "link set c-010255000002 master br0");
    sh(x + "link set br0 up");
    sh(x + "link set c-010255000002 up");
    sh(x + "route add 198.51.100.0/24 via 192.0.2.254 dev dummy0 metric 7");
    sh(x + "route add default via 192.0.2.254 dev dummy0");
    sh(x + "route add blackhole 203.0.113.0/24");
    sh(x + "route add unreachable 203.0.114.0/24");
    sh(x + "neigh add 192.0.2.9 lladdr 02:00:00:00:00:09 dev dummy0 nud permanent");
    sh(x + "neigh add 192.0.2.10 lladdr 02:00:00:00:00:0a dev dummy0 nud stale");
    sh(x + "link add vx0 type vxlan id 42 dstport 4789 dev dummy0 local 192.0.2.1 gbp "
               "nolearning ttl 64");
    sh(x + "link set vx0 up");
    sh("bridge -n " + ns_ + " fdb append 00:00:00:00:00:00 dev vx0 dst 192.0.2.7");
    sh("bridge -n " + ns_ + " fdb add ee:ee:0a:ff:01:00 dev vx0 dst 192.0.2.8 self permanent");
  }
  static void TearDownTestSuite() {
    if (!ns_.empty()) std::system(("ip netns del " + ns_).c_str());
  }

  void SetUp() override {
    auto s = NetnsScope::enter(ns_);
    ASSERT_TRUE(s.has_value()) << s.error();
    scope_.emplace(std::move(*s));
  }
  void TearDown() override { scope_.reset(); }

  StepOutput run(const std::string& step, json params) {
    StepContext ctx;
    ctx.deadline = Clock::now() + std::chrono::seconds(5);
    ctx.netns = ns_;
    return run_step(step, std::move(params), nullptr, ctx);
  }

  static inline std::string ns_;
  std::optional<NetnsScope> scope_;
};

TEST_F(NetlinkNs, LinkBasics) {
  auto o = run("link", {{"name", "dummy0"}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["exists"], true);
  EXPECT_EQ(o.facts["kind"], "veth");
  EXPECT_EQ(o.facts["mtu"], 1400);
  EXPECT_EQ(o.facts["mac"], "02:00:00:00:00:01");
  EXPECT_EQ(o.facts["admin_up"], true);
  EXPECT_EQ(o.facts["oper_state"], "UP");
  EXPECT_EQ(o.facts["peer_name"], "uplink");
  EXPECT_THAT(o.facts["flags"].dump(), HasSubstr("\"UP\""));
  EXPECT_FALSE(o.facts.contains("master"));
}

TEST_F(NetlinkNs, LinkVethPeerAndMaster) {
  auto o = run("link", {{"name", "c-010255000002"}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["kind"], "veth");
  EXPECT_EQ(o.facts["mac"], "ee:ee:0a:ff:00:02");
  EXPECT_EQ(o.facts["master"], "br0");
  EXPECT_EQ(o.facts["peer_name"], "s-010255000002");
  EXPECT_FALSE(o.facts.contains("peer_netnsid"));
  auto host = run("link", {{"name", "s-010255000002"}});
  EXPECT_EQ(host.facts["peer_index"], o.facts["index"]);
  EXPECT_EQ(host.facts["oper_state"], "UP");
  auto lo = run("link", {{"index", 1}});
  EXPECT_EQ(lo.facts["name"], "lo");
  EXPECT_EQ(lo.facts["kind"], "loopback");
}

TEST_F(NetlinkNs, LinkMissingFailsListingInterfaces) {
  auto o = run("link", {{"name", "eth9"}});
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_THAT(o.message, HasSubstr("interface 'eth9' not found in this namespace; "
                                   "interfaces here: lo, uplink, dummy0"));
  EXPECT_EQ(o.facts["exists"], false);
  auto lenient = run("link", {{"name", "eth9"}, {"must_exist", false}});
  EXPECT_EQ(lenient.status, Status::kPass);
  EXPECT_EQ(lenient.facts["exists"], false);
}

TEST_F(NetlinkNs, SocketTalksToTheEnteredNamespace) {
  auto sock = NetlinkSocket::open(NETLINK_ROUTE, Clock::now() + std::chrono::seconds(5), nullptr);
  ASSERT_TRUE(sock.has_value()) << sock.error();
  auto t = nl::LinkTable::dump(**sock);
  ASSERT_TRUE(t.has_value()) << t.error();
  EXPECT_NE(t->by_name("dummy0"), nullptr);
  EXPECT_EQ(t->all().front(), t->by_index(1));
  EXPECT_EQ(t->name_of(1), "lo");
}

TEST_F(NetlinkNs, AddrByInterfaceAndByPeerIp) {
  auto o = run("addr", {{"interface", "dummy0"}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["count"], 3);  // 192.0.2.1/24, 2001:db8::1/64, the fe80:: link-local
  EXPECT_EQ(o.facts["addresses"][0]["ip"], "192.0.2.1");
  EXPECT_EQ(o.facts["addresses"][0]["prefix"], 24);
  EXPECT_EQ(o.facts["addresses"][0]["scope"], "global");
  EXPECT_THAT(o.facts["ips"].dump(), HasSubstr("2001:db8::1"));
  auto v4 = run("addr", {{"interface", "dummy0"}, {"family", "inet"}});
  EXPECT_EQ(v4.facts["count"], 1);

  auto peer = run("addr", {{"ip", "10.255.0.2"}});
  ASSERT_EQ(peer.status, Status::kPass) << peer.message;
  EXPECT_EQ(peer.facts["interface"], "s-010255000002");
  EXPECT_EQ(peer.facts["matched_as"], "peer");
  EXPECT_EQ(peer.facts["matched"]["ip"], "169.254.0.1");
  EXPECT_EQ(peer.facts["matched"]["peer"], "10.255.0.2");

  auto none = run("addr", {{"ip", "10.9.9.9"}});
  EXPECT_EQ(none.status, Status::kFail);
  EXPECT_THAT(none.message, HasSubstr("no interface in this namespace has address 10.9.9.9"));
  EXPECT_THAT(none.message, HasSubstr("dummy0 192.0.2.1/24"));
  auto missing = run("addr", {{"interface", "nope"}});
  EXPECT_EQ(missing.status, Status::kFail);
  EXPECT_THAT(missing.message, HasSubstr("interfaces here: lo,"));
}

TEST_F(NetlinkNs, RouteLookupLikeIpRouteGet) {
  auto o = run("route", {{"destination", "198.51.100.77"}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["dev"], "dummy0");
  EXPECT_EQ(o.facts["gateway"], "192.0.2.254");
  EXPECT_EQ(o.facts["src"], "192.0.2.1");
  EXPECT_EQ(o.facts["type"], "unicast");
  EXPECT_EQ(o.facts["table"], "main");
  auto from = run("route", {{"destination", "198.51.100.77"}, {"from", "2001:db8::1"}});
  EXPECT_EQ(from.status, Status::kError) << "mixed families must not pass: " << from.message;
  auto sourced = run("route", {{"destination", "198.51.100.77"}, {"from", "192.0.2.1"}});
  ASSERT_EQ(sourced.status, Status::kPass) << sourced.message;
  EXPECT_EQ(sourced.facts["src"], "192.0.2.1") << sourced.facts.dump();
  auto local = run("route", {{"destination", "192.0.2.1"}});
  EXPECT_EQ(local.facts["type"], "local");
  // With no policy rules the kernel merges the local table into main and says so.
  EXPECT_EQ(local.facts["table"], "main");
  EXPECT_EQ(local.facts["dev"], "lo");
  auto bh = run("route", {{"destination", "203.0.113.5"}});
  EXPECT_EQ(bh.status, Status::kFail) << bh.message;
  EXPECT_EQ(bh.facts["type"], "blackhole");
  EXPECT_THAT(bh.message, HasSubstr("203.0.113.5 is not routable: blackhole 203.0.113.0/24"));
  auto unreach = run("route", {{"destination", "203.0.114.5"}});
  EXPECT_EQ(unreach.status, Status::kFail) << unreach.message;
  EXPECT_EQ(unreach.facts["type"], "unreachable");
  EXPECT_EQ(unreach.facts["reason"], "No route to host");
}

TEST_F(NetlinkNs, RouteNoRoute) {
  // A namespace with only a default route: delete it temporarily is racy, so use v6.
  auto o = run("route", {{"destination", "2001:db9::1"}});
  EXPECT_EQ(o.status, Status::kFail) << o.message;
  EXPECT_EQ(o.facts["found"], false);
  EXPECT_THAT(o.message, HasSubstr("no route to 2001:db9::1"));
  auto lenient = run("route", {{"destination", "2001:db9::1"}, {"must_exist", false}});
  EXPECT_EQ(lenient.status, Status::kPass);
}

TEST_F(NetlinkNs, RouteExactCidrAndDefault) {
  auto o = run("route", {{"cidr", "198.51.100.0/24"}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["metric"], 7);
  EXPECT_EQ(o.facts["gateway"], "192.0.2.254");
  EXPECT_EQ(o.facts["count"], 1);
  auto d = run("route", {{"default", true}});
  ASSERT_EQ(d.status, Status::kPass) << d.message;
  EXPECT_EQ(d.facts["destination"], "default");
  EXPECT_EQ(d.facts["dev"], "dummy0");
  auto none = run("route", {{"cidr", "198.51.0.0/16"}});
  EXPECT_EQ(none.status, Status::kFail);
  EXPECT_EQ(none.facts["found"], false);
  auto d6 = run("route", {{"default", true}, {"family", "inet6"}, {"must_exist", false}});
  EXPECT_EQ(d6.status, Status::kPass);
  EXPECT_EQ(d6.facts["found"], false);
}

TEST_F(NetlinkNs, Neighbours) {
  auto o = run("neigh", {{"ip", "192.0.2.9"}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["present"], true);
  EXPECT_EQ(o.facts["lladdr"], "02:00:00:00:00:09");
  EXPECT_EQ(o.facts["state"], "PERMANENT");
  EXPECT_EQ(o.facts["dev"], "dummy0");
  auto stale = run("neigh", {{"ip", "192.0.2.10"}, {"dev", "dummy0"}});
  EXPECT_EQ(stale.facts["state"], "STALE");
  auto wrong_dev = run("neigh", {{"ip", "192.0.2.9"}, {"dev", "br0"}});
  EXPECT_EQ(wrong_dev.status, Status::kFail);
  EXPECT_THAT(wrong_dev.message, HasSubstr("no neighbour entry for 192.0.2.9 on dev br0"));
  auto none = run("neigh", {{"ip", "192.0.2.99"}});
  EXPECT_EQ(none.status, Status::kFail);
  EXPECT_THAT(none.message, HasSubstr("no neighbour entry for 192.0.2.99; entries here: "));
  EXPECT_THAT(none.message, HasSubstr("192.0.2.9 02:00:00:00:00:09 on dummy0 (PERMANENT)"));
  auto lenient = run("neigh", {{"ip", "192.0.2.99"}, {"must_exist", false}});
  EXPECT_EQ(lenient.status, Status::kPass);
  EXPECT_EQ(lenient.facts["present"], false);
}

TEST_F(NetlinkNs, FdbOfVxlanAndBridge) {
  auto o = run("fdb", {{"device", "vx0"}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["count"], 2);
  auto m = run("fdb", {{"device", "vx0"}, {"mac", "EE:EE:0A:FF:01:00"}});
  ASSERT_EQ(m.status, Status::kPass) << m.message;
  ASSERT_EQ(m.facts["count"], 1);
  EXPECT_EQ(m.facts["entries"][0]["dst"], "192.0.2.8");
  EXPECT_EQ(m.facts["entries"][0]["state"], "permanent");
  EXPECT_THAT(m.facts["entries"][0]["flags"].dump(), HasSubstr("self"));
  auto d = run("fdb", {{"device", "vx0"}, {"dst", "192.0.2.7"}});
  EXPECT_EQ(d.facts["macs"][0], "00:00:00:00:00:00");
  auto none = run("fdb", {{"device", "vx0"}, {"mac", "ee:ee:0a:ff:09:00"}});
  EXPECT_EQ(none.status, Status::kFail);
  EXPECT_THAT(none.message, HasSubstr("no FDB entry for ee:ee:0a:ff:09:00 on vx0; entries here: "));
  EXPECT_THAT(none.message, HasSubstr("ee:ee:0a:ff:01:00 dst 192.0.2.8 permanent"));
  auto br = run("fdb", {{"device", "br0"}, {"mac", "ee:ee:0a:ff:00:02"}});
  ASSERT_EQ(br.status, Status::kPass) << br.message;
  EXPECT_EQ(br.facts["entries"][0]["dev"], "c-010255000002");
}

TEST_F(NetlinkNs, VxlanVtep) {
  auto o = run("vxlan.vtep", {{"device", "vx0"}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["vni"], 42);
  EXPECT_EQ(o.facts["dstport"], 4789);
  EXPECT_EQ(o.facts["local"], "192.0.2.1");
  EXPECT_EQ(o.facts["dev"], "dummy0");
  EXPECT_EQ(o.facts["gbp"], true);
  EXPECT_EQ(o.facts["learning"], false);
  EXPECT_EQ(o.facts["ttl"], 64);
  EXPECT_EQ(o.facts["ageing"], 300);
  EXPECT_EQ(o.facts["admin_up"], true);
  EXPECT_EQ(o.facts["mtu"], 1350);  // dummy0's 1400 minus the 50-byte VXLAN overhead
  auto br = run("vxlan.vtep", {{"device", "br0"}});
  EXPECT_EQ(br.status, Status::kFail);
  EXPECT_EQ(br.message, "br0 is a bridge, not vxlan");
  auto missing = run("vxlan.vtep", {});
  EXPECT_EQ(missing.status, Status::kFail);
  EXPECT_THAT(missing.message, HasSubstr("interface 'silk-vtep' not found"));
}

TEST_F(NetlinkNs, NetnsidOfPeerNamespaceMatchesLinkFact) {
  std::string other = ns_ + "b";
  std::system(("ip netns del " + other + " 2>/dev/null").c_str());
  sh("ip netns add " + other);
  sh("ip -n " + ns_ + " link add xa type veth peer name xb netns " + other);
  auto l = run("link", {{"name", "xa"}});
  int fd = ::open(("/run/netns/" + other).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto sock = NetlinkSocket::open(NETLINK_ROUTE, Clock::now() + std::chrono::seconds(5), nullptr);
  ASSERT_TRUE(sock.has_value());
  auto id = (*sock)->netnsid_of_fd(fd);
  ::close(fd);
  std::system(("ip netns del " + other).c_str());
  ASSERT_TRUE(id.has_value()) << id.error();
  ASSERT_TRUE(l.facts.contains("peer_netnsid")) << l.facts.dump();
  EXPECT_EQ(l.facts["peer_netnsid"], *id);
  EXPECT_GE(*id, 0);
  EXPECT_FALSE(l.facts.contains("peer_name"));
}

}  // namespace
}  // namespace netplay
