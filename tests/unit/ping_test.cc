/// ping and mtu on FakePinger / FakeNetlink: statistics, default verdicts, the binary search
/// of the path MTU; the `scalar_as_list` param check; the real pinger on loopback.

#include <linux/rtnetlink.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runner/step/fakes.h"
#include "runner/step/params.h"
#include "tests/unit/support/netlink_canned.h"
#include "tests/unit/support/dns_canned.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

using ::testing::HasSubstr;

EchoResult replies(std::string target, int sent, std::vector<double> rtts) {
  EchoResult r;
  r.target = std::move(target);
  r.sent = sent;
  r.rtt_ms = std::move(rtts);
  r.socket = "raw";
  return r;
}

IcmpError unreachable(std::string from, int seq) {
  return {.kind = "unreachable", .from = std::move(from), .type = 3, .code = 1, .seq = seq,
          .detail = "host unreachable"};
}

TEST(PingStep, AllRepliesPassWithIputilsStatistics) {
  FakeServices fakes;
  fakes.fake_pinger.answer(std::vector<EchoResult>{replies("10.0.0.2", 4, {1, 2, 3, 4})});
  auto o = run_step("ping", {{"target", "10.0.0.2"}, {"count", 4}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "10.0.0.2: 4/4 received, rtt avg 2.500 ms");
  EXPECT_EQ(o.facts["sent"], 4);
  EXPECT_EQ(o.facts["received"], 4);
  EXPECT_EQ(o.facts["loss_pct"], 0.0);
  EXPECT_EQ(o.facts["rtt_min_ms"], 1.0);
  EXPECT_EQ(o.facts["rtt_avg_ms"], 2.5);
  EXPECT_EQ(o.facts["rtt_max_ms"], 4.0);
  // sqrt(mean(x^2) - mean(x)^2) = sqrt(7.5 - 6.25)
  EXPECT_EQ(o.facts["rtt_mdev_ms"], std::round(std::sqrt(1.25) * 1000) / 1000);
  EXPECT_EQ(o.facts["socket"], "raw");
  EXPECT_EQ(o.facts["targets"][0]["received"], 4);
  EXPECT_FALSE(o.facts.contains("frag_needed_mtu"));

  auto reqs = fakes.fake_pinger.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].targets, std::vector<std::string>{"10.0.0.2"});
  EXPECT_EQ(reqs[0].count, 4);
  EXPECT_EQ(reqs[0].interval, Millis(200));
  EXPECT_EQ(reqs[0].timeout, Millis(1000));
  EXPECT_EQ(reqs[0].size, 56);
  EXPECT_FALSE(reqs[0].dont_fragment);
}

