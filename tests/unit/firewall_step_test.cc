#include <gtest/gtest.h>

#include "runner/step/fakes.h"
#include "tests/unit/support/nft_canned.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

FakeServices& with_ruleset(FakeServices& f) {
  f.fake_firewall.answer(json::parse(canned::kNftRuleset));
  return f;
}

/// The drops as "family table chain handle exact" lines, for compact comparison.
std::vector<std::string> drop_ids(const json& facts) {
  std::vector<std::string> out;
  for (const auto& d : facts["drops"])
    out.push_back(fmt::format("{} {} {} {} {}", d["family"].get<std::string>(),
                              d["table"].get<std::string>(), d["chain"].get<std::string>(),
                              d["handle"].dump(), d["exact"].get<bool>() ? "exact" : "maybe"));
  return out;
}

TEST(FirewallStep, VxlanDroppedByNftAndIptablesRules) {
  FakeServices fakes;
  auto o = run_step("firewall", {{"match", {{"proto", "udp"}, {"dport", 4789}}}},
                    &with_ruleset(fakes));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "udp dport 4789 dropped by inet filter input handle 7 "
            "'udp dport 4789 counter drop' (12 packets) and 1 more rule");
  // ct state invalid does not hit a valid packet; the tcp rules and the vxlan chain (only
  // for dport 8472) do not; the rules after handle 7 in its chain never see the packet.
  EXPECT_EQ(drop_ids(o.facts),
            (std::vector<std::string>{"inet filter input 7 exact", "ip filter INPUT 2 exact"}));
  const auto& d = o.facts["drops"][0];
  EXPECT_EQ(d["hook"], "input");
  EXPECT_EQ(d["verdict"], "drop");
  EXPECT_EQ(d["packets"], 12);
  EXPECT_EQ(d["bytes"], 1200);
  EXPECT_EQ(d["comment"], "no vxlan");
  EXPECT_EQ(o.facts["drops"][1]["text"], "udp dport 4789 counter drop");  // iptables-nft's
  EXPECT_EQ(o.facts["drop_count"], 2);
  EXPECT_EQ(fakes.fake_firewall.requests().at(0).family, "");
}

TEST(FirewallStep, AddressesNarrowTheDrops) {
  FakeServices fakes;
  auto o = run_step("firewall",
                    {{"match", {{"proto", "udp"}, {"dport", 4789}, {"saddr", "10.2.3.4"},
                                {"iif", "eth0"}}}},
                    &with_ruleset(fakes));
  // Handle 7 drops it first in its chain; the iptables chain drops it too.
  EXPECT_EQ(drop_ids(o.facts),
            (std::vector<std::string>{"inet filter input 7 exact", "ip filter INPUT 2 exact"}));
  o = run_step("firewall",
               {{"match", {{"proto", "tcp"}, {"dport", 80}, {"saddr", "10.9.9.9"}}}}, &fakes);
  // Only the multiport rule (an xt match netplay cannot read) may drop tcp port 80.
  EXPECT_EQ(drop_ids(o.facts), (std::vector<std::string>{"ip filter INPUT 3 maybe"}));
  EXPECT_EQ(o.status, Status::kWarn);  // only a possible drop: a warning, not a failure
  EXPECT_EQ(o.message,
            "tcp saddr 10.9.9.9 dport 80 may be dropped by ip filter INPUT handle 3 "
            "'meta l4proto tcp xt match multiport counter xt target REJECT' (0 packets)");
}

/// An input chain that accepts VXLAN and then drops everything, and a forward chain that
/// drops everything.
constexpr const char* kAcceptThenDrop = R"json({"nftables":[
{"table":{"family":"inet","name":"t","handle":1}},
{"chain":{"family":"inet","table":"t","name":"input","handle":1,"type":"filter","hook":"input","prio":0,"policy":"accept"}},
{"chain":{"family":"inet","table":"t","name":"fwd","handle":2,"type":"filter","hook":"forward","prio":0,"policy":"accept"}},
{"rule":{"family":"inet","table":"t","chain":"input","handle":3,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":4789}},{"accept":null}]}},
{"rule":{"family":"inet","table":"t","chain":"input","handle":4,"expr":[{"drop":null}]}},
{"rule":{"family":"inet","table":"t","chain":"fwd","handle":5,"expr":[{"drop":null}]}}
]})json";

