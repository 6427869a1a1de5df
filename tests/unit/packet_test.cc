/// packet::decode on frames built byte by byte: every link type, VLAN tags, IPv4/IPv6
/// underlays, VXLAN(-GBP) and the inner packet, malformed frames and truncation at every
/// byte, and describe()'s tcpdump-like lines.

#include "runner/step/packet.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "tests/unit/support/frames.h"

namespace netplay {
namespace {

using frames::Bytes;
using packet::Frame;
using packet::Malformed;

const packet::PortSet& vxlan_4789() {
  static const packet::PortSet s = [] {
    packet::PortSet p;
    p.set(4789);
    return p;
  }();
  return s;
}

/// Decodes the first `caplen` bytes of `b` (all by default) from a buffer of exactly that
/// size, so that a read past it is a heap overflow the sanitizers report.
Frame decode(const Bytes& b, int linktype = packet::kLinkEthernet,
             const packet::PortSet& ports = vxlan_4789(), size_t caplen = SIZE_MAX) {
  size_t n = std::min(caplen, b.size());
  auto copy = std::make_unique<uint8_t[]>(n ? n : 1);
  std::copy(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n), copy.get());
  Frame f;
  packet::decode(linktype, n ? copy.get() : nullptr, static_cast<uint32_t>(n),
                 static_cast<uint32_t>(b.size()), ports, f);
  return f;
}

Bytes icmp_request(uint16_t id = 7, uint16_t seq = 1) {
  return frames::ipv4("10.255.1.11", "10.255.2.11", 1, frames::icmp_echo(true, id, seq));
}

TEST(PacketDecode, EthernetVxlanGbpWithAnInnerEchoRequest) {
  Bytes b = frames::vxlan_frame(icmp_request());
  Frame f = decode(b);
  EXPECT_EQ(f.malformed, Malformed::kNone);
  EXPECT_EQ(f.caplen, b.size());
  EXPECT_EQ(f.len, b.size());
  EXPECT_EQ(f.pkttype, -1);  // Ethernet does not say the direction
  EXPECT_EQ(f.nvlan, 0);
  EXPECT_EQ(f.ethertype, 0x0800);
  ASSERT_TRUE(f.has_ip);
  EXPECT_EQ(f.outer.src.str(), "10.0.16.11");
  EXPECT_EQ(f.outer.dst.str(), "10.0.16.12");
  EXPECT_EQ(f.outer.proto, 17);
  EXPECT_EQ(f.outer.ttl, 64);
  EXPECT_EQ(f.outer.ip_id, 0x1234);
  EXPECT_EQ(f.outer.ip_len, b.size() - 14);
  EXPECT_TRUE(f.outer.has_ports);
  EXPECT_EQ(f.outer.sport, 43146);
  EXPECT_EQ(f.outer.dport, 4789);
  ASSERT_TRUE(f.vxlan);
  EXPECT_EQ(f.vxlan_flags, 0x88);
  EXPECT_TRUE(f.gbp_bit);
  EXPECT_EQ(f.gbp, 3);
  EXPECT_EQ(f.vni, 1u);
  ASSERT_TRUE(f.has_inner_ip);
  EXPECT_EQ(f.inner.src.str(), "10.255.1.11");
  EXPECT_EQ(f.inner.dst.str(), "10.255.2.11");
  EXPECT_EQ(f.inner.proto, 1);
  ASSERT_TRUE(f.inner.has_icmp);
  EXPECT_EQ(f.inner.icmp_type, 8);
  EXPECT_EQ(f.inner.icmp_code, 0);
  ASSERT_TRUE(f.inner.icmp_echo);
  EXPECT_EQ(f.inner.icmp_id, 7);
  EXPECT_EQ(f.inner.icmp_seq, 1);
  EXPECT_EQ(f.inner.l4_len, 64u);
  EXPECT_EQ(f.inner.payload_len, 56u);
  EXPECT_FALSE(f.inner.has_ports);
  EXPECT_EQ(f.innermost(), &f.inner);
}

TEST(PacketDecode, VniAndPolicyIdUseTheirWholeFields) {
  frames::Underlay u;
  u.vni = 0xabcdef;
  u.gbp = 0xfedc;
  Frame f = decode(frames::vxlan_frame(icmp_request(), u));
  ASSERT_TRUE(f.vxlan);
  EXPECT_EQ(f.vni, 0xabcdefu);
  EXPECT_EQ(f.gbp, 0xfedc);
  EXPECT_EQ(f.malformed, Malformed::kNone);
}

TEST(PacketDecode, VlanTagsAreRecordedOutermostFirst) {
  frames::Underlay one;
  one.tags = {{frames::kTpid8021Q, 100, 5}};  // the priority bits are not part of the id
  Frame f = decode(frames::vxlan_frame(icmp_request(), one));
  ASSERT_EQ(f.nvlan, 1);
  EXPECT_EQ(f.vlan[0], 100);
  EXPECT_EQ(f.ethertype, 0x0800);
  EXPECT_TRUE(f.vxlan);
  EXPECT_EQ(f.inner.icmp_seq, 1);

  frames::Underlay qinq;
  qinq.tags = {{frames::kTpid8021ad, 200}, {frames::kTpid8021Q, 4094}};
  f = decode(frames::vxlan_frame(icmp_request(), qinq));
  ASSERT_EQ(f.nvlan, 2);
  EXPECT_EQ(f.vlan[0], 200);
  EXPECT_EQ(f.vlan[1], 4094);
  EXPECT_EQ(f.ethertype, 0x0800);
  EXPECT_EQ(f.outer.src.str(), "10.0.16.11");
  EXPECT_EQ(f.vni, 1u);
  EXPECT_EQ(f.malformed, Malformed::kNone);
}

TEST(PacketDecode, InnerVlanTagsAreSkipped) {
  Bytes inner = frames::ether(icmp_request(), {{frames::kTpid8021Q, 30}});
  Bytes b = frames::ether(frames::ipv4("10.0.16.11", "10.0.16.12", 17,
                                       frames::udp(1, 4789, frames::vxlan(9, 3, inner))));
  Frame f = decode(b);
  EXPECT_EQ(f.nvlan, 0);  // only the outer frame's tags are recorded
  ASSERT_TRUE(f.has_inner_ip);
  EXPECT_EQ(f.inner.dst.str(), "10.255.2.11");
  EXPECT_EQ(f.vni, 9u);
}

TEST(PacketDecode, LinuxCookedV1GivesThePacketType) {
  Bytes ip = frames::ipv4("10.0.16.11", "10.0.16.12", 17,
                          frames::udp(43146, 4789, frames::vxlan(1, 3, frames::ether(icmp_request()))));
  Frame out = decode(frames::sll(ip, 4), packet::kLinkSll);
  EXPECT_EQ(out.pkttype, 4);
  EXPECT_EQ(out.ethertype, 0x0800);
  EXPECT_EQ(out.outer.dst.str(), "10.0.16.12");
  EXPECT_EQ(out.gbp, 3);
  EXPECT_EQ(out.inner.icmp_id, 7);
  EXPECT_EQ(out.malformed, Malformed::kNone);

  Frame in = decode(frames::sll(ip, 0), packet::kLinkSll);
  EXPECT_EQ(in.pkttype, 0);
  EXPECT_TRUE(in.vxlan);

  Frame cut = decode(frames::sll(ip, 0), packet::kLinkSll, vxlan_4789(), 15);
  EXPECT_EQ(cut.malformed, Malformed::kLinkTruncated);
  EXPECT_FALSE(cut.has_ip);
}

TEST(PacketDecode, LinuxCookedV2GivesThePacketType) {
  Bytes ip6 = frames::ipv6("fd00::1", "fd00::2", 58, frames::icmp6_echo(false, 3, 4));
  Frame f = decode(frames::sll2(ip6, 4), packet::kLinkSll2);
  EXPECT_EQ(f.pkttype, 4);
  EXPECT_EQ(f.ethertype, 0x86dd);
  ASSERT_TRUE(f.has_ip);
  EXPECT_EQ(f.outer.src.str(), "fd00::1");
  EXPECT_TRUE(f.outer.icmp_echo);
  EXPECT_EQ(f.outer.icmp_type, 129);
  EXPECT_EQ(f.outer.icmp_id, 3);
  EXPECT_EQ(f.outer.icmp_seq, 4);
  EXPECT_FALSE(f.vxlan);
  EXPECT_EQ(f.innermost(), &f.outer);

  Frame host = decode(frames::sll2(ip6, 0), packet::kLinkSll2);
  EXPECT_EQ(host.pkttype, 0);

  Frame cut = decode(frames::sll2(ip6, 0), packet::kLinkSll2, vxlan_4789(), 19);
  EXPECT_EQ(cut.malformed, Malformed::kLinkTruncated);
}

TEST(PacketDecode, RawIpTakesTheVersionFromThePacket) {
  Bytes v4 = frames::ipv4("192.0.2.1", "192.0.2.2", 6, frames::tcp(1234, 80, 1, 0, frames::kSyn));
  Bytes v6 = frames::ipv6("2001:db8::1", "2001:db8::2", 17, frames::udp(5353, 53));
  for (int lt : {packet::kLinkRaw, packet::kLinkRawLinktype}) {
    Frame f = decode(v4, lt);
    EXPECT_EQ(f.ethertype, 0x0800) << lt;
    EXPECT_EQ(f.outer.src.str(), "192.0.2.1") << lt;
    EXPECT_TRUE(f.outer.has_tcp) << lt;
    EXPECT_EQ(f.malformed, Malformed::kNone) << lt;
    Frame g = decode(v6, lt);
    EXPECT_EQ(g.ethertype, 0x86dd) << lt;
    EXPECT_EQ(g.outer.dst.str(), "2001:db8::2") << lt;
    EXPECT_EQ(g.outer.dport, 53) << lt;
    EXPECT_EQ(g.malformed, Malformed::kNone) << lt;
  }
  Frame f4 = decode(v4, packet::kLinkIpv4);
  EXPECT_EQ(f4.outer.sport, 1234);
  Frame f6 = decode(v6, packet::kLinkIpv6);
  EXPECT_EQ(f6.outer.sport, 5353);
  // A link type that names the version refuses the other one.
  EXPECT_EQ(decode(v6, packet::kLinkIpv4).malformed, Malformed::kIpVersion);
  EXPECT_EQ(decode(v4, packet::kLinkIpv6).malformed, Malformed::kIpVersion);
  // Raw IP whose first nibble is neither 4 nor 6.
  Bytes junk = v4;
  junk[0] = 0x55;
  Frame j = decode(junk, packet::kLinkRaw);
  EXPECT_EQ(j.malformed, Malformed::kIpVersion);
  EXPECT_FALSE(j.has_ip);
  EXPECT_EQ(decode(Bytes{}, packet::kLinkRaw).malformed, Malformed::kIpTruncated);
}

TEST(PacketDecode, UnsupportedLinkTypeIsNamed) {
  Frame f = decode(frames::vxlan_frame(icmp_request()), 147);  // DLT_USER0
  EXPECT_EQ(f.malformed, Malformed::kUnsupportedLink);
  EXPECT_FALSE(f.has_ip);
  EXPECT_FALSE(packet::supported_linktype(147));
  for (int lt : {1, 12, 101, 113, 228, 229, 276}) EXPECT_TRUE(packet::supported_linktype(lt));
  EXPECT_EQ(packet::linktype_name(1), "EN10MB");
  EXPECT_EQ(packet::linktype_name(113), "LINUX_SLL");
  EXPECT_EQ(packet::linktype_name(276), "LINUX_SLL2");
  EXPECT_EQ(packet::linktype_name(101), "RAW");
  EXPECT_EQ(packet::linktype_name(147), "DLT 147");
}

TEST(PacketDecode, NonIpFramesCarryOnlyTheLinkLayer) {
  Bytes arp(28, 0);
  Frame f = decode(frames::ether(arp, {{frames::kTpid8021Q, 7}}, frames::kEtherArp));
  EXPECT_EQ(f.malformed, Malformed::kNone);
  EXPECT_FALSE(f.has_ip);
  EXPECT_EQ(f.ethertype, frames::kEtherArp);
  ASSERT_EQ(f.nvlan, 1);
  EXPECT_EQ(f.vlan[0], 7);
  EXPECT_EQ(f.innermost(), nullptr);
}

TEST(PacketDecode, Ipv6UnderlayCarriesVxlan) {
  frames::Underlay u;
  u.src = "fd00:16::11";
  u.dst = "fd00:16::12";
  u.vni = 4097;
  u.gbp = 0x0010;
  Bytes inner = frames::ipv4("10.255.1.11", "10.255.2.11", 6,
                             frames::tcp(40000, 8080, 1000, 0, frames::kSyn));
  Frame f = decode(frames::vxlan_frame(inner, u));
  EXPECT_EQ(f.malformed, Malformed::kNone);
  EXPECT_EQ(f.ethertype, 0x86dd);
  EXPECT_EQ(f.outer.src.family, 6);
  EXPECT_EQ(f.outer.src.str(), "fd00:16::11");
  EXPECT_EQ(f.outer.dst.str(), "fd00:16::12");
  EXPECT_EQ(f.outer.proto, 17);
  EXPECT_EQ(f.outer.dport, 4789);
  ASSERT_TRUE(f.vxlan);
  EXPECT_EQ(f.vni, 4097u);
  EXPECT_EQ(f.gbp, 0x10);
  ASSERT_TRUE(f.has_inner_ip);
  EXPECT_EQ(f.inner.src.family, 4);
  EXPECT_EQ(f.inner.dport, 8080);
}

TEST(PacketDecode, GBitClearMeansNoPolicyId) {
  // Bytes 2-3 hold a value, but without the G bit they are not a policy id.
  Bytes inner = frames::ether(icmp_request());
  Bytes b = frames::ether(frames::ipv4("10.0.16.11", "10.0.16.12", 17,
                                       frames::udp(1, 4789, frames::vxlan(5, 7, inner, 0x08))));
  Frame f = decode(b);
  EXPECT_EQ(f.malformed, Malformed::kNone);
  ASSERT_TRUE(f.vxlan);
  EXPECT_EQ(f.vxlan_flags, 0x08);
  EXPECT_FALSE(f.gbp_bit);
  EXPECT_EQ(f.gbp, 0);
  EXPECT_EQ(f.vni, 5u);
  EXPECT_TRUE(f.has_inner_ip);
}

TEST(PacketDecode, IFlagClearIsMalformedButTheFieldsStay) {
  Bytes inner = frames::ether(icmp_request(9, 2));
  Bytes b = frames::ether(frames::ipv4("10.0.16.11", "10.0.16.12", 17,
                                       frames::udp(1, 4789, frames::vxlan(6, 3, inner, 0x80))));
  Frame f = decode(b);
  EXPECT_EQ(f.malformed, Malformed::kVxlanNoIFlag);
  EXPECT_FALSE(f.malformed_inner);
  EXPECT_EQ(packet::reason_text(f.malformed, f.malformed_inner), "VXLAN I flag not set");
  ASSERT_TRUE(f.vxlan);
  EXPECT_EQ(f.vxlan_flags, 0x80);
  EXPECT_TRUE(f.gbp_bit);
  EXPECT_EQ(f.gbp, 3);
  EXPECT_EQ(f.vni, 6u);
  ASSERT_TRUE(f.has_inner_ip);
  EXPECT_EQ(f.inner.icmp_id, 9);
  EXPECT_EQ(f.inner.icmp_seq, 2);
}

TEST(PacketDecode, InnerTcpSegment) {
  Bytes data = {'h', 'e', 'l', 'l', 'o'};
  Bytes inner = frames::ipv4("10.255.1.11", "10.255.2.11", 6,
                             frames::tcp(40000, 8080, 0x01020304, 0xa0b0c0d0,
                                         frames::kPsh | frames::kAck, data, 8));
  // Decoded in place: the payload pointer points into these bytes, which must outlive it.
  Bytes bytes = frames::vxlan_frame(inner);
  Frame f;
  packet::decode(packet::kLinkEthernet, bytes.data(), static_cast<uint32_t>(bytes.size()),
                 static_cast<uint32_t>(bytes.size()), vxlan_4789(), f);
  EXPECT_EQ(f.malformed, Malformed::kNone);
  const auto& t = f.inner;
  EXPECT_EQ(t.proto, 6);
  ASSERT_TRUE(t.has_ports);
  EXPECT_EQ(t.sport, 40000);
  EXPECT_EQ(t.dport, 8080);
  ASSERT_TRUE(t.has_tcp);
  EXPECT_EQ(t.tcp_seq, 0x01020304u);
  EXPECT_EQ(t.tcp_ack, 0xa0b0c0d0u);
  EXPECT_EQ(t.tcp_flags, packet::kTcpPsh | packet::kTcpAck);
  EXPECT_EQ(t.l4_hdr, 32);  // data offset 8: 12 bytes of options
  EXPECT_EQ(t.l4_len, 37u);
  ASSERT_EQ(t.payload_len, 5u);
  EXPECT_EQ(Bytes(t.payload, t.payload + t.payload_len), data);
  EXPECT_FALSE(t.has_icmp);
}

TEST(PacketDecode, TcpDataOffsetBelowFiveIsMalformed) {
  Bytes inner = frames::ipv4("10.255.1.11", "10.255.2.11", 6,
                             frames::tcp(40000, 8080, 1, 2, frames::kAck, {}, 4));
  Frame f = decode(frames::vxlan_frame(inner));
  EXPECT_EQ(f.malformed, Malformed::kTcpHeaderLength);
  EXPECT_TRUE(f.malformed_inner);
  EXPECT_EQ(packet::reason_text(f.malformed, true), "bad inner TCP header length");
  EXPECT_EQ(f.inner.sport, 40000);  // what came before the bad field stays
  EXPECT_EQ(f.inner.tcp_seq, 1u);
}

TEST(PacketDecode, InnerUdpDatagram) {
  Bytes inner = frames::ipv4("10.255.1.11", "10.255.2.11", 17,
                             frames::udp(5353, 53, Bytes(12, 0xab)));
  Frame f = decode(frames::vxlan_frame(inner));
  EXPECT_EQ(f.malformed, Malformed::kNone);
  EXPECT_EQ(f.inner.proto, 17);
  ASSERT_TRUE(f.inner.has_ports);
  EXPECT_EQ(f.inner.sport, 5353);
  EXPECT_EQ(f.inner.dport, 53);
  EXPECT_EQ(f.inner.payload_len, 12u);
  EXPECT_EQ(f.inner.l4_len, 20u);
  EXPECT_FALSE(f.inner.has_tcp);
}

TEST(PacketDecode, InnerIcmpv6Echo) {
  Bytes inner = frames::ipv6("fd00:255::1:11", "fd00:255::2:11", 58,
                             frames::icmp6_echo(true, 0x4242, 17));
  Frame f = decode(frames::vxlan_frame(inner));
  EXPECT_EQ(f.malformed, Malformed::kNone);
  ASSERT_TRUE(f.has_inner_ip);
  EXPECT_EQ(f.inner.src.str(), "fd00:255::1:11");
  EXPECT_EQ(f.inner.proto, 58);
  EXPECT_EQ(f.inner.ip_len, 40u + 64u);
  ASSERT_TRUE(f.inner.icmp_echo);
  EXPECT_EQ(f.inner.icmp_type, 128);
  EXPECT_EQ(f.inner.icmp_id, 0x4242);
  EXPECT_EQ(f.inner.icmp_seq, 17);
}

TEST(PacketDecode, IcmpOtherThanEchoHasNoIdOrSeq) {
  Frame f = decode(frames::ether(frames::ipv4("10.0.0.1", "10.0.0.2", 1,
                                              frames::icmp(3, 4, Bytes(28, 0)))));
  ASSERT_TRUE(f.outer.has_icmp);
  EXPECT_EQ(f.outer.icmp_type, 3);
  EXPECT_EQ(f.outer.icmp_code, 4);
  EXPECT_FALSE(f.outer.icmp_echo);
  EXPECT_EQ(f.malformed, Malformed::kNone);
}

TEST(PacketDecode, AnEchoCutBeforeItsIdAndSeqIsTruncated) {
  Bytes b = frames::vxlan_frame(icmp_request(7, 1));
  const size_t icmp_at = b.size() - 64;
  for (size_t keep : {0u, 3u}) {
    Frame f = decode(b, packet::kLinkEthernet, vxlan_4789(), icmp_at + keep);
    EXPECT_EQ(f.malformed, Malformed::kIcmpTruncated) << keep;
    EXPECT_FALSE(f.inner.has_icmp) << keep;
  }
  // Type and code are there, id and seq are not: still cut short, type and code kept.
  Frame f = decode(b, packet::kLinkEthernet, vxlan_4789(), icmp_at + 6);
  EXPECT_EQ(f.malformed, Malformed::kIcmpTruncated);
  EXPECT_TRUE(f.malformed_inner);
  EXPECT_TRUE(f.inner.has_icmp);
  EXPECT_EQ(f.inner.icmp_type, 8);
  EXPECT_FALSE(f.inner.icmp_echo);
  // With the 8-byte header whole, only the data is missing: not malformed.
  Frame g = decode(b, packet::kLinkEthernet, vxlan_4789(), icmp_at + 8);
  EXPECT_EQ(g.malformed, Malformed::kNone);
  EXPECT_TRUE(g.inner.icmp_echo);
  EXPECT_EQ(g.inner.icmp_seq, 1);
  EXPECT_EQ(g.inner.payload_len, 0u);
}

TEST(PacketDecode, Ipv6ExtensionHeadersBeforeUdp) {
  Bytes vx = frames::udp(43146, 4789, frames::vxlan(1, 3, frames::ether(icmp_request())));
  // Hop-by-hop, then destination options, then UDP.
  Bytes b = frames::ether(frames::ipv6("fd00:16::11", "fd00:16::12", 0,
                                       frames::ipv6_ext(60, frames::ipv6_ext(17, vx))));
  Frame f = decode(b);
  EXPECT_EQ(f.malformed, Malformed::kNone);
  EXPECT_EQ(f.outer.proto, 17);
  EXPECT_EQ(f.outer.dport, 4789);
  EXPECT_EQ(f.outer.l4_len, vx.size());
  ASSERT_TRUE(f.vxlan);
  EXPECT_EQ(f.inner.icmp_seq, 1);

  // The extension header cut short.
  Frame cut = decode(b, packet::kLinkEthernet, vxlan_4789(), 14 + 40 + 8 + 4);
  EXPECT_EQ(cut.malformed, Malformed::kIpv6ExtTruncated);
  EXPECT_TRUE(cut.has_ip);
  EXPECT_EQ(cut.outer.src.str(), "fd00:16::11");
  EXPECT_EQ(packet::reason_text(cut.malformed, false), "truncated outer IPv6 extension header");
}

TEST(PacketDecode, NonFirstFragmentsHaveNoTransportHeader) {
  Bytes l4 = frames::udp(43146, 4789, Bytes(40, 0));
  frames::Ipv4Options later;
  later.frag = 185;  // offset 1480 bytes, no more fragments
  Frame f = decode(frames::ether(frames::ipv4("10.0.16.11", "10.0.16.12", 17, l4, later)));
  EXPECT_EQ(f.malformed, Malformed::kNone);
  EXPECT_TRUE(f.has_ip);
  EXPECT_TRUE(f.outer.fragment);
  EXPECT_FALSE(f.outer.has_ports);
  EXPECT_FALSE(f.vxlan);  // what looks like a UDP header is the middle of the datagram

  frames::Ipv4Options first;
  first.frag = 0x2000;  // more fragments, offset 0: the header is there
  Frame g = decode(frames::ether(frames::ipv4("10.0.16.11", "10.0.16.12", 17, l4, first)));
  EXPECT_FALSE(g.outer.fragment);
  EXPECT_TRUE(g.outer.has_ports);
  EXPECT_EQ(g.outer.dport, 4789);

  // IPv6: a fragment header with a non-zero offset.
  Bytes frag6 = {17, 0, 0x03, 0x20, 0, 0, 0, 1};  // next UDP, offset 100, id 1
  for (uint8_t byte : l4) frag6.push_back(byte);
  Frame h = decode(frames::ether(frames::ipv6("fd00::1", "fd00::2", 44, frag6)));
  EXPECT_EQ(h.malformed, Malformed::kNone);
  EXPECT_TRUE(h.outer.fragment);
  EXPECT_EQ(h.outer.proto, 17);
  EXPECT_FALSE(h.outer.has_ports);
  EXPECT_FALSE(h.vxlan);
}

TEST(PacketDecode, BadIpVersion) {
  frames::Ipv4Options v5;
  v5.version = 5;
  Frame f = decode(frames::ether(frames::ipv4("10.0.0.1", "10.0.0.2", 17, frames::udp(1, 2), v5),
                                 {}, frames::kEtherIpv4));
  EXPECT_EQ(f.malformed, Malformed::kIpVersion);
  EXPECT_FALSE(f.has_ip);
  EXPECT_EQ(packet::reason_text(f.malformed, false), "bad outer IP version");
  // An IPv6 packet behind the IPv4 ethertype.
  Frame g = decode(frames::ether(frames::ipv6("fd00::1", "fd00::2", 17, frames::udp(1, 2)), {},
                                 frames::kEtherIpv4));
  EXPECT_EQ(g.malformed, Malformed::kIpVersion);
}

TEST(PacketDecode, Ipv4HeaderLengthBelowFive) {
  frames::Ipv4Options o;
  o.ihl = 4;
  Frame f = decode(frames::ether(frames::ipv4("10.0.0.1", "10.0.0.2", 17, frames::udp(1, 2), o)));
  EXPECT_EQ(f.malformed, Malformed::kIpv4HeaderLength);
  EXPECT_FALSE(f.malformed_inner);
  // A bogus header length makes the rest of the header meaningless: no addresses.
  EXPECT_FALSE(f.has_ip);
  EXPECT_FALSE(f.outer.src);
  EXPECT_FALSE(f.outer.has_ports);
  EXPECT_EQ(packet::reason_text(f.malformed, false), "bad outer IPv4 header length");
}

TEST(PacketDecode, Ipv4HeaderLengthPastTheCapturedBytes) {
  frames::Ipv4Options o;
  o.ihl = 15;  // 60 bytes of header, but the whole packet is 20 + 8
  Bytes ip = frames::ipv4("10.0.0.1", "10.0.0.2", 17, frames::udp(1, 2), o);
  ip.resize(28);
  Frame f = decode(frames::ether(ip));
  EXPECT_EQ(f.malformed, Malformed::kIpv4HeaderLength);
  // Options cut by the snap length: the fixed header is whole, its addresses are kept.
  EXPECT_TRUE(f.has_ip);
  EXPECT_EQ(f.outer.src.str(), "10.0.0.1");
  EXPECT_FALSE(f.outer.has_ports);
}

TEST(PacketDecode, Ipv4TotalLengthBelowTheHeader) {
  frames::Ipv4Options o;
  o.total_length = 10;
  Frame f = decode(frames::ether(frames::ipv4("10.0.0.1", "10.0.0.2", 17, frames::udp(1, 4789), o)));
  EXPECT_EQ(f.malformed, Malformed::kIpv4TotalLength);
  EXPECT_FALSE(f.has_ip);  // as with a bad header length: nothing taken from the header
  EXPECT_FALSE(f.outer.dst);
  EXPECT_FALSE(f.vxlan);
  EXPECT_EQ(packet::reason_text(f.malformed, false),
            "outer IPv4 total length below its header length");
}

TEST(PacketDecode, Ipv4TotalLengthBoundsTheTransportBytes) {
  // Ethernet pads short frames: the bytes past the IP total length are not payload.
  Bytes ip = frames::ipv4("10.0.0.1", "10.0.0.2", 17, frames::udp(1, 2, Bytes(2, 9)));
  Bytes b = frames::ether(ip);
  b.resize(60, 0);
  Frame f = decode(b);
  EXPECT_EQ(f.malformed, Malformed::kNone);
  EXPECT_EQ(f.outer.payload_len, 2u);
  EXPECT_EQ(f.outer.l4_len, 10u);
}

TEST(PacketDecode, OnlyTheGivenPortsAreVxlan) {
  Bytes b = frames::vxlan_frame(icmp_request());
  packet::PortSet flannel;
  flannel.set(8472);
  Frame f = decode(b, packet::kLinkEthernet, flannel);
  EXPECT_FALSE(f.vxlan);
  EXPECT_FALSE(f.has_inner_ip);
  EXPECT_EQ(f.malformed, Malformed::kNone);
  EXPECT_EQ(f.innermost(), &f.outer);
  EXPECT_EQ(f.outer.dport, 4789);

  frames::Underlay u;
  u.dport = 8472;
  Frame g = decode(frames::vxlan_frame(icmp_request(), u), packet::kLinkEthernet, flannel);
  EXPECT_TRUE(g.vxlan);
  EXPECT_EQ(g.inner.icmp_id, 7);
  // The source port does not make a frame VXLAN.
  frames::Underlay back;
  back.sport = 4789;
  back.dport = 50000;
  EXPECT_FALSE(decode(frames::vxlan_frame(icmp_request(), back)).vxlan);

  uint16_t list[] = {4789, 8472, 65535};
  packet::PortSet many(list);
  EXPECT_TRUE(many.has(4789));
  EXPECT_TRUE(many.has(8472));
  EXPECT_TRUE(many.has(65535));
  EXPECT_FALSE(many.has(4790));
  EXPECT_FALSE(many.has(0));
}

/// One row of the truncation table: prefixes shorter than `below` bytes (and at least the
/// previous row's) stop with `reason`.
struct Cut {
  size_t below;
  Malformed reason;
  bool inner;
};

TEST(PacketDecode, TruncationAtEveryByteOfAVxlanFrame) {
  Bytes inner = frames::ipv4("10.255.1.11", "10.255.2.11", 6,
                             frames::tcp(40000, 8080, 1000, 0, frames::kSyn));
  Bytes b = frames::vxlan_frame(inner);
  ASSERT_EQ(b.size(), 104u);  // 14 + 20 + 8 + 8 + 14 + 20 + 20
  const Frame full = decode(b);
  ASSERT_EQ(full.malformed, Malformed::kNone);
  const std::vector<Cut> table = {
      {14, Malformed::kLinkTruncated, false},  {34, Malformed::kIpTruncated, false},
      {42, Malformed::kUdpTruncated, false},   {50, Malformed::kVxlanTruncated, false},
      {64, Malformed::kLinkTruncated, true},   {84, Malformed::kIpTruncated, true},
      {104, Malformed::kTcpTruncated, true},
  };
  size_t row = 0;
  for (size_t n = 0; n < b.size(); ++n) {
    while (n >= table[row].below) ++row;
    SCOPED_TRACE("caplen " + std::to_string(n));
    Frame f = decode(b, packet::kLinkEthernet, vxlan_4789(), n);
    EXPECT_EQ(f.caplen, n);
    EXPECT_EQ(f.len, b.size());
    EXPECT_EQ(f.malformed, table[row].reason);
    EXPECT_EQ(f.malformed_inner, table[row].inner);
    // What was decoded before the cut is what the whole frame gives.
    EXPECT_EQ(f.has_ip, n >= 34);
    if (f.has_ip) {
      EXPECT_EQ(f.outer.src, full.outer.src);
      EXPECT_EQ(f.outer.dst, full.outer.dst);
      EXPECT_EQ(f.outer.proto, 17);
      EXPECT_EQ(f.outer.ip_len, full.outer.ip_len);  // from the header, not the capture
    }
    EXPECT_EQ(f.outer.has_ports, n >= 42);
    if (f.outer.has_ports) {
      EXPECT_EQ(f.outer.dport, 4789);
    }
    EXPECT_EQ(f.vxlan, n >= 50);
    if (f.vxlan) {
      EXPECT_EQ(f.vni, full.vni);
      EXPECT_EQ(f.gbp, full.gbp);
    }
    EXPECT_EQ(f.has_inner_ip, n >= 84);
    if (f.has_inner_ip) {
      EXPECT_EQ(f.inner.src, full.inner.src);
      EXPECT_EQ(f.inner.dst, full.inner.dst);
    }
    // tshark shows a TCP header's ports once its first 4 bytes are there.
    EXPECT_EQ(f.inner.has_ports, n >= 88);
    if (f.inner.has_ports) {
      EXPECT_EQ(f.inner.dport, 8080);
    }
    EXPECT_FALSE(f.inner.has_tcp);
    // describe() never reads past the frame either, and names the reason.
    std::string text = packet::describe(f, 0);
    EXPECT_NE(text.find(packet::reason_text(f.malformed, f.malformed_inner)), std::string::npos)
        << text;
  }
}

TEST(PacketDecode, EveryPrefixOfOtherShapesIsConsistent) {
  // Tagged Ethernet, an IPv6 underlay with an extension header, IPv6 inside, ICMPv6; cooked
  // headers; raw IP. Each prefix is either malformed or (cut in a payload) decodes the same
  // headers as the whole frame, and never reads past its bytes.
  frames::Underlay u;
  u.src = "fd00:16::11";
  u.dst = "fd00:16::12";
  u.tags = {{frames::kTpid8021ad, 10}, {frames::kTpid8021Q, 20}};
  Bytes inner6 = frames::ipv6("fd00:255::1", "fd00:255::2", 58, frames::icmp6_echo(true, 1, 2));
  Bytes vx = frames::udp(43146, 4789, frames::vxlan(1, 3, frames::ether(inner6)));
  struct Shape {
    const char* name;
    int linktype;
    Bytes bytes;
  };
  std::vector<Shape> shapes = {
      {"qinq v6 underlay", packet::kLinkEthernet, frames::vxlan_frame(inner6, u)},
      {"v6 ext", packet::kLinkEthernet,
       frames::ether(frames::ipv6("fd00::1", "fd00::2", 60, frames::ipv6_ext(17, vx)))},
      {"sll", packet::kLinkSll,
       frames::sll(frames::ipv4("10.0.16.11", "10.0.16.12", 17, vx), 4)},
      {"sll2", packet::kLinkSll2,
       frames::sll2(frames::ipv4("10.0.16.11", "10.0.16.12", 17, vx), 0)},
      {"raw", packet::kLinkRaw, frames::ipv4("10.0.16.11", "10.0.16.12", 17, vx)},
  };
  for (const auto& s : shapes) {
    const Frame full = decode(s.bytes, s.linktype);
    ASSERT_EQ(full.malformed, Malformed::kNone) << s.name;
    ASSERT_TRUE(full.vxlan) << s.name;
    ASSERT_TRUE(full.inner.icmp_echo) << s.name;
    for (size_t n = 0; n < s.bytes.size(); ++n) {
      SCOPED_TRACE(std::string(s.name) + " caplen " + std::to_string(n));
      Frame f = decode(s.bytes, s.linktype, vxlan_4789(), n);
      bool cut_in_payload = f.malformed == Malformed::kNone;
      if (cut_in_payload) {
        // Only the echo's data may be missing: every header is complete.
        EXPECT_TRUE(f.inner.icmp_echo);
        EXPECT_LT(f.inner.payload_len, full.inner.payload_len);
      }
      if (f.nvlan) {
        for (uint8_t i = 0; i < f.nvlan; ++i) EXPECT_EQ(f.vlan[i], full.vlan[i]);
      }
      if (f.has_ip) {
        EXPECT_EQ(f.outer.src, full.outer.src);
      }
      if (f.vxlan) {
        EXPECT_EQ(f.vni, full.vni);
      }
      if (f.has_inner_ip) {
        EXPECT_EQ(f.inner.dst, full.inner.dst);
      }
      if (f.inner.icmp_echo) {
        EXPECT_EQ(f.inner.icmp_seq, 2);
      }
      EXPECT_FALSE(packet::describe(f, 0).empty());
    }
  }
}

TEST(PacketDecode, VlanTagCutShort) {
  frames::Underlay u;
  u.tags = {{frames::kTpid8021ad, 10}, {frames::kTpid8021Q, 20}};
  Bytes b = frames::vxlan_frame(icmp_request(), u);
  for (size_t n : {14u, 17u, 18u, 21u}) {
    Frame f = decode(b, packet::kLinkEthernet, vxlan_4789(), n);
    EXPECT_EQ(f.malformed, Malformed::kVlanTruncated) << n;
    EXPECT_EQ(packet::reason_text(f.malformed, false), "truncated VLAN tag");
  }
  Frame one = decode(b, packet::kLinkEthernet, vxlan_4789(), 18);
  ASSERT_EQ(one.nvlan, 1);  // the first tag was whole
  EXPECT_EQ(one.vlan[0], 10);
  EXPECT_EQ(decode(b, packet::kLinkEthernet, vxlan_4789(), 22).malformed, Malformed::kIpTruncated);
}

TEST(PacketDecode, ReasonTexts) {
  EXPECT_EQ(packet::reason_text(Malformed::kNone, false), "");
  EXPECT_EQ(packet::reason_text(Malformed::kLinkTruncated, false), "truncated link header");
  EXPECT_EQ(packet::reason_text(Malformed::kLinkTruncated, true), "truncated inner link header");
  EXPECT_EQ(packet::reason_text(Malformed::kIpTruncated, false), "truncated outer IP header");
  EXPECT_EQ(packet::reason_text(Malformed::kIpTruncated, true), "truncated inner IP header");
  EXPECT_EQ(packet::reason_text(Malformed::kUdpTruncated, false), "truncated outer UDP header");
  EXPECT_EQ(packet::reason_text(Malformed::kTcpTruncated, true), "truncated inner TCP header");
  EXPECT_EQ(packet::reason_text(Malformed::kIcmpTruncated, true), "truncated inner ICMP header");
  EXPECT_EQ(packet::reason_text(Malformed::kVxlanTruncated, false), "truncated VXLAN header");
  EXPECT_EQ(packet::reason_text(Malformed::kUnsupportedLink, false), "unsupported link type");
  // Every reason has its own text.
  std::set<std::string> seen;
  for (int m = 1; m < static_cast<int>(Malformed::kCount); ++m)
    EXPECT_TRUE(seen.insert(packet::reason_text(static_cast<Malformed>(m), false)).second) << m;
}

TEST(PacketDescribe, VxlanIcmpIsTwoLinesLikeTcpdump) {
  Frame f = decode(frames::vxlan_frame(icmp_request()));
  // 2024-01-02T03:04:05.000123Z
  EXPECT_EQ(packet::describe(f, frames::ns(1704164645, 123)),
            "03:04:05.000123 IP 10.0.16.11.43146 > 10.0.16.12.4789: VXLAN-GBP, flags [G I] "
            "(0x88), group policy id 3 (tag 0003), vni 1\n"
            "    IP 10.255.1.11 > 10.255.2.11: ICMP echo request, id 7, seq 1, length 64");
}

TEST(PacketDescribe, VxlanWithoutPolicyAndWithVlanAndReasons) {
  frames::Underlay u;
  u.gbp = std::nullopt;
  u.vni = 42;
  u.tags = {{frames::kTpid8021Q, 100}, {frames::kTpid8021Q, 200}};
  Bytes reply = frames::ipv4("10.255.2.11", "10.255.1.11", 1, frames::icmp_echo(false, 7, 1));
  EXPECT_EQ(packet::describe(decode(frames::vxlan_frame(reply, u)), frames::ns(1704164645)),
            "03:04:05.000000 vlan 100,200, IP 10.0.16.11.43146 > 10.0.16.12.4789: VXLAN, flags "
            "[I] (0x08), vni 42\n"
            "    IP 10.255.2.11 > 10.255.1.11: ICMP echo reply, id 7, seq 1, length 64");
  u.tags.clear();
  u.flags = 0x80;
  u.gbp = 4;
  EXPECT_EQ(packet::describe(decode(frames::vxlan_frame(reply, u)), frames::ns(1704164645)),
            "03:04:05.000000 IP 10.0.16.11.43146 > 10.0.16.12.4789: VXLAN-GBP, flags [G] (0x80), "
            "group policy id 4 (tag 0004), vni 42\n"
            "    IP 10.255.2.11 > 10.255.1.11: ICMP echo reply, id 7, seq 1, length 64 "
            "[VXLAN I flag not set]");
}

TEST(PacketDescribe, TcpSegments) {
  Bytes syn = frames::ether(frames::ipv4("10.0.0.1", "10.0.0.2", 6,
                                         frames::tcp(43000, 80, 1000, 0, frames::kSyn)));
  EXPECT_EQ(packet::describe(decode(syn), frames::ns(1704164645, 5)),
            "03:04:05.000005 IP 10.0.0.1.43000 > 10.0.0.2.80: Flags [S], seq 1000, length 0");
  Bytes synack = frames::ether(frames::ipv4(
      "10.0.0.2", "10.0.0.1", 6, frames::tcp(80, 43000, 5000, 1001, frames::kSyn | frames::kAck)));
  EXPECT_EQ(packet::describe(decode(synack), frames::ns(1704164645)),
            "03:04:05.000000 IP 10.0.0.2.80 > 10.0.0.1.43000: Flags [S.], seq 5000, ack 1001, "
            "length 0");
  Bytes data = frames::ether(frames::ipv6(
      "fd00::1", "fd00::2", 6,
      frames::tcp(43000, 80, 1001, 5001, frames::kPsh | frames::kAck, Bytes(7, 'x'), 8)));
  EXPECT_EQ(packet::describe(decode(data), frames::ns(1704164645)),
            "03:04:05.000000 IP6 fd00::1.43000 > fd00::2.80: Flags [P.], seq 1001, ack 5001, "
            "length 7");
}

TEST(PacketDescribe, OtherFrames) {
  const int64_t t = frames::ns(1704164645);
  EXPECT_EQ(packet::describe(decode(frames::ether(Bytes(28, 0), {}, frames::kEtherArp)), t),
            "03:04:05.000000 ethertype 0x0806, length 42");
  EXPECT_EQ(packet::describe(decode(frames::ether(frames::ipv4("10.0.0.1", "10.0.0.2", 17,
                                                                frames::udp(5353, 53, Bytes(4, 0))))),
                             t),
            "03:04:05.000000 IP 10.0.0.1.5353 > 10.0.0.2.53: UDP, length 4");
  EXPECT_EQ(packet::describe(decode(frames::ether(frames::ipv6(
                                 "fd00::1", "fd00::2", 58, frames::icmp6_echo(true, 7, 1)))),
                             t),
            "03:04:05.000000 IP6 fd00::1 > fd00::2: ICMP6, echo request, id 7, seq 1, length 64");
  frames::Ipv4Options frag;
  frag.frag = 185;
  EXPECT_EQ(packet::describe(decode(frames::ether(frames::ipv4("10.0.0.1", "10.0.0.2", 17,
                                                                Bytes(16, 0), frag))),
                             t),
            "03:04:05.000000 IP 10.0.0.1 > 10.0.0.2: ip-proto-17 fragment");
  Bytes cut = frames::ether(frames::ipv4("10.0.0.1", "10.0.0.2", 17, frames::udp(1, 2)));
  EXPECT_EQ(packet::describe(decode(cut, packet::kLinkEthernet, vxlan_4789(), 20), t),
            "03:04:05.000000 [truncated outer IP header], length 42");
}

}  // namespace
}  // namespace netplay
