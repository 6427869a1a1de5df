#pragma once
/// TCP connect probes, the service behind `tcp.connect`: a non-blocking connect(2) whose
/// wait honours the probe's timeout, the step's deadline and cancellation, and the outcome
/// named the way a runbook names it (open, refused, filtered, unreachable).
///
/// The real connector waits for the answer in slices of at most 50 ms, so a cancelled step
/// returns within one slice; connect_ms is measured on the step's clock. An open
/// connection is closed normally right away (the server sees a FIN, not a reset).

#include <expected>
#include <memory>
#include <string>

#include "runner/base/core.h"
#include "runner/step/canned.h"
#include "runner/step/step.h"

struct sockaddr;

namespace netplay {

/// "10.0.0.2:80", "[fd00::2]:80": an endpoint the way messages and facts print it.
std::string format_endpoint(const std::string& address, int port);
/// The same for a socket address (AF_INET or AF_INET6; "" for anything else).
std::string format_endpoint(const sockaddr* sa);

struct TcpConnectRequest {
  std::string address;  // numeric IPv4 or IPv6
  int port = 0;
  Millis timeout{1000};
  std::string source;     // numeric source address; "" = the kernel's choice
  std::string interface;  // SO_BINDTODEVICE; "" = none
};

struct TcpConnectResult {
  /// "open", "refused" (RST), "filtered" (no answer within the timeout), "unreachable"
  /// (ICMP unreachable, no route), "error" (anything else: see detail)
  std::string state;
  double connect_ms = 0;  // time to the answer (or to giving up, for filtered)
  std::string local;      // "addr:port" of our end, when connected
  std::string peer;       // "addr:port"
  int error_errno = 0;  // SO_ERROR of the attempt (ETIMEDOUT for filtered); 0 when open
  std::string detail;  // strerror or what happened
};

class TcpConnector {
 public:
  virtual ~TcpConnector() = default;
  /// Error only when the probe could not be tried (bad address, no socket, a source address
  /// or interface that cannot be bound) or was cut short (cancelled, the step's deadline
  /// came before the probe's timeout). No answer within `timeout` is state "filtered".
  virtual std::expected<TcpConnectResult, std::string> connect(const TcpConnectRequest& r,
                                                               const StepContext& ctx) = 0;
};

std::unique_ptr<TcpConnector> make_system_tcp_connector();

class FakeTcpConnector : public TcpConnector,
                         public CannedAnswers<TcpConnectRequest, TcpConnectResult> {
 public:
  std::expected<TcpConnectResult, std::string> connect(const TcpConnectRequest& r,
                                                       const StepContext& ctx) override {
    return ask(r, ctx, "tcp connect");
  }
};

}  // namespace netplay
