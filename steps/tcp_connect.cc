/// tcp.connect: can a TCP connection be opened to host:port from the step's namespace?

#include <algorithm>
#include <cmath>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "runner/step/services.h"
#include "runner/step/step.h"
#include "runner/step/tcp.h"
#include "steps/net/pause.h"
#include "steps/net/stats.h"
#include "steps/net/targets.h"

namespace netplay {
namespace {

using namespace std::chrono_literals;

/// Where a probe goes: today numeric addresses only ("10.0.0.2", "fd00::2", "[fd00::2]",
/// "fe80::1%eth0").
/// The address to connect to: a numeric address as written ("[v6]" and "fe80::1%eth0"
/// too), else the name resolved in the step's namespace (resolve_targets).
std::expected<std::string, std::string> probe_address(StepContext& ctx, const std::string& host) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  size_t scope = h.find('%');
  if (is_ip(h.substr(0, scope)) &&
      (scope == std::string::npos || (h.find(':') < scope && scope + 1 < h.size())))
    return h;
  auto addrs = resolve_targets(ctx, {h});
  if (!addrs) return std::unexpected(addrs.error());
  return addrs->front();
}

using stats::round_ms;

/// "0.12 ms", "1.5 ms", "250 ms": a connect time in a message.
std::string ms_text(double ms) {
  if (ms < 10) return fmt::format("{:.2g} ms", ms < 0.01 ? 0.01 : ms);
  return fmt::format("{:.0f} ms", ms);
}

/// One attempt's outcome in a message: "refused (RST in 0.1 ms)".
std::string outcome(const TcpConnectResult& r, Millis timeout) {
  if (r.state == "open") return fmt::format("open in {}", ms_text(r.connect_ms));
  if (r.state == "refused") return fmt::format("refused (RST in {})", ms_text(r.connect_ms));
  if (r.state == "filtered")
    return fmt::format("filtered: no answer within {}", format_duration(timeout));
  if (r.state == "unreachable") return fmt::format("unreachable: {}", r.detail);
  return fmt::format("error: {}", r.detail.empty() ? r.state : r.detail);
}

class TcpConnectStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "tcp.connect",
        .summary = "Open a TCP connection to host:port and report open, refused, filtered "
                   "or unreachable",
        .description =
            "Tries a TCP handshake (a non-blocking connect) from the step's namespace to "
            "`host`:`port`, `count` times, `interval` apart, and names each outcome the way a "
            "runbook does: `open` (the handshake completed; the connection is closed again "
            "at once with a normal FIN), `refused` (the peer answered with a reset: nothing "
            "listens, or a firewall rejects with tcp reset), `filtered` (no answer within "
            "`timeout`: a drop rule, a black hole, a peer that is down), `unreachable` (no "
            "route, or an ICMP unreachable / administratively prohibited answer) or `error` "
            "(anything else, with the errno text in `detail`). `connect_ms` is the time to the "
            "answer, averaged over the attempts that got one.\n\n"
            "Without an expectation on `state` (or `states`, `open_count`) the step passes only "
            "when every attempt found the port open and fails otherwise, naming the state: "
            "`10.0.0.2:80 refused (RST in 0.1 ms)`, `10.0.0.2:81 filtered: no answer within "
            "1s`. With one (e.g. `expect: {state: refused}` to prove a port is closed, or "
            "`{state: filtered}` to prove a firewall drops it), the expectation alone judges. "
            "A host name is resolved as a program in the step's namespace would resolve it "
            "(its hosts file, then the servers of its resolv.conf: /etc/netns/NAME/... for a "
            "namespace NAME); one that does not resolve is an error.",
        .params = {{.name = "host",
                    .type = ValueType::kString,
                    .doc = "The target: an IPv4 or IPv6 address (fe80::1%eth0 for a "
                           "link-local one) or a name",
                    .required = true},
                   {.name = "port",
                    .type = ValueType::kInt,
                    .doc = "The TCP port",
                    .required = true,
                    .min = 1,
                    .max = 65535},
                   {.name = "timeout",
                    .type = ValueType::kDuration,
                    .doc = "How long one attempt waits for an answer before calling the port "
                           "filtered",
                    .default_value = "1s"},
                   {.name = "count",
                    .type = ValueType::kInt,
                    .doc = "Number of attempts",
                    .default_value = 1,
                    .min = 1,
                    .max = 1000},
                   {.name = "interval",
                    .type = ValueType::kDuration,
                    .doc = "Pause between two attempts",
                    .default_value = "0s"},
                   {.name = "source",
                    .type = ValueType::kIp,
                    .doc = "Source address to connect from (must be an address of this "
                           "namespace)"},
                   {.name = "interface",
                    .type = ValueType::kString,
                    .doc = "Send through this interface only (SO_BINDTODEVICE)"}},
        .facts = {{"address", "string", "The address probed"},
                  {"port", "int", "The port probed"},
                  {"state", "string",
                   "open, refused, filtered, unreachable or error (of the last attempt)"},
                  {"states", "list", "The state of every attempt, in order (count > 1)"},
                  {"open_count", "int", "Attempts that found the port open (count > 1)"},
                  {"attempts", "int", "Attempts made"},
                  {"connect_ms", "number",
                   "Time to the answer, averaged over the attempts that got one; absent when "
                   "none did"},
                  {"connect_min_ms", "number", "Fastest answer"},
                  {"connect_max_ms", "number", "Slowest answer"},
                  {"local", "string", "Our end, addr:port ([v6]:port), when it was bound"},
                  {"peer", "string", "The other end, addr:port ([v6]:port)"},
                  {"errno", "int", "The socket error of the last attempt (0 when open)"},
                  {"detail", "string", "The error text of the last attempt, when not open"}},
        .example = "- id: api_port\n  uses: tcp.connect\n  netns: \"{{ inputs.app_netns }}\"\n"
                   "  with: {host: 10.255.9.3, port: 8080, timeout: 2s}\n"
                   "- id: metadata_blocked\n  uses: tcp.connect\n"
                   "  with: {host: 169.254.169.254, port: 80}\n"
                   "  expect: {state: {in: [filtered, refused, unreachable]}}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto address = probe_address(ctx, p.str("host"));
    if (!address) return StepOutput::error(address.error());
    TcpConnectRequest req;
    req.address = *address;
    req.port = static_cast<int>(p.integer("port"));
    req.timeout = p.duration("timeout", Millis(1000));
    req.source = p.str("source");
    req.interface = p.str("interface");
    const int count = static_cast<int>(p.integer("count", 1));
    const Millis interval = p.duration("interval");
    const std::string target = format_endpoint(req.address, req.port);
    if (req.timeout <= Millis(0)) return StepOutput::error("timeout must be more than 0");

