/// mtu: the largest packet that crosses the path to a target unfragmented, found with ICMP
/// echo requests that may not be fragmented (a binary search, helped by what routers report).

#include <algorithm>

#include <fmt/format.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>

#include "runner/step/icmp.h"
#include "runner/step/step.h"
#include "steps/net/netlink.h"
#include "steps/net/targets.h"

namespace netplay {
namespace {

constexpr int kMaxPacket = 65535;

/// What one probe size gave.
struct Probe {
  bool passed = false;
  int reported_mtu = 0;  // a router's frag needed / packet too big
  std::string hop;       // that router
  int local_mtu = 0;     // the kernel refused to send: the MTU it knows
  std::string detail;    // another ICMP error ("host unreachable from 10.0.0.1")
};

std::string describe(const Probe& p) {
  if (p.passed) return "reply";
  if (p.reported_mtu)
    return fmt::format("{} reported MTU {}", p.hop.empty() ? "a router" : p.hop, p.reported_mtu);
  if (p.local_mtu) return fmt::format("too big to send (local MTU {})", p.local_mtu);
  if (!p.detail.empty()) return p.detail;
  return "no answer";
}

class MtuStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "mtu",
        .summary = "Path MTU to a target: the largest packet that arrives unfragmented "
                   "(ICMP echo with DF set)",
        .description =
            "Finds the largest packet (IP total length in bytes, headers included) that "
            "reaches `target` and comes back without being fragmented: ICMP echo requests "
            "with DF set (IPv4) or fragmentation refused (IPv6), ignoring the path MTU the "
            "kernel has cached, as tracepath does. It first tries `max` (default: the MTU "
            "of the interface the route to the target leaves by, looked up as `ip route "
            "get` does), then searches between `min` and `max`. A router that answers "
            "fragmentation needed / packet too big gives its next-hop MTU, which is tried "
            "next (`hop`, `reported_mtu`); a size that is silently dropped costs "
            "`probe_timeout` per try (`retries` more tries before it counts as too big).\n\n"
            "Only MTUs of this namespace's interfaces can be seen (`mtus`: the outgoing "
            "interface, and a VXLAN device's underlay device); a remote hop's MTU is "
            "known only when its router reports it. The step fails when the path MTU is "
            "below the MTU of the outgoing interface (\"path MTU 1400 < eth0 MTU 1500: hop "
            "10.1.0.1 reported 1400\"): packets the interface accepts are lost on the way, "
            "unless `expect:` judges path_mtu itself. It also fails when the target does "
            "not answer even at `min`, or there is no route to it.",
        .params =
            {{.name = "target",
              .type = ValueType::kString,
              .doc = "The address whose path is measured",
              .required = true},
             {.name = "min",
              .type = ValueType::kInt,
              .doc = "Smallest size tried (default 576 for IPv4, 1280 for IPv6)",
              .min = 68,
              .max = kMaxPacket},
             {.name = "max",
              .type = ValueType::kInt,
              .doc = "Largest size tried (default: the outgoing interface's MTU)",
              .min = 68,
              .max = kMaxPacket},
             {.name = "probe_timeout",
              .type = ValueType::kDuration,
              .doc = "How long to wait for the answer to one probe",
              .default_value = "300ms",
              .min = 10,
              .max = 10000},
             {.name = "retries",
              .type = ValueType::kInt,
              .doc = "More tries of a size that got no answer at all",
              .default_value = 1,
              .min = 0,
              .max = 10},
             {.name = "source", .type = ValueType::kIp, .doc = "Source address"},
             {.name = "family",
              .type = ValueType::kString,
              .doc = "4 or 6: refuse a target of the other family",
              .default_value = "auto",
              .choices = {"auto", "4", "6"}}},
        .facts = {{"target", "string", "The target"},
                  {"path_mtu", "int", "The largest size that got a reply (absent when none did)"},
                  {"interface", "string", "The interface the route to the target leaves by"},
                  {"interface_mtu", "int", "That interface's MTU"},
                  {"hop", "string", "The router that reported fragmentation needed / packet "
                                    "too big, if one did"},
                  {"reported_mtu", "int", "The next-hop MTU it reported"},
                  {"probes", "int", "Echo requests sent"},
                  {"mtus", "list", "Interface MTUs seen on the way: [{interface, mtu}], the "
                                   "outgoing interface first"}},
        .privileges = "CAP_NET_RAW, or a group in net.ipv4.ping_group_range",
        .example = "- id: overlay_path_mtu\n  uses: mtu\n"
                   "  netns: \"{{ inputs.container_netns }}\"\n"
                   "  with: {target: 10.255.2.12}\n"
                   "- id: underlay_fits_vxlan\n  uses: mtu\n"
                   "  with: {target: 10.0.0.2}\n  expect: {path_mtu: {ge: 1500}}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    auto resolved = resolve_targets(ctx, {p.str("target")}, p.str("family", "auto"));
    if (!resolved) return StepOutput::error(resolved.error());
    std::string target = resolved->front();
    auto dst = nl::parse_ip(target);
    if (!dst) return StepOutput::error(dst.error());
    bool v6 = nl_addr_get_family(dst->get()) == AF_INET6;
    nl::AddrPtr src;
    if (p.has("source")) {
      auto a = nl::parse_ip(p.str("source"));
      if (!a) return StepOutput::error(a.error());
      src = std::move(*a);
    }

