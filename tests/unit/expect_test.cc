/// Every matcher, passing and failing, with the exact message a user reads.

#include "runner/base/expect.h"

#include <gtest/gtest.h>

namespace netplay {
namespace {

const json kFacts = json::parse(R"({
  "dstport": 8472, "kind": "bridge", "state": "STALE", "loss_pct": 20, "rtt": 0.25,
  "port_text": "4789", "gbp": true, "name": "silk-vtep",
  "entries": [{"dst": "10.0.0.2", "mac": "ee:ee:0a:00:00:02"}, {"dst": "10.0.0.3"}],
  "flags": ["UP", "LOWER_UP"], "labels": {"app": "web"}, "empty": [], "nothing": null,
  "net.ipv4.ip_forward": "1"
})");

/// Judges one expectation; returns the single result.
ExpectationResult one(const std::string& fact, const json& spec) {
  auto r = judge(json{{fact, spec}}, kFacts);
  EXPECT_EQ(r.size(), 1u);
  return r.empty() ? ExpectationResult{} : r[0];
}

void expect_fail(const std::string& fact, const json& spec, const std::string& message) {
  auto r = one(fact, spec);
  EXPECT_FALSE(r.ok) << fact << " " << spec.dump();
  EXPECT_EQ(r.message, message);
}

void expect_pass(const std::string& fact, const json& spec) {
  auto r = one(fact, spec);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Expect, ContractMessages) {
  expect_fail("dstport", 4789, "dstport: expected 4789, got 8472");
  expect_fail("loss_pct", {{"lt", 5}}, "loss_pct: expected < 5, got 20");
  expect_fail("state", {{"one_of", {"REACHABLE", "PERMANENT"}}},
              "state: expected one of [REACHABLE, PERMANENT], got 'STALE'");
  expect_fail("kind", "vxlan", "kind: expected 'vxlan', got 'bridge'");
  expect_fail("lladdr", {{"present", true}}, "lladdr: expected present, got absent");
}

TEST(Expect, Equality) {
  expect_pass("dstport", 8472);
  expect_pass("dstport", {{"eq", 8472}});
  expect_pass("dstport", "8472");  // a numeric string equals the number
  expect_pass("port_text", 4789);  // and the other way round
  expect_pass("rtt", 0.25);
  expect_pass("gbp", true);
  expect_fail("gbp", false, "gbp: expected false, got true");
  expect_pass("flags", json({"UP", "LOWER_UP"}));
  expect_pass("labels", {{"eq", {{"app", "web"}}}});
  expect_fail("kind", "Bridge", "kind: expected 'Bridge', got 'bridge'");
  expect_pass("kind", {{"ne", "vxlan"}});
  expect_fail("dstport", {{"ne", 8472}}, "dstport: expected != 8472, got 8472");
  expect_fail("missing", 1, "missing: expected 1, got absent");
  expect_fail("missing", {{"ne", 1}}, "missing: expected != 1, got absent");
}

TEST(Expect, Ordering) {
  expect_pass("loss_pct", {{"le", 20}});
  expect_pass("loss_pct", {{"ge", 20}});
  expect_pass("loss_pct", {{"gt", 19.5}});
  expect_fail("loss_pct", {{"gt", 20}}, "loss_pct: expected > 20, got 20");
  expect_fail("loss_pct", {{"le", 19}}, "loss_pct: expected <= 19, got 20");
  expect_fail("rtt", {{"ge", 1}}, "rtt: expected >= 1, got 0.25");
  expect_pass("port_text", {{"gt", 4000}});
  expect_fail("kind", {{"lt", 5}}, "kind: expected < 5, got 'bridge'");
  expect_fail("missing", {{"lt", 5}}, "missing: expected < 5, got absent");
}

TEST(Expect, CombinedMatchersGiveOneResultEach) {
  auto r = judge(json{{"loss_pct", {{"gt", 0}, {"lt", 10}}}}, kFacts);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].ok);
  EXPECT_EQ(r[0].matcher, "gt");
  EXPECT_FALSE(r[1].ok);
  EXPECT_EQ(r[1].matcher, "lt");
  EXPECT_EQ(r[1].expected, json(10));
  EXPECT_EQ(r[1].actual, json(20));
  EXPECT_EQ(r[1].fact, "loss_pct");
  EXPECT_EQ(r[1].message, "loss_pct: expected < 10, got 20");
}

TEST(Expect, ResultsKeepTheOrderWritten) {
  auto r = judge(json::parse(R"({"state": "STALE", "dstport": 1, "kind": "bridge"})"), kFacts);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].fact, "state");
  EXPECT_EQ(r[1].fact, "dstport");
  EXPECT_EQ(r[2].fact, "kind");
  EXPECT_EQ(r[1].actual, json(8472));
}

TEST(Expect, Contains) {
  expect_pass("name", {{"contains", "vtep"}});
  expect_pass("flags", {{"contains", "UP"}});
  expect_pass("labels", {{"contains", "app"}});
  expect_fail("flags", {{"contains", "DOWN"}},
              "flags: expected to contain 'DOWN', got [\"UP\",\"LOWER_UP\"]");
  expect_pass("flags", {{"not_contains", "DOWN"}});
  expect_fail("name", {{"not_contains", "silk"}},
              "name: expected not to contain 'silk', got 'silk-vtep'");
  expect_fail("missing", {{"contains", "x"}}, "missing: expected to contain 'x', got absent");
}

