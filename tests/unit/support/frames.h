#pragma once
/// Frame bytes for tests of packet decoding: Ethernet (with 802.1Q/802.1ad tags), Linux
/// cooked v1/v2 headers, IPv4/IPv6, UDP/TCP/ICMP/ICMPv6 and the VXLAN(-GBP) header, each a
/// function that wraps a payload, so a VXLAN frame is composed from the inside out:
///
///   Bytes inner = frames::ipv4("10.255.1.11", "10.255.2.11", 1, frames::icmp_echo(true, 7, 1));
///   Bytes f = frames::ether(frames::ipv4("10.0.16.11", "10.0.16.12", 17,
///                 frames::udp(43146, 4789, frames::vxlan(1, 3, frames::ether(inner)))));
///
/// Checksums are left zero except the IPv4 header's (nothing in netplay checks them). Also:
/// a scratch directory and a pcap file writer on libpcap itself.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace netplay::frames {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86dd, kEtherArp = 0x0806,
                          kTpid8021Q = 0x8100, kTpid8021ad = 0x88a8;

/// An 802.1Q (tpid 0x8100) or 802.1ad (0x88a8) tag.
struct VlanTag {
  uint16_t tpid = kTpid8021Q;
  uint16_t vid = 0;
  uint8_t pcp = 0;
};

/// Ethernet II: dst, src, tags outermost first, then the ethertype (default: from the
/// payload's IP version nibble; ARP when the payload is empty).
Bytes ether(const Bytes& payload, std::vector<VlanTag> tags = {},
            std::optional<uint16_t> ethertype = std::nullopt,
            const std::string& src_mac = "02:00:00:00:00:01",
            const std::string& dst_mac = "02:00:00:00:00:02");
/// Linux cooked v1 (DLT_LINUX_SLL, 16 bytes): packet type (0 host ... 4 outgoing).
Bytes sll(const Bytes& payload, uint16_t pkttype = 0,
          std::optional<uint16_t> ethertype = std::nullopt);
/// Linux cooked v2 (DLT_LINUX_SLL2, 20 bytes).
Bytes sll2(const Bytes& payload, uint8_t pkttype = 0,
           std::optional<uint16_t> ethertype = std::nullopt, uint32_t ifindex = 2);

struct Ipv4Options {
  uint8_t ttl = 64;
  uint16_t id = 0x1234;
  uint16_t frag = 0;      // flags (DF 0x4000, MF 0x2000) and offset in 8-byte units
  uint8_t ihl = 5;        // header words; options (zeros) fill words past 5
  std::optional<uint16_t> total_length;  // default: header + payload
  uint8_t version = 4;
};
Bytes ipv4(const std::string& src, const std::string& dst, uint8_t proto, const Bytes& payload,
           const Ipv4Options& o = {});
/// IPv6 with `next` as the next header (the first extension header's type, if any).
Bytes ipv6(const std::string& src, const std::string& dst, uint8_t next, const Bytes& payload,
           uint8_t hop_limit = 64);
/// An IPv6 extension header of 8 bytes (hop-by-hop 0, routing 43, destination options 60)
/// in front of `payload`, whose header type is `next`.
Bytes ipv6_ext(uint8_t next, const Bytes& payload);
/// IPv4 or IPv6 by the addresses' form.
Bytes ip(const std::string& src, const std::string& dst, uint8_t proto, const Bytes& payload);

Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload = {});
inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
          const Bytes& payload = {}, uint8_t data_offset = 5);
/// ICMP echo request (type 8) or reply (0); `payload` default: 56 bytes as ping sends.
Bytes icmp_echo(bool request, uint16_t id, uint16_t seq, std::optional<Bytes> payload = {});
/// ICMPv6 echo request (128) or reply (129).
Bytes icmp6_echo(bool request, uint16_t id, uint16_t seq, std::optional<Bytes> payload = {});
/// Any ICMP type/code with 4 bytes of rest-of-header and `payload`.
Bytes icmp(uint8_t type, uint8_t code, const Bytes& payload = {});

/// The 8-byte VXLAN header, then `inner` (an Ethernet frame). With `gbp` the flags are 0x88
/// (G and I) and the policy id goes in bytes 2-3; without, 0x08. `flags` overrides them.
Bytes vxlan(uint32_t vni, std::optional<uint16_t> gbp, const Bytes& inner,
            std::optional<uint8_t> flags = std::nullopt);

/// The underlay of a VXLAN frame.
struct Underlay {
  std::string src = "10.0.16.11", dst = "10.0.16.12";
  uint16_t sport = 43146, dport = 4789;
  uint32_t vni = 1;
  std::optional<uint16_t> gbp = 3;
  std::optional<uint8_t> flags;
  std::vector<VlanTag> tags;
};
/// Outer IP / UDP / VXLAN / inner Ethernet / `inner_ip` (for cooked or raw links).
Bytes vxlan_packet(const Bytes& inner_ip, const Underlay& u = {});
/// The same in Ethernet (with the underlay's VLAN tags).
Bytes vxlan_frame(const Bytes& inner_ip, const Underlay& u = {});

/// Seconds since the epoch -> nanoseconds.
constexpr int64_t ns(int64_t seconds, int64_t micros = 0) {
  return seconds * 1'000'000'000 + micros * 1000;
}

using Timed = std::pair<int64_t, Bytes>;  // (ns since the epoch, frame)

/// Writes `frames` to a pcap file through libpcap (pcap_open_dead + pcap_dump_open) with
/// `linktype` (DLT_ value) and microsecond timestamps. Fails the calling test on error.
void write_pcap(const std::string& path, int linktype, const std::vector<Timed>& frames,
                int snaplen = 262144);

/// Every frame libpcap reads back from `path`, with nanosecond timestamps; `linktype` gets
/// the file's link type.
std::vector<Timed> read_pcap(const std::string& path, int* linktype = nullptr);

/// A fresh directory under the system's temporary directory, removed with its contents
/// when it goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  /// Writes `content` to `name` and returns its path.
  std::string file(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace netplay::frames
