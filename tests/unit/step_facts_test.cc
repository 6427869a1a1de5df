/// Every built-in step reports only the facts its spec declares: docs, the JSON Schema and
/// `expect:` validation come from the spec, so an undeclared fact could never be expected.
/// Each step runs here through its main paths (found, missing, wrong kind, error), on fakes
/// where it touches the system; run_step fails the test on any undeclared fact. A step
/// without scenarios here fails the coverage test: add yours when you add a step.

#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "runner/step/fakes.h"
#include "tests/unit/support/netlink_canned.h"
#include "tests/unit/support/nft_canned.h"
#include "tests/unit/support/sock_diag_canned.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

/// A namespace with a NIC, a VTEP, a veth pair and a bridge, with neighbours, addresses,
/// FDB entries and routes, and ethtool features.
void cell(FakeServices& f) {
  f.fake_netlink.on_dump(
      RTM_GETLINK,
      {canned::link({.index = 1, .name = "eth0", .mac = "02:00:00:00:00:01"}),
       canned::vxlan({.index = 2, .name = "silk-vtep"}, {.local = "10.0.0.1", .dev = 1}),
       canned::link({.index = 3, .name = "br0", .kind = "bridge"}),
       canned::link({.index = 4, .name = "va", .kind = "veth", .master = 3, .link = 5}),
       canned::link({.index = 5, .name = "vb", .kind = "veth", .link = 4}),
       canned::link({.index = 6, .name = "vc", .kind = "veth", .link = 9, .link_netnsid = 0})});
  f.fake_netlink.on_dump(
      RTM_GETNEIGH,
      {canned::neigh({.index = 1, .ip = "10.0.0.2", .lladdr = "02:00:00:00:00:02"}),
       canned::fdb({.index = 2, .mac = "ee:ee:0a:ff:02:00", .dst = "10.0.0.2"}),
       canned::fdb({.index = 4, .mac = "02:00:00:00:00:05", .master = 3, .vni = 7, .vlan = 1})});
  f.fake_netlink.on_dump(RTM_GETADDR,
                         {canned::addr({.index = 1, .cidr = "10.0.0.1/24", .label = "eth0"}),
                          canned::addr({.index = 2, .cidr = "169.254.0.1", .peer = "10.0.0.9/32"})});
  f.fake_netlink.on_dump(
      RTM_GETROUTE,
      {canned::route({.dst = "default", .gateway = "10.0.0.254", .oif = 1}),
       canned::route({.dst = "10.255.0.0/16", .oif = 2, .prefsrc = "10.255.1.0"}),
       canned::route({.dst = "10.255.0.0/16", .gateway = "10.0.0.7", .oif = 1, .metric = 9}),
       canned::route({.dst = "203.0.113.0/24", .type = RTN_BLACKHOLE})});
  canned::ethtool(f.fake_netlink, {{"rx-gro", true, true, false}, {"tx-checksum-ip-generic"}});
  f.fake_netlink.on_netnsid([](int) { return 0; });
}

void route_lookup(FakeServices& f, int kernel_errno) {
  cell(f);
  if (kernel_errno)
    f.fake_netlink.refuse(RTM_GETROUTE, kernel_errno);
  else
    f.fake_netlink.on_request(
        RTM_GETROUTE, {canned::route({.dst = "10.255.2.1/32", .gateway = "10.255.2.0", .oif = 2})});
}

/// Echo answers: replies up to `path_mtu` bytes, frag needed from 10.0.0.254 above it, and
/// nothing at all (with an ICMP error) from 10.0.0.9.
void echo_answers(FakeServices& f, int path_mtu = 1400) {
  f.fake_pinger.answer([path_mtu](const EchoRequest& r, const StepContext&)
                           -> std::expected<std::vector<EchoResult>, std::string> {
    std::vector<EchoResult> out;
    for (const auto& t : r.targets) {
      EchoResult e{.target = t, .sent = r.count, .socket = "raw"};
      if (t == "10.0.0.9")
        e.errors = {{.kind = "unreachable", .from = "10.0.0.1", .type = 3, .code = 1, .seq = 1,
                     .detail = "host unreachable"}};
      else if (r.size + 28 > path_mtu)
        e.errors = {{.kind = "frag_needed", .from = "10.0.0.254", .type = 3, .code = 4,
                     .mtu = path_mtu, .seq = 1, .detail = "fragmentation needed (mtu 1400)"}};
      else
        e.rtt_ms.assign(static_cast<size_t>(r.count), 0.25);
      out.push_back(std::move(e));
    }
    return out;
  });
}

