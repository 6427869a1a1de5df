#include "runner/step/packet.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstring>
#include <ctime>

namespace netplay::packet {

namespace {

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

constexpr uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86dd, kEtherVlan = 0x8100,
                   kEtherQinQ = 0x88a8, kEtherVlanOld = 0x9100;
constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17, kProtoIcmp6 = 58;

inline bool is_vlan(uint16_t t) {
  return t == kEtherVlan || t == kEtherQinQ || t == kEtherVlanOld;
}

struct Cursor {
  const uint8_t* p;
  uint32_t left;
};

/// Skips 802.1Q/802.1ad tags after an ethertype; records the ids (outer frame only).
bool skip_tags(Cursor& c, uint16_t& type, Frame* f) {
  while (is_vlan(type)) {
    if (c.left < 4) return false;
    if (f && f->nvlan < f->vlan.size()) f->vlan[f->nvlan++] = be16(c.p) & 0x0fff;
    type = be16(c.p + 2);
    c.p += 4;
    c.left -= 4;
  }
  return true;
}

/// Decodes an IPv4/IPv6 packet and its L4 header. `want` is 4 or 6 when the link type
/// names the version, 0 when the version nibble decides. Returns false with `why` set when
/// the packet is malformed; the fields decoded before stay.
bool decode_ip(Cursor c, int want, IpLayer& ip, Malformed& why, bool& ok_ip) {
  ok_ip = false;
  if (c.left < 1) {
    why = Malformed::kIpTruncated;
    return false;
  }
  int version = c.p[0] >> 4;
  if ((want && version != want) || (version != 4 && version != 6)) {
    why = Malformed::kIpVersion;
    return false;
  }
  uint32_t l4_avail = 0;
  const uint8_t* l4 = nullptr;
  uint32_t l4_wire = 0;
  if (version == 4) {
    if (c.left < 20) {
      why = Malformed::kIpTruncated;
      return false;
    }
    uint32_t ihl = (c.p[0] & 0x0f) * 4u;
    // A header length below 20 or a total length below the header length makes the header
    // itself bogus: nothing after those two fields is taken from it (tshark neither).
    if (ihl < 20) {
      why = Malformed::kIpv4HeaderLength;
      return false;
    }
    if (be16(c.p + 2) < ihl) {
      why = Malformed::kIpv4TotalLength;
      return false;
    }
    ip.src.family = ip.dst.family = 4;
    std::memcpy(ip.src.bytes.data(), c.p + 12, 4);
    std::memcpy(ip.dst.bytes.data(), c.p + 16, 4);
    ip.proto = c.p[9];
    ip.ttl = c.p[8];
    ip.ip_id = be16(c.p + 4);
    ip.ip_len = be16(c.p + 2);
    ok_ip = true;
    if (ihl > c.left) {  // options cut by the snap length: the fixed header is whole
      why = Malformed::kIpv4HeaderLength;
      return false;
    }
    uint16_t frag = be16(c.p + 6);
    if (frag & 0x1fff) {
      ip.fragment = true;
      return true;
    }
    l4 = c.p + ihl;
    l4_avail = std::min<uint32_t>(c.left, ip.ip_len) - ihl;
    l4_wire = ip.ip_len - ihl;
  } else {
    if (c.left < 40) {
      why = Malformed::kIpTruncated;
      return false;
    }
    ip.src.family = ip.dst.family = 6;
    std::memcpy(ip.src.bytes.data(), c.p + 8, 16);
    std::memcpy(ip.dst.bytes.data(), c.p + 24, 16);
    ip.ttl = c.p[7];
    uint32_t plen = be16(c.p + 4);
    ip.ip_len = 40 + plen;
    ok_ip = true;
    uint8_t next = c.p[6];
    const uint8_t* q = c.p + 40;
    uint32_t left = std::min<uint32_t>(c.left - 40, plen);
    uint32_t wire = plen;
    // Extension headers: hop-by-hop, routing, fragment, destination options.
    for (int n = 0; n < 8; ++n) {
      if (next != 0 && next != 43 && next != 44 && next != 60) break;
      if (left < 8) {
        ip.proto = next;
        why = Malformed::kIpv6ExtTruncated;
        return false;
      }
      uint32_t hl = next == 44 ? 8 : (q[1] + 1u) * 8u;
      if (hl > left) {
        ip.proto = next;
        why = Malformed::kIpv6ExtTruncated;
        return false;
      }
      if (next == 44) {
        ip.fragment = true;
        if (be16(q + 2) & 0xfff8) {  // a non-first fragment: no L4 header here
          ip.proto = q[0];
          return true;
        }
      }
      next = q[0];
      q += hl;
      left -= hl;
      wire = wire >= hl ? wire - hl : 0;
    }
    ip.proto = next;
    l4 = q;
    l4_avail = left;
    l4_wire = wire;
  }
  ip.l4_len = l4_wire;
  switch (ip.proto) {
    case kProtoUdp:
      if (l4_avail < 8) {
        why = Malformed::kUdpTruncated;
        return false;
      }
      ip.has_ports = true;
      ip.sport = be16(l4);
      ip.dport = be16(l4 + 2);
      ip.payload = l4 + 8;
      ip.payload_len = l4_avail - 8;
      return true;
    case kProtoTcp: {
      if (l4_avail < 20) {
        // The ports may be there even when the rest is not (tshark shows them).
        if (l4_avail >= 4) {
          ip.has_ports = true;
          ip.sport = be16(l4);
          ip.dport = be16(l4 + 2);
        }
        why = Malformed::kTcpTruncated;
        return false;
      }
      ip.has_ports = true;
      ip.sport = be16(l4);
      ip.dport = be16(l4 + 2);
      ip.has_tcp = true;
      ip.tcp_seq = be32(l4 + 4);
      ip.tcp_ack = be32(l4 + 8);
      ip.tcp_flags = l4[13];
      uint32_t off = (l4[12] >> 4) * 4u;
      ip.l4_hdr = static_cast<uint16_t>(off);
      if (off < 20) {
        why = Malformed::kTcpHeaderLength;
        return false;
      }
      if (off > l4_avail) off = l4_avail;  // options cut by the snap length
      ip.payload = l4 + off;
      ip.payload_len = l4_avail - off;
      return true;
    }
    case kProtoIcmp:
    case kProtoIcmp6: {
      if (l4_avail < 4) {
        why = Malformed::kIcmpTruncated;
        return false;
      }
      ip.has_icmp = true;
      ip.icmp_type = l4[0];
      ip.icmp_code = l4[1];
      bool echo = ip.proto == kProtoIcmp ? (ip.icmp_type == 8 || ip.icmp_type == 0)
                                         : (ip.icmp_type == 128 || ip.icmp_type == 129);
      // Every ICMP header is 8 bytes (RFC 792), an ICMPv6 echo's too (RFC 4443): an echo
      // cut before its id and seq cannot be paired, and is a truncated header.
      if (l4_avail < 8 && (echo || ip.proto == kProtoIcmp)) {
        why = Malformed::kIcmpTruncated;
        return false;
      }
      if (echo) {
        ip.icmp_echo = true;
        ip.icmp_id = be16(l4 + 4);
        ip.icmp_seq = be16(l4 + 6);
      }
      uint32_t hdr = std::min<uint32_t>(8, l4_avail);
      ip.payload = l4 + hdr;
      ip.payload_len = l4_avail - hdr;
      return true;
    }
    default:
      ip.payload = l4;
      ip.payload_len = l4_avail;
      return true;
  }
}

/// The link layer: sets `type` (the ethertype after tags) and advances `c` to the network
/// header. `want` is set for links that name the IP version.
bool decode_link(int linktype, Cursor& c, Frame& f, uint16_t& type, int& want) {
  want = 0;
  switch (linktype) {
    case kLinkEthernet:
      if (c.left < 14) {
        f.malformed = Malformed::kLinkTruncated;
        return false;
      }
      type = be16(c.p + 12);
      c.p += 14;
      c.left -= 14;
      break;
    case kLinkSll:
      if (c.left < 16) {
        f.malformed = Malformed::kLinkTruncated;
        return false;
      }
      f.pkttype = static_cast<int8_t>(be16(c.p));
      type = be16(c.p + 14);
      c.p += 16;
      c.left -= 16;
      break;
    case kLinkSll2:
      if (c.left < 20) {
        f.malformed = Malformed::kLinkTruncated;
        return false;
      }
      type = be16(c.p);
      f.pkttype = static_cast<int8_t>(c.p[10]);
      c.p += 20;
      c.left -= 20;
      break;
    case kLinkRaw:
    case kLinkRawLinktype:
    case kLinkIpv4:
    case kLinkIpv6:
      want = linktype == kLinkIpv4 ? 4 : linktype == kLinkIpv6 ? 6 : 0;
      if (c.left < 1) {
        f.malformed = Malformed::kIpTruncated;
        return false;
      }
      if (!want && (c.p[0] >> 4) != 4 && (c.p[0] >> 4) != 6) {
        f.malformed = Malformed::kIpVersion;
        return false;
      }
      type = (want ? want : c.p[0] >> 4) == 4 ? kEtherIpv4 : kEtherIpv6;
      f.ethertype = type;
      return true;
    default:
      f.malformed = Malformed::kUnsupportedLink;
      return false;
  }
  if (!skip_tags(c, type, &f)) {
    f.malformed = Malformed::kVlanTruncated;
    return false;
  }
  f.ethertype = type;
  return true;
}

}  // namespace

bool supported_linktype(int linktype) {
  switch (linktype) {
    case kLinkEthernet:
    case kLinkRaw:
    case kLinkRawLinktype:
    case kLinkSll:
    case kLinkSll2:
    case kLinkIpv4:
    case kLinkIpv6:
      return true;
    default:
      return false;
  }
}

std::string linktype_name(int linktype) {
  switch (linktype) {
    case kLinkEthernet: return "EN10MB";
    case kLinkRaw:
    case kLinkRawLinktype: return "RAW";
    case kLinkSll: return "LINUX_SLL";
    case kLinkSll2: return "LINUX_SLL2";
    case kLinkIpv4: return "IPV4";
    case kLinkIpv6: return "IPV6";
    default: return fmt::format("DLT {}", linktype);
  }
}

std::string Addr::str() const {
  if (family == 0) return "";
  char buf[INET6_ADDRSTRLEN];
  if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf)) return "";
  return buf;
}

