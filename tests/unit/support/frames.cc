#include "tests/unit/support/frames.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>

namespace netplay::frames {

namespace {

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
// One byte at a time: GCC 12 takes a range insert after a braced list for an over-read.
void append(Bytes& b, const Bytes& more) {
  for (uint8_t x : more) b.push_back(x);
}

Bytes mac(const std::string& text) {
  Bytes out(6, 0);
  unsigned v[6] = {};
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
                  &v[5]) != 6)
    ADD_FAILURE() << "bad MAC in a test: " << text;
  for (int i = 0; i < 6; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(v[i]);
  return out;
}

Bytes addr(const std::string& text, int family) {
  Bytes out(family == AF_INET ? 4 : 16, 0);
  if (inet_pton(family, text.c_str(), out.data()) != 1)
    ADD_FAILURE() << "bad address in a test: " << text;
  return out;
}

uint16_t type_of(const Bytes& payload, std::optional<uint16_t> ethertype) {
  if (ethertype) return *ethertype;
  if (payload.empty()) return kEtherArp;
  return (payload[0] >> 4) == 6 ? kEtherIpv6 : kEtherIpv4;
}

Bytes ping_payload() {
  Bytes p(56);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(i);
  return p;
}

}  // namespace

Bytes ether(const Bytes& payload, std::vector<VlanTag> tags, std::optional<uint16_t> ethertype,
            const std::string& src_mac, const std::string& dst_mac) {
  Bytes b = mac(dst_mac);
  append(b, mac(src_mac));
  for (const auto& t : tags) {
    put16(b, t.tpid);
    put16(b, static_cast<uint16_t>((t.pcp << 13) | (t.vid & 0x0fff)));
  }
  put16(b, type_of(payload, ethertype));
  append(b, payload);
  return b;
}

Bytes sll(const Bytes& payload, uint16_t pkttype, std::optional<uint16_t> ethertype) {
  Bytes b;
  put16(b, pkttype);
  put16(b, 1);  // ARPHRD_ETHER
  put16(b, 6);  // address length
  append(b, mac("02:00:00:00:00:01"));
  put16(b, 0);  // address padding to 8 bytes
  put16(b, type_of(payload, ethertype));
  append(b, payload);
  return b;
}

Bytes sll2(const Bytes& payload, uint8_t pkttype, std::optional<uint16_t> ethertype,
           uint32_t ifindex) {
  Bytes b;
  put16(b, type_of(payload, ethertype));
  put16(b, 0);  // reserved
  put32(b, ifindex);
  put16(b, 1);  // ARPHRD_ETHER
  b.push_back(pkttype);
  b.push_back(6);  // address length
  append(b, mac("02:00:00:00:00:01"));
  put16(b, 0);
  append(b, payload);
  return b;
}

Bytes ipv4(const std::string& src, const std::string& dst, uint8_t proto, const Bytes& payload,
           const Ipv4Options& o) {
  const size_t hdr = std::max<size_t>(o.ihl, 5) * 4;
  Bytes b;
  b.push_back(static_cast<uint8_t>((o.version << 4) | (o.ihl & 0x0f)));
  b.push_back(0);  // DSCP/ECN
  put16(b, o.total_length ? *o.total_length : static_cast<uint16_t>(hdr + payload.size()));
  put16(b, o.id);
  put16(b, o.frag);
  b.push_back(o.ttl);
  b.push_back(proto);
  put16(b, 0);  // checksum, below
  append(b, addr(src, AF_INET));
  append(b, addr(dst, AF_INET));
  b.resize(hdr, 0);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < hdr; i += 2) sum += (uint32_t{b[i]} << 8) | b[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  b[10] = static_cast<uint8_t>(~sum >> 8);
  b[11] = static_cast<uint8_t>(~sum);
  append(b, payload);
  return b;
}

Bytes ipv6(const std::string& src, const std::string& dst, uint8_t next, const Bytes& payload,
           uint8_t hop_limit) {
  Bytes b;
  put32(b, 0x60000000u);
  put16(b, static_cast<uint16_t>(payload.size()));
  b.push_back(next);
  b.push_back(hop_limit);
  append(b, addr(src, AF_INET6));
  append(b, addr(dst, AF_INET6));
  append(b, payload);
  return b;
}

Bytes ipv6_ext(uint8_t next, const Bytes& payload) {
  Bytes b{next, 0, 1, 4, 0, 0, 0, 0};  // length 0: 8 bytes; a PadN option fills them
  append(b, payload);
  return b;
}

