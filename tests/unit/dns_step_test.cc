/// The dns step and the namespace-aware name resolution (steps/net/resolve.h), on the fakes.

#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "runner/step/fakes.h"
#include "steps/net/resolve.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

namespace fs = std::filesystem;

DnsResponse a_answer(std::string name, std::vector<std::string> ips, double ms = 2.1) {
  DnsResponse r{.rcode = "NOERROR", .query_ms = ms, .server = "10.0.0.53"};
  for (auto& ip : ips) r.answers.push_back({.name = name, .type = "A", .ttl = 30, .data = ip});
  return r;
}

StepContext ctx_with_deadline(FakeServices& f) {
  StepContext ctx;
  ctx.deadline = f.fake_clock.now() + std::chrono::seconds(30);
  return ctx;
}

TEST(DnsStep, AnswerPassesWithTheAddressesAndTime) {
  FakeServices f;
  f.fake_resolver.answer(a_answer("backend.apps.internal", {"10.255.1.11", "10.255.1.12"}));
  auto o = run_step("dns", {{"name", "backend.apps.internal"}, {"server", "10.0.0.53"}}, &f,
                    ctx_with_deadline(f));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message,
            "backend.apps.internal A: 10.255.1.11, 10.255.1.12 (NOERROR, 2.1 ms, from 10.0.0.53)");
  EXPECT_EQ(o.facts["rcode"], "NOERROR");
  EXPECT_EQ(o.facts["answer_count"], 2);
  EXPECT_EQ(o.facts["addresses"], json({"10.255.1.11", "10.255.1.12"}));
  EXPECT_EQ(o.facts["answers"][0]["ttl"], 30);
  EXPECT_EQ(o.facts["query_ms"], 2.1);
  EXPECT_FALSE(o.facts.contains("p50_ms"));
  EXPECT_FALSE(o.facts.contains("resolv_conf"));
  auto reqs = f.fake_resolver.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].servers, std::vector<std::string>{"10.0.0.53"});
  EXPECT_EQ(reqs[0].type, "A");
  EXPECT_EQ(reqs[0].timeout, Millis(2000));
}

TEST(DnsStep, NxdomainFailsUnlessTheRcodeIsExpected) {
  FakeServices f;
  f.fake_resolver.answer(DnsResponse{.rcode = "NXDOMAIN", .query_ms = 1.2, .server = "10.0.0.53"});
  json params = {{"name", "foo.invalid"}, {"server", "10.0.0.53"}};
  auto o = run_step("dns", params, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "foo.invalid A: NXDOMAIN from 10.0.0.53 (1.2 ms)");
  EXPECT_EQ(o.facts["answer_count"], 0);
  StepContext ctx = ctx_with_deadline(f);
  ctx.expected_facts = {"rcode"};
  EXPECT_EQ(run_step("dns", params, &f, ctx).status, Status::kPass);
}

TEST(DnsStep, NoErrorWithoutRecordsFails) {
  FakeServices f;
  f.fake_resolver.answer(DnsResponse{.rcode = "NOERROR", .query_ms = 0.5, .server = "10.0.0.53"});
  auto o = run_step("dns", {{"name", "x.apps.internal"}, {"type", "AAAA"}, {"server", "10.0.0.53"}},
                    &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "x.apps.internal AAAA: no records (NOERROR from 10.0.0.53, 0.5 ms)");
}

TEST(DnsStep, NoAnswerIsATimeoutFactAndFails) {
  FakeServices f;
  f.fake_resolver.answer(
      DnsResponse{.rcode = "timeout", .query_ms = 2000, .server = "10.0.0.99:5353"});
  auto o =
      run_step("dns", {{"name", "a.b"}, {"server", "10.0.0.99:5353"}}, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "a.b A: no answer from 10.0.0.99:5353 within 2s");
  EXPECT_EQ(o.facts["rcode"], "timeout");
  EXPECT_EQ(o.facts["server"], "10.0.0.99:5353");
}

