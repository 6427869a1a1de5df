#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "runner/step/fakes.h"
#include "tests/unit/support/sock_diag_canned.h"
#include "tests/unit/support/step_run.h"

namespace netplay {
namespace {

// Inodes no real socket of this process has: the owner scan finds no process for them.
constexpr unsigned long kInode = 4'000'000'000;

void node_sockets(FakeServices& f) {
  canned::sock_diag(f.fake_netlink,
                    {{.proto = IPPROTO_TCP, .address = "0.0.0.0", .port = 22, .inode = kInode},
                     {.proto = IPPROTO_TCP, .address = "::", .port = 22, .inode = kInode + 1,
                      .v6only = true},
                     {.proto = IPPROTO_TCP, .address = "127.0.0.1", .port = 8080,
                      .inode = kInode + 2, .uid = 1000},
                     {.proto = IPPROTO_UDP, .address = "10.0.0.2", .port = 53,
                      .inode = kInode + 3},
                     {.proto = IPPROTO_UDP, .address = "::", .port = 4789,
                      .inode = kInode + 4}});
}

TEST(SocketsListen, ListsEverythingWithoutAPort) {
  FakeServices fakes;
  node_sockets(fakes);
  auto o = run_step("sockets.listen", json::object(), &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "5 listening tcp or udp sockets on ports 22, 53, 4789, 8080");
  EXPECT_EQ(o.facts["count"], 5);
  EXPECT_EQ(o.facts["ports"], json({22, 53, 4789, 8080}));
  const auto& first = o.facts["listeners"][0];
  EXPECT_EQ(first["proto"], "tcp");
  EXPECT_EQ(first["address"], "0.0.0.0");
  EXPECT_EQ(first["port"], 22);
  EXPECT_EQ(first["inode"], kInode);
  EXPECT_TRUE(first["pid"].is_null());
  EXPECT_TRUE(first["program"].is_null());
  // Four dumps: tcp and udp, IPv4 and IPv6, all on the sock_diag protocol.
  auto reqs = fakes.fake_netlink.requests();
  ASSERT_EQ(reqs.size(), 4u);
  for (const auto& r : reqs) EXPECT_EQ(r.protocol, NETLINK_SOCK_DIAG);
}

TEST(SocketsListen, FindsTheListenerOfAPort) {
  FakeServices fakes;
  node_sockets(fakes);
  auto o = run_step("sockets.listen", {{"proto", "tcp"}, {"port", 8080}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.message, "tcp 127.0.0.1:8080");
  EXPECT_EQ(o.facts["listening"], true);
  EXPECT_EQ(o.facts["listeners"][0]["uid"], 1000);
  EXPECT_EQ(fakes.fake_netlink.requests().size(), 2u);  // tcp only
}

TEST(SocketsListen, NothingOnThePortFailsNamingWhatListens) {
  FakeServices fakes;
  node_sockets(fakes);
  auto o = run_step("sockets.listen", {{"proto", "tcp"}, {"port", 9090}}, &fakes);
  EXPECT_EQ(o.status, Status::kFail);
  EXPECT_EQ(o.message, "nothing listens on tcp port 9090 (listening: 22, 8080)");
  EXPECT_EQ(o.facts["listening"], false);
  EXPECT_EQ(o.facts["count"], 0);
}

TEST(SocketsListen, AnExpectationOnListeningJudgesInstead) {
  FakeServices fakes;
  node_sockets(fakes);
  StepContext ctx;
  ctx.expected_facts = {"listening"};
  auto o = run_step("sockets.listen", {{"port", 9090}}, &fakes, ctx);
  EXPECT_EQ(o.status, Status::kPass);
  EXPECT_EQ(o.message, "nothing listens on tcp or udp port 9090 (listening: 22, 53, 4789, 8080)");
}

TEST(SocketsListen, AnAddressMatchesItselfAndTheWildcards) {
  FakeServices fakes;
  node_sockets(fakes);
  // 10.0.0.2: tcp 0.0.0.0:22 and udp 10.0.0.2:53, udp [::]:4789 (not v6only); not the
  // v6only [::]:22 nor 127.0.0.1:8080.
  auto o = run_step("sockets.listen", {{"address", "10.0.0.2"}}, &fakes);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["ports"], json({22, 53, 4789}));
  EXPECT_EQ(o.facts["count"], 3);
  o = run_step("sockets.listen", {{"address", "fd00::1"}}, &fakes);
  EXPECT_EQ(o.facts["ports"], json({22, 4789}));
}

TEST(SocketsListen, AKernelErrorIsAnError) {
  FakeServices fakes;
  fakes.fake_netlink.refuse(SOCK_DIAG_BY_FAMILY, EPERM, true, NETLINK_SOCK_DIAG);
  auto o = run_step("sockets.listen", json::object(), &fakes);
  EXPECT_EQ(o.status, Status::kError);
  EXPECT_NE(o.message.find("tcp socket dump"), std::string::npos) << o.message;
}

/// The real sock_diag and /proc: a socket of this process, with its pid and program.
TEST(SocketsListenReal, NamesThisProcessAsTheOwner) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int port = ntohs(a.sin_port);
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  a.sin_port = 0;
  ASSERT_EQ(::bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::getsockname(udp, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int udp_port = ntohs(a.sin_port);

  std::string comm;
  std::getline(std::ifstream("/proc/self/comm"), comm);
  auto o = run_step("sockets.listen", {{"proto", "tcp"}, {"port", port}}, nullptr);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  ASSERT_EQ(o.facts["count"], 1);
  EXPECT_EQ(o.facts["listeners"][0]["pid"], ::getpid());
  EXPECT_EQ(o.facts["listeners"][0]["program"], comm);
  EXPECT_EQ(o.facts["listeners"][0]["address"], "127.0.0.1");
  o = run_step("sockets.listen", {{"proto", "udp"}, {"port", udp_port}}, nullptr);
  ASSERT_EQ(o.status, Status::kPass) << o.message;
  EXPECT_EQ(o.facts["listeners"][0]["pid"], ::getpid());
  ::close(fd);
  ::close(udp);
  o = run_step("sockets.listen", {{"proto", "tcp"}, {"port", port}}, nullptr);
  EXPECT_EQ(o.status, Status::kFail) << o.message;
}

}  // namespace
}  // namespace netplay
