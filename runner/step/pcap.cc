#include "runner/step/pcap.h"

#include <fmt/format.h>
#include <pcap/pcap.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "runner/step/fakes.h"

namespace netplay {

namespace {

constexpr size_t kFileBuffer = 1 << 20;

struct PcapCloser {
  void operator()(pcap_t* p) const {
    if (p) pcap_close(p);
  }
};
using PcapPtr = std::unique_ptr<pcap_t, PcapCloser>;

struct DumperCloser {
  void operator()(pcap_dumper_t* d) const {
    if (d) pcap_dump_close(d);
  }
};
using DumperPtr = std::unique_ptr<pcap_dumper_t, DumperCloser>;

/// A compiled filter that frees itself.
struct Program {
  bpf_program prog{};
  bool compiled = false;
  ~Program() {
    if (compiled) pcap_freecode(&prog);
  }
};

std::string compile(pcap_t* p, const std::string& filter, Program& out) {
  if (pcap_compile(p, &out.prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
    return fmt::format("bad filter '{}': {}", filter, pcap_geterr(p));
  out.compiled = true;
  return "";
}

/// libpcap's callback state for one read().
struct Delivery {
  PacketSink* sink;
  pcap_dumper_t* dumper;
  pcap_t* handle;
  bool nano;
  const bpf_program* filter;  // applied here only by the fake (libpcap's own otherwise)
  int delivered = 0;
  bool stopped = false;
};

void on_packet(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
  auto* d = reinterpret_cast<Delivery*>(user);
  if (d->stopped) return;
  if (d->filter && !pcap_offline_filter(d->filter, h, bytes)) return;
  if (d->dumper) pcap_dump(reinterpret_cast<u_char*>(d->dumper), h, bytes);
  PacketRef r;
  r.ts_ns = int64_t{h->ts.tv_sec} * 1'000'000'000 +
            int64_t{h->ts.tv_usec} * (d->nano ? 1 : 1000);
  r.caplen = h->caplen;
  r.len = h->len;
  r.data = bytes;
  ++d->delivered;
  if (!d->sink->packet(r)) {
    d->stopped = true;
    if (d->handle) pcap_breakloop(d->handle);
  }
}

class PcapStream : public PacketStream {
 public:
  PcapStream(PcapPtr p, DumperPtr d, bool live, std::string write_path)
      : p_(std::move(p)), d_(std::move(d)), live_(live), write_path_(std::move(write_path)) {
    linktype_ = pcap_datalink(p_.get());
    nano = pcap_get_tstamp_precision(p_.get()) == PCAP_TSTAMP_PRECISION_NANO;
    fd_ = live_ ? pcap_get_selectable_fd(p_.get()) : -1;
  }
  ~PcapStream() override { (void)finish(); }

  int linktype() const override { return linktype_; }
  int pollable_fd() const override { return fd_; }

  std::expected<ReadStatus, std::string> read(PacketSink& sink, int max, Millis wait,
                                              const StepContext& ctx) override {
    Delivery d{&sink, d_.get(), p_.get(), nano, nullptr};
    if (!live_) {
      int n = pcap_dispatch(p_.get(), max, on_packet, reinterpret_cast<u_char*>(&d));
      if (n == PCAP_ERROR) return std::unexpected(std::string(pcap_geterr(p_.get())));
      if (d.delivered > 0 || n == PCAP_ERROR_BREAK) return ReadStatus::kPackets;
      return n == 0 ? ReadStatus::kEnd : ReadStatus::kPackets;
    }
    auto until = Clock::now() + wait;
    for (;;) {
      // What the socket already holds is delivered even when the step is stopping: the
      // packets that made the steps needing this capture finish are among them.
      int n = pcap_dispatch(p_.get(), max, on_packet, reinterpret_cast<u_char*>(&d));
      if (n == PCAP_ERROR) return std::unexpected(std::string(pcap_geterr(p_.get())));
      if (d.delivered > 0) return ReadStatus::kPackets;
      if (ctx.should_stop()) return ReadStatus::kIdle;
      auto now = Clock::now();
      if (now >= until || ctx.expired()) return ReadStatus::kIdle;
      auto slice = std::min<Millis>(std::chrono::duration_cast<Millis>(until - now), Millis(50));
      slice = std::min(slice, ctx.remaining());
      pollfd pfd{fd_, POLLIN, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(std::max<Millis::rep>(1, slice.count())));
      if (r < 0 && errno != EINTR)
        return std::unexpected(fmt::format("waiting for packets: {}", std::strerror(errno)));
    }
  }

  CaptureCounters counters() override {
    CaptureCounters c;
    if (!live_) return c;
    pcap_stat st{};
    if (pcap_stats(p_.get(), &st) == 0) {
      c.received = st.ps_recv;
      c.dropped = st.ps_drop;
      c.if_dropped = st.ps_ifdrop;
    }
    return c;
  }

  std::expected<void, std::string> finish() override {
    if (!d_) return {};
    int flushed = pcap_dump_flush(d_.get());
    d_.reset();
    if (flushed != 0) return std::unexpected(fmt::format("{}: could not write", write_path_));
    return {};
  }

  bool nano = false;
  // A file's stdio buffer: declared before p_, so freed after pcap_close() closed the FILE.
  std::unique_ptr<char[]> buffer;

 private:
  PcapPtr p_;
  DumperPtr d_;
  bool live_;
  std::string write_path_;
  int linktype_ = 0;
  int fd_ = -1;
};

std::expected<DumperPtr, std::string> open_dumper(pcap_t* p, const std::string& path) {
  if (path.empty()) return DumperPtr{};
  pcap_dumper_t* d = pcap_dump_open(p, path.c_str());
  if (!d) return std::unexpected(fmt::format("write: {}", pcap_geterr(p)));
  return DumperPtr{d};
}

std::string activate_error(pcap_t* p, int rc, const std::string& iface) {
  std::string detail = pcap_geterr(p);
  switch (rc) {
    case PCAP_ERROR_NO_SUCH_DEVICE:
      return fmt::format("no such interface '{}' in this namespace", iface);
    case PCAP_ERROR_PERM_DENIED:
      return fmt::format("capturing on '{}' needs CAP_NET_RAW ({})", iface,
                         detail.empty() ? "permission denied" : detail);
    case PCAP_ERROR_IFACE_NOT_UP: return fmt::format("interface '{}' is down", iface);
    case PCAP_ERROR_PROMISC_PERM_DENIED:
      return fmt::format("promiscuous mode on '{}' needs CAP_NET_ADMIN", iface);
    default:
      return fmt::format("capture on '{}': {}", iface,
                         detail.empty() ? pcap_statustostr(rc) : detail);
  }
}

class SystemPacketSource : public PacketSource {
 public:
  std::expected<std::unique_ptr<PacketStream>, std::string> open_live(
      const LiveCaptureRequest& r, const StepContext& ctx) override {
    if (ctx.should_stop()) return std::unexpected("capture: cancelled");
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    PcapPtr p(pcap_create(r.interface.c_str(), errbuf));
    if (!p) return std::unexpected(fmt::format("capture on '{}': {}", r.interface, errbuf));
    pcap_set_snaplen(p.get(), r.snaplen);
    pcap_set_promisc(p.get(), r.promisc ? 1 : 0);
    pcap_set_immediate_mode(p.get(), 1);
    pcap_set_buffer_size(p.get(), 4 << 20);
    pcap_set_tstamp_precision(p.get(), PCAP_TSTAMP_PRECISION_NANO);
    int rc = pcap_activate(p.get());
    if (rc < 0) return std::unexpected(activate_error(p.get(), rc, r.interface));
    if (!r.filter.empty()) {
      Program prog;
      if (auto e = compile(p.get(), r.filter, prog); !e.empty()) return std::unexpected(e);
      if (pcap_setfilter(p.get(), &prog.prog) != 0)
        return std::unexpected(fmt::format("filter: {}", pcap_geterr(p.get())));
    }
    if (pcap_setnonblock(p.get(), 1, errbuf) != 0)
      return std::unexpected(fmt::format("capture on '{}': {}", r.interface, errbuf));
    auto d = open_dumper(p.get(), r.write);
    if (!d) return std::unexpected(d.error());
    return std::make_unique<PcapStream>(std::move(p), std::move(*d), true, r.write);
  }

  std::expected<std::unique_ptr<PacketStream>, std::string> open_file(
      const FileReadRequest& r, const StepContext&) override {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    // Our own FILE with a 1 MiB buffer: libpcap reads a file with two freads per packet,
    // and stdio's default buffer would make that a read(2) every few packets.
    std::FILE* f = std::fopen(r.path.c_str(), "rbe");
    if (!f) return std::unexpected(fmt::format("{}: {}", r.path, std::strerror(errno)));
    auto buffer = std::make_unique<char[]>(kFileBuffer);
    std::setvbuf(f, buffer.get(), _IOFBF, kFileBuffer);
    // pcap_close() closes the FILE; on failure it is ours to close.
    PcapPtr p(pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf));
    if (!p) {
      std::fclose(f);
      return std::unexpected(fmt::format("{}: {}", r.path, errbuf));
    }
    if (!r.filter.empty()) {
      Program prog;
      if (auto e = compile(p.get(), r.filter, prog); !e.empty()) return std::unexpected(e);
      if (pcap_setfilter(p.get(), &prog.prog) != 0)
        return std::unexpected(fmt::format("filter: {}", pcap_geterr(p.get())));
    }
    auto stream = std::make_unique<PcapStream>(std::move(p), DumperPtr{}, false, "");
    stream->buffer = std::move(buffer);  // lives as long as the FILE (closed with the handle)
    return stream;
  }
};

/// The fake's live stream: canned packets at once (through a real BPF filter and a real
/// pcap writer), then nothing until the step stops.
class CannedStream : public PacketStream {
 public:
  CannedStream(CannedCapture c, const LiveCaptureRequest& r, FakeClock* clock)
      : c_(std::move(c)), req_(r), clock_(clock) {
    dead_.reset(pcap_open_dead_with_tstamp_precision(c_.linktype, r.snaplen,
                                                     PCAP_TSTAMP_PRECISION_NANO));
  }
  std::string init() {
    if (!req_.filter.empty()) {
      if (auto e = compile(dead_.get(), req_.filter, prog_); !e.empty()) return e;
    }
    auto d = open_dumper(dead_.get(), req_.write);
    if (!d) return d.error();
    d_ = std::move(*d);
    return "";
  }
  int linktype() const override { return c_.linktype; }
  int pollable_fd() const override { return -1; }
  std::expected<ReadStatus, std::string> read(PacketSink& sink, int max, Millis wait,
                                              const StepContext& ctx) override {
    Delivery d{&sink, d_.get(), nullptr, true, prog_.compiled ? &prog_.prog : nullptr};
    while (next_ < c_.packets.size() && d.delivered < max && !d.stopped) {
      const auto& [ts, bytes] = c_.packets[next_++];
      pcap_pkthdr h{};
      h.ts.tv_sec = ts / 1'000'000'000;
      h.ts.tv_usec = ts % 1'000'000'000;
      h.len = static_cast<bpf_u_int32>(bytes.size());
      h.caplen = std::min<bpf_u_int32>(h.len, static_cast<bpf_u_int32>(req_.snaplen));
      on_packet(reinterpret_cast<u_char*>(&d), &h, bytes.data());
    }
    if (d.delivered > 0) return ReadStatus::kPackets;
    if (ctx.should_stop()) return ReadStatus::kIdle;
    if (clock_) clock_->advance(std::min(wait, std::max(ctx.remaining(), Millis(1))));
    return ReadStatus::kIdle;
  }
  CaptureCounters counters() override { return c_.counters; }
  std::expected<void, std::string> finish() override {
    d_.reset();
    return {};
  }

 private:
  CannedCapture c_;
  LiveCaptureRequest req_;
  FakeClock* clock_;
  PcapPtr dead_;
  Program prog_;
  DumperPtr d_;
  size_t next_ = 0;
};

}  // namespace

std::unique_ptr<PacketSource> make_system_packet_source() {
  return std::make_unique<SystemPacketSource>();
}

std::string check_bpf_filter(const std::string& filter, int linktype) {
  PcapPtr p(pcap_open_dead(linktype, 262144));
  if (!p) return "libpcap could not compile filters";
  Program prog;
  return compile(p.get(), filter, prog);
}

std::expected<std::unique_ptr<PacketStream>, std::string> FakePacketSource::open_live(
    const LiveCaptureRequest& r, const StepContext& ctx) {
  auto c = ask(r, ctx, "capture");
  if (!c) return std::unexpected(c.error());
  auto s = std::make_unique<CannedStream>(std::move(*c), r, clock);
  if (auto e = s->init(); !e.empty()) return std::unexpected(e);
  return s;
}

std::expected<std::unique_ptr<PacketStream>, std::string> FakePacketSource::open_file(
    const FileReadRequest& r, const StepContext& ctx) {
  static SystemPacketSource files;
  return files.open_file(r, ctx);
}

}  // namespace netplay
