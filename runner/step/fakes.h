#pragma once
/// Fakes of the step services for unit tests: a step's run() on canned answers, without
/// root, namespaces, child processes or waiting. They honour deadline and cancellation the
/// way the real services do (checked against the fake clock), so those paths are testable.
///
///   FakeServices fakes;
///   fakes.fake_netlink.on_dump(RTM_GETLINK, {canned::link({.index = 1, .name = "lo"})});
///   fakes.fake_processes.answer({.exit_code = 0, .out = "ok\n"});
///   StepContext ctx;
///   ctx.services = &fakes;
///   auto out = step->run(ctx, params);

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runner/step/dns.h"
#include "runner/step/firewall.h"
#include "runner/step/pcap.h"
#include "runner/step/http.h"
#include "runner/step/icmp.h"
#include "runner/step/services.h"
#include "runner/step/tcp.h"

namespace netplay {

/// Time that moves only when told to. now() starts at the real steady time of construction
/// (so deadlines a scheduler computed from the real clock stay meaningful), wall_now() at
/// 2024-01-02T03:04:05Z.
class FakeClock : public StepClock {
 public:
  Clock::time_point now() const override;
  std::chrono::system_clock::time_point wall_now() const override;
  void advance(Millis d);

  static constexpr long long kWallStartSeconds = 1704164645;

 private:
  const Clock::time_point start_ = Clock::now();
  std::atomic<Clock::rep> elapsed_{0};  // since start_, in Clock ticks
};

/// Answers every run with a canned result (or a handler's), and records what was asked.
class FakeProcessRunner : public ProcessRunner {
 public:
  using Handler = std::function<std::expected<ProcessResult, std::string>(const ProcessSpec&,
                                                                          const StepContext&)>;
  /// Every run gets `result`.
  void answer(ProcessResult result);
  /// Every run gets what `h` returns (e.g. by argv).
  void answer(Handler h);
  /// Every run fails to start with `error` ("no such command 'x'").
  void fail_to_start(std::string error);

  /// Runs after the deadline or a stop request end as the real runner would end them:
  /// killed (SIGTERM), timed_out or cancelled set, with the canned output gathered so far.
  std::expected<ProcessResult, std::string> run(const ProcessSpec& spec,
                                                const StepContext& ctx) override;
  void kill_all() override;

  std::vector<ProcessSpec> runs() const;
  int kill_all_calls() const;

 private:
  mutable std::mutex m_;
  Handler handler_;
  std::vector<ProcessSpec> runs_;
  int kill_all_calls_ = 0;
};

/// Replays canned messages per request type; records every request. A client's calls end
/// with the real client's errors once its step is cancelled or past its deadline.
/// Canned messages: NlMessage::make, or the libnl-based builders of
/// tests/unit/support/netlink_canned.h (links, addresses, neighbours, FDB entries, routes).
class FakeNetlink : public Netlink {
 public:
  struct Request {
    int protocol = NETLINK_ROUTE;
    uint16_t type = 0;
    bool dump = false;
    std::vector<unsigned char> payload;
  };
  using Handler = std::function<std::expected<NlMessages, NlError>(const Request&)>;

  /// Every dump of `type` (RTM_GETLINK, RTM_GETNEIGH, ...) answers `replies`.
  FakeNetlink& on_dump(uint16_t type, NlMessages replies, int protocol = NETLINK_ROUTE);
  /// Every (non-dump) request of `type` answers `replies`.
  FakeNetlink& on_request(uint16_t type, NlMessages replies, int protocol = NETLINK_ROUTE);
  /// The kernel refuses requests (or dumps) of `type` with `kernel_errno` (ENETUNREACH, ...).
  FakeNetlink& refuse(uint16_t type, int kernel_errno, bool dump = false,
                      int protocol = NETLINK_ROUTE);
  /// Requests (or dumps) of `type` are answered by `h`, e.g. by generic netlink command.
  /// An error's text gets the request's name in front ("route lookup: ..."), as the real
  /// client's does.
  FakeNetlink& on(uint16_t type, bool dump, Handler h, int protocol = NETLINK_ROUTE);
  /// netnsid_of_fd answers with `h` (default: an error).
  FakeNetlink& on_netnsid(std::function<std::expected<int, std::string>(int ns_fd)> h);
  /// open() fails with `error`.
  FakeNetlink& fail_open(std::string error);

  std::expected<std::unique_ptr<NetlinkClient>, std::string> open(const StepContext& ctx,
                                                                  int protocol) override;
  /// Every request and dump so far, in order.
  std::vector<Request> requests() const;

  /// For the clients: the answer to `r`.
  std::expected<NlMessages, NlError> answer(Request r, std::string_view what);
  std::expected<int, std::string> netnsid(int ns_fd);

 private:
  struct Key {
    int protocol;
    uint16_t type;
    bool dump;
    auto operator<=>(const Key&) const = default;
  };
  mutable std::mutex m_;
  std::map<Key, Handler> handlers_;
  std::function<std::expected<int, std::string>(int)> netnsid_;
  std::string open_error_;
  std::vector<Request> requests_;
};

class FakeServices : public StepServices {
 public:
  Netlink& netlink() override { return fake_netlink; }
  ProcessRunner& processes() override { return fake_processes; }
  StepClock& clock() override { return fake_clock; }
  Pinger& pinger() override { return fake_pinger; }
  TcpConnector& tcp() override { return fake_tcp; }
  Resolver& resolver() override { return fake_resolver; }
  HttpClient& http() override { return fake_http; }
  Firewall& firewall() override { return fake_firewall; }
  PacketSource& packets() override { return fake_packets; }

  FakeServices() { fake_packets.clock = &fake_clock; }

  FakeNetlink fake_netlink;
  FakeProcessRunner fake_processes;
  FakeClock fake_clock;
  FakePinger fake_pinger;
  FakeTcpConnector fake_tcp;
  FakeResolver fake_resolver;
  FakeHttpClient fake_http;
  FakeFirewall fake_firewall;
  FakePacketSource fake_packets;
};

}  // namespace netplay
