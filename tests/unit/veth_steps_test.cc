/// veth.peer, netns.inode, link.features: decoders and pairing on canned input, then the
/// steps against namespaces this test creates, checked against iproute2's JSON, stat(1)
/// and ethtool(8). Root required: the namespace tests fail, never skip, without it.

#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include "runner/step/netns.h"
#include "runner/step/step.h"
#include "steps/net/ethtool.h"
#include "steps/net/netns_scan.h"
#include "steps/net/veth_pairs.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

using ::testing::HasSubstr;

using MsgPtr = std::unique_ptr<nl_msg, decltype(&nlmsg_free)>;

MsgPtr new_msg() { return MsgPtr(nlmsg_alloc(), &nlmsg_free); }

/// The first attribute after a bare nlmsghdr: where the tests build their nests.
nlattr* first_attr(nl_msg* m) { return static_cast<nlattr*>(nlmsg_data(nlmsg_hdr(m))); }

// ---- ethtool bitsets on canned bytes ----

TEST(EthtoolBitset, VerboseNomaskListsTheSetBits) {
  // As the kernel sends ETHTOOL_A_FEATURES_ACTIVE without COMPACT_BITSETS.
  auto m = new_msg();
  nlattr* set = nla_nest_start(m.get(), ETHTOOL_A_FEATURES_ACTIVE);
  nla_put_flag(m.get(), ETHTOOL_A_BITSET_NOMASK);
  nla_put_u32(m.get(), ETHTOOL_A_BITSET_SIZE, 8);
  nlattr* bits = nla_nest_start(m.get(), ETHTOOL_A_BITSET_BITS);
  for (auto [i, name] : {std::pair<unsigned, const char*>{0, "tx-scatter-gather"},
                         {3, "tx-checksum-ip-generic"}}) {
    nlattr* bit = nla_nest_start(m.get(), ETHTOOL_A_BITSET_BITS_BIT);
    nla_put_u32(m.get(), ETHTOOL_A_BITSET_BIT_INDEX, i);
    nla_put_string(m.get(), ETHTOOL_A_BITSET_BIT_NAME, name);
    nla_nest_end(m.get(), bit);
  }
  nla_nest_end(m.get(), bits);
  nla_nest_end(m.get(), set);

  auto b = ethtool::parse_bitset(first_attr(m.get()));
  ASSERT_TRUE(b.has_value()) << b.error();
  EXPECT_EQ(b->size, 8u);
  EXPECT_TRUE(b->on(0));
  EXPECT_FALSE(b->on(1));
  EXPECT_TRUE(b->on(3));
  EXPECT_FALSE(b->on(99));
  EXPECT_EQ(b->names[3], "tx-checksum-ip-generic");
}

TEST(EthtoolBitset, VerboseWithMaskUsesTheValueFlag) {
  auto m = new_msg();
  nlattr* set = nla_nest_start(m.get(), 1);
  nla_put_u32(m.get(), ETHTOOL_A_BITSET_SIZE, 4);
  nlattr* bits = nla_nest_start(m.get(), ETHTOOL_A_BITSET_BITS);
  for (unsigned i : {1u, 2u}) {
    nlattr* bit = nla_nest_start(m.get(), ETHTOOL_A_BITSET_BITS_BIT);
    nla_put_u32(m.get(), ETHTOOL_A_BITSET_BIT_INDEX, i);
    if (i == 2) nla_put_flag(m.get(), ETHTOOL_A_BITSET_BIT_VALUE);
    nla_nest_end(m.get(), bit);
  }
  nla_nest_end(m.get(), bits);
  nla_nest_end(m.get(), set);
  auto b = ethtool::parse_bitset(first_attr(m.get()));
  ASSERT_TRUE(b.has_value()) << b.error();
  EXPECT_FALSE(b->on(1));
  EXPECT_TRUE(b->on(2));
}