TEST(PingStep, PartialLossPassesWithTheLossInTheMessage) {
  FakeServices fakes;
  fakes.fake_pinger.answer(std::vector<EchoResult>{replies("fd00::2", 3, {0.5, 0.5})});
  auto o = run_step("ping", {{"target", "fd00::2"}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "fd00::2: 2/3 received (33.33% loss), rtt avg 0.500 ms");
  EXPECT_EQ(o.facts["loss_pct"], 33.33);
}

TEST(PingStep, ATargetWithoutAnyReplyFailsNamingItAndTheError) {
  FakeServices fakes;
  auto dead = replies("10.0.0.9", 3, {});
  dead.errors = {unreachable("10.0.0.1", 1), unreachable("10.0.0.1", 2)};
  fakes.fake_pinger.answer(
      std::vector<EchoResult>{replies("10.0.0.2", 3, {1, 1, 1}), dead,
                              replies("10.0.0.3", 3, {2, 2, 2})});
  auto o = run_step("ping", {{"target", {"10.0.0.2", "10.0.0.9", "10.0.0.3"}}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "10.0.0.9: 0/3 received (host unreachable from 10.0.0.1) (6/9 received in all)");
  EXPECT_EQ(o.facts["received"], 6);
  EXPECT_EQ(o.facts["sent"], 9);
  EXPECT_EQ(o.facts["targets"][1]["target"], "10.0.0.9");
  EXPECT_EQ(o.facts["targets"][1]["received"], 0);
  EXPECT_FALSE(o.facts["targets"][1].contains("rtt_avg_ms"));
  ASSERT_EQ(o.facts["errors"].size(), 2u);
  EXPECT_EQ(o.facts["errors"][0],
            json({{"target", "10.0.0.9"}, {"kind", "unreachable"}, {"from", "10.0.0.1"},
                  {"type", 3}, {"code", 1}, {"mtu", 0}, {"seq", 1},
                  {"detail", "host unreachable"}}));
  EXPECT_EQ(fakes.fake_pinger.requests()[0].targets.size(), 3u);
}

TEST(PingStep, AnExpectationOnLossDecidesInstead) {
  FakeServices fakes;
  fakes.fake_pinger.answer(std::vector<EchoResult>{replies("10.0.0.9", 3, {})});
  StepContext ctx;
  ctx.expected_facts = {"loss_pct"};
  auto o = run_step("ping", {{"target", "10.0.0.9"}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "10.0.0.9: 0/3 received");
  EXPECT_EQ(o.facts["loss_pct"], 100.0);
  EXPECT_FALSE(o.facts.contains("rtt_avg_ms"));
}

TEST(PingStep, FragNeededMtuIsTheSmallestReported) {
  FakeServices fakes;
  auto r = replies("10.0.2.2", 3, {});
  r.errors = {{.kind = "frag_needed", .from = "10.0.1.1", .type = 3, .code = 4, .mtu = 1400,
               .seq = 1, .detail = "fragmentation needed (mtu 1400)"},
              {.kind = "frag_needed", .from = "10.0.3.1", .type = 3, .code = 4, .mtu = 1300,
               .seq = 2, .detail = "fragmentation needed (mtu 1300)"}};
  fakes.fake_pinger.answer(std::vector<EchoResult>{r});
  auto o = run_step("ping", {{"target", "10.0.2.2"}, {"size", 1472}, {"dont_fragment", true}},
                    &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.facts["frag_needed_mtu"], 1300);
  EXPECT_EQ(o.message, "10.0.2.2: 0/3 received (fragmentation needed (mtu 1400) from 10.0.1.1)");
  EXPECT_TRUE(fakes.fake_pinger.requests()[0].dont_fragment);
  EXPECT_EQ(fakes.fake_pinger.requests()[0].size, 1472);
}

TEST(PingStep, AnUnresolvableNameIsAnError) {
  FakeServices fakes;
  fakes.fake_resolver.answer(DnsResponse{.rcode = "NXDOMAIN", .server = "10.0.0.53"});
  auto o = run_step("ping", {{"target", "no-such-host.invalid"}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_THAT(o.message, HasSubstr("cannot resolve 'no-such-host.invalid': NXDOMAIN"));
  EXPECT_TRUE(fakes.fake_pinger.requests().empty());
}

TEST(PingStep, ANameIsPingedAtTheAddressItResolvesTo) {
  FakeServices fakes;
  canned::resolve_to(fakes, "10.0.0.2");
  fakes.fake_pinger.answer(std::vector<EchoResult>{replies("10.0.0.2", 3, {1, 1, 1})});
  auto o = run_step("ping", {{"target", "backend.np.invalid"}}, &fakes);
  ASSERT_EQ(fakes.fake_pinger.requests().size(), 1u) << o.message;
  EXPECT_EQ(fakes.fake_pinger.requests()[0].targets, std::vector<std::string>{"10.0.0.2"});
}

TEST(PingStep, FamilyRefusesTheOtherOne) {
  FakeServices fakes;
  auto o = run_step("ping", {{"target", {"10.0.0.2", "fd00::2"}}, {"family", "4"}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "fd00::2 is not an IPv4 address (family: 4)");
}

TEST(PingStep, NothingSentIsAnError) {
  FakeServices fakes;
  fakes.fake_pinger.fail("ping 10.0.0.2: cannot use source 10.9.9.9: Cannot assign requested address");
  auto o = run_step("ping", {{"target", "10.0.0.2"}, {"source", "10.9.9.9"}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message,
            "ping 10.0.0.2: cannot use source 10.9.9.9: Cannot assign requested address");
  EXPECT_EQ(fakes.fake_pinger.requests()[0].source, "10.9.9.9");
}

TEST(PingStep, PastTheDeadlineTheServiceSaysTimedOut) {
  FakeServices fakes;
  fakes.fake_pinger.answer(std::vector<EchoResult>{replies("10.0.0.2", 3, {1, 1, 1})});
  StepContext ctx;
  ctx.deadline = fakes.fake_clock.now() + std::chrono::milliseconds(10);
  fakes.fake_clock.advance(Millis(20));
  auto o = run_step("ping", {{"target", "10.0.0.2"}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "ping: timed out");
}

TEST(PingStep, MoreRequestsThanTheStepTimeoutAllowsIsAnErrorAtOnce) {
  FakeServices fakes;
  fakes.fake_pinger.answer(std::vector<EchoResult>{replies("10.0.0.2", 3, {1, 1, 1})});
  StepContext ctx;
  ctx.deadline = fakes.fake_clock.now() + std::chrono::seconds(10);
  auto o = run_step("ping", {{"target", "10.0.0.2"}, {"count", 100}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message,
            "100 requests every 200ms take 19.8s, longer than the step's timeout (10s left): "
            "raise the step's timeout or lower count");
  EXPECT_TRUE(fakes.fake_pinger.requests().empty());
}

TEST(PingStep, TheWaitForRepliesIsCutToTheStepTimeout) {
  FakeServices fakes;
  fakes.fake_pinger.answer(std::vector<EchoResult>{replies("10.0.0.2", 3, {1, 1, 1})});
  StepContext ctx;
  ctx.deadline = fakes.fake_clock.now() + std::chrono::seconds(1);
  auto o = run_step("ping", {{"target", "10.0.0.2"}, {"timeout", "5s"}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(fakes.fake_pinger.requests().at(0).timeout, Millis(1000 - 400 - 100));
}

TEST(PingParams, OneTargetOrAList) {
  const StepSpec& spec = Registry::instance().find("ping")->spec();
  auto one = check_params(spec, {{"target", "10.0.0.2"}}, /*load_time=*/true);
  ASSERT_TRUE(one.problems.empty());
  EXPECT_EQ(one.values["target"], json({"10.0.0.2"}));
  auto list = check_params(spec, {{"target", {"10.0.0.2", "fd00::2"}}}, true);
  ASSERT_TRUE(list.problems.empty());
  EXPECT_EQ(list.values["target"], json({"10.0.0.2", "fd00::2"}));
  // A template stands as it is until run time, then becomes a list of one.
  auto tpl = check_params(spec, {{"target", "{{ inputs.ip }}"}}, true);
  ASSERT_TRUE(tpl.problems.empty());
  EXPECT_EQ(tpl.values["target"], "{{ inputs.ip }}");
  auto resolved = finalize_params(spec, {{"target", "10.0.0.7"}});
  ASSERT_TRUE(resolved);
  EXPECT_EQ((*resolved)["target"], json({"10.0.0.7"}));
}

TEST(PingParams, ScalarAsListChecksTheItemType) {
  ParamSpec p{.name = "addrs", .type = ValueType::kList, .item_type = ValueType::kIp,
              .scalar_as_list = true};
  auto ok = check_param(p, "10.0.0.1", "with.addrs");
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, json({"10.0.0.1"}));
  auto bad = check_param(p, "nope", "with.addrs");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().substr(0, 11), "with.addrs:");
  ParamSpec plain{.name = "addrs", .type = ValueType::kList, .item_type = ValueType::kIp};
  EXPECT_FALSE(check_param(plain, "10.0.0.1", "with.addrs"));
}

TEST(PingParams, BoundsAreCheckedAtLoadTime) {
  const StepSpec& spec = Registry::instance().find("ping")->spec();
  auto count = check_params(spec, {{"target", "10.0.0.2"}, {"count", 0}}, true);
  ASSERT_EQ(count.problems.size(), 1u);
  EXPECT_EQ(count.problems[0].message, "with.count: expected an integer from 1 to 1000, got 0");
  auto size = check_params(spec, {{"target", "10.0.0.2"}, {"size", 70000}}, true);
  ASSERT_EQ(size.problems.size(), 1u);
  EXPECT_EQ(size.problems[0].message,
            "with.size: expected an integer from 0 to 65507, got 70000");
  auto interval = check_params(spec, {{"target", "10.0.0.2"}, {"interval", "5ms"}}, true);
  ASSERT_EQ(interval.problems.size(), 1u);
  EXPECT_EQ(interval.problems[0].message,
            "with.interval: expected a duration from 10ms to 1m, got 5ms");
}

// ---- mtu ----

/// A namespace whose route to anything leaves by eth0 (MTU 1500).
void one_nic(FakeServices& f, unsigned mtu = 1500) {
  f.fake_netlink.on_dump(RTM_GETLINK, {canned::link({.index = 1, .name = "lo", .mtu = 65536}),
                                       canned::link({.index = 2, .name = "eth0", .mtu = mtu})});
  f.fake_netlink.on_request(RTM_GETROUTE,
                            {canned::route({.dst = "10.0.2.2/32", .gateway = "10.0.1.1", .oif = 2})});
}

/// A path that carries packets up to `path` bytes; larger ones are answered with frag
/// needed by `hop` when it is set, dropped otherwise.
void path(FakeServices& f, int path_mtu, std::string hop) {
  f.fake_pinger.answer([=](const EchoRequest& r, const StepContext&)
                           -> std::expected<std::vector<EchoResult>, std::string> {
    EchoResult res;
    res.target = r.targets.at(0);
    res.sent = r.count;
    if (r.size + 28 <= path_mtu) {
      res.rtt_ms = {0.1};
    } else if (!hop.empty()) {
      res.errors = {{.kind = "frag_needed", .from = hop, .type = 3, .code = 4, .mtu = path_mtu,
                     .seq = 1, .detail = "fragmentation needed"}};
    }
    return std::vector<EchoResult>{res};
  });
}

std::vector<int> sizes_tried(const FakeServices& f) {
  std::vector<int> out;
  for (const auto& r : f.fake_pinger.requests()) out.push_back(r.size + 28);
  return out;
}

TEST(MtuStep, AFullPathPassesWithOneProbe) {
  FakeServices fakes;
  one_nic(fakes);
  path(fakes, 1500, "");
  auto o = run_step("mtu", {{"target", "10.0.2.2"}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "10.0.2.2: path MTU 1500 (eth0 MTU 1500, 1 probe)");
  EXPECT_EQ(o.facts["path_mtu"], 1500);
  EXPECT_EQ(o.facts["interface"], "eth0");
  EXPECT_EQ(o.facts["interface_mtu"], 1500);
  EXPECT_EQ(o.facts["probes"], 1);
  EXPECT_EQ(o.facts["mtus"], json::parse(R"([{"interface": "eth0", "mtu": 1500}])"));
  auto r = fakes.fake_pinger.requests().at(0);
  EXPECT_TRUE(r.dont_fragment);
  EXPECT_EQ(r.count, 1);
  EXPECT_EQ(r.timeout, Millis(300));
}

TEST(MtuStep, AReportedMtuIsTriedNextAndFailsByDefault) {
  FakeServices fakes;
  one_nic(fakes);
  path(fakes, 1400, "10.0.1.1");
  auto o = run_step("mtu", {{"target", "10.0.2.2"}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "10.0.2.2: path MTU 1400 < eth0 MTU 1500: hop 10.0.1.1 reported 1400");
  EXPECT_EQ(o.facts["path_mtu"], 1400);
  EXPECT_EQ(o.facts["hop"], "10.0.1.1");
  EXPECT_EQ(o.facts["reported_mtu"], 1400);
  EXPECT_EQ(sizes_tried(fakes), (std::vector<int>{1500, 1400}));
  EXPECT_EQ(o.facts["probes"], 2);
  EXPECT_EQ(o.evidence, (std::vector<std::string>{"1500 bytes: 10.0.1.1 reported MTU 1400",
                                                   "1400 bytes: reply"}));
}

TEST(MtuStep, ABlackHoleIsFoundByBinarySearch) {
  FakeServices fakes;
  one_nic(fakes);
  path(fakes, 1400, "");
  auto o = run_step("mtu", {{"target", "10.0.2.2"}, {"retries", 0}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.facts["path_mtu"], 1400);
  EXPECT_FALSE(o.facts.contains("hop"));
  EXPECT_EQ(o.message, "10.0.2.2: path MTU 1400 < eth0 MTU 1500: larger packets got no answer");
  auto tried = sizes_tried(fakes);
  ASSERT_GE(tried.size(), 3u);
  EXPECT_EQ(tried[0], 1500);
  EXPECT_EQ(tried[1], 576);
  EXPECT_LE(tried.size(), 14u);  // log2(1500 - 576) + the two ends
  EXPECT_EQ(o.facts["probes"], static_cast<int>(tried.size()));
}

TEST(MtuStep, LostProbesAreRetried) {
  FakeServices fakes;
  one_nic(fakes);
  path(fakes, 1400, "");
  auto o = run_step("mtu", {{"target", "10.0.2.2"}, {"retries", 2}, {"min", 1300}}, &fakes);
  EXPECT_EQ(o.facts["path_mtu"], 1400);
  auto tried = sizes_tried(fakes);
  ASSERT_GE(tried.size(), 3u);
  EXPECT_EQ((std::vector<int>(tried.begin(), tried.begin() + 3)),
            (std::vector<int>{1500, 1500, 1500}));
}

TEST(MtuStep, AnExpectationOnPathMtuDecides) {
  FakeServices fakes;
  one_nic(fakes);
  path(fakes, 1400, "10.0.1.1");
  StepContext ctx;
  ctx.expected_facts = {"path_mtu"};
  auto o = run_step("mtu", {{"target", "10.0.2.2"}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["path_mtu"], 1400);
}

TEST(MtuStep, NoReplyEvenAtMinFails) {
  FakeServices fakes;
  one_nic(fakes);
  path(fakes, 0, "");
  auto o = run_step("mtu", {{"target", "10.0.2.2"}, {"retries", 0}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "10.0.2.2: no reply even at 576 bytes");
  EXPECT_FALSE(o.facts.contains("path_mtu"));
  EXPECT_EQ(sizes_tried(fakes), (std::vector<int>{1500, 576}));
}

TEST(MtuStep, NoRouteFails) {
  FakeServices fakes;
  one_nic(fakes);
  fakes.fake_netlink.refuse(RTM_GETROUTE, ENETUNREACH);
  auto o = run_step("mtu", {{"target", "10.0.2.2"}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "no route to 10.0.2.2: route lookup: Network is unreachable");
  EXPECT_TRUE(fakes.fake_pinger.requests().empty());
}

TEST(MtuStep, AVxlanDeviceShowsItsUnderlayToo) {
  FakeServices fakes;
  fakes.fake_netlink.on_dump(
      RTM_GETLINK, {canned::link({.index = 2, .name = "eth0", .mtu = 1500}),
                    canned::vxlan({.index = 3, .name = "vx0", .mtu = 1450}, {.vni = 42, .dev = 2})});
  fakes.fake_netlink.on_request(RTM_GETROUTE, {canned::route({.dst = "10.9.0.2/32", .oif = 3})});
  path(fakes, 1450, "");
  auto o = run_step("mtu", {{"target", "10.9.0.2"}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["path_mtu"], 1450);
  EXPECT_EQ(o.facts["mtus"], json::parse(R"([{"interface": "vx0", "mtu": 1450},
                                             {"interface": "eth0", "mtu": 1500}])"));
}

// ---- The real pinger, on loopback (needs CAP_NET_RAW or ping_group_range: without either
// these fail with the pinger's error, they never skip) ----

TEST(SystemPinger, LoopbackAnswers) {
  auto pinger = make_system_pinger();
  StepContext ctx;
  ctx.deadline = Clock::now() + std::chrono::seconds(10);
  EchoRequest r{.targets = {"127.0.0.1", "::1"}, .count = 2, .interval = Millis(10),
                .timeout = Millis(2000)};
  auto res = pinger->echo(r, ctx);
  ASSERT_TRUE(res) << res.error();
  ASSERT_EQ(res->size(), 2u);
  for (const auto& t : *res) {
    EXPECT_EQ(t.sent, 2) << t.target;
    EXPECT_EQ(t.rtt_ms.size(), 2u) << t.target;
    EXPECT_TRUE(t.errors.empty()) << t.target;
  }
}

TEST(SystemPinger, CancellationEndsTheWait) {
  auto pinger = make_system_pinger();
  std::atomic<bool> cancelled{false};
  StepContext ctx;
  ctx.cancelled = &cancelled;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancelled = true;
  });
  // 1000 requests 50 ms apart: only cancellation ends this before 50 s.
  auto res = pinger->echo({.targets = {"127.0.0.1"}, .count = 1000, .interval = Millis(50)}, ctx);
  canceller.join();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error(), "ping: cancelled");
}

TEST(SystemPinger, TheDeadlineEndsTheWait) {
  auto pinger = make_system_pinger();
  StepContext ctx;
  ctx.deadline = Clock::now() + std::chrono::milliseconds(100);
  auto res = pinger->echo({.targets = {"127.0.0.1"}, .count = 1000, .interval = Millis(50)}, ctx);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error(), "ping: timed out");
}

TEST(SystemPinger, CancelledBeforeStart) {
  auto pinger = make_system_pinger();
  std::atomic<bool> cancelled{true};
  StepContext ctx;
  ctx.cancelled = &cancelled;
  auto res = pinger->echo({.targets = {"127.0.0.1"}}, ctx);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error(), "ping: cancelled");
}

}  // namespace
}  // namespace netplay
