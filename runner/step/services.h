#pragma once
/// What a step may touch of the system, handed to it through StepContext as services:
/// netlink, child processes and the clock. Each real implementation honours the step's
/// deadline and cancellation; each has a fake (runner/step/fakes.h), so a step's logic can be
/// unit-tested without root, without namespaces and without waiting.
///
/// Whoever owns a run owns its services (the CLI today, a Session later) and keeps them
/// alive for the whole run; steps get them with ctx.netlink(), ctx.processes() and
/// ctx.clock().

#include <linux/netlink.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/step.h"

namespace netplay {

// ---- Netlink ----

/// One netlink message as the kernel sent it: the nlmsghdr and what follows it.
class NlMessage {
 public:
  NlMessage() = default;
  /// A copy of the message at `h` (nlmsg_len bytes).
  static NlMessage copy_of(const nlmsghdr* h);
  /// A message of `type` whose payload is `payload` (what fakes and tests build).
  static NlMessage make(uint16_t type, std::span<const unsigned char> payload, uint16_t flags = 0);

  const nlmsghdr* hdr() const { return reinterpret_cast<const nlmsghdr*>(bytes_.data()); }
  /// Non-const for libnl's parsers, which take a plain nlmsghdr* (and do not write to it).
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(bytes_.data()); }
  uint16_t type() const { return bytes_.empty() ? 0 : hdr()->nlmsg_type; }
  /// The bytes after the header (the family header and the attributes).
  std::span<const unsigned char> payload() const;
  const std::vector<unsigned char>& bytes() const { return bytes_; }

 private:
  /// From operator new, so aligned for nlmsghdr.
  std::vector<unsigned char> bytes_;
};
using NlMessages = std::vector<NlMessage>;

struct NlError {
  /// "neighbour dump: timed out waiting for the kernel", "route lookup: No route to host".
  std::string message;
  /// The errno the kernel answered the request with (ENETUNREACH, ENODEV, ...); 0 when the
  /// failure was ours (timeout, cancellation, a socket error).
  int kernel_errno = 0;
};

/// A netlink connection to the namespace the calling thread was in when it was opened.
/// Every call waits at most until the step's deadline and returns soon after the step is
/// cancelled; errors name `what` ("link dump: cancelled").
class NetlinkClient {
 public:
  virtual ~NetlinkClient() = default;
  /// A dump request (NLM_F_DUMP) of `type` (RTM_GETLINK, RTM_GETNEIGH, ...) whose payload is
  /// `payload` (ifinfomsg, ndmsg, rtmsg, ... and any attributes): every message of the reply.
  virtual std::expected<NlMessages, NlError> dump(uint16_t type,
                                                  std::span<const unsigned char> payload,
                                                  std::string_view what) = 0;
  /// One request of `type` (e.g. RTM_GETROUTE for a lookup, a generic netlink family's id):
  /// the reply's messages, or the kernel's error with its errno.
  virtual std::expected<NlMessages, NlError> request(uint16_t type,
                                                     std::span<const unsigned char> payload,
                                                     std::string_view what) = 0;
  /// The NETNSID under which this client's namespace sees the namespace open at `ns_fd`
  /// (RTM_GETNSID with NETNSA_FD); -1 when none is assigned.
  virtual std::expected<int, std::string> netnsid_of_fd(int ns_fd) = 0;
};

class Netlink {
 public:
  virtual ~Netlink() = default;
  /// A client in the calling thread's current network namespace for `protocol`
  /// (NETLINK_ROUTE, NETLINK_GENERIC), bound to ctx's deadline and cancellation. Open it in
  /// run() and drop it before returning; it must not outlive ctx.
  virtual std::expected<std::unique_ptr<NetlinkClient>, std::string> open(
      const StepContext& ctx, int protocol = NETLINK_ROUTE) = 0;
};

// ---- Child processes ----

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] looked up in PATH when it has no '/'
  std::map<std::string, std::string> env;  // added to (or replacing) the inherited env
  bool inherit_env = true;
  std::string cwd;
  std::string stdin_data;
  size_t max_output = 1u << 20;  // per stream; output past it is dropped and flagged
};

struct ProcessResult {
  std::optional<int> exit_code;  // none when killed by a signal
  int term_signal = 0;
  std::string out;
  std::string err;
  bool timed_out = false;  // deadline hit: killed
  bool cancelled = false;  // cancel/stop requested: killed
  bool truncated = false;
  Millis duration{0};
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  /// Runs to completion, until ctx's deadline, or until ctx.should_stop(); on the last two
  /// the whole process group gets SIGTERM, then SIGKILL after a short grace. Error only
  /// when the process could not be started ("no such command 'foo'").
  virtual std::expected<ProcessResult, std::string> run(const ProcessSpec& spec,
                                                        const StepContext& ctx) = 0;
  /// Kills every child process group still running (Ctrl-C, the global timeout).
  virtual void kill_all() = 0;
};

// ---- Clock ----

class StepClock {
 public:
  virtual ~StepClock() = default;
  /// Monotonic time: durations and deadlines.
  virtual Clock::time_point now() const = 0;
  /// Wall-clock time: what reports print.
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
};

// ---- Probes ----
// Each in its own header with its fake: runner/step/icmp.h (Pinger), tcp.h (TcpConnector),
// dns.h (Resolver), http.h (HttpClient), firewall.h (Firewall), pcap.h (PacketSource: live
// captures and capture files).

/// The services of one run.
class StepServices {
 public:
  virtual ~StepServices() = default;
  virtual Netlink& netlink() = 0;
  virtual ProcessRunner& processes() = 0;
  virtual StepClock& clock() = 0;
  virtual Pinger& pinger() = 0;
  virtual TcpConnector& tcp() = 0;
  virtual Resolver& resolver() = 0;
  virtual HttpClient& http() = 0;
  virtual Firewall& firewall() = 0;
  virtual PacketSource& packets() = 0;
};

class ProcessRegistry;

/// The real services: the kernel's netlink, real child processes (tracked in a
/// ProcessRegistry that the run's owner holds, so that Ctrl-C can kill them), the system
/// clocks.
class RealServices : public StepServices {
 public:
  /// `registry` must outlive these services.
  explicit RealServices(ProcessRegistry& registry);
  ~RealServices() override;
  RealServices(const RealServices&) = delete;
  RealServices& operator=(const RealServices&) = delete;

  Netlink& netlink() override;
  ProcessRunner& processes() override;
  StepClock& clock() override;
  Pinger& pinger() override;
  TcpConnector& tcp() override;
  Resolver& resolver() override;
  HttpClient& http() override;
  Firewall& firewall() override;
  PacketSource& packets() override;
  ProcessRegistry& registry() { return registry_; }

 private:
  ProcessRegistry& registry_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Real services for code that runs steps without bringing its own (a StepContext or
/// RunOptions without services, e.g. in tests): one set per process, never destroyed.
RealServices& system_services();

}  // namespace netplay