TEST(EthtoolBitset, CompactFromRawBytes) {
  // nest(type 3) { SIZE=40, VALUE=[0x00000009, 0x00000080] }: bits 0, 3 and 39.
  alignas(4) const unsigned char raw[] = {
      24, 0, 3, 0x80,                     // nla_len 24, ETHTOOL_A_FEATURES_ACTIVE | NLA_F_NESTED
      8, 0, ETHTOOL_A_BITSET_SIZE, 0,     // u32 size
      40, 0, 0, 0,
      12, 0, ETHTOOL_A_BITSET_VALUE, 0,   // binary, two words
      0x09, 0, 0, 0, 0x80, 0, 0, 0,
  };
  auto b = ethtool::parse_bitset(reinterpret_cast<const nlattr*>(raw));
  ASSERT_TRUE(b.has_value()) << b.error();
  EXPECT_EQ(b->size, 40u);
  EXPECT_TRUE(b->on(0));
  EXPECT_TRUE(b->on(3));
  EXPECT_FALSE(b->on(4));
  EXPECT_TRUE(b->on(39));
  EXPECT_EQ(b->names[0], "");
}

TEST(EthtoolBitset, Malformed) {
  auto m = new_msg();
  nlattr* set = nla_nest_start(m.get(), 1);
  nla_put_u32(m.get(), ETHTOOL_A_BITSET_SIZE, 2);
  nlattr* bits = nla_nest_start(m.get(), ETHTOOL_A_BITSET_BITS);
  nlattr* bit = nla_nest_start(m.get(), ETHTOOL_A_BITSET_BITS_BIT);
  nla_put_u32(m.get(), ETHTOOL_A_BITSET_BIT_INDEX, 5);  // outside the size
  nla_nest_end(m.get(), bit);
  nla_nest_end(m.get(), bits);
  nla_nest_end(m.get(), set);
  auto b = ethtool::parse_bitset(first_attr(m.get()));
  ASSERT_FALSE(b.has_value());
  EXPECT_THAT(b.error(), HasSubstr("bit 5 outside a bitset of size 2"));

  auto n = new_msg();
  nlattr* empty = nla_nest_start(n.get(), 1);
  nla_nest_end(n.get(), empty);
  EXPECT_FALSE(ethtool::parse_bitset(first_attr(n.get())).has_value());
}

TEST(EthtoolStrings, FeatureNamesFromTheStringSet) {
  auto m = new_msg();
  nlattr* sets = nla_nest_start(m.get(), ETHTOOL_A_STRSET_STRINGSETS);
  for (unsigned id : {static_cast<unsigned>(ETH_SS_PRIV_FLAGS), static_cast<unsigned>(ETH_SS_FEATURES)}) {
    nlattr* set = nla_nest_start(m.get(), ETHTOOL_A_STRINGSETS_STRINGSET);
    nla_put_u32(m.get(), ETHTOOL_A_STRINGSET_ID, id);
    nla_put_u32(m.get(), ETHTOOL_A_STRINGSET_COUNT, 3);
    nlattr* strings = nla_nest_start(m.get(), ETHTOOL_A_STRINGSET_STRINGS);
    int i = 0;
    for (const char* s : {"tx-scatter-gather", "tx-checksum-ipv4", "rx-gro"}) {
      nlattr* str = nla_nest_start(m.get(), ETHTOOL_A_STRINGS_STRING);
      nla_put_u32(m.get(), ETHTOOL_A_STRING_INDEX, i++);
      nla_put_string(m.get(), ETHTOOL_A_STRING_VALUE, id == ETH_SS_FEATURES ? s : "private");
      nla_nest_end(m.get(), str);
    }
    nla_nest_end(m.get(), strings);
    nla_nest_end(m.get(), set);
  }
  nla_nest_end(m.get(), sets);
  auto names = ethtool::parse_feature_names(first_attr(m.get()));
  ASSERT_TRUE(names.has_value()) << names.error();
  EXPECT_THAT(*names, ::testing::ElementsAre("tx-scatter-gather", "tx-checksum-ipv4", "rx-gro"));
}

