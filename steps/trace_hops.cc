/// trace.hops: capture one flow at several points of its path at once and say where its
/// packets stop, and where their addresses are rewritten (NAT).

#include <fmt/format.h>
#include <arpa/inet.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "runner/step/netns.h"
#include "runner/step/pcap.h"
#include "runner/step/services.h"
#include "runner/step/step.h"
#include "steps/net/vxlan_tally.h"

namespace netplay {
namespace {

using packet::Addr;
using packet::IpLayer;

constexpr size_t kMaxPoints = 16;
constexpr size_t kMaxPackets = 50000;  // distinct packets followed; more are counted only
constexpr uint32_t kHashedPayload = 64;

struct Point {
  std::string name, netns, interface, filter;
  std::unique_ptr<PacketStream> stream;
  uint64_t packets = 0;   // of the flow
  uint64_t captured = 0;  // all
};

/// Which inner packets to follow (after VXLAN decapsulation).
struct FlowFilter {
  std::optional<Addr> host, src, dst;
  int proto = -1;
  int port = -1;

  bool matches(const IpLayer& ip) const {
    if (host && ip.src != *host && ip.dst != *host) return false;
    if (src && ip.src != *src) return false;
    if (dst && ip.dst != *dst) return false;
    if (proto >= 0 && ip.proto != proto) return false;
    if (port >= 0 && !(ip.has_ports && (ip.sport == port || ip.dport == port))) return false;
    return true;
  }
};

std::optional<Addr> parse_addr(const std::string& s) {
  Addr a;
  a.family = s.find(':') == std::string::npos ? 4 : 6;
  if (inet_pton(a.family == 4 ? AF_INET : AF_INET6, s.c_str(), a.bytes.data()) != 1)
    return std::nullopt;
  return a;
}

/// What does not change on the way: the protocol's own fields and the payload, never the
/// addresses or ports (NAT rewrites those).
uint64_t fingerprint(const IpLayer& ip) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    h ^= v;
    h *= 1099511628211ull;
    h ^= h >> 29;
  };
  mix(ip.proto);
  mix(ip.l4_len);
  if (ip.has_tcp) {
    mix(ip.tcp_seq);
    mix(ip.tcp_ack);
    mix(ip.tcp_flags);
  } else if (ip.has_icmp) {
    mix(ip.icmp_type);
    mix(ip.icmp_code);
    if (ip.icmp_echo) mix(ip.icmp_seq);
  } else if (ip.src.family == 4) {
    mix(ip.ip_id);
  }
  uint32_t n = std::min(ip.payload_len, kHashedPayload);
  for (uint32_t i = 0; i < n; ++i) mix(ip.payload[i]);
  return h;
}

/// The packet's class: "icmp echo-request 10.255.1.11 > 10.255.2.11",
/// "tcp 10.255.1.11 > 10.255.2.11.8080", "udp 10.0.0.1.5353 > 10.0.0.2".
std::string class_of(const IpLayer& ip) {
  std::string proto = packet::proto_name(ip.proto);
  if (ip.has_icmp) {
    std::string kind;
    if (ip.icmp_echo) {
      bool req = ip.proto == 58 ? ip.icmp_type == 128 : ip.icmp_type == 8;
      kind = req ? "echo-request" : "echo-reply";
    } else {
      kind = fmt::format("type-{}", ip.icmp_type);
    }
    return fmt::format("{} {} {} > {}", proto, kind, ip.src.str(), ip.dst.str());
  }
  if (ip.has_ports) {
    // The service's port is the lower one: the client's is ephemeral.
    if (ip.dport <= ip.sport)
      return fmt::format("{} {} > {}.{}", proto, ip.src.str(), ip.dst.str(), ip.dport);
    return fmt::format("{} {}.{} > {}", proto, ip.src.str(), ip.sport, ip.dst.str());
  }
  return fmt::format("{} {} > {}", proto, ip.src.str(), ip.dst.str());
}

struct Seen {
  Addr src, dst;
  uint16_t sport = 0, dport = 0;
  int64_t ts = 0;
};

struct Followed {
  int cls = -1;       // named after its earliest sighting (where it entered the path)
  int64_t first_ts = 0;
  uint32_t mask = 0;  // points that saw it
  std::array<Seen, kMaxPoints> at{};
  bool echo = false, request = false;  // ICMP echo / TCP SYN: answered by its reply
  uint64_t answer_key = 0;             // fingerprint-independent pairing key
};

