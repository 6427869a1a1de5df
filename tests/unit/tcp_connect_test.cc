#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "runner/step/fakes.h"
#include "runner/step/tcp.h"
#include "tests/unit/support/dns_canned.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

using namespace std::chrono_literals;

TcpConnectResult result(std::string state, double ms, std::string detail = "", int e = 0) {
  return {.state = std::move(state), .connect_ms = ms, .local = "", .peer = "",
          .error_errno = e, .detail = std::move(detail)};
}

TEST(TcpConnect, OpenPassesWithLocalAndPeer) {
  FakeServices fakes;
  auto r = result("open", 0.3);
  r.local = "10.0.0.1:40000";
  r.peer = "10.0.0.2:80";
  fakes.fake_tcp.answer(r);
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "10.0.0.2:80 open in 0.3 ms");
  EXPECT_EQ(o.facts["state"], "open");
  EXPECT_EQ(o.facts["local"], "10.0.0.1:40000");
  EXPECT_EQ(o.facts["peer"], "10.0.0.2:80");
  EXPECT_EQ(o.facts["connect_ms"], 0.3);
  EXPECT_EQ(o.facts["errno"], 0);
  EXPECT_FALSE(o.facts.contains("states"));
  auto reqs = fakes.fake_tcp.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].address, "10.0.0.2");
  EXPECT_EQ(reqs[0].port, 80);
  EXPECT_EQ(reqs[0].timeout, Millis(1000));  // the declared default
}

TEST(TcpConnect, RefusedFailsByDefaultNamingTheState) {
  FakeServices fakes;
  fakes.fake_tcp.answer(result("refused", 0.1, "Connection refused", ECONNREFUSED));
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "10.0.0.2:80 refused (RST in 0.1 ms)");
  EXPECT_EQ(o.facts["errno"], ECONNREFUSED);
  EXPECT_EQ(o.facts["detail"], "Connection refused");
}

TEST(TcpConnect, AnExpectationOnStateJudgesInstead) {
  FakeServices fakes;
  fakes.fake_tcp.answer(result("refused", 0.1, "Connection refused", ECONNREFUSED));
  StepContext ctx;
  ctx.expected_facts = {"state"};
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["state"], "refused");
}

TEST(TcpConnect, FilteredSaysTheTimeoutAndHasNoConnectTime) {
  FakeServices fakes;
  fakes.fake_tcp.answer(result("filtered", 250, "no answer within the timeout", ETIMEDOUT));
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 81}, {"timeout", 250}},
                    &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "10.0.0.2:81 filtered: no answer within 250ms");
  EXPECT_FALSE(o.facts.contains("connect_ms"));
  EXPECT_EQ(fakes.fake_tcp.requests().at(0).timeout, Millis(250));
}

TEST(TcpConnect, UnreachableNamesTheError) {
  FakeServices fakes;
  fakes.fake_tcp.answer(result("unreachable", 0.05, "No route to host", EHOSTUNREACH));
  auto o = run_step("tcp.connect", {{"host", "10.0.0.9"}, {"port", 80}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "10.0.0.9:80 unreachable: No route to host");
}

TEST(TcpConnect, AnUnresolvableNameIsAnError) {
  FakeServices fakes;
  fakes.fake_resolver.answer(DnsResponse{.rcode = "NXDOMAIN", .server = "10.0.0.53"});
  auto o = run_step("tcp.connect", {{"host", "no.such.name.invalid"}, {"port", 80}}, &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message.rfind("cannot resolve 'no.such.name.invalid': NXDOMAIN", 0), 0u)
      << o.message;
  EXPECT_TRUE(fakes.fake_tcp.requests().empty());
}

TEST(TcpConnect, ANameIsProbedAtTheAddressItResolvesTo) {
  FakeServices fakes;
  canned::resolve_to(fakes, "10.0.0.2");
  fakes.fake_tcp.answer(result("open", 0.1, "", 0));
  auto o = run_step("tcp.connect", {{"host", "backend.np.invalid"}, {"port", 80}}, &fakes);
  ASSERT_EQ(fakes.fake_tcp.requests().size(), 1u) << o.message;
  EXPECT_EQ(fakes.fake_tcp.requests()[0].address, "10.0.0.2");
}

TEST(TcpConnect, Ipv6InBracketsWithSourceAndInterface) {
  FakeServices fakes;
  fakes.fake_tcp.answer(result("open", 1.5));
  auto o = run_step("tcp.connect",
                    {{"host", "[fd00::2]"}, {"port", 443}, {"source", "fd00::1"},
                     {"interface", "eth0"}},
                    &fakes);
  EXPECT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "[fd00::2]:443 open in 1.5 ms");
  EXPECT_EQ(o.facts["peer"], "[fd00::2]:443");
  auto r = fakes.fake_tcp.requests().at(0);
  EXPECT_EQ(r.address, "fd00::2");
  EXPECT_EQ(r.source, "fd00::1");
  EXPECT_EQ(r.interface, "eth0");
  run_step("tcp.connect", {{"host", "fe80::1%eth0"}, {"port", 22}}, &fakes);
  EXPECT_EQ(fakes.fake_tcp.requests().at(1).address, "fe80::1%eth0");
}

