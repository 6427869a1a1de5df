/// `netplay decode FILE`: a capture file's frames as netplay decodes them, in tcpdump's
/// one-line form, as one TAB-separated line of fields per frame (to compare with tshark
/// -T fields), or as the facts the vxlan.decode step reports.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>

#include "runner/cli/cli_internal.h"
#include "runner/step/packet.h"
#include "runner/step/pcap.h"
#include "runner/step/services.h"
#include "runner/step/step.h"

namespace netplay::cli {

namespace {

std::atomic<bool> g_decode_interrupted{false};
extern "C" void on_decode_signal(int) { g_decode_interrupted = true; }

std::string tsv_header() {
  return "frame\tvlan\touter_src\touter_dst\tudp_dport\tvxlan_flags\tgbp\tvni\tinner_src\t"
         "inner_dst\tproto\tsport\tdport\tmalformed\n";
}

void tsv_line(fmt::memory_buffer& b, uint64_t n, const packet::Frame& f) {
  auto out = std::back_inserter(b);
  fmt::format_to(out, "{}\t", n);
  for (uint8_t i = 0; i < f.nvlan; ++i) fmt::format_to(out, "{}{}", i ? "," : "", f.vlan[i]);
  b.push_back('\t');
  if (f.has_ip) fmt::format_to(out, "{}\t{}\t", f.outer.src.str(), f.outer.dst.str());
  else fmt::format_to(out, "\t\t");
  if (f.has_ip && f.outer.proto == 17 && f.outer.has_ports) fmt::format_to(out, "{}", f.outer.dport);
  b.push_back('\t');
  if (f.vxlan) {
    fmt::format_to(out, "0x{:02x}\t", f.vxlan_flags);
    if (f.gbp_bit) fmt::format_to(out, "{}", f.gbp);
    fmt::format_to(out, "\t{}\t", f.vni);
  } else {
    fmt::format_to(out, "\t\t\t");
  }
  const packet::IpLayer& in = f.inner;
  if (f.has_inner_ip) {
    fmt::format_to(out, "{}\t{}\t{}\t", in.src.str(), in.dst.str(), in.proto);
    if (in.has_ports) fmt::format_to(out, "{}\t{}\t", in.sport, in.dport);
    else fmt::format_to(out, "\t\t");
  } else {
    fmt::format_to(out, "\t\t\t\t\t");
  }
  if (f.malformed != packet::Malformed::kNone)
    fmt::format_to(out, "{}", packet::reason_text(f.malformed, f.malformed_inner));
  b.push_back('\n');
}

class PrintSink : public PacketSink {
 public:
  PrintSink(const CliIo& io, int linktype, const packet::PortSet& ports, bool tsv)
      : io_(io), linktype_(linktype), ports_(ports), tsv_(tsv) {}
  bool packet(const PacketRef& p) override {
    packet::decode(linktype_, p.data, p.caplen, p.len, ports_, frame_);
    ++n_;
    if (tsv_) {
      tsv_line(buf_, n_, frame_);
    } else {
      std::string s = packet::describe(frame_, p.ts_ns);
      buf_.append(s.data(), s.data() + s.size());
      buf_.push_back('\n');
    }
    if (buf_.size() > (1u << 16)) flush();
    return true;
  }
  void flush() {
    put(io_.out, std::string(buf_.data(), buf_.size()));
    buf_.clear();
  }
  uint64_t frames() const { return n_; }

 private:
  const CliIo& io_;
  int linktype_;
  const packet::PortSet& ports_;
  bool tsv_;
  uint64_t n_ = 0;
  packet::Frame frame_;
  fmt::memory_buffer buf_;
};

}  // namespace

void setup_decode(CLI::App& cmd, DecodeArgs& a) {
  cmd.add_option("FILE", a.file, "A pcap or pcapng file")->required();
  cmd.add_option("--format,-f", a.format, "text (tcpdump-like lines, default), tsv or json")
      ->check(CLI::IsMember({"text", "tsv", "json"}))
      ->type_name("FORMAT");
  cmd.add_option("--ports", a.ports, "UDP ports that carry VXLAN (default 4789)")
      ->delimiter(',')
      ->check(CLI::Range(1, 65535))
      ->type_name("PORT,...");
  cmd.add_option("--filter", a.filter, "BPF filter (tcpdump's syntax)")->type_name("EXPR");
  cmd.add_option("--tags", a.tags, "json: the policy server's tags list")->type_name("FILE");
  cmd.add_option("--store", a.store, "json: a container metadata store.json (repeatable)")
      ->type_name("FILE");
  cmd.footer(
      "The tsv columns: frame vlan outer_src outer_dst udp_dport vxlan_flags gbp vni "
      "inner_src inner_dst proto sport dport malformed (docs/capture.md).\n"
      "Exit codes: 0 every frame was read, 2 bad usage or a file that is not a capture or "
      "ends inside a frame (the frames before it are printed), 130 interrupted.");
}

/// Ctrl-C stops the decode between two batches of frames (what was printed stays); the
/// previous handlers come back when the command returns.
struct SignalScope {
  SignalScope() {
    g_decode_interrupted = false;
    old_int = std::signal(SIGINT, on_decode_signal);
    old_term = std::signal(SIGTERM, on_decode_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, old_int);
    std::signal(SIGTERM, old_term);
  }
  void (*old_int)(int);
  void (*old_term)(int);
};

int decode_command(const DecodeArgs& a, const CliIo& io) {
  SignalScope signals;
  std::vector<long long> ports(a.ports.begin(), a.ports.end());
  if (ports.empty()) ports.push_back(4789);
  StepContext ctx;
  ctx.interrupt = &g_decode_interrupted;

  if (a.format == "json") {
    const Step* step = Registry::instance().find("vxlan.decode");
    if (!step) return usage_error(io, "the vxlan.decode step is not built in");
    json params = {{"file", a.file}, {"ports", ports}, {"top", 20}, {"evidence", 0}};
    if (!a.filter.empty()) params["filter"] = a.filter;
    if (!a.tags.empty()) params["tags"] = a.tags;
    if (!a.store.empty()) params["store"] = a.store;
    StepOutput out = step->run(ctx, Params(params));
    if (g_decode_interrupted) return 130;
    if (out.status == Status::kError) return usage_error(io, out.message);
    put(io.out, out.facts.dump(2) + "\n");
    if (out.status != Status::kPass) return usage_error(io, out.message);
    return 0;
  }
  if (!a.tags.empty() || !a.store.empty())
    return usage_error(io, "--tags and --store need --format json");

  std::vector<uint16_t> p16(ports.begin(), ports.end());
  packet::PortSet set(p16);
  auto stream = ctx.packets().open_file({.path = a.file, .filter = a.filter}, ctx);
  if (!stream) return usage_error(io, stream.error());
  int lt = (*stream)->linktype();
  if (!packet::supported_linktype(lt))
    return usage_error(io, fmt::format("{}: link type {} is not one netplay decodes", a.file,
                                       packet::linktype_name(lt)));
  PrintSink sink(io, lt, set, a.format == "tsv");
  if (a.format == "tsv") put(io.out, tsv_header());
  for (;;) {
    if (g_decode_interrupted) {
      sink.flush();
      return 130;
    }
    auto r = (*stream)->read(sink, 4096, Millis(0), ctx);
    if (!r) {
      sink.flush();
      return usage_error(io, fmt::format("{}: the file ends inside frame {} ({})", a.file,
                                         sink.frames() + 1, r.error()));
    }
    if (*r == ReadStatus::kEnd) break;
  }
  sink.flush();
  return 0;
}

}  // namespace netplay::cli