ethtool::Bitset bits_of(unsigned size, std::initializer_list<unsigned> on) {
  ethtool::Bitset b;
  b.size = size;
  b.value.assign(size, false);
  b.names.assign(size, "");
  for (unsigned i : on) b.value[i] = true;
  return b;
}

TEST(EthtoolFeatures, CombineAndLegacyNames) {
  std::vector<std::string> names = {"tx-checksum-ipv4", "tx-checksum-ip-generic", "rx-gro",
                                    "tx-tcp-segmentation", "tx-tcp6-segmentation", ""};
  ethtool::FeatureBits bits{.hw = bits_of(6, {1, 2, 3, 4}),
                            .wanted = bits_of(6, {1, 2, 3}),
                            .active = bits_of(6, {1, 2}),
                            .nochange = bits_of(6, {4})};
  auto f = ethtool::combine(names, bits);
  ASSERT_EQ(f.size(), 5u);  // the nameless bit is left out
  EXPECT_EQ(f[0].name, "tx-checksum-ipv4");
  EXPECT_FALSE(f[0].active);
  EXPECT_TRUE(f[0].fixed);  // not in hw
  EXPECT_TRUE(f[1].active);
  EXPECT_FALSE(f[1].fixed);
  EXPECT_TRUE(f[3].wanted);  // tso requested but not active
  EXPECT_FALSE(f[3].active);
  EXPECT_TRUE(f[4].fixed);  // in nochange

  std::map<std::string, ethtool::Feature> legacy;
  for (auto& l : ethtool::legacy_features(f)) legacy[l.name] = l;
  EXPECT_TRUE(legacy.at("tx-checksumming").active);      // any of tx-checksum-*
  EXPECT_FALSE(legacy.at("tx-checksumming").fixed);
  EXPECT_FALSE(legacy.at("tcp-segmentation-offload").active);
  EXPECT_TRUE(legacy.at("generic-receive-offload").active);
  EXPECT_FALSE(legacy.contains("large-receive-offload"));  // no rx-lro bit here
}

// ---- veth pairing on canned dumps ----

TEST(VethParse, LinkMessage) {
  auto m = MsgPtr(nlmsg_alloc_simple(RTM_NEWLINK, 0), &nlmsg_free);
  ifinfomsg ifi{};
  ifi.ifi_index = 2;
  nlmsg_append(m.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO);
  nla_put_string(m.get(), IFLA_IFNAME, "eth0");
  nla_put_u32(m.get(), IFLA_LINK, 4615);
  nla_put_u32(m.get(), IFLA_LINK_NETNSID, 0);
  nla_put_u32(m.get(), IFLA_MASTER, 7);
  nlattr* li = nla_nest_start(m.get(), IFLA_LINKINFO);
  nla_put_string(m.get(), IFLA_INFO_KIND, "veth");
  nla_nest_end(m.get(), li);
  auto l = veth::parse_link(nlmsg_hdr(m.get()));
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->index, 2);
  EXPECT_EQ(l->name, "eth0");
  EXPECT_TRUE(l->is_veth);
  EXPECT_EQ(l->peer_index, 4615);
  EXPECT_EQ(l->peer_netnsid, 0);
  EXPECT_EQ(l->master, 7);

  auto other = MsgPtr(nlmsg_alloc_simple(RTM_NEWADDR, 0), &nlmsg_free);
  EXPECT_FALSE(veth::parse_link(nlmsg_hdr(other.get())).has_value());
}

veth::Link vl(int index, const char* name, int peer, std::optional<int> nsid, int master = 0) {
  return {index, name, true, peer, nsid, master};
}

