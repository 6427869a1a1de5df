/// ping: ICMP echo to one or more addresses at once, with loss, round-trip times and the
/// ICMP errors that came back.

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "runner/step/icmp.h"
#include "runner/step/step.h"
#include "steps/net/stats.h"
#include "steps/net/targets.h"

namespace netplay {
namespace {

constexpr size_t kMaxTargets = 256;
constexpr size_t kMaxErrorFacts = 1000;
/// Left between the end of the wait for replies and the step's deadline.
constexpr Millis kDeadlineMargin{100};

using stats::round_ms;
double round2(double v) { return std::round(v * 100) / 100; }

double loss_pct(int sent, size_t received) {
  if (sent <= 0) return 0;
  return round2(100.0 * (sent - static_cast<double>(received)) / sent);
}

void put_rtt(json& f, const stats::Summary& s) {
  if (s.n == 0) return;  // no reply: no times (an expectation on them fails)
  f["rtt_min_ms"] = round_ms(s.min);
  f["rtt_avg_ms"] = round_ms(s.avg);
  f["rtt_max_ms"] = round_ms(s.max);
  f["rtt_mdev_ms"] = round_ms(s.mdev);
}

json error_json(const std::string& target, const IcmpError& e) {
  return {{"target", target}, {"kind", e.kind},   {"from", e.from},     {"type", e.type},
          {"code", e.code},   {"mtu", e.mtu},     {"seq", e.seq},       {"detail", e.detail}};
}

/// "host unreachable from 10.0.0.1", "Message too long, mtu 1400".
std::string error_text(const IcmpError& e) {
  std::string s = e.detail;
  if (e.kind == "local" && e.mtu > 0) s += fmt::format(", mtu {}", e.mtu);
  if (!e.from.empty()) s += " from " + e.from;
  return s;
}

class PingStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "ping",
        .summary = "ICMP echo to one or more addresses at once: loss, round-trip times, ICMP "
                   "errors",
        .description =
            "Sends `count` ICMP echo requests (IPv4 or IPv6), `interval` apart, to every "
            "target at once and waits up to `timeout` after the last one for the replies, as "
            "`ping -c COUNT -i INTERVAL -W TIMEOUT` does for each target. It uses a ping socket "
            "where net.ipv4.ping_group_range allows the process's group, a raw socket "
            "(CAP_NET_RAW) otherwise. Replies are matched to requests by ICMP id and "
            "sequence; ICMP errors quoting a request (destination unreachable with its code, "
            "fragmentation needed / packet too big with the next-hop MTU, time exceeded) are "
            "reported in `errors` with the router that sent them, and a request the kernel "
            "refused to send (e.g. larger than the interface MTU with `dont_fragment`) as "
            "kind `local` with the MTU it knows. Statistics are over all targets and per "
            "target in `targets`.\n\n"
            "A target that answered none of its requests fails the step, naming it and the "
            "ICMP error if one came back (\"10.0.0.9: 0/3 received (host unreachable from "
            "10.0.0.1)\"); partial loss passes with the loss in the message, as ping's exit "
            "status does. When `expect:` judges received, loss_pct, targets or errors, the "
            "expectation alone decides (e.g. `expect: {loss_pct: 100}` to check that a "
            "policy blocks ICMP). The step errors when nothing could be sent: no privilege to "
            "open an ICMP socket, a source address or interface that is not there, a name that "
            "does not resolve. A name is resolved as a program in the step's namespace would "
            "resolve it: its hosts file, then the servers of its resolv.conf "
            "(/etc/netns/NAME/... for a namespace NAME).",
        .params =
            {{.name = "target",
              .type = ValueType::kList,
              .doc = "The address to ping, or a list of addresses pinged concurrently "
                     "(at most 256)",
              .required = true,
              .scalar_as_list = true},
             {.name = "count",
              .type = ValueType::kInt,
              .doc = "Echo requests per target",
              .default_value = 3,
              .min = 1,
              .max = 1000},
             {.name = "interval",
              .type = ValueType::kDuration,
              .doc = "Time between two requests to a target",
              .default_value = "200ms",
              .min = 10,
              .max = 60000},
             {.name = "timeout",
              .type = ValueType::kDuration,
              .doc = "How long to wait for replies after the last request",
              .default_value = "1s",
              .min = 0,
              .max = 60000},
             {.name = "size",
              .type = ValueType::kInt,
              .doc = "ICMP payload bytes (IPv4 packet = size + 28, IPv6 = size + 48)",
              .default_value = 56,
              .min = 0,
              .max = 65507},
             {.name = "dont_fragment",
              .type = ValueType::kBool,
              .doc = "Set DF (IPv4) / never fragment (IPv6), ignoring the cached path MTU, "
                     "as `ping -M probe` does",
              .default_value = false},
             {.name = "source", .type = ValueType::kIp, .doc = "Source address (bind)"},
             {.name = "interface",
              .type = ValueType::kString,
              .doc = "Send through this interface only (SO_BINDTODEVICE)"},
             {.name = "ttl",
              .type = ValueType::kInt,
              .doc = "IPv4 TTL / IPv6 hop limit of the requests (default: the system's)",
              .min = 1,
              .max = 255},
             {.name = "family",
              .type = ValueType::kString,
              .doc = "4 or 6: refuse targets of the other family",
              .default_value = "auto",
              .choices = {"auto", "4", "6"}}},
        .facts =
            {{"sent", "int", "Echo requests sent, over all targets (requests the kernel "
                             "refused included: see errors)"},
             {"received", "int", "Replies received, over all targets (duplicates not counted)"},
             {"loss_pct", "number", "100 * (sent - received) / sent"},
             {"rtt_min_ms", "number", "Fastest round trip (absent without replies)"},
             {"rtt_avg_ms", "number", "Mean round trip"},
             {"rtt_max_ms", "number", "Slowest round trip"},
             {"rtt_mdev_ms", "number", "Deviation of the round trips, as ping's mdev: "
                                       "sqrt(mean(rtt^2) - mean(rtt)^2)"},
             {"targets", "list", "Per target: {target, sent, received, loss_pct, rtt_min_ms, "
                                 "rtt_avg_ms, rtt_max_ms, rtt_mdev_ms, errors}"},
             {"errors", "list", "ICMP errors and local refusals: {target, kind (unreachable, "
                                "frag_needed, packet_too_big, time_exceeded, local), from, "
                                "type, code, mtu, seq, detail}"},
             {"frag_needed_mtu", "int", "The smallest next-hop MTU a fragmentation needed / "
                                        "packet too big error reported, when one did"},
             {"socket", "string", "ping (an unprivileged ping socket) or raw"}},
        .privileges = "CAP_NET_RAW, or a group in net.ipv4.ping_group_range",
        .example = "- id: gateway_reachable\n  uses: ping\n"
                   "  netns: \"{{ inputs.container_netns }}\"\n"
                   "  with: {target: 10.255.2.12, count: 5}\n"
                   "  expect: {loss_pct: {le: 20}, rtt_avg_ms: {lt: 10}}\n"
                   "- id: cells_reachable\n  uses: ping\n"
                   "  with: {target: [10.0.0.2, 10.0.0.3, 'fd00::3'], count: 3}\n"
                   "- id: overlay_mtu\n  uses: ping\n"
                   "  with: {target: 10.255.2.12, size: 1422, dont_fragment: true}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto names = p.strings("target");
    if (names.empty()) return StepOutput::error("no target given");
    if (names.size() > kMaxTargets)
      return StepOutput::error(
          fmt::format("{} targets: at most {} per step", names.size(), kMaxTargets));
    auto targets = resolve_targets(ctx, names, p.str("family", "auto"));
    if (!targets) return StepOutput::error(targets.error());