Bytes ip(const std::string& src, const std::string& dst, uint8_t proto, const Bytes& payload) {
  if (src.find(':') != std::string::npos) return ipv6(src, dst, proto, payload);
  return ipv4(src, dst, proto, payload);
}

Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, static_cast<uint16_t>(8 + payload.size()));
  put16(b, 0);
  append(b, payload);
  return b;
}

Bytes tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
          const Bytes& payload, uint8_t data_offset) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put32(b, seq);
  put32(b, ack);
  b.push_back(static_cast<uint8_t>(data_offset << 4));
  b.push_back(flags);
  put16(b, 64240);  // window
  put16(b, 0);      // checksum
  put16(b, 0);      // urgent pointer
  if (data_offset > 5) b.resize(static_cast<size_t>(data_offset) * 4, 1);  // NOP options
  append(b, payload);
  return b;
}

Bytes icmp(uint8_t type, uint8_t code, const Bytes& payload) {
  Bytes b{type, code, 0, 0, 0, 0, 0, 0};
  append(b, payload);
  return b;
}

Bytes icmp_echo(bool request, uint16_t id, uint16_t seq, std::optional<Bytes> payload) {
  Bytes b{static_cast<uint8_t>(request ? 8 : 0), 0, 0, 0};
  put16(b, id);
  put16(b, seq);
  append(b, payload ? *payload : ping_payload());
  return b;
}

Bytes icmp6_echo(bool request, uint16_t id, uint16_t seq, std::optional<Bytes> payload) {
  Bytes b{static_cast<uint8_t>(request ? 128 : 129), 0, 0, 0};
  put16(b, id);
  put16(b, seq);
  append(b, payload ? *payload : ping_payload());
  return b;
}

Bytes vxlan(uint32_t vni, std::optional<uint16_t> gbp, const Bytes& inner,
            std::optional<uint8_t> flags) {
  Bytes b;
  b.push_back(flags ? *flags : (gbp ? 0x88 : 0x08));
  b.push_back(0);
  put16(b, gbp.value_or(0));
  b.push_back(static_cast<uint8_t>(vni >> 16));
  b.push_back(static_cast<uint8_t>(vni >> 8));
  b.push_back(static_cast<uint8_t>(vni));
  b.push_back(0);
  append(b, inner);
  return b;
}

Bytes vxlan_packet(const Bytes& inner_ip, const Underlay& u) {
  Bytes inner = ether(inner_ip, {}, std::nullopt, "ee:ee:0a:ff:01:0b", "ee:ee:0a:ff:02:0b");
  return ip(u.src, u.dst, 17, udp(u.sport, u.dport, vxlan(u.vni, u.gbp, inner, u.flags)));
}

Bytes vxlan_frame(const Bytes& inner_ip, const Underlay& u) {
  return ether(vxlan_packet(inner_ip, u), u.tags);
}

void write_pcap(const std::string& path, int linktype, const std::vector<Timed>& frames,
                int snaplen) {
  pcap_t* dead = pcap_open_dead(linktype, snaplen);
  ASSERT_NE(dead, nullptr);
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  if (!d) {
    ADD_FAILURE() << path << ": " << pcap_geterr(dead);
    pcap_close(dead);
    return;
  }
  for (const auto& [ts, bytes] : frames) {
    pcap_pkthdr h{};
    h.ts.tv_sec = ts / 1'000'000'000;
    h.ts.tv_usec = (ts % 1'000'000'000) / 1000;
    h.len = static_cast<bpf_u_int32>(bytes.size());
    h.caplen = std::min<bpf_u_int32>(h.len, static_cast<bpf_u_int32>(snaplen));
    pcap_dump(reinterpret_cast<u_char*>(d), &h, bytes.data());
  }
  pcap_dump_close(d);
  pcap_close(dead);
}

std::vector<Timed> read_pcap(const std::string& path, int* linktype) {
  std::vector<Timed> out;
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO,
                                                      err);
  if (!p) {
    ADD_FAILURE() << path << ": " << err;
    return out;
  }
  if (linktype) *linktype = pcap_datalink(p);
  pcap_pkthdr* h = nullptr;
  const u_char* data = nullptr;
  int rc;
  while ((rc = pcap_next_ex(p, &h, &data)) == 1)
    out.emplace_back(int64_t{h->ts.tv_sec} * 1'000'000'000 + h->ts.tv_usec,
                     Bytes(data, data + h->caplen));
  if (rc != PCAP_ERROR_BREAK) ADD_FAILURE() << path << ": " << pcap_geterr(p);
  pcap_close(p);
  return out;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "netplay-unit-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
  dir_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string TempDir::file(const std::string& name, const std::string& content) const {
  std::ofstream(dir_ / name, std::ios::binary) << content;
  return path(name);
}

}  // namespace netplay::frames