    // The outgoing interface and its MTU (and a VXLAN device's underlay).
    auto net = nl::open_links(ctx);
    if (!net) return StepOutput::error(net.error());
    auto route = nl::route_get(*net->client, dst->get(), src.get());
    if (!route) {
      if (route.error().kernel_errno)
        return StepOutput::fail(fmt::format("no route to {}: {}", target, route.error().message));
      return StepOutput::error(route.error().message);
    }
    int oif = 0;
    if (rtnl_route_get_nnexthops(route->route.get()) > 0)
      oif = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route->route.get(), 0));
    rtnl_link* link = net->table.by_index(oif);
    if (!link)
      return StepOutput::fail(fmt::format("no route to {} through an interface", target));
    StepOutput out;
    auto& f = out.facts;
    std::string dev = rtnl_link_get_name(link) ? rtnl_link_get_name(link) : "";
    int dev_mtu = static_cast<int>(rtnl_link_get_mtu(link));
    f["target"] = target;
    f["interface"] = dev;
    f["interface_mtu"] = dev_mtu;
    json mtus = json::array({{{"interface", dev}, {"mtu", dev_mtu}}});
    uint32_t lower = 0;
    if (rtnl_link_is_vxlan(link) && rtnl_link_vxlan_get_link(link, &lower) == 0 && lower > 0) {
      if (rtnl_link* u = net->table.by_index(static_cast<int>(lower)))
        mtus.push_back({{"interface", rtnl_link_get_name(u) ? rtnl_link_get_name(u) : ""},
                        {"mtu", rtnl_link_get_mtu(u)}});
    }
    f["mtus"] = std::move(mtus);
    net->client.reset();

    int header = v6 ? 48 : 28;  // IP header + ICMP echo header
    int lo = static_cast<int>(p.integer("min", v6 ? 1280 : 576));
    int hi = static_cast<int>(p.integer("max", std::min(dev_mtu, kMaxPacket)));
    bool max_given = p.has("max");
    if (lo > hi)
      return StepOutput::error(fmt::format("min {} is above max {}", lo, hi));

    EchoRequest req;
    req.targets = {target};
    req.count = 1;
    req.interval = Millis(0);
    req.timeout = p.duration("probe_timeout", Millis(300));
    req.dont_fragment = true;
    req.source = p.str("source");
    int retries = static_cast<int>(p.integer("retries", 1));
    int probes = 0;
    std::string hop;
    int reported = 0;
    std::string service_error;

    auto probe = [&](int size) -> std::optional<Probe> {
      Probe pr;
      req.size = size - header;
      for (int attempt = 0; attempt <= retries; ++attempt) {
        auto r = ctx.pinger().echo(req, ctx);
        if (!r) {
          service_error = r.error();
          return std::nullopt;
        }
        probes += r->empty() ? 0 : r->front().sent;
        if (r->empty()) continue;
        const EchoResult& er = r->front();
        if (!er.rtt_ms.empty()) {
          pr.passed = true;
          return pr;
        }
        bool answered = false;
        for (const auto& e : er.errors) {
          answered = true;
          if ((e.kind == "frag_needed" || e.kind == "packet_too_big") && e.mtu > 0) {
            pr.reported_mtu = e.mtu;
            pr.hop = e.from;
          } else if (e.kind == "local" && e.mtu > 0) {
            pr.local_mtu = e.mtu;
          } else if (pr.detail.empty()) {
            pr.detail = e.detail + (e.from.empty() ? "" : " from " + e.from);
          }
        }
        if (answered) return pr;  // an answer is not worth a retry
      }
      return pr;
    };

    // good: the largest size known to pass (0: none yet); bad: the smallest known to fail.
    int good = 0, bad = hi + 1;
    std::optional<int> next = hi;
    bool tried_min = false;
    std::string min_detail;
    while (true) {
      int size;
      if (next) {
        size = *next;
        next.reset();
      } else if (good == 0 && !tried_min) {
        size = lo;
      } else {
        if (bad - good <= 1) break;
        size = good + (bad - good) / 2;
      }
      if (size == lo) tried_min = true;
      auto pr = probe(size);
      if (!pr) {
        auto o = StepOutput::error(fmt::format("{} (after {} probes)", service_error, probes));
        o.evidence = std::move(out.evidence);
        return o;
      }
      out.evidence.push_back(fmt::format("{} bytes: {}", size, describe(*pr)));
      if (pr->passed) {
        good = std::max(good, size);
      } else {
        bad = std::min(bad, size);
        int told = pr->reported_mtu ? pr->reported_mtu : pr->local_mtu;
        if (pr->reported_mtu) {
          hop = pr->hop;
          reported = pr->reported_mtu;
        }
        if (size == lo) {
          if (pr->reported_mtu)
            min_detail = fmt::format("{} reported MTU {}", pr->hop, pr->reported_mtu);
          else if (pr->local_mtu)
            min_detail = fmt::format("the kernel knows MTU {}", pr->local_mtu);
          else
            min_detail = pr->detail;
          break;  // not even the smallest size arrives
        }
        // Sizes above what a router (or the kernel) says fits cannot pass: try that next.
        if (told > good && told < size) {
          bad = std::min(bad, told + 1);
          if (told >= lo) next = told;
        }
      }
      if (good >= bad - 1 && good > 0) break;
    }
    f["probes"] = probes;
    if (!hop.empty()) {
      f["hop"] = hop;
      f["reported_mtu"] = reported;
    }
    if (good == 0) {
      out.status = Status::kFail;
      out.message = fmt::format("{}: no reply even at {} bytes{}", target, lo,
                                min_detail.empty() ? "" : " (" + min_detail + ")");
      return out;
    }
    f["path_mtu"] = good;
    std::string limit = max_given ? fmt::format("max {}", hi)
                                  : fmt::format("{} MTU {}", dev, dev_mtu);
    if (good < hi) {
      std::string why = hop.empty()
                            ? std::string("larger packets got no answer")
                            : fmt::format("hop {} reported {}", hop, reported);
      out.message = fmt::format("{}: path MTU {} < {}: {}", target, good, limit, why);
      if (!ctx.expects("path_mtu")) out.status = Status::kFail;
    } else {
      out.message = fmt::format("{}: path MTU {} ({}, {} probe{})", target, good, limit, probes,
                                probes == 1 ? "" : "s");
    }
    return out;
  }
};

}  // namespace
NETPLAY_REGISTER_STEP(MtuStep);
}  // namespace netplay