TEST(TcpConnect, SeveralAttemptsReportEveryStateAndTheSpread) {
  FakeServices fakes;
  int n = 0;
  fakes.fake_tcp.answer([&n](const TcpConnectRequest&, const StepContext&)
                            -> std::expected<TcpConnectResult, std::string> {
    switch (n++) {
      case 0: return result("open", 1.0);
      case 1: return result("refused", 0.5, "Connection refused", ECONNREFUSED);
      case 2: return result("filtered", 1000, "no answer within the timeout", ETIMEDOUT);
      default: return result("open", 3.0);
    }
  });
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}, {"count", 4}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.facts["states"], json({"open", "refused", "filtered", "open"}));
  EXPECT_EQ(o.facts["open_count"], 2);
  EXPECT_EQ(o.facts["attempts"], 4);
  EXPECT_EQ(o.facts["state"], "open");
  EXPECT_EQ(o.facts["connect_ms"], 1.5);  // the filtered attempt does not count
  EXPECT_EQ(o.facts["connect_min_ms"], 0.5);
  EXPECT_EQ(o.facts["connect_max_ms"], 3.0);
  EXPECT_EQ(o.message, "10.0.0.2:80 open 2/4 (1 filtered, 2 open, 1 refused); last open in 3 ms");
}

TEST(TcpConnect, AllOpenPassesWithTheAverage) {
  FakeServices fakes;
  fakes.fake_tcp.answer(result("open", 2.0));
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}, {"count", 3}}, &fakes);
  EXPECT_EQ(o.status, Status::kPass);
  EXPECT_EQ(o.message, "10.0.0.2:80 open 3/3, connect avg 2 ms (max 2 ms)");
  EXPECT_EQ(o.facts["open_count"], 3);
}

TEST(TcpConnect, TheSameStateEveryTimeIsSaidOnce) {
  FakeServices fakes;
  fakes.fake_tcp.answer(result("refused", 0.1, "Connection refused", ECONNREFUSED));
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}, {"count", 2}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "10.0.0.2:80 refused (RST in 0.1 ms), 2/2 attempts");
  EXPECT_EQ(o.facts["open_count"], 0);
}

TEST(TcpConnect, TheDeadlineEndsTheAttemptsWithWhatWasGathered) {
  FakeServices fakes;
  fakes.fake_tcp.answer([&fakes](const TcpConnectRequest&, const StepContext&)
                            -> std::expected<TcpConnectResult, std::string> {
    fakes.fake_clock.advance(Millis(600));
    return result("open", 600);
  });
  StepContext ctx;
  ctx.deadline = fakes.fake_clock.now() + 1s;
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}, {"count", 5}}, &fakes,
                    ctx);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.facts["attempts"], 2);
  EXPECT_EQ(o.message,
            "tcp connect: timed out; 2 of 5 attempts made: 10.0.0.2:80 open 2/2, connect avg "
            "600 ms (max 600 ms)");
}

