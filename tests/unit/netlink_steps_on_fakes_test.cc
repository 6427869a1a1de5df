/// The netlink steps' logic on canned kernel answers (FakeNetlink): no root, no namespace,
/// no socket. run_step also fails a test whose step reports an undeclared fact. A Silk cell as the kernel would describe it: eth0 (underlay), silk-vtep, a
/// container's host-side veth, a bridge with a port.

#include <linux/genetlink.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runner/step/fakes.h"
#include "tests/unit/support/netlink_canned.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr int kLo = 1, kEth0 = 2, kVtep = 3, kHostVeth = 4, kBridge = 5, kPort = 6, kPortPeer = 7;

NlMessages cell_links() {
  return {
      canned::link({.index = kLo,
                    .name = "lo",
                    .flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP,
                    .oper_state = IF_OPER_UNKNOWN,
                    .mtu = 65536,
                    .mac = "00:00:00:00:00:00",
                    .arptype = ARPHRD_LOOPBACK}),
      canned::link({.index = kEth0, .name = "eth0", .mac = "02:00:00:00:00:01", .qdisc = "mq"}),
      canned::vxlan({.index = kVtep,
                     .name = "silk-vtep",
                     .oper_state = IF_OPER_UNKNOWN,
                     .mtu = 1450,
                     .mac = "ee:ee:0a:ff:01:00"},
                    {.vni = 1,
                     .dstport = 4789,
                     .local = "10.0.0.1",
                     .dev = kEth0,
                     .learning = false,
                     .gbp = true}),
      canned::link({.index = kHostVeth,
                    .name = "s-010255001011",
                    .kind = "veth",
                    .mac = "aa:aa:0a:ff:01:0b",
                    .link = 2,
                    .link_netnsid = 0}),
      canned::link({.index = kBridge, .name = "br0", .kind = "bridge", .mac = "02:00:00:00:00:05"}),
      canned::link({.index = kPort,
                    .name = "c-port",
                    .kind = "veth",
                    .flags = IFF_UP | IFF_BROADCAST | IFF_MULTICAST,
                    .oper_state = IF_OPER_LOWERLAYERDOWN,
                    .mac = "02:00:00:00:00:06",
                    .master = kBridge,
                    .link = kPortPeer}),
      canned::link({.index = kPortPeer,
                    .name = "c-peer",
                    .kind = "veth",
                    .flags = IFF_BROADCAST | IFF_MULTICAST,
                    .oper_state = IF_OPER_DOWN,
                    .mac = "02:00:00:00:00:07",
                    .link = kPort}),
  };
}

/// Fakes answering the cell's link dump.
struct Cell : FakeServices {
  Cell() { fake_netlink.on_dump(RTM_GETLINK, cell_links()); }
};

/// The family header of the n-th request, as the step sent it.
template <typename T>
T sent_header(const FakeNetlink& nl, size_t n) {
  auto reqs = nl.requests();
  T h{};
  if (n < reqs.size() && reqs[n].payload.size() >= sizeof h)
    std::memcpy(&h, reqs[n].payload.data(), sizeof h);
  else
    ADD_FAILURE() << "no request " << n << " with a header";
  return h;
}

// ---- link ----

TEST(LinkOnFakes, VethWhosePeerIsInAnotherNamespace) {
  Cell cell;
  auto o = run_step("link", {{"name", "s-010255001011"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "s-010255001011@if2 (netnsid 0): veth UP mtu 1500 mac aa:aa:0a:ff:01:0b");
  EXPECT_EQ(o.facts["exists"], true);
  EXPECT_EQ(o.facts["index"], kHostVeth);
  EXPECT_EQ(o.facts["kind"], "veth");
  EXPECT_EQ(o.facts["admin_up"], true);
  EXPECT_EQ(o.facts["lower_up"], true);
  EXPECT_EQ(o.facts["oper_state"], "UP");
  EXPECT_EQ(o.facts["mtu"], 1500);
  EXPECT_EQ(o.facts["mac"], "aa:aa:0a:ff:01:0b");
  EXPECT_EQ(o.facts["broadcast"], "ff:ff:ff:ff:ff:ff");
  EXPECT_EQ(o.facts["peer_index"], 2);
  EXPECT_EQ(o.facts["peer_netnsid"], 0);
  EXPECT_FALSE(o.facts.contains("peer_name"));  // its name is only known in the other namespace
  EXPECT_EQ(o.facts["qdisc"], "noqueue");
  EXPECT_EQ(o.facts["flags"], json({"BROADCAST", "MULTICAST", "UP", "LOWER_UP"}));
  auto reqs = cell.fake_netlink.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0].dump);
  EXPECT_EQ(reqs[0].type, RTM_GETLINK);
}