TEST(VethPairs, ObserverPairsNeedNoProbe) {
  // Host (observer) with two veths to two containers; both containers reuse ifindex 2
  // and both see the host as netnsid 0: only the NETNSID tells the pairs apart.
  std::vector<veth::NsLinks> all(3);
  all[0].ns = {"host", "/proc/1/ns/net", 1};
  all[0].links = {{1, "lo", false, 0, std::nullopt, 0}, {9, "br0", false, 0, std::nullopt, 0},
                  vl(10, "veth-a", 2, 5, 9), vl(11, "veth-b", 2, 6, 9)};
  all[1].ns = {"a", "/run/netns/a", 2};
  all[1].links = {vl(2, "eth0", 10, 0)};
  all[1].observer_nsid = 0;
  all[2].ns = {"b", "/run/netns/b", 3};
  all[2].links = {vl(2, "eth0", 11, 0)};
  all[2].observer_nsid = 0;
  int probes = 0;
  auto r = veth::pair_all(all, 0, [&](size_t, size_t) -> std::optional<int> {
    ++probes;
    return std::nullopt;
  });
  EXPECT_EQ(probes, 0);
  ASSERT_EQ(r.pairs.size(), 2u);
  EXPECT_TRUE(r.unresolved.empty());
  EXPECT_EQ(r.pairs[0].first.ns, 1u);
  EXPECT_EQ(all[0].links[r.pairs[0].second.link].name, "veth-a");
  EXPECT_EQ(r.pairs[1].first.ns, 2u);
  EXPECT_EQ(all[0].links[r.pairs[1].second.link].name, "veth-b");
  EXPECT_EQ(all[0].name_of(all[0].links[r.pairs[1].second.link].master), "br0");
}

TEST(VethPairs, CrossNamespacePairsAreVerifiedByNsid) {
  // Observer has nothing; cell "c" holds s-1 (ifindex 5) whose peer is eth0 (ifindex 2)
  // in container "x". Container "y" also has ifindex 2 pointing at 5, but as seen from "c"
  // it is netnsid 8, not 7: it must not be taken for x's partner.
  std::vector<veth::NsLinks> all(4);
  all[0].ns = {"host", "/proc/1/ns/net", 1};
  all[1].ns = {"c", "/run/netns/c", 2};
  all[1].links = {vl(5, "s-1", 2, 7), vl(6, "s-2", 2, 9)};
  all[2].ns = {"y", "/run/netns/y", 4};
  all[2].links = {vl(2, "eth0", 5, 3)};
  all[3].ns = {"x", "/run/netns/x", 3};
  all[3].links = {vl(2, "eth0", 5, 1)};
  // nsid[from][to]
  std::map<std::pair<size_t, size_t>, int> nsid = {{{1, 3}, 7}, {{1, 2}, 8}, {{3, 1}, 1},
                                                   {{2, 1}, 3}};
  auto r = veth::pair_all(all, 0, [&](size_t from, size_t to) -> std::optional<int> {
    auto it = nsid.find({from, to});
    if (it == nsid.end()) return -1;
    return it->second;
  });
  ASSERT_EQ(r.pairs.size(), 1u);
  // Oriented with the cell (more veths) as the host side.
  EXPECT_EQ(r.pairs[0].first.ns, 3u);
  EXPECT_EQ(r.pairs[0].second.ns, 1u);
  EXPECT_EQ(all[1].links[r.pairs[0].second.link].name, "s-1");
  // s-2 (peer ifindex 2 at netnsid 9) and y's eth0 (whose nsid to c does not match) remain.
  EXPECT_EQ(r.unresolved.size(), 2u);
}

TEST(VethPairs, SameNamespacePairOnce) {
  std::vector<veth::NsLinks> all(1);
  all[0].ns = {"host", "/proc/1/ns/net", 1};
  all[0].links = {vl(3, "va", 4, std::nullopt), vl(4, "vb", 3, std::nullopt)};
  auto r = veth::pair_all(all, 0, [](size_t, size_t) { return std::optional<int>(); });
  ASSERT_EQ(r.pairs.size(), 1u);
  EXPECT_TRUE(r.unresolved.empty());
}

// ---- Against the kernel, in namespaces of our own ----

std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  EXPECT_EQ(rc, 0) << "command failed: " << cmd;
  return out;
}

void sh(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << "command failed: " << cmd; }