TEST(DnsStep, ClosedPortIsUnreachableAndFails) {
  FakeServices f;
  f.fake_resolver.answer(DnsResponse{.rcode = "unreachable", .query_ms = 0.2, .server = "10.0.0.9"});
  auto o = run_step("dns", {{"name", "a.b"}, {"server", "10.0.0.9"}}, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message,
            "a.b A: 10.0.0.9 unreachable (port closed or no route: an ICMP error, no answer)");
  EXPECT_EQ(o.facts["rcode"], "unreachable");
}

TEST(DnsStep, ServerForms) {
  FakeServices f;
  f.fake_resolver.answer(a_answer("a", {"10.0.0.1"}));
  for (auto [given, passed] :
       std::vector<std::pair<std::string, std::string>>{{"10.0.0.53:53", "10.0.0.53"},
                                                        {"[fd00::53]:5353", "[fd00::53]:5353"},
                                                        {"fd00::53", "fd00::53"},
                                                        {"10.0.0.53:5353", "10.0.0.53:5353"}}) {
    auto o = run_step("dns", {{"name", "a"}, {"server", given}}, &f, ctx_with_deadline(f));
    EXPECT_EQ(o.status, Status::kPass) << given << ": " << o.message;
    EXPECT_EQ(f.fake_resolver.requests().back().servers, std::vector<std::string>{passed});
  }
  for (std::string bad : {"10.0.0.53:70000", "10.0.0.53:0", "dns.example", "[fd00::53", "1.2.3"}) {
    auto o = run_step("dns", {{"name", "a"}, {"server", bad}}, &f, ctx_with_deadline(f));
    EXPECT_EQ(o.status, Status::kError) << bad;
    EXPECT_TRUE(o.message.starts_with("bad DNS server '" + bad + "'")) << o.message;
  }
}

TEST(DnsStep, CountReportsPercentilesAndTimeouts) {
  FakeServices f;
  int n = 0;
  f.fake_resolver.answer(
      [&n](const DnsQuery&, const StepContext&) -> std::expected<DnsResponse, std::string> {
        ++n;
        if (n % 5 == 0)
          return DnsResponse{.rcode = "timeout", .query_ms = 2000, .server = "10.0.0.53"};
        return a_answer("a", {"10.0.0.1"}, n);  // 1, 2, 3, 4, 6, 7, 8, 9
      });
  auto o = run_step("dns", {{"name", "a"}, {"server", "10.0.0.53"}, {"count", 10}}, &f,
                    ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kFail) << o.message;
  EXPECT_EQ(o.facts["queries"], 10);
  EXPECT_EQ(o.facts["timeouts"], 2);
  EXPECT_EQ(o.facts["rcodes"], json({{"NOERROR", 8}, {"timeout", 2}}));
  EXPECT_EQ(o.facts["min_ms"], 1);
  EXPECT_EQ(o.facts["max_ms"], 9);
  EXPECT_EQ(o.facts["p50_ms"], 4);
  EXPECT_EQ(o.facts["p90_ms"], 9);
  EXPECT_EQ(o.facts["p99_ms"], 9);
  EXPECT_EQ(o.facts["avg_ms"], 5);
  EXPECT_EQ(o.facts["rcode"], "timeout");  // the last query
  EXPECT_EQ(o.message,
            "a A x10: 2/10 without records (NOERROR 8, timeout 2; p50 4.0 ms, p99 9.0 ms, max 9.0 "
            "ms); last: no answer from 10.0.0.53 within 2s");
  StepContext ctx = ctx_with_deadline(f);
  ctx.expected_facts = {"timeouts"};
  n = 0;
  EXPECT_EQ(
      run_step("dns", {{"name", "a"}, {"server", "10.0.0.53"}, {"count", 10}}, &f, ctx).status,
      Status::kPass);
}

TEST(DnsStep, CountAllAnsweredPasses) {
  FakeServices f;
  f.fake_resolver.answer(a_answer("a", {"10.0.0.1"}, 0.25));
  auto o = run_step("dns", {{"name", "a"}, {"server", "10.0.0.53"}, {"count", 100}}, &f,
                    ctx_with_deadline(f));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message,
            "a A x100: 10.0.0.1 (NOERROR, p50 0.2 ms, p99 0.2 ms, max 0.2 ms, from 10.0.0.53)");
  EXPECT_EQ(o.facts["timeouts"], 0);
  EXPECT_EQ(f.fake_resolver.requests().size(), 100u);
}