TEST(FirewallStep, AnAcceptEndsItsChainAndDirectionPicksTheHooks) {
  FakeServices fakes;
  fakes.fake_firewall.answer(json::parse(kAcceptThenDrop));
  json vxlan = {{"proto", "udp"}, {"dport", 4789}};
  json dns = {{"proto", "udp"}, {"dport", 53}};
  auto o = run_step("firewall", {{"match", vxlan}}, &fakes);
  EXPECT_EQ(drop_ids(o.facts), (std::vector<std::string>{"inet t fwd 5 exact"}));
  o = run_step("firewall", {{"match", vxlan}, {"direction", "in"}}, &fakes);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_TRUE(o.facts["drops"].empty());
  o = run_step("firewall", {{"match", dns}, {"direction", "in"}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(drop_ids(o.facts), (std::vector<std::string>{"inet t input 4 exact"}));
  o = run_step("firewall", {{"match", dns}, {"direction", "forward"}}, &fakes);
  EXPECT_EQ(drop_ids(o.facts), (std::vector<std::string>{"inet t fwd 5 exact"}));
  o = run_step("firewall", {{"match", dns}, {"direction", "out"}}, &fakes);
  EXPECT_TRUE(o.facts["drops"].empty()) << o.message;
}

TEST(FirewallStep, SetsAndRangesOfPorts) {
  FakeServices fakes;
  with_ruleset(fakes);
  auto o = run_step("firewall",
                    {{"match", {{"proto", "tcp"}, {"dport", 82}, {"saddr", "10.0.0.5"}}}}, &fakes);
  EXPECT_EQ(drop_ids(o.facts), (std::vector<std::string>{"inet filter input 9 exact",
                                                         "ip filter INPUT 3 maybe"}));
  EXPECT_EQ(o.facts["drops"][0]["text"], "tcp dport { 81, 82 } drop");
  o = run_step("firewall",
               {{"match", {{"proto", "tcp"}, {"dport", 1500}, {"saddr", "10.0.0.5"}}}}, &fakes);
  ASSERT_GE(o.facts["drops"].size(), 1u);
  EXPECT_EQ(o.facts["drops"][0]["handle"], 10);
  EXPECT_EQ(o.facts["drops"][0]["verdict"], "reject");
  EXPECT_EQ(o.facts["drops"][0]["text"], "tcp dport 1000-2000 reject with icmpx port-unreachable");
}

TEST(FirewallStep, RulesInAChainReachedByAJump) {
  FakeServices fakes;
  with_ruleset(fakes);
  auto o = run_step("firewall",
                    {{"match", {{"proto", "udp"}, {"dport", 8472}, {"saddr", "10.9.9.9"}}}},
                    &fakes);
  EXPECT_EQ(drop_ids(o.facts), (std::vector<std::string>{"inet filter vxlan 13 exact"}));
  EXPECT_EQ(o.facts["drops"][0]["hook"], "input");
  EXPECT_EQ(o.facts["drops"][0]["text"], "ip saddr != 10.0.0.0/24 counter drop");
  o = run_step("firewall",
               {{"match", {{"proto", "udp"}, {"dport", 8472}, {"saddr", "10.0.0.9"}}}}, &fakes);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_TRUE(o.facts["drops"].empty());
  EXPECT_EQ(o.message,
            "udp saddr 10.0.0.9 dport 8472: no rule drops it (3 tables, 5 chains, 13 rules); "
            "policy drop in inet filter forward");
}

TEST(FirewallStep, WithoutMatchASummaryOfEverything) {
  FakeServices fakes;
  auto o = run_step("firewall", json::object(), &with_ruleset(fakes));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message,
            "3 tables, 5 chains, 13 rules, 9 drop/reject rules; policy drop in inet filter "
            "forward");
  EXPECT_EQ(o.facts["tables"][0], json({{"family", "inet"}, {"name", "filter"}}));
  EXPECT_EQ(o.facts["chains"][0], json({{"family", "inet"},
                                        {"table", "filter"},
                                        {"name", "input"},
                                        {"type", "filter"},
                                        {"hook", "input"},
                                        {"priority", 0},
                                        {"policy", "accept"}}));
  EXPECT_TRUE(o.facts["chains"][2]["hook"].is_null());  // the regular chain vxlan
  EXPECT_EQ(o.facts["rule_count"], 13);
  EXPECT_EQ(o.facts["policy_drops"],
            json::parse(R"([{"family":"inet","table":"filter","chain":"forward","hook":"forward",
                            "priority":0}])"));
  for (const auto& d : o.facts["drops"]) EXPECT_TRUE(d["exact"].get<bool>());
}

