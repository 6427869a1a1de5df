#pragma once
/// Tallies decoded VXLAN frames the way the Silk runbook reads a capture: by VNI, group
/// policy id (the sending app's tag), inner addresses, protocol and port; maps tags to apps
/// with the policy server's tags list and inner addresses to apps with a cell's container
/// metadata store; pairs ICMP echo requests with replies and TCP SYNs with SYN-ACKs.
///
/// Memory is flat in the number of frames: every table has a cap (what does not fit is
/// counted, not stored), so a capture of any length tallies in a few MB.

#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runner/base/types.h"
#include "runner/step/packet.h"

namespace netplay::vxlan {

/// Who is who: GBP tags and container addresses mapped to app guids.
struct AppMap {
  std::unordered_map<uint16_t, std::string> app_of_tag;  // 0x0003 -> app guid
  std::map<packet::Addr, std::string> app_of_ip;          // container ip -> app guid
  bool have_tags = false;
  bool have_store = false;

  /// The policy server's tags: {"tags":[{"id": "<app guid>", "tag": "0003"}]} (tag in hex).
  std::expected<void, std::string> load_tags(const std::string& path);
  /// A cell's container metadata store.json: handle -> {ip, metadata: {app_id, ...}}.
  std::expected<void, std::string> load_store(const std::string& path);
  std::string tag_app(uint16_t tag) const;
  std::string ip_app(const packet::Addr& a) const;
};

/// "0003": the tag as the policy server writes it.
std::string tag_text(uint16_t id);

class Tally {
 public:
  /// `apps` may be null; it must outlive the tally. `top`: rows kept in the flows table.
  explicit Tally(const AppMap* apps = nullptr, size_t top = 20);
  ~Tally();
  Tally(const Tally&) = delete;
  Tally& operator=(const Tally&) = delete;

  void add(const packet::Frame& f, int64_t ts_ns);
  /// The facts of vxlan.decode (docs/capture.md lists them).
  json facts() const;
  uint64_t frames() const { return frames_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t frames_ = 0;
};

/// The fact specs every step that tallies VXLAN shares (vxlan.decode's facts).
struct FactDoc {
  const char* name;
  const char* type;
  const char* doc;
};
extern const std::vector<FactDoc> kTallyFacts;

}  // namespace netplay::vxlan

#include "runner/step/pcap.h"

namespace netplay::vxlan {

/// Decodes every packet of a stream into `tally` and keeps tcpdump-like lines of the first
/// `evidence_frames` frames (a VXLAN frame gives two: the outer packet, then the inner one
/// indented, as the Silk runbook shows tcpdump's output).
class DecodeSink : public PacketSink {
 public:
  DecodeSink(int linktype, const packet::PortSet& ports, Tally& tally, size_t evidence_frames)
      : linktype_(linktype), ports_(ports), tally_(tally), evidence_frames_(evidence_frames) {}
  bool packet(const PacketRef& p) override;
  /// The frame decoded last (valid until the next packet()).
  const packet::Frame& frame() const { return frame_; }
  std::vector<std::string> evidence;

 private:
  int linktype_;
  const packet::PortSet& ports_;
  Tally& tally_;
  size_t evidence_frames_;
  size_t shown_ = 0;
  packet::Frame frame_;
};

/// Appends describe()'s lines (one or two) to `out`.
void add_frame_lines(const packet::Frame& f, int64_t ts_ns, std::vector<std::string>& out);

/// The `ports` param as a PortSet (default 4789).
packet::PortSet port_set(const std::vector<long long>& ports);

}  // namespace netplay::vxlan

#include "runner/step/step.h"

namespace netplay::vxlan {

/// The params every step that decodes VXLAN shares: ports, tags, store, top, evidence.
std::vector<ParamSpec> decode_params();
/// vxlan.decode's facts as FactSpecs.
std::vector<FactSpec> tally_facts();

/// The decode params read back, with the tags and store files loaded.
struct DecodeOptions {
  packet::PortSet ports;
  std::vector<long long> port_list;
  AppMap apps;
  size_t top = 20;
  size_t evidence = 10;
};
std::expected<DecodeOptions, std::string> decode_options(const Params& p);

}  // namespace netplay::vxlan