unsigned long stat_inode(const std::string& path) {
  return std::stoul(capture("stat -L -c %i " + path));
}

json ip_link(const std::string& ns, const std::string& dev) {
  std::string n = ns.empty() ? "" : "-n " + ns + " ";
  json j = json::parse(capture("ip " + n + "-j -d link show dev " + dev));
  return j.at(0);
}

/// Namespaces (and host-side links) named after this process, removed when the test ends.
class VethNs : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "veth step tests need root (network namespaces)";
    host_inode();  // before any test enters a namespace
    tag_ = fmt::format("vt{}", getpid() % 100000);
  }
  void TearDown() override {
    scope_.reset();
    for (int pid : pids_) ::kill(pid, SIGKILL);
    for (const auto& ns : namespaces_) std::system(("ip netns del " + ns + " 2>/dev/null").c_str());
    for (const auto& l : host_links_) std::system(("ip link del " + l + " 2>/dev/null").c_str());
  }
  std::string add_ns(const std::string& suffix) {
    std::string ns = tag_ + suffix;
    std::system(("ip netns del " + ns + " 2>/dev/null").c_str());
    sh("ip netns add " + ns);
    namespaces_.push_back(ns);
    return ns;
  }
  std::string host_link(const std::string& suffix) {
    std::string l = tag_ + suffix;
    host_links_.push_back(l);
    return l;
  }
  void enter(const std::string& ns) {
    auto s = NetnsScope::enter(ns);
    ASSERT_TRUE(s.has_value()) << s.error();
    scope_.emplace(std::move(*s));
  }
  StepOutput run(const std::string& step, json params, const std::string& netns = "host") {
    StepContext ctx;
    ctx.deadline = Clock::now() + std::chrono::seconds(10);
    ctx.netns = netns;
    return run_step(step, std::move(params), nullptr, ctx);
  }

  /// A process sleeping in `ns` ("" = here), killed when the test ends.
  int sleeper(const std::string& ns) {
    std::string pre = ns.empty() ? "" : "ip netns exec " + ns + " ";
    int pid = std::stoi(capture("sh -c '" + pre + "sleep 60 >/dev/null 2>&1 & echo $!'"));
    pids_.push_back(pid);
    // `ip netns exec` switches namespace and then execs: wait until it has.
    std::string proc = fmt::format("/proc/{}/ns/net", pid);
    unsigned long want = ns.empty() ? host_inode() : stat_inode("/run/netns/" + ns);
    for (int i = 0; i < 200 && stat_inode(proc) != want; ++i) ::usleep(10000);
    EXPECT_EQ(stat_inode(proc), want);
    return pid;
  }
  /// The namespace this test process started in, as stat(1) sees it.
  static unsigned long host_inode() {
    static const unsigned long ino = stat_inode("/proc/self/ns/net");
    return ino;
  }

  std::string tag_;
  std::vector<int> pids_;
  std::vector<std::string> namespaces_, host_links_;
  std::optional<NetnsScope> scope_;
};

TEST_F(VethNs, PeerFromContainerIsOnTheHostWithItsBridge) {
  std::string a = add_ns("a");
  std::string h = host_link("h");
  std::string br = host_link("br");
  sh(fmt::format("ip link add {} type veth peer name eth0 netns {}", h, a));
  sh(fmt::format("ip link add {} type bridge && ip link set {} master {} && ip link set {} up", br,
                 h, br, h));
  json host = ip_link("", h), cont = ip_link(a, "eth0");

  enter(a);
  auto o = run("veth.peer", {{"interface", "eth0"}}, a);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["name"], "eth0");
  EXPECT_EQ(o.facts["index"], cont["ifindex"]);
  EXPECT_EQ(o.facts["peer_index"], cont["link_index"]);
  EXPECT_EQ(o.facts["peer_index"], host["ifindex"]);
  EXPECT_EQ(o.facts["peer_netnsid"], cont["link_netnsid"]);
  EXPECT_EQ(o.facts["peer_name"], h);
  EXPECT_EQ(o.facts["peer_netns"], "host");
  EXPECT_EQ(o.facts["peer_netns_inode"], host_inode());
  EXPECT_EQ(o.facts["peer_master"], br);
  EXPECT_EQ(o.facts["peer_mac"], host["address"]);
  EXPECT_EQ(o.facts["peer_oper_state"], host["operstate"]);
}