    std::vector<TcpConnectResult> results;
    std::string cut_short;
    for (int i = 0; i < count; ++i) {
      // A pause cut short by cancellation or the deadline is seen by the connect below.
      if (i > 0 && interval > Millis(0)) (void)pause(ctx, interval);
      auto r = ctx.tcp().connect(req, ctx);
      if (!r) {
        cut_short = r.error();
        break;
      }
      results.push_back(std::move(*r));
    }

    StepOutput out;
    auto& f = out.facts;
    f["address"] = req.address;
    f["port"] = req.port;
    if (results.empty()) {
      out = StepOutput::error(cut_short);
      out.facts["address"] = req.address;
      out.facts["port"] = req.port;
      return out;
    }
    const TcpConnectResult& last = results.back();
    int open = 0;
    std::vector<double> answered;
    json states = json::array();
    for (const auto& r : results) {
      states.push_back(r.state);
      if (r.state == "open") ++open;
      if (r.state != "filtered") answered.push_back(r.connect_ms);
    }
    f["state"] = last.state;
    if (count > 1) {
      f["states"] = std::move(states);
      f["open_count"] = open;
    }
    f["attempts"] = results.size();
    if (!answered.empty()) {
      double sum = 0;
      for (double ms : answered) sum += ms;
      f["connect_ms"] = round_ms(sum / static_cast<double>(answered.size()));
      f["connect_min_ms"] = round_ms(*std::min_element(answered.begin(), answered.end()));
      f["connect_max_ms"] = round_ms(*std::max_element(answered.begin(), answered.end()));
    }
    if (!last.local.empty()) f["local"] = last.local;
    f["peer"] = last.peer.empty() ? target : last.peer;
    f["errno"] = last.error_errno;
    if (!last.detail.empty()) f["detail"] = valid_utf8(last.detail);

    const int n = static_cast<int>(results.size());
    if (count == 1) {
      out.message = fmt::format("{} {}", target, outcome(last, req.timeout));
    } else if (open == n) {
      out.message = fmt::format("{} open {}/{}, connect avg {} (max {})", target, open, n,
                                ms_text(f["connect_ms"].get<double>()),
                                ms_text(f["connect_max_ms"].get<double>()));
    } else if (std::all_of(results.begin(), results.end(),
                           [&](const TcpConnectResult& r) { return r.state == last.state; })) {
      out.message = fmt::format("{} {}, {}/{} attempts", target, outcome(last, req.timeout), n, n);
    } else {
      std::map<std::string, int> by_state;
      for (const auto& r : results) by_state[r.state]++;
      std::string tally;
      for (const auto& [st, k] : by_state) {
        if (!tally.empty()) tally += ", ";
        tally += fmt::format("{} {}", k, st);
      }
      out.message = fmt::format("{} open {}/{} ({}); last {}", target, open, n, tally,
                                outcome(last, req.timeout));
    }
    if (!cut_short.empty()) {
      out.status = Status::kError;
      out.message = fmt::format("{}; {} of {} attempts made: {}", cut_short, n, count,
                                out.message);
      return out;
    }
    bool judged = ctx.expects("state") || ctx.expects("states") || ctx.expects("open_count");
    if (!judged && open != n) out.status = Status::kFail;
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(TcpConnectStep);
}  // namespace netplay