TEST(Expect, Matches) {
  expect_pass("name", {{"matches", "^silk-"}});
  expect_pass("entries.0.mac", {{"matches", "^ee:ee(:[0-9a-f]{2}){4}$"}});
  expect_pass("dstport", {{"matches", "^84"}});  // numbers match as their text
  expect_fail("name", {{"matches", "^cni"}}, "name: expected to match /^cni/, got 'silk-vtep'");
  expect_fail("name", {{"matches", "("}}, "name: expected to match /(/, got 'silk-vtep'");
}

TEST(Expect, AbsentAndPresent) {
  expect_pass("lladdr", {{"absent", true}});
  expect_pass("nothing", {{"absent", true}});  // null counts as absent
  expect_fail("dstport", {{"absent", true}}, "dstport: expected absent, got 8472");
  expect_pass("dstport", {{"present", true}});
  expect_pass("dstport", {{"absent", false}});
  expect_fail("nothing", {{"present", true}}, "nothing: expected present, got absent");
  expect_pass("lladdr", {{"present", false}});
}

TEST(Expect, Length) {
  expect_pass("entries", {{"len", 2}});
  expect_pass("name", {{"len", 9}});
  expect_pass("labels", {{"len", 1}});
  expect_fail("entries", {{"len", 3}}, "entries: expected length 3, got length 2");
  expect_pass("entries", {{"len", {{"gt", 0}, {"lt", 10}}}});
  expect_fail("empty", {{"len", {{"gt", 0}}}}, "empty: expected length > 0, got length 0");
  expect_fail("dstport", {{"len", 1}}, "dstport: expected length 1, got 8472");
  expect_fail("missing", {{"len", 0}}, "missing: expected length 0, got absent");
  EXPECT_EQ(one("entries", {{"len", 3}}).actual, json(2));
}

TEST(Expect, DottedPaths) {
  expect_pass("entries.0.dst", "10.0.0.2");
  expect_fail("entries.1.dst", "10.0.0.2", "entries.1.dst: expected '10.0.0.2', got '10.0.0.3'");
  expect_fail("entries.2.dst", "x", "entries.2.dst: expected 'x', got absent");
  expect_pass("labels.app", "web");
  expect_pass("net.ipv4.ip_forward", "1");  // a key holding dots wins over the split
  EXPECT_EQ(lookup_fact(kFacts, "entries.0.mac"), &kFacts["entries"][0]["mac"]);
  EXPECT_EQ(lookup_fact(kFacts, "entries.x"), nullptr);
  EXPECT_EQ(lookup_fact(kFacts, "entries.-1"), nullptr);
  EXPECT_EQ(lookup_fact(kFacts, "dstport.0"), nullptr);
  EXPECT_EQ(lookup_fact(kFacts, "nope"), nullptr);
}

TEST(Expect, LoadTimeChecks) {
  EXPECT_EQ(check_expectation(4789), std::nullopt);
  EXPECT_EQ(check_expectation(json::array({1, 2})), std::nullopt);
  EXPECT_EQ(check_expectation({{"lt", 5}, {"gt", 0}}), std::nullopt);
  EXPECT_EQ(check_expectation({{"lt", "{{ inputs.max }}"}}), std::nullopt);
  EXPECT_EQ(check_expectation({{"len", {{"ge", 1}}}}), std::nullopt);
  EXPECT_EQ(check_expectation({{"matches", "^a+$"}}), std::nullopt);
  EXPECT_EQ(check_expectation({{"gtt", 5}}).value(), "unknown matcher 'gtt' (did you mean 'gt'?)");
  EXPECT_EQ(check_expectation({{"greater", 5}}).value(),
            "unknown matcher 'greater' (matchers: eq, ne, lt, le, gt, ge, one_of, contains, "
            "not_contains, matches, absent, present, len)");
  EXPECT_EQ(check_expectation({{"lt", "5ms"}}).value(), "lt: expected a number, got '5ms'");
  EXPECT_EQ(check_expectation({{"one_of", 3}}).value(), "one_of: expected a non-empty list, got 3");
  EXPECT_EQ(check_expectation({{"absent", "yes"}}).value(),
            "absent: expected true or false, got 'yes'");
  EXPECT_EQ(check_expectation({{"contains", json::array()}}).value(),
            "contains: expected a string or number, got []");
  EXPECT_EQ(check_expectation({{"len", -1}}).value(),
            "len: expected a length (an integer >= 0) or a matcher, got -1");
  EXPECT_EQ(check_expectation({{"len", {{"matches", "x"}}}}).value(),
            "len: unknown matcher 'matches' (use eq, ne, lt, le, gt, ge, one_of)");
  EXPECT_EQ(check_expectation(json::object()).value(),
            "empty matcher (compare with an empty map as {eq: {}})");
  auto bad = check_expectation({{"matches", "(a"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->rfind("matches: invalid regex '(a': ", 0), 0u) << *bad;
}

TEST(Expect, MatcherNames) { EXPECT_EQ(matcher_names().size(), 13u); }

}  // namespace
}  // namespace netplay