TEST_F(VethNs, PeerFromHostIsInTheNamedNamespace) {
  std::string a = add_ns("a");
  std::string h = host_link("h");
  sh(fmt::format("ip link add {} type veth peer name eth0 netns {}", h, a));
  json host = ip_link("", h), cont = ip_link(a, "eth0");
  auto o = run("veth.peer", {{"interface", h}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["peer_name"], "eth0");
  EXPECT_EQ(o.facts["peer_netns"], a);
  EXPECT_EQ(o.facts["peer_netns_inode"], stat_inode("/run/netns/" + a));
  EXPECT_EQ(o.facts["peer_netnsid"], host["link_netnsid"]);
  EXPECT_EQ(o.facts["peer_index"], cont["ifindex"]);
  EXPECT_TRUE(o.facts["peer_master"].is_null());
  EXPECT_EQ(o.facts["peer_mac"], cont["address"]);
}

TEST_F(VethNs, PeerBetweenTwoContainerNamespaces) {
  std::string c = add_ns("c"), x = add_ns("x");
  sh(fmt::format("ip -n {} link add s-1 type veth peer name eth0 netns {}", c, x));
  enter(x);
  auto o = run("veth.peer", {{"interface", "eth0"}}, x);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["peer_name"], "s-1");
  EXPECT_EQ(o.facts["peer_netns"], c);
  EXPECT_EQ(o.facts["peer_netns_inode"], stat_inode("/run/netns/" + c));
  EXPECT_EQ(o.facts["peer_netnsid"], ip_link(x, "eth0")["link_netnsid"]);
  // Same namespace: "this", no netnsid.
  sh(fmt::format("ip -n {} link add va type veth peer name vb", x));
  auto same = run("veth.peer", {{"interface", "va"}}, x);
  ASSERT_EQ(same.status, Status::kPass) << same.message;
  EXPECT_EQ(same.facts["peer_name"], "vb");
  EXPECT_EQ(same.facts["peer_netns"], "this");
  EXPECT_FALSE(same.facts.contains("peer_netnsid"));
}

TEST_F(VethNs, NotAVethFailsWithItsKindAndMissingListsInterfaces) {
  std::string a = add_ns("a");
  sh(fmt::format("ip -n {} link add br0 type bridge", a));
  enter(a);
  auto o = run("veth.peer", {{"interface", "br0"}}, a);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "br0 is a bridge, not a veth");
  EXPECT_EQ(o.facts["kind"], "bridge");
  auto missing = run("veth.peer", {{"interface", "eth7"}}, a);
  EXPECT_EQ(missing.status, Status::kFail);
  EXPECT_THAT(missing.message, HasSubstr("'eth7' not found"));
  EXPECT_THAT(missing.message, HasSubstr("lo, br0"));
}