std::string reason_text(Malformed m, bool inner) {
  std::string_view layer = inner ? "inner " : "outer ";
  switch (m) {
    case Malformed::kNone: return "";
    case Malformed::kLinkTruncated:
      return fmt::format("truncated {}link header", inner ? "inner " : "");
    case Malformed::kVlanTruncated:
      return fmt::format("truncated {}VLAN tag", inner ? "inner " : "");
    case Malformed::kUnsupportedLink: return "unsupported link type";
    case Malformed::kIpTruncated: return fmt::format("truncated {}IP header", layer);
    case Malformed::kIpVersion: return fmt::format("bad {}IP version", layer);
    case Malformed::kIpv4HeaderLength:
      return fmt::format("bad {}IPv4 header length", layer);
    case Malformed::kIpv4TotalLength:
      return fmt::format("{}IPv4 total length below its header length", layer);
    case Malformed::kIpv6ExtTruncated:
      return fmt::format("truncated {}IPv6 extension header", layer);
    case Malformed::kUdpTruncated: return fmt::format("truncated {}UDP header", layer);
    case Malformed::kTcpTruncated: return fmt::format("truncated {}TCP header", layer);
    case Malformed::kTcpHeaderLength: return fmt::format("bad {}TCP header length", layer);
    case Malformed::kIcmpTruncated: return fmt::format("truncated {}ICMP header", layer);
    case Malformed::kVxlanTruncated: return "truncated VXLAN header";
    case Malformed::kVxlanNoIFlag: return "VXLAN I flag not set";
    case Malformed::kCount: break;
  }
  return "malformed";
}

