/// The real DNS (c-ares) and HTTP (libcurl) services against small servers on loopback:
/// no root needed. Each server runs on its own thread and answers (or stays silent) as the
/// test says.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "runner/step/dns.h"
#include "runner/step/http.h"
#include "runner/step/services.h"

namespace netplay {
namespace {

/// A socket bound to 127.0.0.1 on a free port.
int bound_socket(int type, int* port) {
  int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

/// A UDP DNS server answering every query with `rcode` and, for NOERROR, one A record
/// 10.1.2.3 (TTL 60) for the name asked; silent when `rcode` < 0.
class UdpDns {
 public:
  explicit UdpDns(int rcode) : rcode_(rcode) {
    fd_ = bound_socket(SOCK_DGRAM, &port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~UdpDns() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }
  int queries() const { return queries_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      unsigned char q[512];
      sockaddr_in from{};
      socklen_t fl = sizeof from;
      ssize_t n = ::recvfrom(fd_, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n < 12) continue;
      ++queries_;
      if (rcode_ < 0) continue;
      std::vector<unsigned char> r(q, q + n);
      r[2] = 0x81;                                       // QR, RD
      r[3] = static_cast<unsigned char>(0x80 | rcode_);  // RA, rcode
      if (rcode_ == 0) {
        r[7] = 1;  // ANCOUNT
        unsigned char rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3};
        r.insert(r.end(), rr, rr + sizeof rr);
      }
      ::sendto(fd_, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&from), fl);
    }
  }
  int rcode_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

StepContext real_ctx(Millis budget = Millis(10'000)) {
  StepContext ctx;
  ctx.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(budget);
  return ctx;
}

TEST(DnsService, ReadsTheAnswerRecords) {
  UdpDns srv(0);
  auto r = system_services().resolver().query(
      {.name = "backend.apps.internal", .type = "A", .servers = {srv.server()}}, real_ctx());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->rcode, "NOERROR");
  ASSERT_EQ(r->answers.size(), 1u);
  EXPECT_EQ(r->answers[0].name, "backend.apps.internal");
  EXPECT_EQ(r->answers[0].type, "A");
  EXPECT_EQ(r->answers[0].ttl, 60);
  EXPECT_EQ(r->answers[0].data, "10.1.2.3");
  EXPECT_EQ(r->server, srv.server());
  EXPECT_GT(r->query_ms, 0);
}

TEST(DnsService, ErrorRcodesComeBackAsAnswers) {
  for (auto [code, name] :
       std::vector<std::pair<int, std::string>>{{3, "NXDOMAIN"}, {2, "SERVFAIL"}, {5, "REFUSED"}}) {
    UdpDns srv(code);
    auto r = system_services().resolver().query(
        {.name = "x.invalid", .servers = {srv.server()}, .tries = 3}, real_ctx());
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->rcode, name);
    EXPECT_TRUE(r->answers.empty());
    EXPECT_EQ(srv.queries(), 1) << name << " was retried";
  }
}

TEST(DnsService, SilentServerTimesOut) {
  UdpDns srv(-1);
  auto r = system_services().resolver().query(
      {.name = "a.b", .servers = {srv.server()}, .timeout = Millis(200), .tries = 2}, real_ctx());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->rcode, "timeout");
  EXPECT_GE(r->query_ms, 400);  // two tries of 200 ms
  EXPECT_EQ(srv.queries(), 2);
}

TEST(DnsService, ClosedPortIsUnreachable) {
  int port = 0;
  int fd = bound_socket(SOCK_DGRAM, &port);
  ::close(fd);  // nothing listens there now: the kernel answers ICMP port unreachable
  auto r = system_services().resolver().query(
      {.name = "a.b", .servers = {"127.0.0.1:" + std::to_string(port)}, .timeout = Millis(2000)},
      real_ctx());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->rcode, "unreachable");
}