TEST(FirewallStep, MarksFromNftAndIptables) {
  FakeServices fakes;
  auto o = run_step("firewall", json::object(), &with_ruleset(fakes));
  ASSERT_EQ(o.facts["marks"].size(), 2u);
  EXPECT_EQ(o.facts["marks"][0]["kind"], "meta");
  EXPECT_EQ(o.facts["marks"][0]["value"], "0x10");
  EXPECT_EQ(o.facts["marks"][0]["text"], "meta mark set 0x10");
  EXPECT_EQ(o.facts["marks"][1]["table"], "mangle");
  EXPECT_TRUE(o.facts["marks"][1]["value"].is_null());  // xt MARK: value not readable
  EXPECT_EQ(o.facts["marks"][1]["text"], "counter xt target MARK");
}

TEST(FirewallStep, AnExpectationOnDropsJudgesInstead) {
  FakeServices fakes;
  StepContext ctx;
  ctx.expected_facts = {"drop_count"};
  auto o = run_step("firewall", {{"match", {{"proto", "udp"}, {"dport", 4789}}}},
                    &with_ruleset(fakes), ctx);
  EXPECT_EQ(o.status, Status::kPass);
}

TEST(FirewallStep, FamilyGoesToTheService) {
  FakeServices fakes;
  auto o = run_step("firewall", {{"family", "inet"}}, &with_ruleset(fakes));
  EXPECT_EQ(fakes.fake_firewall.requests().at(0).family, "inet");
}

TEST(FirewallStep, LibnftablesErrorsAreErrors) {
  FakeServices fakes;
  fakes.fake_firewall.fail(
      "nftables: Error: Operation not permitted (reading the ruleset needs CAP_NET_ADMIN)");
  auto o = run_step("firewall", json::object(), &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_NE(o.message.find("CAP_NET_ADMIN"), std::string::npos);
}

TEST(FirewallStep, BadMatchIsOneClearLine) {
  FakeServices fakes;
  with_ruleset(fakes);
  auto o = run_step("firewall", {{"match", {{"port", 53}}}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message,
            "match: unknown key 'port' (known: proto, dport, sport, saddr, daddr, iif, oif)");
  o = run_step("firewall", {{"match", {{"dport", 70000}}}}, &fakes);
  EXPECT_EQ(o.message, "match.dport: expected a port from 1 to 65535, got 70000");
  o = run_step("firewall", {{"match", {{"proto", "udpx"}}}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_TRUE(fakes.fake_firewall.requests().empty());
}

TEST(FirewallStep, EmptyRuleset) {
  FakeServices fakes;
  fakes.fake_firewall.answer(json{{"nftables", json::array()}});
  auto o = run_step("firewall", {{"match", {{"proto", "udp"}, {"dport", 4789}}}}, &fakes);
  EXPECT_EQ(o.status, Status::kPass);
  EXPECT_EQ(o.message, "udp dport 4789: no rule drops it (0 tables, 0 chains, 0 rules)");
}

}  // namespace
}  // namespace netplay
