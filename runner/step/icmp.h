#pragma once
/// ICMP echo, the service behind `ping` and `mtu`: echo requests to one or more targets at
/// once, over ping sockets (SOCK_DGRAM, IPPROTO_ICMP/ICMPV6) where net.ipv4.ping_group_range
/// allows them, raw sockets otherwise; replies and ICMP errors (unreachable, frag needed,
/// packet too big, time exceeded) matched to the requests. Every wait honours the step's
/// deadline and cancellation.

#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/canned.h"
#include "runner/step/step.h"

namespace netplay {

struct EchoRequest {
  /// Numeric IPv4 or IPv6 addresses, pinged concurrently (names are resolved by the step).
  std::vector<std::string> targets;
  int count = 3;
  Millis interval{200};  // between two requests to one target
  Millis timeout{1000};  // how long to wait for the reply to the last request
  int size = 56;         // ICMP payload bytes
  bool dont_fragment = false;
  std::string source;     // numeric source address; "" = the kernel's choice
  std::string interface;  // SO_BINDTODEVICE; "" = none
  int ttl = 0;            // 0 = the system's default
};

/// An ICMP error answering one of our requests, or a local refusal to send it.
struct IcmpError {
  /// "unreachable", "frag_needed" (IPv4) / "packet_too_big" (IPv6), "time_exceeded",
  /// "local" (the kernel refused to send: EMSGSIZE over the known path MTU, ...)
  std::string kind;
  std::string from;  // who answered ("" for local)
  int type = 0;
  int code = 0;
  int mtu = 0;  // next-hop MTU of frag_needed / packet_too_big, or the known path MTU
  int seq = 0;
  std::string detail;  // "host unreachable", "Message too long", ...
};

struct EchoResult {
  std::string target;
  int sent = 0;
  std::vector<double> rtt_ms;  // one per reply received, in order of arrival
  std::vector<IcmpError> errors;
  /// "ping" (SOCK_DGRAM ping socket) or "raw" (SOCK_RAW); "" when no socket was opened.
  std::string socket;
};

class Pinger {
 public:
  virtual ~Pinger() = default;
  /// One result per target, in the order of `r.targets`. Error only when nothing could be
  /// tried (no socket, a bad address, cancelled).
  virtual std::expected<std::vector<EchoResult>, std::string> echo(const EchoRequest& r,
                                                                   const StepContext& ctx) = 0;
};

std::unique_ptr<Pinger> make_system_pinger();

class FakePinger : public Pinger, public CannedAnswers<EchoRequest, std::vector<EchoResult>> {
 public:
  std::expected<std::vector<EchoResult>, std::string> echo(const EchoRequest& r,
                                                           const StepContext& ctx) override {
    return ask(r, ctx, "ping");
  }
};

}  // namespace netplay