TEST(DnsStep, PtrOfAnAddressAsksTheArpaName) {
  FakeServices f;
  f.fake_resolver.answer(DnsResponse{.rcode = "NOERROR",
                                     .answers = {{.name = "11.1.255.10.in-addr.arpa",
                                                  .type = "PTR",
                                                  .ttl = 0,
                                                  .data = "backend.apps.internal"}},
                                     .query_ms = 1,
                                     .server = "10.0.0.53"});
  auto o = run_step("dns", {{"name", "10.255.1.11"}, {"type", "PTR"}, {"server", "10.0.0.53"}}, &f,
                    ctx_with_deadline(f));
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["name"], "11.1.255.10.in-addr.arpa");
  EXPECT_EQ(o.message, "10.255.1.11 PTR: backend.apps.internal (NOERROR, 1.0 ms, from 10.0.0.53)");
  EXPECT_EQ(reverse_name("fd00::1"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa");
  EXPECT_EQ(reverse_name("backend"), "backend");
}

TEST(DnsStep, ServiceErrorsAreErrorsAndCancellationStops) {
  FakeServices f;
  f.fake_resolver.fail("dns: cannot ask for 'a..b': Misformatted domain name");
  auto o = run_step("dns", {{"name", "a..b"}, {"server", "10.0.0.53"}}, &f, ctx_with_deadline(f));
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "dns: cannot ask for 'a..b': Misformatted domain name");
  std::atomic<bool> cancel{true};
  StepContext ctx = ctx_with_deadline(f);
  ctx.cancelled = &cancel;
  f.fake_resolver.answer(a_answer("a", {"10.0.0.1"}));
  o = run_step("dns", {{"name", "a"}, {"server", "10.0.0.53"}, {"count", 1000}}, &f, ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "dns: cancelled");
}

// ---- steps/net/resolve.h ----