    EchoRequest req;
    req.targets = *targets;
    req.count = static_cast<int>(p.integer("count", 3));
    req.interval = p.duration("interval", Millis(200));
    req.timeout = p.duration("timeout", Millis(1000));
    req.size = static_cast<int>(p.integer("size", 56));
    req.dont_fragment = p.boolean("dont_fragment", false);
    req.source = p.str("source");
    req.interface = p.str("interface");
    req.ttl = static_cast<int>(p.integer("ttl", 0));
    // The requests go out over (count - 1) * interval whatever comes back: a step timeout
    // shorter than that can only end in "timed out", so say so now. The wait for the last
    // replies is cut to what the step has left.
    Millis span = req.interval * (req.count - 1);
    Millis left = ctx.remaining();
    if (left > Millis(0) && left <= span)
      return StepOutput::error(fmt::format(
          "{} requests every {} take {}, longer than the step's timeout ({} left): raise "
          "the step's timeout or lower count",
          req.count, format_duration(req.interval), format_duration(span),
          format_duration(Millis(std::floor(left.count())))));
    req.timeout = std::min(req.timeout, std::max(Millis(0), left - span - kDeadlineMargin));
    auto results = ctx.pinger().echo(req, ctx);
    if (!results) return StepOutput::error(results.error());
    return judge(ctx, *results);
  }