void decode(int linktype, const uint8_t* data, uint32_t caplen, uint32_t len,
            const PortSet& vxlan_ports, Frame& f) {
  f = Frame{};
  f.caplen = caplen;
  f.len = len;
  Cursor c{data, caplen};
  uint16_t type = 0;
  int want = 0;
  if (!decode_link(linktype, c, f, type, want)) return;
  if (type != kEtherIpv4 && type != kEtherIpv6) return;  // ARP and the like: not IP
  if (!want) want = type == kEtherIpv4 ? 4 : 6;
  Malformed why = Malformed::kNone;
  bool ok_ip = false;
  bool whole = decode_ip(c, want, f.outer, why, ok_ip);
  f.has_ip = ok_ip;
  if (!whole) {
    f.malformed = why;
    return;
  }
  const IpLayer& o = f.outer;
  if (o.proto != kProtoUdp || !o.has_ports || !vxlan_ports.has(o.dport)) return;

  // VXLAN: flags(1) reserved/GBP flags(1) policy id(2) VNI(3) reserved(1).
  if (o.payload_len < 8) {
    f.malformed = Malformed::kVxlanTruncated;
    return;
  }
  const uint8_t* v = o.payload;
  f.vxlan = true;
  f.vxlan_flags = v[0];
  f.gbp_bit = (v[0] & 0x80) != 0;
  if (f.gbp_bit) f.gbp = be16(v + 2);
  f.vni = (uint32_t{v[4]} << 16) | (uint32_t{v[5]} << 8) | v[6];
  if (!(v[0] & 0x08)) f.malformed = Malformed::kVxlanNoIFlag;

  Cursor ic{v + 8, o.payload_len - 8};
  if (ic.left < 14) {
    if (f.malformed == Malformed::kNone) {
      f.malformed = Malformed::kLinkTruncated;
      f.malformed_inner = true;
    }
    return;
  }
  uint16_t itype = be16(ic.p + 12);
  ic.p += 14;
  ic.left -= 14;
  if (!skip_tags(ic, itype, nullptr)) {
    if (f.malformed == Malformed::kNone) {
      f.malformed = Malformed::kVlanTruncated;
      f.malformed_inner = true;
    }
    return;
  }
  if (itype != kEtherIpv4 && itype != kEtherIpv6) return;
  bool inner_ok = false;
  bool iwhole = decode_ip(ic, itype == kEtherIpv4 ? 4 : 6, f.inner, why, inner_ok);
  f.has_inner_ip = inner_ok;
  if (!iwhole && f.malformed == Malformed::kNone) {
    f.malformed = why;
    f.malformed_inner = true;
  }
}