/// Pairs an echo request with its reply (id, seq) and a SYN with its SYN-ACK (seq + 1),
/// whatever the addresses became.
std::optional<std::pair<uint64_t, bool>> answer_key(const IpLayer& ip) {
  if (ip.icmp_echo) {
    bool req = ip.proto == 58 ? ip.icmp_type == 128 : ip.icmp_type == 8;
    return std::make_pair((uint64_t{1} << 48) | (uint64_t{ip.icmp_id} << 16) | ip.icmp_seq, req);
  }
  if (ip.has_tcp && (ip.tcp_flags & packet::kTcpSyn)) {
    bool req = !(ip.tcp_flags & packet::kTcpAck);
    uint32_t seq = req ? ip.tcp_seq + 1 : ip.tcp_ack;
    return std::make_pair((uint64_t{2} << 48) | seq, req);
  }
  return std::nullopt;
}

class Tracker {
 public:
  Tracker(const FlowFilter& f, const packet::PortSet& ports) : filter_(f), ports_(ports) {}

  void add(size_t point, int linktype, const PacketRef& p) {
    packet::decode(linktype, p.data, p.caplen, p.len, ports_, frame_);
    const IpLayer* ip = frame_.innermost();
    if (!ip || !filter_.matches(*ip)) return;
    ++matched[point];
    uint64_t fp = fingerprint(*ip);
    auto it = packets_.find(fp);
    if (it == packets_.end()) {
      if (packets_.size() >= kMaxPackets) {
        ++untracked;
        return;
      }
      it = packets_.emplace(fp, Followed{}).first;
      Followed& f = it->second;
      if (auto k = answer_key(*ip)) {
        f.echo = true;
        f.request = k->second;
        f.answer_key = k->first;
        if (!k->second) replies_.insert(k->first);
      }
    }
    Followed& f = it->second;
    if (f.mask & (1u << point)) return;  // seen here already (e.g. twice on `any`)
    // Points are read in turns, not in time order: the class is named after the sighting
    // with the earliest timestamp.
    if (f.cls < 0 || p.ts_ns < f.first_ts) {
      f.first_ts = p.ts_ns;
      std::string c = class_of(*ip);
      auto ci = class_index_.find(c);
      if (ci == class_index_.end()) {
        ci = class_index_.emplace(c, static_cast<int>(classes.size())).first;
        classes.push_back(c);
      }
      f.cls = ci->second;
    }
    f.mask |= 1u << point;
    f.at[point] = {ip->src, ip->dst, ip->has_ports ? ip->sport : uint16_t{0},
                   ip->has_ports ? ip->dport : uint16_t{0}, p.ts_ns};
  }

  bool answered(const Followed& f) const {
    return f.echo && f.request && replies_.contains(f.answer_key);
  }

  std::array<uint64_t, kMaxPoints> matched{};
  uint64_t untracked = 0;
  std::vector<std::string> classes;
  const std::unordered_map<uint64_t, Followed>& packets() const { return packets_; }

 private:
  const FlowFilter& filter_;
  const packet::PortSet& ports_;
  packet::Frame frame_;
  std::unordered_map<uint64_t, Followed> packets_;
  std::map<std::string, int> class_index_;
  std::set<uint64_t> replies_;
};

class PointSink : public PacketSink {
 public:
  PointSink(Tracker& t, size_t point, int linktype, Point& pt)
      : t_(t), point_(point), linktype_(linktype), pt_(pt) {}
  bool packet(const PacketRef& p) override {
    ++pt_.captured;
    t_.add(point_, linktype_, p);
    return true;
  }

 private:
  Tracker& t_;
  size_t point_;
  int linktype_;
  Point& pt_;
};

class TraceHopsStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s{
        .name = "trace.hops",
        .summary = "Capture one flow at several points of its path at once: where do its "
                   "packets stop, where are they rewritten (NAT)?",
        .description =
            "Captures at every point of `points` at the same time (each an interface in a "
            "namespace of its own: the container's eth0, the host-side veth, silk-vtep, the "
            "underlay of both cells...), listed in path order from the sender to the "
            "receiver. VXLAN frames (UDP to `ports`) are decapsulated, so the underlay "
            "points see the same inner packets as the others; `flow` picks the inner packets "
            "to follow. A packet is recognised at every point by what does not change on "
            "the way (protocol, ICMP type and sequence or TCP sequence, acknowledgement and "
            "flags, IPv4 id for other protocols, and the first 64 bytes of payload), not by "
            "its addresses, so a rewrite (NAT of a pod's address on the uplink) is seen as "
            "one.\n\n"
            "Packets are grouped in classes (`icmp echo-request A > B`, `tcp A > B.8080`); a "
            "class travels forward (in list order) or back (replies). For each class the "
            "step reports how many of its packets each point saw, the last point that saw "
            "them and the first that did not (`lost_after`): the hop where packets "
            "disappear. An echo request or SYN whose reply was seen counts as delivered even "
            "where the path listed ends before its destination. Points in the middle that "
            "saw nothing while later ones did are listed in `missing_at` (a capture blind "
            "spot, not a loss).\n\n"
            "Run it in the background while a later step sends the traffic (`needs:` it): "
            "the later step starts once every point is listening. It fails when a class of "
            "packets stops before the end of its path (naming the class and the last hop) "
            "or when no packet of the flow was seen at all.",
        .params = {{.name = "points",
                    .type = ValueType::kList,
                    .doc = "Capture points in path order (2 to 16): {name, netns (default: "
                           "the step's), interface, filter (BPF, optional)}",
                    .required = true,
                    .item_type = ValueType::kMap},
                   {.name = "flow",
                    .type = ValueType::kMap,
                    .doc = "Inner packets to follow: {host, src, dst (addresses), proto "
                           "(icmp, tcp, udp, icmpv6 or a number), port}; default: all"},
                   {.name = "ports",
                    .type = ValueType::kList,
                    .doc = "UDP ports that carry VXLAN",
                    .default_value = json::array({4789}),
                    .item_type = ValueType::kInt,
                    .scalar_as_list = true,
                    .min = 1,
                    .max = 65535},
                   {.name = "duration",
                    .type = ValueType::kDuration,
                    .doc = "Stop after this long (else: when the steps that need it finished, "
                           "or near the step's timeout)"},
                   {.name = "count",
                    .type = ValueType::kInt,
                    .doc = "Stop once the first point saw this many packets of the flow",
                    .min = 1,
                    .max = 1000000},
                   {.name = "snaplen",
                    .type = ValueType::kInt,
                    .doc = "Bytes kept of each packet (headers and the start of the payload)",
                    .default_value = 512,
                    .min = 128,
                    .max = 262144}},
        .facts = {{"points", "list", "{name, netns, interface, packets (of the flow), captured}"},
                  {"classes", "list",
                   "{class, direction (forward|reverse), packets, seen {point: packets}, "
                   "last_seen, lost_after (null: not lost), missing_at, answered}"},
                  {"lost", "bool", "Some class stopped before the end of its path"},
                  {"last_hop", "string",
                   "The last point the first lost class was seen at (null when nothing was "
                   "lost)"},
                  {"lost_between", "list", "[last point seen, first point not seen]"},
                  {"rewrites", "list",
                   "Address or port changes between consecutive points: {from, to, field "
                   "(src, dst, sport, dport), before, after, packets}"},
                  {"packets", "int", "Distinct packets of the flow followed"},
                  {"untracked", "int",
                   "Packets of the flow past the 50,000 followed (counted, not matched)"}},
        .privileges = "CAP_NET_RAW to capture; CAP_SYS_ADMIN to enter the points' namespaces",
        .supports_background = true,
        .signals_ready = true,
        .example = "- id: trace\n  uses: trace.hops\n  background: true\n  timeout: 20s\n"
                   "  with:\n    flow: {host: 10.255.2.11, proto: icmp}\n    points:\n"
                   "      - {name: c1-underlay, netns: cell1, interface: eth0}\n"
                   "      - {name: c2-underlay, netns: cell2, interface: eth0}\n"
                   "      - {name: c2-vtep, netns: cell2, interface: silk-vtep}\n"
                   "- id: ping\n  uses: ping\n  netns: app1\n  needs: [trace]\n"
                   "  with: {target: 10.255.2.11}\n",
    };
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    // Points.
    std::vector<Point> points;
    const json& list = p.raw("points");
    if (!list.is_array() || list.size() < 2 || list.size() > kMaxPoints)
      return StepOutput::error(
          fmt::format("points: give 2 to {} capture points in path order", kMaxPoints));
    for (size_t i = 0; i < list.size(); ++i) {
      const json& e = list[i];
      if (!e.is_object() || !e.contains("interface") || !e["interface"].is_string())
        return StepOutput::error(fmt::format("points[{}]: needs an interface", i));
      for (const auto& [k, v] : e.items())
        if ((k != "name" && k != "netns" && k != "interface" && k != "filter") || !v.is_string())
          return StepOutput::error(fmt::format(
              "points[{}].{}: unknown key or not a string (keys: name, netns, interface, "
              "filter)",
              i, k));
      Point pt;
      pt.interface = e["interface"].get<std::string>();
      pt.netns = e.value("netns", std::string());
      pt.name = e.value("name", pt.netns.empty() ? pt.interface : pt.netns + ":" + pt.interface);
      pt.filter = e.value("filter", std::string());
      for (const auto& q : points)
        if (q.name == pt.name)
          return StepOutput::error(fmt::format("points: two points named '{}'", pt.name));
      points.push_back(std::move(pt));
    }
    // Flow.
    FlowFilter filter;
    const json& flow = p.raw("flow");
    if (flow.is_object()) {
      for (const auto& [k, v] : flow.items()) {
        std::string val = v.is_string() ? v.get<std::string>() : v.dump();
        if (k == "host" || k == "src" || k == "dst") {
          auto a = parse_addr(val);
          if (!a) return StepOutput::error(fmt::format("flow.{}: '{}' is not an IP address", k, val));
          (k == "host" ? filter.host : k == "src" ? filter.src : filter.dst) = a;
        } else if (k == "proto") {
          static const std::map<std::string, int> names = {
              {"icmp", 1}, {"tcp", 6}, {"udp", 17}, {"icmpv6", 58}};
          if (auto n = names.find(val); n != names.end()) filter.proto = n->second;
          else if (v.is_number_integer() && v.get<int>() >= 0 && v.get<int>() < 256)
            filter.proto = v.get<int>();
          else
            return StepOutput::error(fmt::format(
                "flow.proto: '{}' is not icmp, tcp, udp, icmpv6 or a protocol number", val));
        } else if (k == "port") {
          if (!v.is_number_integer() || v.get<int>() < 0 || v.get<int>() > 65535)
            return StepOutput::error(fmt::format("flow.port: '{}' is not a port", val));
          filter.port = v.get<int>();
        } else {
          return StepOutput::error(fmt::format(
              "flow.{}: unknown key (keys: host, src, dst, proto, port)", k));
        }
      }
    }
    std::vector<long long> port_list;
    for (const auto& v : p.raw("ports"))
      if (v.is_number_integer()) port_list.push_back(v.get<long long>());
    packet::PortSet ports = vxlan::port_set(port_list);

    // Open every point in its namespace, then listen on all of them at once.
    const int snaplen = static_cast<int>(p.integer("snaplen", 512));
    for (auto& pt : points) {
      std::optional<NetnsScope> scope;
      if (!pt.netns.empty() && pt.netns != ctx.netns) {
        auto entered = NetnsScope::enter(pt.netns);
        if (!entered)
          return StepOutput::error(fmt::format("point '{}': {}", pt.name, entered.error()));
        scope.emplace(std::move(*entered));
      }
      auto s = ctx.packets().open_live(
          {.interface = pt.interface, .filter = pt.filter, .snaplen = snaplen}, ctx);
      bool home = scope ? scope->leave() : true;
      if (!home) return StepOutput::error("could not return to the step's namespace");
      if (!s) return StepOutput::error(fmt::format("point '{}': {}", pt.name, s.error()));
      pt.stream = std::move(*s);
      if (!packet::supported_linktype(pt.stream->linktype()))
        return StepOutput::error(fmt::format("point '{}': link type {} is not one netplay decodes",
                                             pt.name,
                                             packet::linktype_name(pt.stream->linktype())));
    }
    ctx.ready();

    Tracker tracker(filter, ports);
    std::vector<PointSink> sinks;
    sinks.reserve(points.size());
    for (size_t i = 0; i < points.size(); ++i)
      sinks.emplace_back(tracker, i, points[i].stream->linktype(), points[i]);
    const long long count = p.integer("count", 0);
    std::optional<Clock::time_point> end;
    if (p.has("duration"))
      end = ctx.clock().now() +
            std::chrono::duration_cast<Clock::duration>(p.duration("duration"));
    const Millis margin(100);
    std::string failure;
    for (;;) {
      if (ctx.should_stop() || ctx.remaining() <= margin) break;
      if (end && ctx.clock().now() >= *end) break;
      if (count > 0 && static_cast<long long>(tracker.matched[0]) >= count) break;
      std::vector<pollfd> fds;
      for (auto& pt : points) fds.push_back({pt.stream->pollable_fd(), POLLIN, 0});
      bool pollable = std::all_of(fds.begin(), fds.end(), [](const pollfd& f) { return f.fd >= 0; });
      if (pollable) ::poll(fds.data(), fds.size(), 50);
      for (size_t i = 0; i < points.size(); ++i) {
        auto r = points[i].stream->read(sinks[i], 1024, pollable ? Millis(0) : Millis(50), ctx);
        if (!r) {
          failure = fmt::format("point '{}': {}", points[i].name, r.error());
          break;
        }
      }
      if (!failure.empty()) break;
    }
    // What the kernel queued before the stop was on the wire before it: read it too.
    StepContext quiet = ctx;
    quiet.stop_requested = nullptr;
    for (size_t i = 0; failure.empty() && i < points.size(); ++i)
      for (int round = 0; round < 64 && !ctx.is_cancelled(); ++round) {
        auto r = points[i].stream->read(sinks[i], 4096, Millis(0), quiet);
        if (!r || *r != ReadStatus::kPackets) break;
      }
    for (auto& pt : points) (void)pt.stream->finish();
    for (size_t i = 0; i < points.size(); ++i) points[i].packets = tracker.matched[i];
    StepOutput out = report(points, tracker);
    if (!failure.empty()) {
      out.status = Status::kError;
      out.message = failure;
    }
    return out;
  }

 private:
  static StepOutput report(const std::vector<Point>& points, const Tracker& t) {
    const size_t n = points.size();
    struct ClassStat {
      uint64_t packets = 0, forward = 0, reverse = 0, answered = 0;
      std::vector<uint64_t> seen;
    };
    std::vector<ClassStat> cs(t.classes.size());
    for (auto& c : cs) c.seen.assign(n, 0);
    struct RewriteKey {
      size_t from, to;
      std::string field, before, after;
      auto operator<=>(const RewriteKey&) const = default;
    };
    std::map<RewriteKey, uint64_t> rewrites;
    for (const auto& [fp, f] : t.packets()) {
      ClassStat& c = cs[static_cast<size_t>(f.cls)];
      ++c.packets;
      if (t.answered(f)) ++c.answered;
      // Direction: the order in which points saw it.
      int first = -1, last = -1;
      int64_t first_ts = 0, last_ts = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!(f.mask & (1u << i))) continue;
        ++c.seen[i];
        if (first < 0 || f.at[i].ts < first_ts) first = static_cast<int>(i), first_ts = f.at[i].ts;
        if (last < 0 || f.at[i].ts >= last_ts) last = static_cast<int>(i), last_ts = f.at[i].ts;
      }
      bool reverse = first == last ? first == static_cast<int>(n) - 1 : first > last;
      ++(reverse ? c.reverse : c.forward);
      // Rewrites between consecutive sightings along its way.
      std::vector<size_t> order;
      for (size_t i = 0; i < n; ++i)
        if (f.mask & (1u << i)) order.push_back(i);
      if (reverse) std::reverse(order.begin(), order.end());
      for (size_t k = 1; k < order.size(); ++k) {
        const Seen& a = f.at[order[k - 1]];
        const Seen& b = f.at[order[k]];
        auto note = [&](const char* field, const std::string& x, const std::string& y) {
          if (x != y) ++rewrites[{order[k - 1], order[k], field, x, y}];
        };
        note("src", a.src.str(), b.src.str());
        note("dst", a.dst.str(), b.dst.str());
        note("sport", std::to_string(a.sport), std::to_string(b.sport));
        note("dport", std::to_string(a.dport), std::to_string(b.dport));
      }
    }

    StepOutput out;
    json classes = json::array();
    bool lost = false;
    json last_hop = nullptr, lost_between = json::array();
    std::string lost_message;
    uint64_t total = 0;
    std::vector<size_t> order(cs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return cs[a].packets > cs[b].packets; });
    for (size_t ci : order) {
      const ClassStat& c = cs[ci];
      if (c.packets == 0) continue;  // renamed after an earlier sighting
      total += c.packets;
      bool reverse = c.reverse > c.forward;
      std::vector<size_t> path(n);
      for (size_t i = 0; i < n; ++i) path[i] = reverse ? n - 1 - i : i;
      int first = -1, lastp = -1;
      for (size_t k = 0; k < n; ++k)
        if (c.seen[path[k]]) {
          if (first < 0) first = static_cast<int>(k);
          lastp = static_cast<int>(k);
        }
      json seen = json::object();
      for (size_t i = 0; i < n; ++i) seen[points[i].name] = c.seen[i];
      json missing = json::array();
      for (int k = first + 1; k < lastp; ++k)
        if (!c.seen[path[static_cast<size_t>(k)]]) missing.push_back(points[path[static_cast<size_t>(k)]].name);
      bool delivered = c.answered == c.packets && c.packets > 0;
      bool class_lost = lastp >= 0 && lastp + 1 < static_cast<int>(n) && !delivered;
      // Partial loss: fewer packets at the next point than at this one.
      json partial = nullptr;
      if (!class_lost && !delivered) {
        for (int k = first; k >= 0 && k < lastp; ++k) {
          uint64_t here = c.seen[path[static_cast<size_t>(k)]];
          uint64_t next = c.seen[path[static_cast<size_t>(k) + 1]];
          if (next && next < here) {
            partial = {{"after", points[path[static_cast<size_t>(k)]].name},
                       {"lost", here - next}};
            break;
          }
        }
      }
      json row = {{"class", t.classes[ci]},
                  {"direction", reverse ? "reverse" : "forward"},
                  {"packets", c.packets},
                  {"seen", seen},
                  {"last_seen", lastp >= 0 ? json(points[path[static_cast<size_t>(lastp)]].name) : json(nullptr)},
                  {"lost_after", class_lost ? json(points[path[static_cast<size_t>(lastp)]].name) : json(nullptr)},
                  {"missing_at", missing},
                  {"answered", c.answered},
                  {"partial_loss", partial}};
      classes.push_back(row);
      std::string counts;
      for (size_t k = 0; k < n; ++k)
        counts += fmt::format("{}{} {}", k ? ", " : "", points[path[k]].name, c.seen[path[k]]);
      out.evidence.push_back(fmt::format("{}: {}{}", t.classes[ci], counts,
                                         class_lost ? "  <- lost here" : ""));
      if (class_lost && !lost) {
        lost = true;
        const std::string& at = points[path[static_cast<size_t>(lastp)]].name;
        const std::string& next = points[path[static_cast<size_t>(lastp) + 1]].name;
        last_hop = at;
        lost_between = json::array({at, next});
        lost_message = fmt::format("{}: {} packet{} last seen at {}, never at {}", t.classes[ci],
                                   c.packets, c.packets == 1 ? "" : "s", at, next);
      }
    }
    json rw = json::array();
    for (const auto& [k, count] : rewrites)
      rw.push_back({{"from", points[k.from].name}, {"to", points[k.to].name}, {"field", k.field},
                    {"before", k.before}, {"after", k.after}, {"packets", count}});
    for (const auto& [k, count] : rewrites)
      out.evidence.push_back(fmt::format("rewrite between {} and {}: {} {} -> {} ({} packets)",
                                         points[k.from].name, points[k.to].name, k.field,
                                         k.before, k.after, count));
    json pts = json::array();
    for (const auto& pt : points)
      pts.push_back({{"name", pt.name}, {"netns", pt.netns.empty() ? json(nullptr) : json(pt.netns)},
                     {"interface", pt.interface}, {"packets", pt.packets},
                     {"captured", pt.captured}});
    out.facts = {{"points", pts},         {"classes", classes},
                 {"lost", lost},          {"last_hop", last_hop},
                 {"lost_between", lost_between}, {"rewrites", rw},
                 {"packets", total}};
    if (t.untracked) out.facts["untracked"] = t.untracked;
    if (total == 0) {
      out.status = Status::kFail;
      out.message = fmt::format("no packet of the flow was seen at any of the {} points", n);
    } else if (lost) {
      out.status = Status::kFail;
      out.message = lost_message;
    } else {
      size_t nclasses = classes.size();
      out.message = fmt::format("{} packet{} in {} class{} followed across {} points; none lost",
                                total, total == 1 ? "" : "s", nclasses,
                                nclasses == 1 ? "" : "es", n);
      if (!rw.empty()) out.message += fmt::format("; {} rewrite{}", rw.size(), rw.size() == 1 ? "" : "s");
    }
    return out;
  }
};

}  // namespace

NETPLAY_REGISTER_STEP(TraceHopsStep);

}  // namespace netplay
