#pragma once
/// Decoding one captured frame: link layer (Ethernet with 802.1Q/802.1ad tags, Linux cooked
/// v1 and v2, raw IP), IPv4/IPv6, TCP/UDP/ICMP/ICMPv6 and VXLAN with its Group Based Policy
/// extension (draft-smith-vxlan-group-policy: flags 0x88, policy id in bytes 2-3, VNI in
/// bytes 4-6), then the encapsulated frame the same way.
///
/// Hand-written rather than a dissector library: libpcap hands over bytes, and the fields
/// needed here are a few fixed offsets per header. A frame is decoded in one pass without
/// allocating, so a file streams at millions of frames a second with flat memory. Every
/// length is checked against the captured bytes; what could not be decoded is named in
/// `malformed` and the fields decoded before it stay valid (as tshark shows them).

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace netplay::packet {

// Link types as libpcap reports them (pcap_datalink()).
inline constexpr int kLinkEthernet = 1;    // DLT_EN10MB
inline constexpr int kLinkRaw = 12;        // DLT_RAW (LINKTYPE_RAW 101 in files)
inline constexpr int kLinkRawLinktype = 101;
inline constexpr int kLinkSll = 113;       // DLT_LINUX_SLL, what `-i any` gives
inline constexpr int kLinkIpv4 = 228;      // DLT_IPV4
inline constexpr int kLinkIpv6 = 229;      // DLT_IPV6
inline constexpr int kLinkSll2 = 276;      // DLT_LINUX_SLL2

/// True for the link types decode() understands.
bool supported_linktype(int linktype);
/// "EN10MB", "LINUX_SLL", ... (libpcap's names), or "DLT <n>".
std::string linktype_name(int linktype);

/// An IPv4 or IPv6 address (family 0: none).
struct Addr {
  uint8_t family = 0;  // 0, 4 or 6
  std::array<uint8_t, 16> bytes{};

  bool operator==(const Addr&) const = default;
  auto operator<=>(const Addr&) const = default;
  explicit operator bool() const { return family != 0; }
  /// Dotted quad, or IPv6 as inet_ntop writes it; "" for none.
  std::string str() const;
};

/// Why a frame could not be decoded completely. The text (reason_text) is what reports and
/// `netplay decode` print; keep it stable.
enum class Malformed : uint8_t {
  kNone,
  kLinkTruncated,         // Ethernet / cooked header cut short
  kVlanTruncated,
  kUnsupportedLink,
  kIpTruncated,           // fewer bytes than the fixed IPv4/IPv6 header
  kIpVersion,             // version nibble not 4 (or 6 where the link says which)
  kIpv4HeaderLength,      // IHL below 5 or past the captured bytes
  kIpv4TotalLength,       // total length below the header length
  kIpv6ExtTruncated,      // an extension header cut short
  kUdpTruncated,
  kTcpTruncated,
  kTcpHeaderLength,       // data offset below 5
  kIcmpTruncated,
  kVxlanTruncated,
  kVxlanNoIFlag,          // I flag clear: the VNI is not valid
  kCount
};
/// "truncated outer IPv4 header", "VXLAN I flag not set", ...; `inner` picks the layer word.
std::string reason_text(Malformed m, bool inner);

/// One IP packet's headers: the outer packet, or the one a VXLAN frame carries.
struct IpLayer {
  Addr src, dst;
  uint8_t proto = 0;        // IPv4 protocol / IPv6 upper-layer next header
  uint8_t ttl = 0;
  uint16_t ip_id = 0;       // IPv4 identification (0 for IPv6)
  uint32_t ip_len = 0;      // IPv4 total length / IPv6 40 + payload length
  bool fragment = false;    // a non-first IPv4 fragment or an IPv6 fragment header: no L4
  bool has_ports = false;   // TCP or UDP ports decoded
  uint16_t sport = 0, dport = 0;
  bool has_icmp = false;    // ICMP/ICMPv6 type and code decoded
  uint8_t icmp_type = 0, icmp_code = 0;
  bool icmp_echo = false;   // echo request/reply: id and seq valid
  uint16_t icmp_id = 0, icmp_seq = 0;
  bool has_tcp = false;     // TCP flags, seq and ack valid
  uint8_t tcp_flags = 0;
  uint32_t tcp_seq = 0, tcp_ack = 0;
  /// The L4 payload as captured (may be shorter than on the wire), for matching packets.
  const uint8_t* payload = nullptr;
  uint32_t payload_len = 0;  // captured
  uint32_t l4_len = 0;       // on the wire, from the IP lengths
  uint16_t l4_hdr = 0;       // TCP header length (data offset)
};

inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08,
                         kTcpAck = 0x10;

/// Everything decode() learned about one frame. Pointers point into the frame's bytes.
struct Frame {
  uint32_t caplen = 0, len = 0;
  /// Linux cooked headers' packet type (0 host, 1 broadcast, 2 multicast, 3 other host,
  /// 4 outgoing); -1 when the link type does not say.
  int8_t pkttype = -1;
  uint8_t nvlan = 0;
  std::array<uint16_t, 4> vlan{};  // outermost first
  uint16_t ethertype = 0;           // of the outer frame after the tags
  bool has_ip = false;
  IpLayer outer;
  bool vxlan = false;
  uint8_t vxlan_flags = 0;
  bool gbp_bit = false;     // G flag (0x80): policy id valid
  uint16_t gbp = 0;
  uint32_t vni = 0;
  bool has_inner_ip = false;
  IpLayer inner;
  Malformed malformed = Malformed::kNone;
  bool malformed_inner = false;  // the reason is about the encapsulated frame

  /// The packet that traffic questions are about: the inner one of a VXLAN frame.
  const IpLayer* innermost() const {
    return has_inner_ip ? &inner : (has_ip ? &outer : nullptr);
  }
};

/// UDP ports that carry VXLAN, as a bitmap over all 65536 ports.
class PortSet {
 public:
  PortSet() = default;
  explicit PortSet(std::span<const uint16_t> ports) {
    for (uint16_t p : ports) set(p);
  }
  void set(uint16_t p) { bits_[p >> 6] |= uint64_t{1} << (p & 63); }
  bool has(uint16_t p) const { return (bits_[p >> 6] >> (p & 63)) & 1; }

 private:
  std::array<uint64_t, 1024> bits_{};
};

/// Decodes `data` (caplen bytes captured of a `len`-byte frame) of `linktype`.
void decode(int linktype, const uint8_t* data, uint32_t caplen, uint32_t len,
            const PortSet& vxlan_ports, Frame& out);

/// "icmp", "tcp", "udp", "icmpv6", or the number.
std::string proto_name(uint8_t proto);

/// tcpdump's one-line form of a frame at `ts_ns` (nanoseconds since the epoch, UTC):
/// "12:00:01.000123 IP 10.0.0.1.43146 > 10.0.0.2.4789: VXLAN-GBP, flags [G I] (0x88),
/// group policy id 3 (tag 0003), vni 1" and, for VXLAN, a second line for the inner packet (as the
/// Silk runbook shows tcpdump's output). Lines end without a newline; the second starts
/// with "    ".
std::string describe(const Frame& f, int64_t ts_ns);

}  // namespace netplay::packet