/// A TCP probe answering `state` (and the sockets and ruleset of a node, for the other
/// probe steps).
std::function<void(FakeServices&)> probes(std::string state) {
  return [state](FakeServices& f) {
    f.fake_tcp.answer(TcpConnectResult{.state = state, .connect_ms = 0.2,
                                       .local = "10.0.0.1:40000", .peer = "10.0.0.2:80",
                                       .error_errno = state == "open" ? 0 : ECONNREFUSED,
                                       .detail = state == "open" ? "" : "Connection refused"});
    canned::sock_diag(
        f.fake_netlink,
        {{.proto = IPPROTO_TCP, .address = "0.0.0.0", .port = 22, .inode = 4000000000},
         {.proto = IPPROTO_UDP, .address = "::", .port = 53, .inode = 4000000001}});
    f.fake_firewall.answer(json::parse(canned::kNftRuleset));
  };
}

struct Scenario {
  std::string step;
  json params;
  std::function<void(FakeServices&)> setup = cell;
  bool real = false;  // runs on the real services (reads files only)
};

std::string temp_file(const std::string& name, const std::string& body) {
  std::string path = fmt::format("/tmp/netplay-facts-{}-{}", getpid(), name);
  std::ofstream(path) << body;
  return path;
}

/// A VXLAN-GBP frame of the lab (an ICMP echo request, policy id 3, VNI 1).
std::vector<uint8_t> lab_vxlan_frame() {
  static const char hex[] =
      "0096f8d780577872cc54cbb7fa080045000086d9c1000040118ca30a0000010a000002ee0a12b500"
      "7214868800000300000100eeee0aff0200eeee0aff0100080045000054c20640003f01608f0aff01"
      "0b0aff020b0800e5ca123400016e6574706c61796e6574706c61796e6574706c61796e6574706c61"
      "796e6574706c61796e6574706c61796e6574706c61796e6574706c6179";
  std::vector<uint8_t> out;
  for (size_t i = 0; hex[i] && hex[i + 1]; i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex + i, 2), nullptr, 16)));
  return out;
}

/// A pcap file (microsecond magic, Ethernet) holding `frame` twice.
std::string pcap_bytes(const std::vector<uint8_t>& frame) {
  std::string b;
  auto u32 = [&b](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&b](uint16_t v) { b.append(reinterpret_cast<const char*>(&v), 2); };
  u32(0xa1b2c3d4);
  u16(2);
  u16(4);
  u32(0);
  u32(0);
  u32(262144);
  u32(1);
  for (uint32_t i = 0; i < 2; ++i) {
    u32(1700000000 + i);
    u32(0);
    u32(static_cast<uint32_t>(frame.size()));
    u32(static_cast<uint32_t>(frame.size()));
    b.append(reinterpret_cast<const char*>(frame.data()), frame.size());
  }
  return b;
}

void canned_capture(FakeServices& f) {
  CannedCapture c;
  c.linktype = 1;
  c.packets = {{1700000000000000000, lab_vxlan_frame()}};
  f.fake_packets.answer(c);
}

