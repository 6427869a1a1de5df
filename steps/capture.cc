/// capture: a live packet capture in the step's namespace (tcpdump's job), in the
/// foreground or in the background while later steps send traffic.

#include <fmt/format.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <map>
#include <optional>

#include "runner/base/fd.h"
#include "runner/step/pcap.h"
#include "runner/step/services.h"
#include "runner/step/step.h"
#include "steps/net/vxlan_tally.h"

namespace netplay {
namespace {

constexpr size_t kMaxFlows = 4096;

/// The interface's MAC address in the calling thread's namespace, to tell sent from
/// received on an Ethernet capture (a cooked capture says it per packet).
std::optional<std::array<uint8_t, 6>> interface_mac(const std::string& name) {
  if (name.empty() || name == "any" || name.size() >= IFNAMSIZ) return std::nullopt;
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return std::nullopt;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (::ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) return std::nullopt;
  std::array<uint8_t, 6> mac{};
  std::memcpy(mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  return mac;
}

struct FlowKey {
  packet::Addr src, dst;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;
  auto operator<=>(const FlowKey&) const = default;
};

class CaptureSink : public PacketSink {
 public:
  CaptureSink(int linktype, std::optional<std::array<uint8_t, 6>> mac,
              const vxlan::DecodeOptions* decode, size_t evidence_frames, long long count)
      : linktype_(linktype),
        mac_(mac),
        // Evidence shows VXLAN on the default port even without `decode`, as tcpdump does.
        ports_(decode ? decode->ports : vxlan::port_set({})),
        evidence_frames_(evidence_frames),
        count_(count) {
    if (decode) tally_.emplace(&decode->apps, decode->top);
  }

  bool packet(const PacketRef& p) override {
    if (count_ > 0 && static_cast<long long>(packets) >= count_) return false;
    packet::decode(linktype_, p.data, p.caplen, p.len, ports_, frame_);
    ++packets;
    bytes += p.len;
    if (packets == 1) first_ts = p.ts_ns;
    last_ts = p.ts_ns;
    if (direction_out(p)) ++out;
    else ++in;
    if (frame_.has_ip) {
      const packet::IpLayer& o = frame_.outer;
      FlowKey k{o.src, o.dst, o.proto, o.has_ports ? o.sport : uint16_t{0},
                o.has_ports ? o.dport : uint16_t{0}};
      auto it = flows.find(k);
      if (it != flows.end()) {
        ++it->second.first;
        it->second.second += p.len;
      } else if (flows.size() < kMaxFlows) {
        flows.emplace(k, std::make_pair(uint64_t{1}, uint64_t{p.len}));
      } else {
        ++flows_overflow;
      }
    }
    if (tally_) tally_->add(frame_, p.ts_ns);
    if (shown_ < evidence_frames_) {
      ++shown_;
      vxlan::add_frame_lines(frame_, p.ts_ns, evidence);
    }
    return count_ <= 0 || static_cast<long long>(packets) < count_;
  }

  uint64_t packets = 0, bytes = 0, in = 0, out = 0, flows_overflow = 0;
  int64_t first_ts = 0, last_ts = 0;
  std::map<FlowKey, std::pair<uint64_t, uint64_t>> flows;
  std::optional<vxlan::Tally> tally_;
  std::vector<std::string> evidence;

 private:
  bool direction_out(const PacketRef& p) const {
    if (frame_.pkttype >= 0) return frame_.pkttype == 4;  // PACKET_OUTGOING
    if (mac_ && linktype_ == packet::kLinkEthernet && p.caplen >= 12)
      return std::memcmp(p.data + 6, mac_->data(), 6) == 0;
    return false;
  }

  int linktype_;
  std::optional<std::array<uint8_t, 6>> mac_;
  packet::PortSet ports_;
  size_t evidence_frames_;
  long long count_;
  size_t shown_ = 0;
  packet::Frame frame_;
};

double seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

/// Reads what is queued on `s` without waiting for more (a few rounds at most), never past
/// `count` packets (0: no limit): a packet libpcap hands over is also written to the file.
std::string drain(PacketStream& s, CaptureSink& sink, long long count, const StepContext& ctx) {
  StepContext quiet = ctx;
  quiet.stop_requested = nullptr;  // the stop request is what brought us here
  for (int round = 0; round < 64 && !ctx.is_cancelled(); ++round) {
    long long left = count > 0 ? count - static_cast<long long>(sink.packets) : 4096;
    if (left <= 0) break;
    auto r = s.read(sink, static_cast<int>(std::min<long long>(left, 4096)), Millis(0), quiet);
    if (!r) return r.error();
    if (*r != ReadStatus::kPackets) break;
  }
  return "";
}

class CaptureStep : public Step {
 public:
  const StepSpec& spec() const override {
    static const StepSpec s = [] {
      StepSpec s{
          .name = "capture",
          .summary = "Capture packets on an interface of the step's namespace (tcpdump), "
                     "optionally decoding VXLAN",
          .description =
              "A live capture through libpcap on `interface` (`any`: every interface of the "
              "namespace) with a BPF `filter` in tcpdump's syntax. It stops after `count` "
              "packets, after `duration`, when the step's time limit is near, or, with "
              "`background: true`, when every step that `needs` it has finished: the "
              "runbook's \"run tcpdump on both cells, then ping\" is a background capture per "
              "cell and a ping that needs them. Steps that need a background capture start "
              "only once it is listening, so the first packet is not missed.\n\n"
              "Facts: packets and bytes, by direction (`in`/`out`: sent or received by this "
              "host, from the cooked header or the interface's MAC), the kernel's drop "
              "count, packet times and a flow table (outer 5-tuple). `write:` keeps every "
              "packet in a pcap file that tcpdump, tshark and Wireshark read (and "
              "vxlan.decode). `decode: vxlan` tallies VXLAN frames like vxlan.decode and puts "
              "its facts under `vxlan` (group policy ids, apps, inner flows, answered "
              "requests). Evidence is the first frames in tcpdump's one-line form, a VXLAN "
              "frame with its inner packet on a second line.\n\n"
              "A capture passes when it ran; judge what it saw with `expect:` (e.g. "
              "`{vxlan.icmp.replies: {gt: 0}}`). It errors when the interface does not exist "
              "in the namespace, the filter does not compile (libpcap's message), or the "
              "capture is not permitted (CAP_NET_RAW).",
          .params = {{.name = "interface",
                      .type = ValueType::kString,
                      .doc = "Interface to capture on; `any` for all of the namespace's",
                      .default_value = "any"},
                     {.name = "filter",
                      .type = ValueType::kString,
                      .doc = "BPF filter (tcpdump's syntax), e.g. `udp port 4789`"},
                     {.name = "count",
                      .type = ValueType::kInt,
                      .doc = "Stop after this many packets",
                      .min = 1,
                      .max = 100000000},
                     {.name = "duration",
                      .type = ValueType::kDuration,
                      .doc = "Stop after this long (else: count, the steps needing it, or "
                             "the step's timeout)"},
                     {.name = "snaplen",
                      .type = ValueType::kInt,
                      .doc = "Bytes kept of each packet",
                      .default_value = 262144,
                      .min = 64,
                      .max = 262144},
                     {.name = "promisc",
                      .type = ValueType::kBool,
                      .doc = "Promiscuous mode (also packets for other hosts on the segment)",
                      .default_value = false},
                     {.name = "write",
                      .type = ValueType::kString,
                      .doc = "Write every captured packet to this pcap file"},
                     {.name = "decode",
                      .type = ValueType::kString,
                      .doc = "`vxlan`: decode VXLAN(-GBP) frames into the `vxlan` fact",
                      .default_value = "none",
                      .choices = {"none", "vxlan"}}},
          .privileges = "CAP_NET_RAW to capture (CAP_NET_ADMIN for promiscuous mode)",
          .supports_background = true,
          .signals_ready = true,
          .example =
              "- id: cap_remote\n  uses: capture\n  netns: \"{{ inputs.remote_cell }}\"\n"
              "  background: true\n  timeout: 30s\n"
              "  with: {interface: eth0, filter: udp port 4789, decode: vxlan, "
              "write: /tmp/remote.pcap}\n"
              "- id: overlay_ping\n  uses: ping\n  needs: [cap_remote]\n"
              "  with: {target: 10.255.2.11}\n",
      };
      for (auto& p : vxlan::decode_params()) s.params.push_back(std::move(p));
      s.facts = {{"interface", "string", "The interface captured on"},
                 {"linktype", "string", "Its link type (EN10MB, LINUX_SLL, ...)"},
                 {"packets", "int", "Packets captured (after the filter)"},
                 {"bytes", "int", "Their bytes on the wire"},
                 {"in", "int", "Packets received by this host"},
                 {"out", "int", "Packets sent by this host"},
                 {"kernel_drops", "int",
                  "Packets the kernel dropped because the capture buffer was full"},
                 {"if_drops", "int", "Packets the interface or driver dropped"},
                 {"first_ts", "number", "Time of the first packet (seconds since the epoch)"},
                 {"last_ts", "number", "Time of the last packet"},
                 {"flows", "list",
                  "Outer flows, most packets first: {src, dst, proto, sport, dport, packets, "
                  "bytes}"},
                 {"flows_total", "int", "Distinct outer flows"},
                 {"file", "string", "The pcap file written (with `write`)"},
                 {"stopped_by", "string",
                  "count, duration, stop (the steps needing it finished), deadline (the "
                  "step's timeout was near) or interrupt"},
                 {"vxlan", "map", "With `decode: vxlan`: the facts of vxlan.decode"}};
      return s;
    }();
    return s;
  }

  StepOutput run(StepContext& ctx, const Params& p) const override {
    const bool decode = p.str("decode", "none") == "vxlan";
    std::optional<vxlan::DecodeOptions> opts;
    if (decode) {
      auto parsed = vxlan::decode_options(p);
      if (!parsed) return StepOutput::error(parsed.error());
      opts.emplace(std::move(*parsed));
    }
    const std::string iface = p.str("interface", "any");
    LiveCaptureRequest req{.interface = iface,
                           .filter = p.str("filter"),
                           .snaplen = static_cast<int>(p.integer("snaplen", 262144)),
                           .promisc = p.boolean("promisc"),
                           .write = p.str("write")};
    auto stream = ctx.packets().open_live(req, ctx);
    if (!stream) return StepOutput::error(stream.error());
    PacketStream& s = **stream;
    const int lt = s.linktype();
    ctx.ready();  // listening: steps that need this capture may start

    const long long count = p.integer("count", 0);
    const auto started = ctx.clock().now();
    std::optional<Clock::time_point> end;
    if (p.has("duration"))
      end = started + std::chrono::duration_cast<Clock::duration>(p.duration("duration"));
    CaptureSink sink(lt, interface_mac(iface), opts ? &*opts : nullptr,
                     static_cast<size_t>(p.integer("evidence", 10)), count);
    // Stop a little before the step's own time limit, so that the capture ends with its
    // facts rather than as a timeout.
    const Millis margin(100);
    std::string stopped_by;
    std::string failure;
    while (stopped_by.empty()) {
      if (ctx.is_cancelled()) stopped_by = "interrupt";
      else if (ctx.stop_requested && ctx.stop_requested->load()) stopped_by = "stop";
      else if (count > 0 && static_cast<long long>(sink.packets) >= count) stopped_by = "count";
      else if (end && ctx.clock().now() >= *end) stopped_by = "duration";
      else if (ctx.remaining() <= margin) stopped_by = "deadline";
      if (!stopped_by.empty()) break;
      Millis wait = ctx.remaining() - margin;
      if (end)
        wait = std::min(wait, std::chrono::duration_cast<Millis>(*end - ctx.clock().now()));
      wait = std::clamp(wait, Millis(1), Millis(50));
      int batch = count > 0 ? static_cast<int>(std::min<long long>(count - static_cast<long long>(sink.packets), 1024)) : 1024;
      auto r = s.read(sink, std::max(batch, 1), wait, ctx);
      if (!r) {
        failure = r.error();
        break;
      }
    }
    // Asked to stop (the steps that needed it are done) or out of time: what the kernel
    // already queued was on the wire before that, so it is read too.
    if (failure.empty() && stopped_by != "count" && stopped_by != "interrupt")
      if (auto e = drain(s, sink, count, ctx); !e.empty()) failure = e;
    CaptureCounters c = s.counters();
    auto written = s.finish();

    StepOutput out;
    json& f = out.facts;
    f["interface"] = iface;
    f["linktype"] = packet::linktype_name(lt);
    f["packets"] = sink.packets;
    f["bytes"] = sink.bytes;
    f["in"] = sink.in;
    f["out"] = sink.out;
    f["kernel_drops"] = c.dropped;
    f["if_drops"] = c.if_dropped;
    f["first_ts"] = sink.packets ? seconds(sink.first_ts) : 0.0;
    f["last_ts"] = sink.packets ? seconds(sink.last_ts) : 0.0;
    std::vector<std::pair<FlowKey, std::pair<uint64_t, uint64_t>>> flows(sink.flows.begin(),
                                                                          sink.flows.end());
    std::stable_sort(flows.begin(), flows.end(), [](const auto& a, const auto& b) {
      return a.second.first > b.second.first;
    });
    json rows = json::array();
    for (const auto& [k, v] : flows) {
      if (rows.size() >= 50) break;
      json r = {{"src", k.src.str()}, {"dst", k.dst.str()}, {"proto", packet::proto_name(k.proto)},
                {"packets", v.first}, {"bytes", v.second}};
      r["sport"] = k.proto == 6 || k.proto == 17 ? json(k.sport) : json(nullptr);
      r["dport"] = k.proto == 6 || k.proto == 17 ? json(k.dport) : json(nullptr);
      rows.push_back(std::move(r));
    }
    f["flows"] = rows;
    f["flows_total"] = sink.flows.size() + (sink.flows_overflow ? 1 : 0);
    if (!req.write.empty()) f["file"] = req.write;
    f["stopped_by"] = stopped_by.empty() ? "error" : stopped_by;
    if (sink.tally_) f["vxlan"] = sink.tally_->facts();
    out.evidence = std::move(sink.evidence);

    std::string what = fmt::format("{} packet{} on {}", sink.packets,
                                   sink.packets == 1 ? "" : "s", iface);
    if (sink.packets) what += fmt::format(" ({} in, {} out)", sink.in, sink.out);
    if (c.dropped) what += fmt::format(", {} dropped by the kernel", c.dropped);
    if (!failure.empty()) {
      out.status = Status::kError;
      out.message = fmt::format("capture on '{}' failed after {}: {}", iface, what, failure);
      return out;
    }
    if (!written) {
      out.status = Status::kError;
      out.message = written.error();
      return out;
    }
    static const std::map<std::string, std::string> why = {
        {"count", "reached count"},
        {"duration", "for its duration"},
        {"stop", "until the steps that need it finished"},
        {"deadline", "until its time limit"},
        {"interrupt", "until interrupted"}};
    out.message = fmt::format("{} {}", what, why.at(stopped_by));
    if (sink.tally_) {
      const json& v = f["vxlan"];
      out.message += fmt::format("; VXLAN {} frames, ICMP echo {}/{} answered",
                                 v["vxlan_frames"].get<uint64_t>(),
                                 v["icmp"]["answered"].get<uint64_t>(),
                                 v["icmp"]["requests"].get<uint64_t>());
      if (v["tcp"]["syn"].get<uint64_t>())
        out.message += fmt::format(", TCP SYN {}/{} answered", v["tcp"]["answered"].get<uint64_t>(),
                                   v["tcp"]["syn"].get<uint64_t>());
    }
    return out;
  }
};

}  // namespace

NETPLAY_REGISTER_STEP(CaptureStep);

}  // namespace netplay