TEST(TcpConnect, CouldNotTryIsAnError) {
  FakeServices fakes;
  fakes.fake_tcp.fail("cannot bind to source 10.9.9.9: Cannot assign requested address");
  auto o = run_step("tcp.connect", {{"host", "10.0.0.2"}, {"port", 80}, {"source", "10.9.9.9"}},
                    &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_EQ(o.message, "cannot bind to source 10.9.9.9: Cannot assign requested address");
}

// ---- The real connector, on loopback (no root needed) ----

/// A TCP socket listening on 127.0.0.1 (port chosen by the kernel), with `backlog`.
struct Listening {
  int fd = -1;
  int port = 0;
  explicit Listening(int backlog = 16) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd, backlog) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      ADD_FAILURE() << "cannot listen on loopback";
    port = ntohs(a.sin_port);
  }
  ~Listening() { ::close(fd); }
};

TEST(TcpConnectorReal, OpenOnLoopbackWithBothEnds) {
  Listening l;
  auto c = make_system_tcp_connector();
  StepContext ctx;
  auto r = c->connect({.address = "127.0.0.1", .port = l.port}, ctx);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->state, "open");
  EXPECT_EQ(r->peer, fmt::format("127.0.0.1:{}", l.port));
  EXPECT_TRUE(r->local.starts_with("127.0.0.1:")) << r->local;
  EXPECT_EQ(r->error_errno, 0);
}

TEST(TcpConnectorReal, RefusedOnAClosedPort) {
  int port = 0;
  { Listening l; port = l.port; }  // bound, then closed: nothing listens there now
  auto c = make_system_tcp_connector();
  StepContext ctx;
  auto r = c->connect({.address = "127.0.0.1", .port = port}, ctx);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->state, "refused");
  EXPECT_EQ(r->error_errno, ECONNREFUSED);
}

/// A listener whose accept queue is full drops further SYNs: no answer, as behind a drop rule.
TEST(TcpConnectorReal, FilteredWhenNoAnswerComesWithinTheTimeout) {
  Listening l(0);
  auto c = make_system_tcp_connector();
  StepContext ctx;
  std::vector<std::string> states;
  for (int i = 0; i < 3; ++i) {
    auto r = c->connect({.address = "127.0.0.1", .port = l.port, .timeout = Millis(200)}, ctx);
    ASSERT_TRUE(r) << r.error();
    states.push_back(r->state);
    if (r->state == "filtered") {
      EXPECT_GE(r->connect_ms, 200);
      EXPECT_EQ(r->error_errno, ETIMEDOUT);
    }
  }
  EXPECT_EQ(states.back(), "filtered");
}

TEST(TcpConnectorReal, CancellationEndsTheWait) {
  Listening l(0);
  auto c = make_system_tcp_connector();
  std::atomic<bool> cancelled{false};
  StepContext ctx;
  ctx.cancelled = &cancelled;
  // Fill the queue first, so that the next attempt waits.
  for (int i = 0; i < 2; ++i)
    (void)c->connect({.address = "127.0.0.1", .port = l.port, .timeout = Millis(100)}, ctx);
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    cancelled = true;
  });
  auto r = c->connect({.address = "127.0.0.1", .port = l.port, .timeout = Millis(30000)}, ctx);
  t.join();
  ASSERT_FALSE(r);
  // Ended by the cancellation, not by the 30 s timeout (that would be a "filtered" result).
  EXPECT_EQ(r.error(), fmt::format("127.0.0.1:{}: cancelled", l.port));
}

TEST(TcpConnectorReal, BadSourceIsAnError) {
  Listening l;
  auto c = make_system_tcp_connector();
  StepContext ctx;
  auto r = c->connect({.address = "127.0.0.1", .port = l.port, .source = "::1"}, ctx);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "source ::1 and target 127.0.0.1 are of different families");
  r = c->connect({.address = "not-an-ip", .port = l.port}, ctx);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "'not-an-ip' is not an IP address");
}

TEST(TcpConnectorReal, EndpointsPrintV6InBrackets) {
  EXPECT_EQ(format_endpoint("fd00::2", 80), "[fd00::2]:80");
  EXPECT_EQ(format_endpoint("10.0.0.2", 80), "10.0.0.2:80");
}

}  // namespace
}  // namespace netplay