  static StepOutput judge(const StepContext& ctx, const std::vector<EchoResult>& results) {
    StepOutput out;
    int sent = 0;
    std::vector<double> all;
    json per = json::array(), errors = json::array();
    int frag_mtu = 0;
    std::string socket;
    std::vector<std::string> dead;
    for (const auto& r : results) {
      sent += r.sent;
      all.insert(all.end(), r.rtt_ms.begin(), r.rtt_ms.end());
      if (socket.empty()) socket = r.socket;
      stats::Summary st = stats::summarize(r.rtt_ms);
      json t = {{"target", r.target},
                {"sent", r.sent},
                {"received", r.rtt_ms.size()},
                {"loss_pct", loss_pct(r.sent, r.rtt_ms.size())}};
      put_rtt(t, st);
      json errs = json::array();
      for (const auto& e : r.errors) {
        json ej = error_json(r.target, e);
        errs.push_back(ej);
        if (errors.size() < kMaxErrorFacts) errors.push_back(std::move(ej));
        if ((e.kind == "frag_needed" || e.kind == "packet_too_big") && e.mtu > 0)
          frag_mtu = frag_mtu ? std::min(frag_mtu, e.mtu) : e.mtu;
      }
      t["errors"] = std::move(errs);
      per.push_back(std::move(t));

      std::string line = fmt::format("{}: {}/{} received", r.target, r.rtt_ms.size(), r.sent);
      if (st.n)
        line += fmt::format(", rtt min/avg/max/mdev = {:.3f}/{:.3f}/{:.3f}/{:.3f} ms", st.min,
                            st.avg, st.max, st.mdev);
      out.evidence.push_back(line);
      for (const auto& e : r.errors)
        out.evidence.push_back(fmt::format("  seq {}: {}", e.seq, error_text(e)));
      if (r.rtt_ms.empty()) {
        std::string d = fmt::format("{}: 0/{} received", r.target, r.sent);
        if (!r.errors.empty()) d += fmt::format(" ({})", error_text(r.errors.front()));
        dead.push_back(std::move(d));
      }
    }
    stats::Summary st = stats::summarize(all);
    auto& f = out.facts;
    f["sent"] = sent;
    f["received"] = all.size();
    f["loss_pct"] = loss_pct(sent, all.size());
    put_rtt(f, st);
    f["targets"] = std::move(per);
    f["errors"] = std::move(errors);
    if (frag_mtu) f["frag_needed_mtu"] = frag_mtu;
    f["socket"] = socket;

    std::string who = results.size() == 1 ? results.front().target
                                          : fmt::format("{} targets", results.size());
    std::string msg = fmt::format("{}: {}/{} received", who, all.size(), sent);
    double loss = loss_pct(sent, all.size());
    if (loss > 0 && !all.empty()) msg += fmt::format(" ({:g}% loss)", loss);
    if (st.n) msg += fmt::format(", rtt avg {:.3f} ms", st.avg);
    if (frag_mtu) msg += fmt::format(", fragmentation needed (mtu {})", frag_mtu);
    out.message = msg;

    // The playbook's own judgement of loss replaces the default check.
    bool judged = ctx.expects("received") || ctx.expects("loss_pct") ||
                  ctx.expects("targets") || ctx.expects("errors");
    if (!dead.empty() && !judged) {
      out.status = Status::kFail;
      std::string m;
      for (size_t i = 0; i < dead.size(); ++i) m += (i ? "; " : "") + dead[i];
      if (results.size() > 1) m += fmt::format(" ({}/{} received in all)", all.size(), sent);
      out.message = m;
    }
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(PingStep);
}  // namespace netplay
