#pragma once
/// Packets, the service behind `capture`, `vxlan.decode` and `trace.hops`: a live capture
/// on an interface of the namespace the calling thread is in, or the frames of a pcap or
/// pcapng file, both through libpcap.
///
/// A live stream is non-blocking: every wait is a poll of at most 50 ms that returns as
/// soon as the step's deadline passes or it is asked to stop (Ctrl-C, the run's timeout, the
/// steps that needed a background capture finished). A file is read as fast as libpcap
/// delivers it and its time is the packets' own: nothing in a file's decode looks at the
/// clock. Timestamps are nanoseconds since the epoch in both cases.

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "runner/base/core.h"
#include "runner/step/canned.h"
#include "runner/step/step.h"

namespace netplay {

struct LiveCaptureRequest {
  std::string interface = "any";
  std::string filter;        // BPF, compiled by libpcap for the interface's link type
  int snaplen = 262144;
  bool promisc = false;
  std::string write;         // pcap file that receives every packet delivered ("" = none)
};

struct FileReadRequest {
  std::string path;
  std::string filter;
};

struct PacketRef {
  int64_t ts_ns = 0;
  uint32_t caplen = 0;
  uint32_t len = 0;
  const uint8_t* data = nullptr;
};

/// What the kernel counted for a live capture (pcap_stats); all zero for files.
struct CaptureCounters {
  uint64_t received = 0;
  uint64_t dropped = 0;     // by the kernel: the capture buffer was full
  uint64_t if_dropped = 0;  // by the interface or its driver
};

enum class ReadStatus {
  kPackets,  // at least one packet was delivered
  kIdle,     // live: nothing arrived within the wait
  kEnd,      // file: no more packets
};

/// Receives packets; returning false stops the delivery after this packet.
class PacketSink {
 public:
  virtual ~PacketSink() = default;
  virtual bool packet(const PacketRef& p) = 0;
};

class PacketStream {
 public:
  virtual ~PacketStream() = default;
  /// libpcap's DLT_ value of the packets (runner/step/packet.h names the ones decoded).
  virtual int linktype() const = 0;
  /// Delivers up to `max` packets to `sink`. A live stream waits up to `wait` for the first
  /// one (never past ctx's deadline, and returns soon after ctx.should_stop()); what the
  /// kernel has already captured is delivered without waiting, also after should_stop(), so
  /// a reader that stops drains the queue with reads of `wait` 0 until one is not kPackets.
  /// An error carries libpcap's message; for a file cut short it comes after the packets
  /// before the cut were delivered.
  virtual std::expected<ReadStatus, std::string> read(PacketSink& sink, int max, Millis wait,
                                                      const StepContext& ctx) = 0;
  /// A descriptor that polls readable when a live stream has packets; -1 for files.
  virtual int pollable_fd() const = 0;
  virtual CaptureCounters counters() = 0;
  /// Flushes and closes the `write` file, if any (also done by the destructor).
  virtual std::expected<void, std::string> finish() = 0;
};

class PacketSource {
 public:
  virtual ~PacketSource() = default;
  /// A live capture in the calling thread's network namespace. Errors say what to do:
  /// "no such interface 'eth9' in this namespace", "capturing needs CAP_NET_RAW", or the
  /// filter's compile error from libpcap.
  virtual std::expected<std::unique_ptr<PacketStream>, std::string> open_live(
      const LiveCaptureRequest& r, const StepContext& ctx) = 0;
  /// The frames of a pcap or pcapng file. Reading a file needs no privilege, so the fake
  /// reads real files too.
  virtual std::expected<std::unique_ptr<PacketStream>, std::string> open_file(
      const FileReadRequest& r, const StepContext& ctx) = 0;
};

std::unique_ptr<PacketSource> make_system_packet_source();

/// Checks a BPF filter for `linktype` without capturing ("" when it compiles, else libpcap's
/// message).
std::string check_bpf_filter(const std::string& filter, int linktype = 1);

/// What a fake live capture delivers: these packets at once, then nothing until stopped.
struct CannedCapture {
  int linktype = 1;
  std::vector<std::pair<int64_t, std::vector<uint8_t>>> packets;  // (ts_ns, bytes)
  CaptureCounters counters;
};

class FakeClock;

class FakePacketSource : public PacketSource,
                         public CannedAnswers<LiveCaptureRequest, CannedCapture> {
 public:
  /// Waiting for packets that never come moves this clock by the wait (FakeServices sets
  /// it), so a capture's `duration` passes without real time passing.
  FakeClock* clock = nullptr;

  std::expected<std::unique_ptr<PacketStream>, std::string> open_live(
      const LiveCaptureRequest& r, const StepContext& ctx) override;
  std::expected<std::unique_ptr<PacketStream>, std::string> open_file(
      const FileReadRequest& r, const StepContext& ctx) override;
};

}  // namespace netplay