TEST(DnsService, CancellationEndsTheWait) {
  UdpDns srv(-1);
  std::atomic<bool> cancel{false};
  StepContext ctx = real_ctx();
  ctx.cancelled = &cancel;
  std::thread t([&] {
    std::this_thread::sleep_for(Millis(100));
    cancel = true;
  });
  auto r = system_services().resolver().query(
      {.name = "a.b", .servers = {srv.server()}, .timeout = Millis(30'000)}, ctx);
  t.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "dns: cancelled");
}

TEST(DnsService, StepDeadlineBoundsTheQuery) {
  UdpDns srv(-1);
  auto r = system_services().resolver().query(
      {.name = "a.b", .servers = {srv.server()}, .timeout = Millis(30'000)}, real_ctx(Millis(150)));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->rcode, "timeout");
}

TEST(DnsService, BadInput) {
  auto r =
      system_services().resolver().query({.name = "a", .servers = {"dns.example"}}, real_ctx());
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().starts_with("bad DNS server 'dns.example'")) << r.error();
  r = system_services().resolver().query({.name = "a", .type = "HINFO", .servers = {"127.0.0.1"}},
                                         real_ctx());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "dns: unsupported query type 'HINFO'");
}

/// A TCP server on loopback: answers each connection with `reply` (after reading the
/// request), or accepts and stays silent when `reply` is empty.
class TcpServer {
 public:
  explicit TcpServer(std::string reply) : reply_(std::move(reply)) {
    fd_ = bound_socket(SOCK_STREAM, &port_);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { serve(); });
  }
  ~TcpServer() {
    stop_ = true;
    thread_.join();
    for (int c : conns_) ::close(c);
    ::close(fd_);
  }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      conns_.push_back(c);
      if (reply_.empty()) continue;
      char buf[4096];
      (void)::recv(c, buf, sizeof buf, 0);
      (void)::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      ::shutdown(c, SHUT_WR);
    }
  }
  std::string reply_;
  int fd_ = -1;
  int port_ = 0;
  std::vector<int> conns_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(HttpService, ReadsStatusBodyAndOrderedTimes) {
  TcpServer srv("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world");
  auto r = system_services().http().fetch({.url = srv.url(), .max_body = 5}, real_ctx());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->reason, "OK");
  EXPECT_EQ(r->body, "hello");    // max_body bytes kept
  EXPECT_EQ(r->body_bytes, 11u);  // all counted
  EXPECT_EQ(r->remote_ip, "127.0.0.1");
  EXPECT_TRUE(r->error_kind.empty()) << r->error;
  EXPECT_LE(r->time_namelookup_ms, r->time_connect_ms);
  EXPECT_LE(r->time_connect_ms, r->time_first_byte_ms);
  EXPECT_LE(r->time_first_byte_ms, r->time_total_ms);
}

TEST(HttpService, PinnedNameConnectsToThePinnedAddress) {
  TcpServer srv("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  std::string port = srv.url().substr(std::string("http://127.0.0.1:").size());
  port.pop_back();
  auto r =
      system_services().http().fetch({.url = "http://pinned.netplay.invalid:" + port + "/x",
                                      .resolve = {"pinned.netplay.invalid:" + port + ":127.0.0.1"}},
                                     real_ctx());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->reason, "Not Found");
}

TEST(HttpService, SilentServerTimesOutAfterConnecting) {
  TcpServer srv("");
  auto r = system_services().http().fetch({.url = srv.url(), .timeout = Millis(300)}, real_ctx());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->status, 0);
  EXPECT_EQ(r->error_kind, "timeout");
  EXPECT_GT(r->time_connect_ms, 0);
  EXPECT_GE(r->time_total_ms, 290);  // on curl's clock, which may read a hair under
}

TEST(HttpService, ClosedPortIsRefused) {
  int port = 0;
  int fd = bound_socket(SOCK_STREAM, &port);
  ::close(fd);
  auto r = system_services().http().fetch({.url = "http://127.0.0.1:" + std::to_string(port) + "/"},
                                          real_ctx());
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->error_kind, "refused") << r->error;
}

TEST(HttpService, CancellationEndsTheTransfer) {
  TcpServer srv("");
  std::atomic<bool> cancel{false};
  StepContext ctx = real_ctx();
  ctx.cancelled = &cancel;
  std::thread t([&] {
    std::this_thread::sleep_for(Millis(100));
    cancel = true;
  });
  auto r = system_services().http().fetch({.url = srv.url(), .timeout = Millis(30'000)}, ctx);
  t.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "http: cancelled");
}

TEST(HttpService, UrlChecks) {
  auto u = parse_http_url("https://[fd00::8]:8443/x");
  ASSERT_TRUE(u) << u.error();
  EXPECT_EQ(u->host, "fd00::8");
  EXPECT_EQ(u->port, 8443);
  u = parse_http_url("http://Backend.apps.internal/");
  ASSERT_TRUE(u) << u.error();
  EXPECT_EQ(u->port, 80);
  EXPECT_FALSE(parse_http_url("ftp://x"));
  EXPECT_FALSE(parse_http_url("http://"));
  EXPECT_FALSE(parse_http_url("http://a:70000/"));
  auto r = system_services().http().fetch({.url = "gopher://x/"}, real_ctx());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "unsupported scheme 'gopher' in 'gopher://x/' (http and https only)");
}

}  // namespace
}  // namespace netplay