TEST(LinkOnFakes, BridgePortWithItsPeerHere) {
  Cell cell;
  auto o = run_step("link", {{"name", "c-port"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["master"], "br0");
  EXPECT_EQ(o.facts["master_index"], kBridge);
  EXPECT_EQ(o.facts["peer_name"], "c-peer");
  EXPECT_EQ(o.facts["oper_state"], "LOWERLAYERDOWN");
  EXPECT_EQ(o.facts["lower_up"], false);
  EXPECT_EQ(o.facts["flags"], json({"NO-CARRIER", "BROADCAST", "MULTICAST", "UP"}));
  EXPECT_THAT(o.message, HasSubstr(" master br0"));
}

TEST(LinkOnFakes, ByIndexAndKinds) {
  Cell cell;
  auto lo = run_step("link", {{"index", 1}}, &cell);
  EXPECT_EQ(lo.facts["name"], "lo");
  EXPECT_EQ(lo.facts["kind"], "loopback");
  auto nic = run_step("link", {{"name", "eth0"}}, &cell);
  EXPECT_EQ(nic.facts["kind"], "device");
  EXPECT_EQ(nic.facts["qdisc"], "mq");
}

TEST(LinkOnFakes, MissingInterfaceFailsListingThoseHere) {
  Cell cell;
  auto o = run_step("link", {{"name", "eth9"}}, &cell);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "interface 'eth9' not found in this namespace; interfaces here: lo, eth0, silk-vtep, "
            "s-010255001011, br0, c-port, c-peer");
  EXPECT_EQ(o.facts["exists"], false);
  EXPECT_EQ(o.facts["interfaces"].size(), 7u);
  auto lenient = run_step("link", {{"name", "eth9"}, {"must_exist", false}}, &cell);
  EXPECT_EQ(lenient.status, Status::kPass);
  EXPECT_EQ(lenient.facts["exists"], false);
}

TEST(LinkOnFakes, KernelErrorIsAnErrorNeverAbsence) {
  FakeServices fakes;
  fakes.fake_netlink.refuse(RTM_GETLINK, EPERM, /*dump=*/true);
  auto o = run_step("link", {{"name", "eth0"}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "link dump: Operation not permitted");
  EXPECT_FALSE(o.facts.contains("exists"));
}

TEST(LinkOnFakes, CancelledAndTimedOutStepsGetNoAnswer) {
  Cell cell;
  std::atomic<bool> cancel{true};
  StepContext ctx;
  ctx.cancelled = &cancel;
  auto o = run_step("link", {{"name", "eth0"}}, &cell, ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "link dump: cancelled");

  StepContext late;
  late.deadline = cell.fake_clock.now() + 1s;
  cell.fake_clock.advance(Millis(1000));
  auto t = run_step("link", {{"name", "eth0"}}, &cell, late);
  EXPECT_EQ(t.status, Status::kError);
  EXPECT_EQ(t.message, "link dump: timed out waiting for the kernel");
}

TEST(LinkOnFakes, ServiceThatCannotOpenIsAnError) {
  FakeServices fakes;
  fakes.fake_netlink.fail_open("netlink: cannot open a socket: Too many open files");
  auto o = run_step("link", {{"name", "eth0"}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "netlink: cannot open a socket: Too many open files");
}

// ---- vxlan.vtep ----

TEST(VxlanVtepOnFakes, SilkVtep) {
  Cell cell;
  auto o = run_step("vxlan.vtep", json::object(), &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "silk-vtep: vni 1 dstport 4789 local 10.0.0.1 dev eth0 gbp nolearning up");
  EXPECT_EQ(o.facts["device"], "silk-vtep");
  EXPECT_EQ(o.facts["kind"], "vxlan");
  EXPECT_EQ(o.facts["index"], kVtep);
  EXPECT_EQ(o.facts["vni"], 1);
  EXPECT_EQ(o.facts["dstport"], 4789);
  EXPECT_EQ(o.facts["local"], "10.0.0.1");
  EXPECT_EQ(o.facts["group"], "");
  EXPECT_EQ(o.facts["remote"], "");
  EXPECT_EQ(o.facts["dev"], "eth0");
  EXPECT_EQ(o.facts["dev_index"], kEth0);
  EXPECT_EQ(o.facts["gbp"], true);
  EXPECT_EQ(o.facts["learning"], false);
  EXPECT_EQ(o.facts["ttl"], 0);
  EXPECT_EQ(o.facts["ageing"], 300);
  EXPECT_EQ(o.facts["mtu"], 1450);
  EXPECT_EQ(o.facts["mac"], "ee:ee:0a:ff:01:00");
  EXPECT_EQ(o.facts["admin_up"], true);
  EXPECT_EQ(o.facts["oper_state"], "UNKNOWN");
}

TEST(VxlanVtepOnFakes, UnicastRemoteAndMulticastGroup) {
  FakeServices fakes;
  fakes.fake_netlink.on_dump(
      RTM_GETLINK, {canned::vxlan({.index = 1, .name = "vx-uni"}, {.vni = 7, .group = "10.0.0.9"}),
                    canned::vxlan({.index = 2, .name = "vx-mc"}, {.vni = 8, .group = "239.1.1.1"})});
  auto uni = run_step("vxlan.vtep", {{"device", "vx-uni"}}, &fakes);
  EXPECT_EQ(uni.facts["remote"], "10.0.0.9");
  EXPECT_EQ(uni.facts["group"], "");
  EXPECT_EQ(uni.facts["learning"], true);
  EXPECT_EQ(uni.facts["gbp"], false);
  auto mc = run_step("vxlan.vtep", {{"device", "vx-mc"}}, &fakes);
  EXPECT_EQ(mc.facts["group"], "239.1.1.1");
  EXPECT_EQ(mc.facts["remote"], "");
}

TEST(VxlanVtepOnFakes, WrongKindFailsWithTheRealKind) {
  Cell cell;
  auto o = run_step("vxlan.vtep", {{"device", "br0"}}, &cell);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "br0 is a bridge, not vxlan");
  EXPECT_EQ(o.facts["kind"], "bridge");
  auto veth = run_step("vxlan.vtep", {{"device", "c-port"}}, &cell);
  EXPECT_EQ(veth.message, "c-port is a veth, not vxlan");
}

TEST(VxlanVtepOnFakes, MissingDeviceFails) {
  FakeServices fakes;
  fakes.fake_netlink.on_dump(RTM_GETLINK, {canned::link({.index = 1, .name = "eth0"})});
  auto o = run_step("vxlan.vtep", json::object(), &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "interface 'silk-vtep' not found in this namespace; interfaces here: eth0");
}

// ---- neigh ----

struct CellWithNeighbours : Cell {
  CellWithNeighbours() {
    fake_netlink.on_dump(
        RTM_GETNEIGH,
        {canned::neigh({.index = kEth0, .ip = "10.0.0.2", .lladdr = "02:00:00:00:00:02",
                        .state = NUD_STALE}),
         canned::neigh({.index = kVtep, .ip = "10.255.2.0", .lladdr = "ee:ee:0a:ff:02:00",
                        .state = NUD_PERMANENT}),
         canned::neigh({.index = kEth0, .ip = "10.0.0.9", .state = NUD_FAILED}),
         canned::neigh({.index = kEth0, .ip = "fe80::1", .lladdr = "02:00:00:00:00:0f",
                        .state = NUD_REACHABLE, .flags = NTF_ROUTER})});
  }
};

TEST(NeighOnFakes, PermanentEntryOfTheVtep) {
  CellWithNeighbours cell;
  auto o = run_step("neigh", {{"ip", "10.255.2.0"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "10.255.2.0 lladdr ee:ee:0a:ff:02:00 dev silk-vtep PERMANENT");
  EXPECT_EQ(o.facts["present"], true);
  EXPECT_EQ(o.facts["lladdr"], "ee:ee:0a:ff:02:00");
  EXPECT_EQ(o.facts["state"], "PERMANENT");
  EXPECT_EQ(o.facts["states"], json({"PERMANENT"}));
  EXPECT_EQ(o.facts["dev"], "silk-vtep");
  EXPECT_EQ(o.facts["index"], kVtep);
  EXPECT_EQ(o.facts["router"], false);
  EXPECT_EQ(o.facts["count"], 1);
  // The dump asked for IPv4 entries only.
  auto reqs = cell.fake_netlink.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].type, RTM_GETNEIGH);
  EXPECT_EQ(sent_header<ndmsg>(cell.fake_netlink, 1).ndm_family, AF_INET);
}

TEST(NeighOnFakes, Ipv6RouterAndFailedEntries) {
  CellWithNeighbours cell;
  auto v6 = run_step("neigh", {{"ip", "fe80::1"}, {"dev", "eth0"}}, &cell);
  ASSERT_EQ(v6.status, Status::kPass) << v6.message;
  EXPECT_EQ(v6.facts["router"], true);
  EXPECT_EQ(v6.facts["flags"], json({"router"}));
  EXPECT_EQ(sent_header<ndmsg>(cell.fake_netlink, 1).ndm_family, AF_INET6);
  auto failed = run_step("neigh", {{"ip", "10.0.0.9"}}, &cell);
  EXPECT_EQ(failed.facts["state"], "FAILED");
  EXPECT_EQ(failed.facts["lladdr"], "");
}

TEST(NeighOnFakes, NoEntryFailsListingThoseHere) {
  CellWithNeighbours cell;
  auto o = run_step("neigh", {{"ip", "10.255.9.0"}}, &cell);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "no neighbour entry for 10.255.9.0; entries here: 10.0.0.2 02:00:00:00:00:02 on "
            "eth0 (STALE), 10.255.2.0 ee:ee:0a:ff:02:00 on silk-vtep (PERMANENT), 10.0.0.9 - on "
            "eth0 (FAILED)");
  EXPECT_EQ(o.facts["present"], false);
  auto wrong_dev = run_step("neigh", {{"ip", "10.255.2.0"}, {"dev", "eth0"}}, &cell);
  EXPECT_EQ(wrong_dev.status, Status::kFail);
  EXPECT_THAT(wrong_dev.message, HasSubstr("no neighbour entry for 10.255.2.0 on dev eth0"));
  auto missing_dev = run_step("neigh", {{"ip", "10.255.2.0"}, {"dev", "eth7"}}, &cell);
  EXPECT_EQ(missing_dev.status, Status::kFail);
  EXPECT_THAT(missing_dev.message, HasSubstr("interface 'eth7' not found"));
}

TEST(NeighOnFakes, KernelErrorOnTheNeighbourDump) {
  Cell cell;
  cell.fake_netlink.refuse(RTM_GETNEIGH, EINVAL, /*dump=*/true);
  auto o = run_step("neigh", {{"ip", "10.0.0.2"}}, &cell);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "neighbour dump: Invalid argument");
}