std::string proto_name(uint8_t proto) {
  switch (proto) {
    case kProtoIcmp: return "icmp";
    case kProtoTcp: return "tcp";
    case kProtoUdp: return "udp";
    case kProtoIcmp6: return "icmpv6";
    default: return std::to_string(proto);
  }
}

namespace {

std::string endpoint(const Addr& a, bool ports, uint16_t port) {
  std::string s = a.str();
  if (ports) s += fmt::format(".{}", port);
  return s;
}

std::string tcp_flags(uint8_t fl) {
  std::string s;
  if (fl & kTcpSyn) s += 'S';
  if (fl & kTcpFin) s += 'F';
  if (fl & kTcpRst) s += 'R';
  if (fl & kTcpPsh) s += 'P';
  if (fl & kTcpAck) s += '.';
  if (s.empty()) s = "none";
  return s;
}

/// One IP packet in tcpdump's words: "IP 10.0.0.1.5 > 10.0.0.2.80: Flags [S], seq 1, ..."
std::string describe_ip(const IpLayer& ip) {
  std::string s = fmt::format("{} {} > {}", ip.src.family == 6 ? "IP6" : "IP",
                              endpoint(ip.src, ip.has_ports, ip.sport),
                              endpoint(ip.dst, ip.has_ports, ip.dport));
  if (ip.fragment && !ip.has_ports && !ip.has_icmp)
    return s + fmt::format(": ip-proto-{} fragment", ip.proto);
  if (ip.has_tcp) {
    s += fmt::format(": Flags [{}], seq {}", tcp_flags(ip.tcp_flags), ip.tcp_seq);
    if (ip.tcp_flags & kTcpAck) s += fmt::format(", ack {}", ip.tcp_ack);
    return s + fmt::format(", length {}", ip.l4_len >= ip.l4_hdr ? ip.l4_len - ip.l4_hdr : 0);
  }
  if (ip.proto == kProtoUdp && ip.has_ports)
    return s + fmt::format(": UDP, length {}", ip.l4_len >= 8 ? ip.l4_len - 8 : 0);
  if (ip.has_icmp) {
    bool v6 = ip.proto == kProtoIcmp6;
    std::string what;
    if (ip.icmp_echo) {
      bool req = v6 ? ip.icmp_type == 128 : ip.icmp_type == 8;
      what = fmt::format("{} echo {}, id {}, seq {}", v6 ? "ICMP6," : "ICMP",
                         req ? "request" : "reply", ip.icmp_id, ip.icmp_seq);
    } else {
      what = fmt::format("{} type {} code {}", v6 ? "ICMP6," : "ICMP", ip.icmp_type,
                         ip.icmp_code);
    }
    return s + fmt::format(": {}, length {}", what, ip.l4_len);
  }
  return s + fmt::format(": {}, length {}", proto_name(ip.proto), ip.l4_len);
}

std::string clock_of(int64_t ts_ns) {
  time_t secs = static_cast<time_t>(ts_ns / 1'000'000'000);
  long us = static_cast<long>((ts_ns % 1'000'000'000) / 1000);
  if (us < 0) us = 0;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:02}:{:02}:{:02}.{:06}", tm.tm_hour, tm.tm_min, tm.tm_sec, us);
}

}  // namespace

std::string describe(const Frame& f, int64_t ts_ns) {
  std::string s = clock_of(ts_ns) + " ";
  if (f.nvlan) {
    s += "vlan ";
    for (uint8_t i = 0; i < f.nvlan; ++i) s += fmt::format("{}{}", i ? "," : "", f.vlan[i]);
    s += ", ";
  }
  if (!f.has_ip) {
    if (f.malformed != Malformed::kNone)
      return s + fmt::format("[{}], length {}", reason_text(f.malformed, false), f.len);
    return s + fmt::format("ethertype 0x{:04x}, length {}", f.ethertype, f.len);
  }
  s += describe_ip(f.outer);
  if (f.vxlan) {
    // tcpdump's own words, with the policy id the GBP extension carries.
    std::string flags;
    if (f.vxlan_flags & 0x80) flags += "G";
    if (f.vxlan_flags & 0x08) flags += flags.empty() ? "I" : " I";
    size_t colon = s.find(": UDP");
    if (colon != std::string::npos) s.resize(colon);
    s += fmt::format(": VXLAN{}, flags [{}] (0x{:02x}), ", f.gbp_bit ? "-GBP" : "", flags,
                     f.vxlan_flags);
    if (f.gbp_bit) s += fmt::format("group policy id {} (tag {:04x}), ", f.gbp, f.gbp);
    s += fmt::format("vni {}", f.vni);
    if (f.has_inner_ip) s += "\n    " + describe_ip(f.inner);
  }
  if (f.malformed != Malformed::kNone)
    s += fmt::format(" [{}]", reason_text(f.malformed, f.malformed_inner));
  return s;
}

}  // namespace netplay::packet
