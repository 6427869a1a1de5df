#pragma once
/// TCP connect probes, the service behind `tcp.connect`: a non-blocking connect(2) whose
/// wait honours the probe's timeout, the step's deadline and cancellation, and the outcome
/// named the way a runbook names it (open, refused, filtered, unreachable).

#include <expected>
#include <memory>
#include <string>

#include "runner/base/core.h"
#include "runner/step/canned.h"
#include "runner/step/step.h"

namespace netplay {

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
  double connect_ms = 0;  // time to the answer (or to giving up)
  std::string local;      // "addr:port" of our end, when connected
  std::string peer;       // "addr:port"
  int error_errno = 0;
  std::string detail;  // strerror or what happened
};

class TcpConnector {
 public:
  virtual ~TcpConnector() = default;
  /// Error only when the probe could not be tried (bad address, no socket, cancelled).
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