// ---- addr ----

struct CellWithAddresses : Cell {
  CellWithAddresses() {
    fake_netlink.on_dump(
        RTM_GETADDR,
        {canned::addr({.index = kLo, .cidr = "127.0.0.1/8", .scope = RT_SCOPE_HOST, .label = "lo"}),
         canned::addr({.index = kEth0, .cidr = "10.0.0.1/24", .label = "eth0"}),
         canned::addr({.index = kVtep, .cidr = "10.255.1.0/16", .scope = RT_SCOPE_LINK}),
         canned::addr({.index = kHostVeth,
                       .cidr = "169.254.0.1",
                       .peer = "10.255.1.11/32",
                       .scope = RT_SCOPE_LINK}),
         canned::addr({.index = kEth0, .cidr = "2001:db8::1/64"})});
  }
};

TEST(AddrOnFakes, AddressesOfAnInterface) {
  CellWithAddresses cell;
  auto o = run_step("addr", {{"interface", "eth0"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "eth0: 10.0.0.1/24, 2001:db8::1/64");
  EXPECT_EQ(o.facts["found"], true);
  EXPECT_EQ(o.facts["index"], kEth0);
  EXPECT_EQ(o.facts["count"], 2);
  EXPECT_EQ(o.facts["ips"], json({"10.0.0.1", "2001:db8::1"}));
  EXPECT_EQ(o.facts["cidrs"], json({"10.0.0.1/24", "2001:db8::1/64"}));
  EXPECT_EQ(o.facts["addresses"][0]["family"], "inet");
  EXPECT_EQ(o.facts["addresses"][0]["scope"], "global");
  EXPECT_EQ(o.facts["addresses"][0]["label"], "eth0");
  EXPECT_EQ(o.facts["addresses"][1]["family"], "inet6");
  auto v6 = run_step("addr", {{"interface", "eth0"}, {"family", "inet6"}}, &cell);
  EXPECT_EQ(v6.facts["count"], 1);
  auto vtep = run_step("addr", {{"interface", "silk-vtep"}}, &cell);
  EXPECT_EQ(vtep.facts["addresses"][0]["prefix"], 16);
  EXPECT_EQ(vtep.facts["addresses"][0]["scope"], "link");
}

TEST(AddrOnFakes, WhichInterfaceHoldsAContainerIpAsPeer) {
  CellWithAddresses cell;
  auto o = run_step("addr", {{"ip", "10.255.1.11"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["interface"], "s-010255001011");
  EXPECT_EQ(o.facts["matched_as"], "peer");
  EXPECT_EQ(o.facts["matched"]["ip"], "169.254.0.1");
  EXPECT_EQ(o.facts["matched"]["peer"], "10.255.1.11");
  EXPECT_EQ(o.facts["peers"], json({"10.255.1.11"}));
  auto local = run_step("addr", {{"ip", "10.0.0.1"}}, &cell);
  EXPECT_EQ(local.facts["interface"], "eth0");
  EXPECT_EQ(local.facts["matched_as"], "local");
}

TEST(AddrOnFakes, NothingFoundFailsListingWhatIsThere) {
  CellWithAddresses cell;
  auto o = run_step("addr", {{"ip", "10.9.9.9"}}, &cell);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_THAT(o.message, HasSubstr("no interface in this namespace has address 10.9.9.9"));
  EXPECT_THAT(o.message, HasSubstr("s-010255001011 169.254.0.1/32 peer 10.255.1.11"));
  EXPECT_EQ(o.facts["found"], false);
  auto missing = run_step("addr", {{"interface", "eth9"}, {"must_exist", false}}, &cell);
  EXPECT_EQ(missing.status, Status::kPass);
  EXPECT_EQ(missing.facts["found"], false);
  EXPECT_THAT(missing.message, HasSubstr("interface 'eth9' not found"));
}

TEST(AddrOnFakes, KernelErrorOnTheAddressDump) {
  Cell cell;
  cell.fake_netlink.refuse(RTM_GETADDR, EOPNOTSUPP, /*dump=*/true);
  auto o = run_step("addr", {{"interface", "eth0"}}, &cell);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "address dump: Operation not supported");
}

// ---- fdb ----

struct CellWithFdb : Cell {
  CellWithFdb() {
    fake_netlink.on_dump(
        RTM_GETNEIGH,
        {canned::fdb({.index = kVtep, .mac = "ee:ee:0a:ff:02:00", .dst = "10.0.0.2"}),
         canned::fdb({.index = kVtep, .mac = "00:00:00:00:00:00", .dst = "10.0.0.3", .vni = 1}),
         canned::fdb({.index = kPort,
                      .mac = "02:00:00:00:00:07",
                      .master = kBridge,
                      .state = NUD_REACHABLE,
                      .flags = NTF_MASTER,
                      .vlan = 1}),
         canned::fdb({.index = kEth0, .mac = "33:33:00:00:00:01"})});
  }
};

TEST(FdbOnFakes, VtepEntryForARemoteCell) {
  CellWithFdb cell;
  auto o = run_step("fdb", {{"device", "silk-vtep"}, {"mac", "EE:EE:0A:FF:02:00"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "silk-vtep: 1 entry (ee:ee:0a:ff:02:00 dst 10.0.0.2 permanent)");
  EXPECT_EQ(o.facts["count"], 1);
  EXPECT_EQ(o.facts["kind"], "vxlan");
  EXPECT_EQ(o.facts["entries"][0]["dst"], "10.0.0.2");
  EXPECT_EQ(o.facts["entries"][0]["state"], "permanent");
  EXPECT_EQ(o.facts["entries"][0]["flags"], json({"self"}));
  EXPECT_EQ(o.facts["dsts"], json({"10.0.0.2"}));
  EXPECT_EQ(sent_header<ndmsg>(cell.fake_netlink, 1).ndm_family, AF_BRIDGE);
  auto all = run_step("fdb", {{"device", "silk-vtep"}}, &cell);
  EXPECT_EQ(all.facts["count"], 2);
  EXPECT_EQ(all.facts["entries"][1]["vni"], 1);
  auto by_dst = run_step("fdb", {{"device", "silk-vtep"}, {"dst", "10.0.0.3"}}, &cell);
  EXPECT_EQ(by_dst.facts["macs"], json({"00:00:00:00:00:00"}));
}

TEST(FdbOnFakes, BridgeEntriesOfItsPorts) {
  CellWithFdb cell;
  auto o = run_step("fdb", {{"device", "br0"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  ASSERT_EQ(o.facts["count"], 1);
  EXPECT_EQ(o.facts["entries"][0]["dev"], "c-port");
  EXPECT_EQ(o.facts["entries"][0]["master"], "br0");
  EXPECT_EQ(o.facts["entries"][0]["vlan"], 1);
  EXPECT_EQ(o.facts["entries"][0]["state"], "reachable");
}

TEST(FdbOnFakes, NoMatchFailsListingTheEntries) {
  CellWithFdb cell;
  auto o = run_step("fdb", {{"device", "silk-vtep"}, {"mac", "ee:ee:0a:ff:09:00"}}, &cell);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "no FDB entry for ee:ee:0a:ff:09:00 on silk-vtep; entries here: ee:ee:0a:ff:02:00 "
            "dst 10.0.0.2 permanent, 00:00:00:00:00:00 dst 10.0.0.3 vni 1 permanent");
  EXPECT_EQ(o.facts["found"], false);
  auto missing = run_step("fdb", {{"device", "vx9"}}, &cell);
  EXPECT_EQ(missing.status, Status::kFail);
  EXPECT_THAT(missing.message, HasSubstr("interface 'vx9' not found"));
}

TEST(FdbOnFakes, KernelErrorOnTheFdbDump) {
  Cell cell;
  cell.fake_netlink.refuse(RTM_GETNEIGH, ENOBUFS, /*dump=*/true);
  auto o = run_step("fdb", {{"device", "silk-vtep"}}, &cell);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "fdb dump: No buffer space available");
}

// ---- route ----

NlMessages cell_routes() {
  return {
      canned::route({.dst = "default", .gateway = "10.0.0.254", .oif = kEth0}),
      canned::route({.dst = "10.0.0.0/24",
                     .oif = kEth0,
                     .prefsrc = "10.0.0.1",
                     .protocol = RTPROT_KERNEL,
                     .scope = RT_SCOPE_LINK}),
      canned::route({.dst = "10.255.0.0/16",
                     .oif = kVtep,
                     .prefsrc = "10.255.1.0",
                     .protocol = RTPROT_KERNEL,
                     .scope = RT_SCOPE_LINK}),
      canned::route({.dst = "10.255.2.0/24",
                     .gateway = "10.255.2.0",
                     .oif = kVtep,
                     .prefsrc = "10.255.1.0"}),
      canned::route({.dst = "198.51.100.0/24", .gateway = "10.0.0.253", .oif = kEth0, .metric = 20}),
      canned::route({.dst = "198.51.100.0/24", .gateway = "10.0.0.254", .oif = kEth0, .metric = 7}),
      canned::route({.dst = "203.0.114.0/24", .type = RTN_UNREACHABLE}),
  };
}

struct CellWithRoutes : Cell {
  CellWithRoutes() { fake_netlink.on_dump(RTM_GETROUTE, cell_routes()); }
};

TEST(RouteOnFakes, LookupLikeIpRouteGet) {
  CellWithRoutes cell;
  cell.fake_netlink.on_request(RTM_GETROUTE,
                               {canned::route({.dst = "10.255.2.12/32",
                                               .gateway = "10.255.2.0",
                                               .oif = kVtep,
                                               .prefsrc = "10.255.1.0"})});
  auto o = run_step("route", {{"destination", "10.255.2.12"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "10.255.2.12 via 10.255.2.0 dev silk-vtep src 10.255.1.0");
  EXPECT_EQ(o.facts["destination"], "10.255.2.12");
  EXPECT_EQ(o.facts["dev"], "silk-vtep");
  EXPECT_EQ(o.facts["index"], kVtep);
  EXPECT_EQ(o.facts["gateway"], "10.255.2.0");
  EXPECT_EQ(o.facts["src"], "10.255.1.0");
  EXPECT_EQ(o.facts["table"], "main");
  EXPECT_EQ(o.facts["type"], "unicast");
  auto reqs = cell.fake_netlink.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_FALSE(reqs[1].dump);
  rtmsg rtm = sent_header<rtmsg>(cell.fake_netlink, 1);
  EXPECT_EQ(rtm.rtm_family, AF_INET);
  EXPECT_EQ(rtm.rtm_dst_len, 32);
}

TEST(RouteOnFakes, NoRouteFailsAndSaysSo) {
  CellWithRoutes cell;
  cell.fake_netlink.refuse(RTM_GETROUTE, ENETUNREACH);
  auto o = run_step("route", {{"destination", "192.0.2.1"}}, &cell);
  EXPECT_EQ(o.status, Status::kFail) << o.message;
  EXPECT_EQ(o.message, "no route to 192.0.2.1");
  EXPECT_EQ(o.facts["found"], false);
  auto lenient = run_step("route", {{"destination", "192.0.2.1"}, {"must_exist", false}}, &cell);
  EXPECT_EQ(lenient.status, Status::kPass);
}

TEST(RouteOnFakes, BlockingRouteIsNamedWithTheKernelsReason) {
  CellWithRoutes cell;
  cell.fake_netlink.refuse(RTM_GETROUTE, EHOSTUNREACH);
  auto o = run_step("route", {{"destination", "203.0.114.5"}}, &cell);
  EXPECT_EQ(o.status, Status::kFail) << o.message;
  EXPECT_EQ(o.message,
            "203.0.114.5 is not routable: unreachable 203.0.114.0/24 (No route to host)");
  EXPECT_EQ(o.facts["type"], "unreachable");
  EXPECT_EQ(o.facts["reason"], "No route to host");
}

TEST(RouteOnFakes, OtherKernelErrorsAreErrors) {
  CellWithRoutes cell;
  cell.fake_netlink.refuse(RTM_GETROUTE, EACCES);
  auto o = run_step("route", {{"destination", "192.0.2.1"}}, &cell);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "route lookup: Permission denied");
}

TEST(RouteOnFakes, ExactCidrPicksTheLowestMetric) {
  CellWithRoutes cell;
  auto o = run_step("route", {{"cidr", "198.51.100.0/24"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["count"], 2);
  EXPECT_EQ(o.facts["metric"], 7);
  EXPECT_EQ(o.facts["gateway"], "10.0.0.254");
  EXPECT_EQ(o.message,
            "unicast 198.51.100.0/24 via 10.0.0.254 dev eth0 (2 routes for this prefix)");
  auto overlay = run_step("route", {{"cidr", "10.255.2.0/24"}}, &cell);
  EXPECT_EQ(overlay.facts["dev"], "silk-vtep");
  EXPECT_EQ(overlay.facts["prefsrc"], "10.255.1.0");
  EXPECT_EQ(sent_header<rtmsg>(cell.fake_netlink, 1).rtm_family, AF_INET);
}

TEST(RouteOnFakes, DefaultRouteAndMissingPrefix) {
  CellWithRoutes cell;
  auto d = run_step("route", {{"default", true}}, &cell);
  ASSERT_EQ(d.status, Status::kPass) << d.message;
  EXPECT_EQ(d.facts["destination"], "default");
  EXPECT_EQ(d.facts["gateway"], "10.0.0.254");
  auto none = run_step("route", {{"cidr", "10.255.9.0/24"}}, &cell);
  EXPECT_EQ(none.status, Status::kFail);
  EXPECT_EQ(none.message, "no route for 10.255.9.0/24 in table main");
  EXPECT_EQ(none.facts["found"], false);
}

TEST(RouteOnFakes, KernelErrorOnTheRouteDump) {
  Cell cell;
  cell.fake_netlink.refuse(RTM_GETROUTE, EPERM, /*dump=*/true);
  auto o = run_step("route", {{"cidr", "10.0.0.0/24"}}, &cell);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "route dump: Operation not permitted");
}

// ---- link.features (ethtool over generic netlink) ----

TEST(LinkFeaturesOnFakes, FeaturesAndTheirLegacyNames) {
  Cell cell;
  canned::ethtool(cell.fake_netlink, {{"tx-checksum-ip-generic", true, true, false},
                                      {"rx-gro", true, true, false},
                                      {"tx-udp_tnl-segmentation", false, false, true}});
  auto o = run_step("link.features", {{"interface", "silk-vtep"}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "silk-vtep: 4 of 5 features on");
  EXPECT_EQ(o.facts["count"], 5);
  EXPECT_EQ(o.facts["active"]["tx-checksum-ip-generic"], true);
  EXPECT_EQ(o.facts["active"]["tx-checksumming"], true);  // ethtool -k's umbrella name
  EXPECT_EQ(o.facts["active"]["generic-receive-offload"], true);
  EXPECT_EQ(o.facts["features"]["tx-udp_tnl-segmentation"],
            json({{"active", false}, {"wanted", false}, {"fixed", true}}));
  // The family was looked up by name, then asked on its id.
  auto reqs = cell.fake_netlink.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[1].protocol, NETLINK_GENERIC);
  EXPECT_EQ(reqs[1].type, GENL_ID_CTRL);
  EXPECT_EQ(reqs[2].type, 28);
}

TEST(LinkFeaturesOnFakes, PickedFeaturesAndUnknownNames) {
  Cell cell;
  canned::ethtool(cell.fake_netlink, {{"tx-checksum-ip-generic", true, true, false},
                                      {"rx-gro", false, true, false}});
  auto o = run_step("link.features", {{"interface", "eth0"}, {"features", {"rx-gro"}}}, &cell);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "eth0: rx-gro: off [requested on]");
  EXPECT_EQ(o.facts["count"], 1);
  auto typo = run_step("link.features", {{"interface", "eth0"}, {"features", {"rx-gor"}}}, &cell);
  EXPECT_EQ(typo.status, Status::kError);
  EXPECT_EQ(typo.message, "eth0 has no feature 'rx-gor'; did you mean rx-gro?");
}

TEST(LinkFeaturesOnFakes, KernelWithoutEthtoolNetlink) {
  Cell cell;
  cell.fake_netlink.refuse(GENL_ID_CTRL, ENOENT, /*dump=*/false, NETLINK_GENERIC);
  auto o = run_step("link.features", {{"interface", "eth0"}}, &cell);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message,
            "the kernel has no 'ethtool' generic netlink family: ethtool netlink needs Linux 5.6 "
            "or later with CONFIG_ETHTOOL_NETLINK");
  auto missing = run_step("link.features", {{"interface", "eth9"}}, &cell);
  EXPECT_EQ(missing.status, Status::kFail);
  EXPECT_THAT(missing.message, HasSubstr("interface 'eth9' not found"));
}

}  // namespace
}  // namespace netplay