std::vector<Scenario> scenarios() {
  static const std::string json_file = temp_file("a.json", R"({"a": {"b": [1, 2]}})");
  static const std::string yaml_file = temp_file("a.yaml", "a:\n  b: [1, 2]\n");
  static const std::string text_file = temp_file("a.txt", "one\ntwo\n");
  static const std::string pcap_file = temp_file("a.pcap", pcap_bytes(lab_vxlan_frame()));
  static const std::string tags_file =
      temp_file("tags.json", R"({"tags": [{"id": "app-3", "tag": "0003"}]})");
  return {
      {"link", {{"name", "va"}}},
      {"link", {{"name", "vc"}}},
      {"link", {{"name", "nope"}}},
      {"link", {{"name", "nope"}, {"must_exist", false}}},
      {"vxlan.vtep", json::object()},
      {"vxlan.vtep", {{"device", "br0"}}},
      {"vxlan.vtep", {{"device", "nope"}}},
      {"neigh", {{"ip", "10.0.0.2"}}},
      {"neigh", {{"ip", "10.0.0.3"}, {"must_exist", false}}},
      {"addr", {{"interface", "eth0"}}},
      {"addr", {{"ip", "10.0.0.9"}}},
      {"addr", {{"ip", "10.0.0.99"}, {"must_exist", false}}},
      {"addr", {{"interface", "nope"}, {"must_exist", false}}},
      {"fdb", {{"device", "silk-vtep"}}},
      {"fdb", {{"device", "br0"}, {"mac", "02:00:00:00:00:05"}}},
      {"fdb", {{"device", "silk-vtep"}, {"mac", "ee:ee:0a:ff:09:00"}}},
      {"route", {{"cidr", "10.255.0.0/16"}}},
      {"route", {{"default", true}}},
      {"route", {{"cidr", "10.9.0.0/16"}}},
      {"route", {{"destination", "10.255.2.1"}}, [](FakeServices& f) { route_lookup(f, 0); }},
      {"route", {{"destination", "203.0.113.1"}},
       [](FakeServices& f) { route_lookup(f, EINVAL); }},
      {"route", {{"destination", "192.0.2.1"}},
       [](FakeServices& f) { route_lookup(f, ENETUNREACH); }},
      {"link.features", {{"interface", "eth0"}}},
      {"link.features", {{"interface", "eth0"}, {"features", {"rx-gro"}}}},
      {"veth.peer", {{"interface", "va"}}},
      {"veth.peer", {{"interface", "eth0"}}},
      {"veth.peer", {{"interface", "nope"}}},
      {"netns.inode", {{"paths", {"host"}}, {"pids", {getpid()}}}},
      {"exec", {{"argv", {"tool", "x"}}, {"json", true}},
       [](FakeServices& f) {
         f.fake_processes.answer(ProcessResult{.exit_code = 0, .out = "[1]", .duration = Millis(3)});
       }},
      {"exec", {{"cmd", "false"}, {"shell", true}},
       [](FakeServices& f) { f.fake_processes.answer(ProcessResult{.term_signal = 9}); }},
      {"ping", {{"target", "10.0.0.2"}}, [](FakeServices& f) { echo_answers(f); }},
      {"ping", {{"target", {"10.0.0.2", "10.0.0.9"}}, {"size", 1472}},
       [](FakeServices& f) { echo_answers(f); }},
      {"ping", {{"target", "not-an-ip"}}},
      {"ping", {{"target", "10.0.0.2"}}, [](FakeServices& f) { f.fake_pinger.fail("no socket"); }},
      {"mtu", {{"target", "10.255.2.1"}},
       [](FakeServices& f) {
         route_lookup(f, 0);
         echo_answers(f);
       }},
      {"mtu", {{"target", "10.255.2.1"}},
       [](FakeServices& f) {
         route_lookup(f, 0);
         echo_answers(f, 1500);
       }},
      {"mtu", {{"target", "10.0.0.9"}},
       [](FakeServices& f) {
         route_lookup(f, 0);
         echo_answers(f);
       }},
      {"mtu", {{"target", "192.0.2.1"}}, [](FakeServices& f) { route_lookup(f, ENETUNREACH); }},
      {"dns", {{"name", "backend.apps.internal"}, {"server", "10.0.0.53"}},
       [](FakeServices& f) {
         f.fake_resolver.answer(DnsResponse{
             .rcode = "NOERROR",
             .answers = {{.name = "backend.apps.internal", .type = "A", .data = "10.0.0.1"}},
             .server = "10.0.0.53"});
       }},
      {"dns", {{"name", "x.invalid"}, {"count", 3}},
       [](FakeServices& f) {
         f.fake_resolver.answer(DnsResponse{.rcode = "NXDOMAIN", .server = "10.0.0.53"});
       }},
      {"dns", {{"name", "a"}, {"server", "10.0.0.99"}},
       [](FakeServices& f) { f.fake_resolver.answer(DnsResponse{.rcode = "timeout"}); }},
      {"http", {{"url", "http://10.0.0.8/"}, {"body_contains", "x"}},
       [](FakeServices& f) {
         f.fake_http.answer(HttpResponse{.status = 200, .reason = "OK", .body = "x",
                                         .remote_ip = "10.0.0.8", .remote_port = 80});
       }},
      {"http", {{"url", "http://backend.apps.internal/"}, {"count", 2}},
       [](FakeServices& f) {
         f.fake_resolver.answer(DnsResponse{.rcode = "NXDOMAIN", .server = "10.0.0.53"});
       }},
      {"http", {{"url", "http://10.0.0.8/"}},
       [](FakeServices& f) {
         f.fake_http.answer(HttpResponse{.error_kind = "timeout", .error = "timed out"});
       }},
      {"sysctl", {{"key", "net.ipv4.ip_forward"}}, nullptr, true},
      {"sysctl", {{"key", "kernel.ostype"}}, nullptr, true},
      {"file", {{"path", json_file}, {"json_path", "a.b.1"}}, nullptr, true},
      {"file", {{"path", yaml_file}, {"yaml_path", "a.b"}}, nullptr, true},
      {"file", {{"path", text_file}}, nullptr, true},
      {"file", {{"path", "/nonexistent/netplay"}}, nullptr, true},
      {"tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}}, probes("open")},
      {"tcp.connect", {{"host", "10.0.0.2"}, {"port", 81}, {"count", 3}}, probes("refused")},
      {"tcp.connect", {{"host", "no.such.name"}, {"port", 80}}, probes("open")},
      {"tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}},
       [](FakeServices& f) { f.fake_tcp.fail("cancelled"); }},
      {"sockets.listen", json::object(), probes("open")},
      {"sockets.listen", {{"proto", "tcp"}, {"port", 22}}, probes("open")},
      {"sockets.listen", {{"port", 8080}}, probes("open")},
      {"firewall", {{"match", {{"proto", "udp"}, {"dport", 4789}}}}, probes("open")},
      {"firewall", {{"family", "inet"}}, probes("open")},
      {"firewall", {{"match", {{"proto", "tcp"}, {"dport", 22}, {"saddr", "10.0.0.9"}}}},
       probes("open")},
      {"firewall", json::object(), [](FakeServices& f) { f.fake_firewall.fail("nftables: x"); }},
      {"vxlan.decode", {{"file", pcap_file}, {"tags", tags_file}}, nullptr, true},
      {"vxlan.decode", {{"file", text_file}}, nullptr, true},
      {"vxlan.decode", {{"file", pcap_file}, {"filter", "udp port"}}, nullptr, true},
      {"capture", {{"interface", "eth0"}, {"count", 1}, {"decode", "vxlan"}}, canned_capture},
      {"capture", {{"interface", "eth0"}, {"duration", 500}}, canned_capture},
      {"capture", {{"interface", "eth9"}},
       [](FakeServices& f) { f.fake_packets.fail("no such interface 'eth9' in this namespace"); }},
      {"trace.hops",
       {{"points", {{{"name", "a"}, {"interface", "eth0"}}, {{"name", "b"}, {"interface", "eth1"}}}},
        {"duration", 500}},
       canned_capture},
      {"trace.hops", {{"points", {{{"interface", "eth0"}}}}}, canned_capture},
  };
}

TEST(StepFacts, EveryBuiltinStepReportsOnlyDeclaredFacts) {
  for (const auto& s : scenarios()) {
    SCOPED_TRACE(s.step + " " + s.params.dump());
    FakeServices fakes;
    if (s.setup) s.setup(fakes);
    StepContext ctx;
    ctx.deadline = fakes.fake_clock.now() + std::chrono::seconds(10);
    StepOutput out = run_step(s.step, s.params, s.real ? nullptr : &fakes, ctx);
    EXPECT_FALSE(out.message.empty());
  }
}

TEST(StepFacts, EveryBuiltinStepHasScenarios) {
  std::set<std::string> covered;
  for (const auto& s : scenarios()) covered.insert(s.step);
  for (const Step* step : Registry::instance().all()) {
    const std::string& name = step->spec().name;
    if (name.starts_with("test.") || name.starts_with("fake.")) continue;  // other tests
    EXPECT_TRUE(covered.contains(name)) << "step " << name << " has no scenario in "
                                        << __FILE__ << ": add one";
  }
}

TEST(StepFacts, UndeclaredFactsAreNamed) {
  StepSpec spec{.name = "x", .facts = {{"a", "map", ""}, {"b", "int", ""}}};
  EXPECT_TRUE(undeclared_facts(spec, {{"a", {{"nested", 1}}}, {"b", 2}}).empty());
  EXPECT_EQ(undeclared_facts(spec, {{"a", 1}, {"c", 2}, {"d", 3}}),
            (std::vector<std::string>{"c", "d"}));
}

}  // namespace
}  // namespace netplay