class TempEtc : public ::testing::Test {
 protected:
  void SetUp() override {
    etc_ = fs::temp_directory_path() /
           ("netplay-etc-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(etc_ / "netns" / "blue");
  }
  void TearDown() override { fs::remove_all(etc_); }
  void write(const std::string& rel, const std::string& text) { std::ofstream(etc_ / rel) << text; }
  std::string etc() const { return etc_.string(); }
  fs::path etc_;
};

TEST_F(TempEtc, ResolvConfOfANamedNamespaceWhenItExists) {
  write("resolv.conf", "nameserver 10.0.0.1\n");
  write("netns/blue/resolv.conf", "nameserver 10.0.0.53\n");
  StepContext ctx;
  ctx.netns = "blue";
  EXPECT_EQ(resolve::resolv_conf_path(ctx, etc()), etc() + "/netns/blue/resolv.conf");
  ctx.netns = "red";  // no file of its own
  EXPECT_EQ(resolve::resolv_conf_path(ctx, etc()), etc() + "/resolv.conf");
  for (std::string n : {"host", "/run/netns/blue", "pid:1"}) {
    ctx.netns = n;
    EXPECT_EQ(resolve::resolv_conf_path(ctx, etc()), etc() + "/resolv.conf") << n;
  }
  ctx.netns = "blue";
  auto servers = resolve::nameservers(ctx, etc());
  ASSERT_TRUE(servers) << servers.error();
  EXPECT_EQ(*servers, std::vector<std::string>{"10.0.0.53"});
}

TEST(ResolvConf, Parses) {
  auto c = resolve::parse_resolv_conf(
      "# comment\nnameserver 10.0.0.53\nnameserver fd00::53 # trailing\n"
      "domain old.example\nsearch apps.internal. svc.cluster.local\noptions rotate ndots:5\n");
  EXPECT_EQ(c.nameservers, (std::vector<std::string>{"10.0.0.53", "fd00::53"}));
  EXPECT_EQ(c.search, (std::vector<std::string>{"apps.internal", "svc.cluster.local"}));
  EXPECT_EQ(c.ndots, 5);
  EXPECT_EQ(resolve::parse_resolv_conf("").nameservers, std::vector<std::string>{"127.0.0.1"});
}

TEST(ResolvConf, SearchCandidatesFollowNdots) {
  resolve::ResolvConf c{.search = {"apps.internal", "example"}, .ndots = 1};
  EXPECT_EQ(resolve::search_candidates("backend", c),
            (std::vector<std::string>{"backend.apps.internal", "backend.example", "backend"}));
  EXPECT_EQ(resolve::search_candidates("a.b", c),
            (std::vector<std::string>{"a.b", "a.b.apps.internal", "a.b.example"}));
  EXPECT_EQ(resolve::search_candidates("a.b.", c), std::vector<std::string>{"a.b"});
  c.ndots = 5;
  EXPECT_EQ(resolve::search_candidates("a.b", c).front(), "a.b.apps.internal");
}

TEST(ResolvConf, HostsLookup) {
  std::string hosts =
      "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.0.0.8 api API.example # x\n"
      "fd00::8 api\n# 10.0.0.9 api\n10.0.0.8 api\n";
  EXPECT_EQ(resolve::hosts_lookup(hosts, "api", AF_UNSPEC),
            (std::vector<std::string>{"10.0.0.8", "fd00::8"}));
  EXPECT_EQ(resolve::hosts_lookup(hosts, "api.EXAMPLE", AF_INET),
            std::vector<std::string>{"10.0.0.8"});
  EXPECT_EQ(resolve::hosts_lookup(hosts, "localhost", AF_INET6), std::vector<std::string>{"::1"});
  EXPECT_TRUE(resolve::hosts_lookup(hosts, "nope", AF_UNSPEC).empty());
}

TEST_F(TempEtc, ResolveHostNumericHostsThenDns) {
  write("resolv.conf", "nameserver 10.0.0.1\n");
  write("netns/blue/resolv.conf", "nameserver 10.0.0.53\nsearch apps.internal\n");
  write("netns/blue/hosts", "10.0.0.8 pinned.example\n");
  FakeServices f;
  StepContext ctx = ctx_with_deadline(f);
  ctx.services = &f;
  ctx.netns = "blue";
  resolve::ResolveOptions opts{.etc = etc()};
  auto r = resolve::resolve_host(ctx, "10.1.2.3", AF_UNSPEC, opts);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::vector<std::string>{"10.1.2.3"});
  EXPECT_FALSE(resolve::resolve_host(ctx, "fd00::1", AF_INET, opts));
  r = resolve::resolve_host(ctx, "pinned.example", AF_UNSPEC, opts);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::vector<std::string>{"10.0.0.8"});
  EXPECT_TRUE(f.fake_resolver.requests().empty());

  f.fake_resolver.answer(
      [](const DnsQuery& q, const StepContext&) -> std::expected<DnsResponse, std::string> {
        if (q.name == "backend.apps.internal" && q.type == "A")
          return a_answer(q.name, {"10.255.1.11"});
        if (q.name == "backend.apps.internal")
          return DnsResponse{.rcode = "NOERROR", .server = "10.0.0.53"};
        return DnsResponse{.rcode = "NXDOMAIN", .server = "10.0.0.53"};
      });
  r = resolve::resolve_host(ctx, "backend", AF_UNSPEC, opts);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(*r, std::vector<std::string>{"10.255.1.11"});
  EXPECT_EQ(f.fake_resolver.requests().front().servers, std::vector<std::string>{"10.0.0.53"});

  r = resolve::resolve_host(ctx, "x.invalid", AF_INET, opts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "cannot resolve 'x.invalid': NXDOMAIN from 10.0.0.53");

  f.fake_resolver.answer(DnsResponse{.rcode = "timeout", .server = "10.0.0.53"});
  r = resolve::resolve_host(ctx, "slow.example", AF_INET, opts);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "cannot resolve 'slow.example': no answer from 10.0.0.53 within 2s");
}

}  // namespace
}  // namespace netplay