TEST_F(VethNs, AllPairsOfTheNode) {
  std::string a = add_ns("a"), b = add_ns("b"), c = add_ns("c"), x = add_ns("x");
  std::string ha = host_link("ha"), hb = host_link("hb");
  sh(fmt::format("ip link add {} type veth peer name eth0 netns {}", ha, a));
  sh(fmt::format("ip link add {} type veth peer name eth0 netns {}", hb, b));
  sh(fmt::format("ip -n {} link add s-1 type veth peer name eth0 netns {}", c, x));
  sh(fmt::format("ip -n {} link add s-2 type veth peer name s-3", c));
  auto o = run("veth.peer", {{"all", true}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  std::map<std::string, json> mine;  // netns/interface -> pair
  for (const auto& p : o.facts["pairs"]) {
    std::string key = p["netns"].get<std::string>() + "/" + p["interface"].get<std::string>();
    EXPECT_FALSE(mine.contains(key)) << "pair listed twice: " << key;
    mine[key] = p;
  }
  ASSERT_TRUE(mine.contains(a + "/eth0")) << o.facts["pairs"].dump();
  EXPECT_EQ(mine[a + "/eth0"]["peer_netns"], "host");
  EXPECT_EQ(mine[a + "/eth0"]["peer_interface"], ha);
  EXPECT_EQ(mine[a + "/eth0"]["peer_index"], ip_link("", ha)["ifindex"]);
  EXPECT_EQ(mine[a + "/eth0"]["netns_inode"], stat_inode("/run/netns/" + a));
  EXPECT_EQ(mine[b + "/eth0"]["peer_interface"], hb);
  ASSERT_TRUE(mine.contains(x + "/eth0")) << o.facts["pairs"].dump();
  EXPECT_EQ(mine[x + "/eth0"]["peer_netns"], c);
  EXPECT_EQ(mine[x + "/eth0"]["peer_interface"], "s-1");
  EXPECT_EQ(mine[x + "/eth0"]["peer_netns_inode"], stat_inode("/run/netns/" + c));
  // Both ends in one namespace: listed once, either way round.
  ASSERT_NE(mine.contains(c + "/s-2"), mine.contains(c + "/s-3")) << o.facts["pairs"].dump();
  const json& same = mine.contains(c + "/s-2") ? mine[c + "/s-2"] : mine[c + "/s-3"];
  EXPECT_EQ(same["peer_netns"], c);
  EXPECT_THAT(same["peer_interface"].get<std::string>(), ::testing::AnyOf("s-2", "s-3"));
  EXPECT_NE(same["peer_interface"], same["interface"]);
  for (const auto& u : o.facts["unresolved"])
    EXPECT_FALSE(u["netns"].get<std::string>().starts_with(tag_)) << u.dump();
  EXPECT_GE(o.facts["namespaces"].get<int>(), 5);
  EXPECT_EQ(o.facts["count"], o.facts["pairs"].size());
}

TEST_F(VethNs, NetnsInodeComparesProcessesAndPaths) {
  std::string a = add_ns("a");
  std::string h = host_link("h");
  sh(fmt::format("ip link add {} type veth peer name eth0 netns {}", h, a));
  int here = sleeper(""), there = sleeper(a);
  auto o = run("netns.inode", {{"pids", {getpid(), here, there}}, {"paths", {a, "host"}}});
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  const json& ns = o.facts["namespaces"];
  ASSERT_EQ(ns.size(), 5u);
  EXPECT_EQ(ns[0]["ref"], fmt::format("pid:{}", getpid()));
  EXPECT_EQ(ns[0]["inode"], host_inode());
  EXPECT_EQ(ns[1]["inode"], stat_inode(fmt::format("/proc/{}/ns/net", here)));
  EXPECT_EQ(ns[2]["inode"], stat_inode(fmt::format("/proc/{}/ns/net", there)));
  EXPECT_EQ(ns[2]["inode"], stat_inode("/run/netns/" + a));
  EXPECT_EQ(ns[3]["ref"], a);
  EXPECT_EQ(ns[3]["path"], "/run/netns/" + a);
  EXPECT_EQ(ns[3]["inode"], stat_inode("/run/netns/" + a));
  EXPECT_EQ(ns[3]["netnsid"], ip_link("", h)["link_netnsid"]);
  EXPECT_EQ(ns[4]["ref"], "host");
  EXPECT_EQ(ns[4]["inode"], host_inode());
  EXPECT_EQ(o.facts["all_same"], false);
  EXPECT_EQ(o.facts["distinct"], 2);
  EXPECT_EQ(o.facts["differ"], json::array({fmt::format("pid:{}", there), a}));

  auto same = run("netns.inode", {{"pids", {getpid(), here}}});
  EXPECT_EQ(same.facts["all_same"], true);
  EXPECT_EQ(same.facts["distinct"], 1);
  EXPECT_EQ(same.facts["differ"], json::array());

  auto gone = run("netns.inode", {{"pids", {getpid(), 999999999}}});
  EXPECT_EQ(gone.status, Status::kError);
  EXPECT_THAT(gone.message, HasSubstr("process 999999999 not found"));
  auto nopath = run("netns.inode", {{"paths", {tag_ + "nope"}}});
  EXPECT_EQ(nopath.status, Status::kError);
  EXPECT_THAT(nopath.message, HasSubstr(tag_ + "nope"));
}

/// `ethtool -k` output as name -> (on, fixed).
std::map<std::string, std::pair<bool, bool>> ethtool_k(const std::string& ns, const std::string& dev) {
  std::map<std::string, std::pair<bool, bool>> out;
  std::string text = capture(fmt::format("ip netns exec {} ethtool -k {}", ns, dev));
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t colon = line.find(": ");
    if (colon == std::string::npos || line.starts_with("Features for")) continue;
    std::string name = line.substr(line.find_first_not_of(" \t"), colon - line.find_first_not_of(" \t"));
    std::string rest = line.substr(colon + 2);
    out[name] = {rest.starts_with("on"), rest.find("[fixed]") != std::string::npos};
  }
  return out;
}

TEST_F(VethNs, LinkFeaturesMatchEthtool) {
  std::string a = add_ns("a");
  sh(fmt::format("ip -n {} link add v0 type veth peer name v1", a));
  sh(fmt::format("ip netns exec {} ethtool -K v0 tx-checksum-ip-generic off >/dev/null", a));
  auto oracle = ethtool_k(a, "v0");
  ASSERT_GT(oracle.size(), 20u);
  enter(a);
  auto o = run("link.features", {{"interface", "v0"}}, a);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  for (const auto& [name, v] : oracle) {
    ASSERT_TRUE(o.facts["features"].contains(name)) << name;
    EXPECT_EQ(o.facts["features"][name]["active"], v.first) << name;
    EXPECT_EQ(o.facts["features"][name]["fixed"], v.second) << name;
    EXPECT_EQ(o.facts["active"][name], v.first) << name;
  }
  EXPECT_EQ(o.facts["active"]["tx-checksum-ip-generic"], false);
  EXPECT_EQ(o.facts["features"]["tx-checksum-ip-generic"]["wanted"], false);
  EXPECT_EQ(o.facts["active"]["tx-checksumming"], oracle.at("tx-checksumming").first);

  auto some = run("link.features", {{"interface", "v0"}, {"features", {"rx-gro", "tx-checksum-ip-generic"}}}, a);
  ASSERT_EQ(some.status, Status::kPass) << some.message;
  EXPECT_EQ(some.facts["count"], 2);
  EXPECT_EQ(some.facts["features"].size(), 2u);

  auto typo = run("link.features", {{"interface", "v0"}, {"features", {"tx-checksum-ip-generc"}}}, a);
  EXPECT_EQ(typo.status, Status::kError);
  EXPECT_THAT(typo.message, HasSubstr("did you mean tx-checksum-ip-generic"));

  auto missing = run("link.features", {{"interface", "silk-vtep"}}, a);
  EXPECT_EQ(missing.status, Status::kFail);
  EXPECT_THAT(missing.message, HasSubstr("'silk-vtep' not found"));
  EXPECT_THAT(missing.message, HasSubstr("v0"));
}

TEST_F(VethNs, ScanFindsNamedNamespacesOnceByInode) {
  std::string a = add_ns("a");
  auto all = netns::scan();
  int found = 0;
  for (const auto& ns : all)
    if (ns.ref == a) {
      ++found;
      EXPECT_EQ(ns.inode, stat_inode("/run/netns/" + a));
    }
  EXPECT_EQ(found, 1);
  ASSERT_FALSE(all.empty());
  int hosts = 0;
  for (const auto& ns : all) hosts += ns.ref == "host";
  EXPECT_EQ(hosts, 1);
}

}  // namespace
}  // namespace netplay
