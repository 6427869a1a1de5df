#!/usr/bin/env python3
"""Capture files for netplay's decoder tests and benchmarks, from the standard library only.

Writes classic pcap (microsecond or nanosecond magic, either byte order) or pcapng (SHB, one
IDB per interface, EPB; interfaces may differ in link type and timestamp resolution) with
frames of these link types: EN10MB, LINUX_SLL, LINUX_SLL2, RAW (101), IPV4 (228), IPV6 (229).
A pcapng file whose interfaces differ in link type is read by tshark but refused by libpcap
("an interface has a type ... different from the type of the first interface"), so by
tcpdump and netplay too. build() can also put VLAN tags behind a cooked (SLL/SLL2) header,
where libpcap re-inserts them; the mixes do not.

Frames: VXLAN and VXLAN-GBP (flags 0x88, group policy id in bytes 2-3, VNI in bytes 4-6)
over an IPv4 or IPv6 underlay, to UDP 4789 or 8472, behind no tag, an 802.1Q tag or QinQ
(0x88a8 then 0x8100); the inner Ethernet frame carries IPv4/IPv6 with TCP (SYN / SYN-ACK
pairs), UDP, ICMP or ICMPv6 (echo request / reply pairs with ids and seqs), or ARP. Frames
that are not VXLAN: ARP, plain UDP, TCP and ICMP. Bad frames: cut at every layer (the record's
caplen below its len, or the frame itself short), a bad IP version, IHL < 5, an IPv4 total
length below the header length, a VXLAN header with the I flag clear.

Everything is deterministic for a given --seed. Each frame carries its truth: the columns of
`netplay decode --format tsv` that a decoder which prints a layer's fields only when the
layer's whole header was captured must print, whether the frame is malformed, and where it
was damaged (`--meta FILE` writes them as JSON lines). The tests compare netplay with tshark,
not with this truth; the truth says what was written, to settle a disagreement.

  pcap_gen.py OUT [--frames N] [--format pcap|pcapng] [--mix lab|many|bad|bench]
             [--link EN10MB[,LINUX_SLL2...]] [--ports 4789[,8472]] [--underlay v4|v6|both]
             [--tsresol us|ns] [--endian little|big] [--seed S] [--meta FILE]
  pcap_gen.py --fuzz-seeds DIR      one file per seed: a link-type byte, then one frame

Mixes: lab (a few Silk cells: VNI 1, a tag per app, ping and TCP pairs, some unanswered,
some ARP and underlay chatter), many (hundreds of tags and VNIs, both underlays, VLAN/QinQ,
G bit on and off, all inner protocols, some non-VXLAN), bad (damaged frames of every kind,
each next to a good one), bench (a few hundred templates of the `many` kinds without damage,
written over and over with new timestamps: a million frames in a few seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import random
import struct
import sys
from typing import Iterable

LINKTYPES = {"EN10MB": 1, "RAW": 101, "LINUX_SLL": 113, "IPV4": 228, "IPV6": 229,
             "LINUX_SLL2": 276}
# The first byte of a fuzz seed picks the link type of the frame after it.
FUZZ_LINKS = ["EN10MB", "LINUX_SLL", "LINUX_SLL2", "RAW"]

COLUMNS = ["frame", "vlan", "outer_src", "outer_dst", "udp_dport", "vxlan_flags", "gbp", "vni",
           "inner_src", "inner_dst", "proto", "sport", "dport", "malformed"]

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_8021Q, ETH_8021AD = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Inner ports no dissector claims as a tunnel (4789/4790/8472/6081 never appear inside).
TCP_PORTS = [80, 443, 5432, 8080, 9090, 15000]
UDP_PORTS = [7000, 9999, 12345, 20000, 40000, 51821]


# ---- checksums and headers --------------------------------------------------------------

def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def addr(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


def is_v6(a: str) -> bool:
    return ":" in a


def pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    if is_v6(src):
        return addr(src) + addr(dst) + struct.pack("!IxxxB", length, proto)
    return addr(src) + addr(dst) + struct.pack("!xBH", proto, length)


def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 0, ttl: int = 64,
         ihl: int = 5, version: int = 4, tot_len: int | None = None) -> bytes:
    # Options (IHL > 5): Router Alert then NOPs.
    opts = b""
    if ihl > 5:
        opts = (b"\x94\x04\x00\x00" + b"\x01" * 40)[:(ihl - 5) * 4]
    hdr_len = 20 + len(opts)
    total = hdr_len + len(payload) if tot_len is None else tot_len
    h = struct.pack("!BBHHHBBH4s4s", (version << 4) | (ihl & 0xF), 0, total, ident, 0x4000,
                    ttl, proto, 0, addr(src), addr(dst)) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def ipv6(src: str, dst: str, nxt: int, payload: bytes, hlim: int = 64, flow: int = 0,
         version: int = 6) -> bytes:
    return struct.pack("!IHBB16s16s", (version << 28) | flow, len(payload), nxt, hlim,
                       addr(src), addr(dst)) + payload


def ip(src: str, dst: str, proto: int, payload: bytes, **kw) -> bytes:
    if is_v6(src):
        return ipv6(src, dst, proto, payload, **{k: v for k, v in kw.items()
                                                 if k in ("hlim", "flow", "version")})
    return ipv4(src, dst, proto, payload, **{k: v for k, v in kw.items() if k != "flow"})


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes, checksum: bool = True) -> bytes:
    length = 8 + len(payload)
    h = struct.pack("!HHHH", sport, dport, length, 0)
    if not checksum:
        return h + payload
    c = csum(pseudo(src, dst, 17, length) + h + payload) or 0xFFFF
    return h[:6] + struct.pack("!H", c) + payload


def tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
        payload: bytes = b"", mss: int | None = None, window: int = 64240) -> bytes:
    opts = b""
    if mss is not None:  # MSS, SACK permitted, NOP, window scale 7: a SYN as Linux sends it
        opts = struct.pack("!BBH", 2, 4, mss) + b"\x04\x02\x01\x03\x03\x07"
        opts += b"\x01" * (-len(opts) % 4)
    off = (20 + len(opts)) // 4
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, window, 0, 0) + opts
    c = csum(pseudo(src, dst, 6, len(h) + len(payload)) + h + payload)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload


def icmp_echo(typ: int, ident: int, seq: int, payload: bytes) -> bytes:
    h = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
    c = csum(h + payload)
    return h[:2] + struct.pack("!H", c) + h[4:] + payload


def icmp6_echo(src: str, dst: str, typ: int, ident: int, seq: int, payload: bytes) -> bytes:
    h = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
    c = csum(pseudo(src, dst, 58, len(h) + len(payload)) + h + payload)
    return h[:2] + struct.pack("!H", c) + h[4:] + payload


def arp(op: int, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_IPV4, 6, 4, op, mac(sha), addr(spa), mac(tha),
                       addr(tpa))


def vxlan(vni: int, gbp: int | None = None, flags: int | None = None, flags2: int = 0) -> bytes:
    """VXLAN header; with gbp the G bit is set (flags 0x88) and the id fills bytes 2-3."""
    if flags is None:
        flags = 0x88 if gbp is not None else 0x08
    return struct.pack("!BBHI", flags, flags2, gbp or 0, (vni & 0xFFFFFF) << 8)


def eth_header(dst: str, src: str, ethertype: int, vlans: Iterable[tuple[int, int]] = ()) -> bytes:
    """Ethernet header; vlans are (tpid, vid), outermost first."""
    h = mac(dst) + mac(src)
    for i, (tpid, vid) in enumerate(vlans):
        h += struct.pack("!HH", tpid, ((i & 7) << 13) | vid)
    return h + struct.pack("!H", ethertype)


def link_header(link: str, ethertype: int, vlans=(), src_mac: str = "02:00:00:00:00:01",
                dst_mac: str = "02:00:00:00:00:02", outgoing: bool = False,
                ifindex: int = 2) -> bytes:
    """The link-layer header of one frame; RAW/IPV4/IPV6 have none (no VLAN either)."""
    if link == "EN10MB":
        return eth_header(dst_mac, src_mac, ethertype, vlans)
    tags = b""
    proto = ethertype
    if vlans:  # libpcap re-inserts the tag after the cooked header: TPID as the protocol
        proto = vlans[0][0]
        for i, (tpid, vid) in enumerate(vlans):
            nxt = vlans[i + 1][0] if i + 1 < len(vlans) else ethertype
            tags += struct.pack("!HH", vid, nxt)
    if link == "LINUX_SLL":
        return struct.pack("!HHH8sH", 4 if outgoing else 0, 1, 6, mac(src_mac), proto) + tags
    if link == "LINUX_SLL2":
        return struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, 4 if outgoing else 0, 6,
                           mac(src_mac)) + tags
    if link in ("RAW", "IPV4", "IPV6"):
        return b""
    raise ValueError(f"unknown link type {link}")


# ---- frames with their truth ------------------------------------------------------------

@dataclasses.dataclass
class Frame:
    data: bytes              # the captured bytes
    orig_len: int            # the frame's length on the wire (>= len(data))
    link: str
    kind: str
    # (column, value, offset at which the layer holding it is complete): a column is known
    # when the capture reaches that offset.
    fields: list = dataclasses.field(default_factory=list)
    layers: dict = dataclasses.field(default_factory=dict)   # layer name -> start offset
    headers_end: int = 0     # where the last header a decoder reads ends
    bad: str | None = None   # a malformation that is not a cut: its reason
    bad_layer: str | None = None
    damage_at: int | None = None   # offset of the first damaged byte / layer start
    ts_ns: int = 0
    iface: int = 0
    uport: int | None = None   # the UDP port of a VXLAN frame

    @property
    def malformed(self) -> bool:
        return self.bad is not None or len(self.data) < self.headers_end

    @property
    def damage_offset(self) -> int | None:
        """Where the frame stops being decodable: the damaged layer, or where it was cut."""
        if self.bad is not None:
            return self.damage_at
        return len(self.data) if len(self.data) < self.headers_end else None

    def truth(self) -> dict:
        """The contract's columns (frame excepted) a whole-header decoder prints."""
        t = {c: "" for c in COLUMNS[1:-1]}
        vl = []
        cap = len(self.data)
        for col, val, need in self.fields:
            if self.damage_at is not None and need > self.damage_at:
                continue
            if need > cap:
                continue
            if col == "vlan":
                vl.append(str(val))
            else:
                t[col] = str(val)
        t["vlan"] = ",".join(vl)
        return t

    def meta(self, number: int) -> dict:
        return {"frame": number, "kind": self.kind, "link": self.link, "caplen": len(self.data),
                "len": self.orig_len, "malformed": self.malformed,
                "damage_at": self.damage_offset,
                "layers": self.layers, "truth": self.truth()}

    def as_seen(self, ports) -> "Frame":
        """The frame as a decoder that takes only `ports` for VXLAN sees it: to another port
        it is plain UDP (no VXLAN or inner columns, no VXLAN or inner damage)."""
        if self.uport is None or self.uport in ports:
            return self
        end = self.layers["vxlan"]
        bad = self.bad if self.bad_layer not in ("inner_eth", "inner_ip") else None
        return dataclasses.replace(
            self, kind=self.kind + f":plain-udp-{self.uport}",
            fields=[x for x in self.fields if x[2] <= end], headers_end=min(self.headers_end, end),
            bad=bad, bad_layer=self.bad_layer if bad else None,
            damage_at=self.damage_at if bad else None, uport=None)

    def cut(self, layer: str, k: int, snap: bool = True) -> "Frame":
        """This frame cut k bytes into `layer`; snap: caplen < len, else the frame is short."""
        at = self.layers[layer] + k
        f = dataclasses.replace(self, data=self.data[:at],
                                orig_len=self.orig_len if snap else at,
                                kind=f"cut:{layer}+{k}:{'snap' if snap else 'short'}:{self.kind}")
        return f


def build(link: str = "EN10MB", vlans=(), *, underlay=("10.0.0.1", "10.0.0.2"),
          uport: int = 4789, vport: int | None = None, vni: int | None = 1,
          gbp: int | None = 1, vflags: int | None = None, vflags2: int = 0,
          inner=None, l4: str = "icmp", sport: int = 0, dport: int = 0, seq: int = 0,
          ack: int = 0, tcp_flags: int = TCP_SYN, icmp_type: int = 8, ident: int = 0,
          payload: bytes = b"", inner_arp: bool = False, outer_ihl: int = 5,
          outer_version: int | None = None, outer_totlen: int | None = None,
          inner_ihl: int = 5, inner_version: int | None = None,
          inner_totlen: int | None = None, outgoing: bool = False, ip_id: int = 1,
          pad_to: int = 0, kind: str = "vxlan") -> Frame:
    """One frame. With vni set: VXLAN (gbp None = G bit clear) over UDP to uport (the
    underlay pair's family decides IPv4/IPv6), else a plain frame whose outer L4 is l4
    (inner= is then unused) or ARP (l4='arp'). pad_to: Ethernet padding (zeros) up to that
    length, as a receiver sees a short frame."""
    fields: list = []
    layers: dict = {}
    bad = None
    bad_layer = None

    def l4_bytes(src, dst, proto_name, sp, dp):
        if proto_name == "tcp":
            mss = 1410 if tcp_flags & TCP_SYN else None
            return 6, tcp(src, dst, sp, dp, seq, ack, tcp_flags, payload, mss=mss)
        if proto_name == "udp":
            return 17, udp(src, dst, sp, dp, payload)
        if proto_name == "icmp":
            if is_v6(src):
                return 58, icmp6_echo(src, dst, 128 if icmp_type == 8 else 129, ident, seq,
                                      payload)
            return 1, icmp_echo(icmp_type, ident, seq, payload)
        raise ValueError(proto_name)

    def l4_hdr_len(name, data):
        if name == "tcp":
            return (data[12] >> 4) * 4
        return 8

    lh_vlans = vlans if link in ("EN10MB", "LINUX_SLL", "LINUX_SLL2") else ()
    if vni is None and l4 == "arp":
        body = arp(1, "02:00:00:00:00:01", underlay[0], "00:00:00:00:00:00", underlay[1])
        lh = link_header(link, ETH_ARP, lh_vlans, outgoing=outgoing)
        data = lh + body
        end = len(data)
        if link == "EN10MB" and len(data) < pad_to:
            data += bytes(pad_to - len(data))
        _vlan_fields(link, lh_vlans, fields, layers)
        layers["arp"] = len(lh)
        return Frame(data, len(data), link, kind, fields, layers, end)

    osrc, odst = underlay
    v6 = is_v6(osrc)
    # Inner part (VXLAN) or the L4 payload (plain frame).
    if vni is not None:
        isrc, idst = inner or ("10.255.1.11", "10.255.2.11")
        if inner_arp:
            ipkt = arp(1, "ee:ee:0a:ff:01:0b", isrc, "00:00:00:00:00:00", idst)
            ieth = eth_header("ff:ff:ff:ff:ff:ff", "ee:ee:0a:ff:01:0b", ETH_ARP)
            ilayer_len = None
        else:
            proto, seg = l4_bytes(isrc, idst, l4, sport, dport)
            ipkt = ip(isrc, idst, proto, seg, ident=ip_id ^ 0x5A5A, ihl=inner_ihl,
                      version=inner_version or (6 if is_v6(isrc) else 4), tot_len=inner_totlen)
            ieth = eth_header("ee:ee:0a:ff:02:0b", "ee:ee:0a:ff:01:0b",
                              ETH_IPV6 if is_v6(isrc) else ETH_IPV4)
            ilayer_len = len(ipkt) - len(seg)
        vx = vxlan(vni, gbp, vflags, vflags2)
        l4payload = vx + ieth + ipkt
        outer_udp = udp(osrc, odst, vport or (49152 + (vni * 7 + (gbp or 0)) % 16000), uport,
                        l4payload, checksum=v6)
        oproto, oseg = 17, outer_udp
    else:
        oproto, oseg = l4_bytes(osrc, odst, l4, sport, dport)
    opkt = ip(osrc, odst, oproto, oseg, ident=ip_id, ihl=outer_ihl,
              version=outer_version or (6 if v6 else 4), tot_len=outer_totlen)
    if link == "IPV4" and v6 or link == "IPV6" and not v6:
        raise ValueError(f"{link} cannot carry this underlay")
    lh = link_header(link, ETH_IPV6 if v6 else ETH_IPV4, lh_vlans, outgoing=outgoing)
    data = lh + opkt
    if link == "EN10MB" and len(data) < pad_to:
        data += bytes(pad_to - len(data))
    _vlan_fields(link, lh_vlans, fields, layers)

    o = len(lh)
    layers["outer_ip"] = o
    ohl = 40 if v6 else outer_ihl * 4
    if outer_version is not None or outer_ihl < 5 or (outer_totlen is not None
                                                        and outer_totlen < outer_ihl * 4):
        bad = ("bad outer IP version" if outer_version is not None else
               "outer IPv4 header length below 20" if outer_ihl < 5 else
               "outer IPv4 total length below its header length")
        bad_layer = "outer_ip"
        ohl = max(ohl, 20)
    fields += [("outer_src", osrc, o + ohl), ("outer_dst", odst, o + ohl)]
    o += ohl
    if vni is None:
        name = "tcp" if oproto == 6 else "udp" if oproto == 17 else "icmp"
        layers["l4"] = o
        if oproto in (6, 17):
            fields += [("udp_dport", dport, o + 8)] if oproto == 17 else []
        end = o + l4_hdr_len(name, oseg)
        return Frame(data, len(data), link, kind, fields, layers, end, bad, bad_layer,
                     layers.get(bad_layer) if bad_layer else None)
    layers["udp"] = o
    fields += [("udp_dport", uport, o + 8)]
    o += 8
    layers["vxlan"] = o
    flags = vx[0]
    fields += [("vxlan_flags", f"0x{flags:02x}", o + 8), ("vni", vni, o + 8)]
    if flags & 0x80:
        fields += [("gbp", gbp or 0, o + 8)]
    if not flags & 0x08 and bad is None:
        bad, bad_layer = "VXLAN I flag not set", "inner_eth"
    o += 8
    layers["inner_eth"] = o
    o += 14
    uport_seen = uport
    if inner_arp:
        layers["inner_arp"] = o
        end = o + len(ipkt)
    else:
        layers["inner_ip"] = o
        ihl_len = 40 if is_v6(isrc) else inner_ihl * 4
        if bad is None and (inner_version is not None or inner_ihl < 5 or (
                inner_totlen is not None and inner_totlen < inner_ihl * 4)):
            bad = ("bad inner IP version" if inner_version is not None else
                   "inner IPv4 header length below 20" if inner_ihl < 5 else
                   "inner IPv4 total length below its header length")
            bad_layer = "inner_ip"
            ihl_len = max(ihl_len, 20)
        fields += [("inner_src", isrc, o + ihl_len), ("inner_dst", idst, o + ihl_len),
                   ("proto", proto, o + ihl_len)]
        o += ihl_len
        layers["inner_l4"] = o
        if proto in (6, 17):
            fields += [("sport", sport, o + 4), ("dport", dport, o + 4)]
        end = o + l4_hdr_len(l4, seg)
    return Frame(data, len(data), link, kind, fields, layers, end, bad, bad_layer,
                 layers.get(bad_layer) if bad_layer else None, uport=uport_seen)


def _vlan_fields(link, vlans, fields, layers):
    if link == "EN10MB":
        base = 12
    elif link == "LINUX_SLL":
        base = 14
    elif link == "LINUX_SLL2":
        base = 0
    else:
        return
    layers["link"] = 0
    for i, (_tpid, vid) in enumerate(vlans):
        if link == "LINUX_SLL2":  # protocol first, then the cooked header, then the tags
            tci = 20 + 4 * i
        else:
            tci = base + 2 + 4 * i
        layers[f"vlan{i + 1}"] = tci
        fields.append(("vlan", vid, tci + 4))


# ---- mixes ------------------------------------------------------------------------------

class Mix:
    """Frames of one mix, drawn from a seeded generator."""

    def __init__(self, seed: int, links: list[str], ports: list[int], underlay: str):
        self.r = random.Random(seed)
        self.links = links
        self.ports = ports
        self.underlay = underlay
        self.n = 0

    def link(self) -> str:
        return self.links[self.n % len(self.links)]

    def underlay_pair(self, link: str) -> tuple[str, str]:
        r = self.r
        want6 = {"v4": False, "v6": True}.get(self.underlay, r.random() < 0.35)
        if link == "IPV4":
            want6 = False
        elif link == "IPV6":
            want6 = True
        if want6:
            return (f"fd00:{r.randrange(1, 0xffff):x}::{r.randrange(1, 0xffff):x}",
                    f"2001:db8:{r.randrange(0, 0xffff):x}:1::{r.randrange(1, 0xff):x}")
        return (f"192.168.{r.randrange(0, 256)}.{r.randrange(1, 255)}",
                f"172.{r.randrange(16, 32)}.{r.randrange(0, 256)}.{r.randrange(1, 255)}")

    def inner_pair(self, v6: bool) -> tuple[str, str]:
        r = self.r
        if v6:
            return (f"fd10::{r.randrange(1, 0xffff):x}", f"fd10::1:{r.randrange(1, 0xffff):x}")
        return (f"10.255.{r.randrange(0, 256)}.{r.randrange(10, 250)}",
                f"10.255.{r.randrange(0, 256)}.{r.randrange(10, 250)}")

    def vlans(self, link: str) -> tuple:
        if link != "EN10MB":
            return ()
        x = self.r.random()
        if x < 0.2:
            return ((ETH_8021Q, self.r.randrange(1, 4095)),)
        if x < 0.3:
            return ((ETH_8021AD, self.r.randrange(1, 4095)), (ETH_8021Q, self.r.randrange(1, 4095)))
        return ()

    def vxlan_frame(self, **over) -> Frame:
        """A random good VXLAN frame (over= fixes some parameters)."""
        r = self.r
        over = dict(over)
        link = over.pop("link", None) or self.link()
        kw = dict(link=link, vlans=self.vlans(link), underlay=self.underlay_pair(link),
                  uport=r.choice(self.ports))
        x = r.random()
        kw["gbp"] = (r.choice([0, 1, 0xFFFF, 0x8000]) if x < 0.05 else
                     None if x < 0.25 else r.randrange(1, 400))
        y = r.random()
        kw["vni"] = (r.choice([0, 1, 0xFFFFFF, 0x800000]) if y < 0.05 else
                     1 if y < 0.4 else r.randrange(2, 5000))
        if kw["gbp"] is not None and r.random() < 0.05:   # D and A bits of the GBP draft
            kw["vflags2"] = r.choice([0x40, 0x08, 0x48])
        inner6 = r.random() < 0.25
        kw["inner"] = self.inner_pair(inner6)
        kw["ip_id"] = r.randrange(0, 65536)
        p = r.random()
        which = over.get("l4") or ("arp" if p < 0.03 else "tcp" if p < 0.40 else
                                   "udp" if p < 0.65 else "icmp")
        if over.get("inner_arp"):
            which = "arp"
        if which == "arp":
            kw["inner_arp"] = True
            kw["inner"] = self.inner_pair(False)
            kind = "vxlan/inner-arp"
        elif which == "tcp":
            kw.update(l4="tcp", sport=r.randrange(32768, 61000), dport=r.choice(TCP_PORTS),
                      seq=r.getrandbits(32), tcp_flags=r.choice([TCP_SYN, TCP_SYN | TCP_ACK,
                                                                 TCP_ACK, TCP_ACK | TCP_PSH]),
                      payload=bytes(r.randrange(0, 48)))
            kind = "vxlan/tcp"
        elif which == "udp":
            kw.update(l4="udp", sport=r.randrange(32768, 61000), dport=r.choice(UDP_PORTS),
                      payload=bytes(r.randrange(0, 64)))
            kind = "vxlan/udp"
        else:
            kw.update(l4="icmp", icmp_type=r.choice([8, 0]), ident=r.randrange(0, 65536),
                      seq=r.randrange(0, 1000), payload=bytes(range(56)))
            kind = "vxlan/icmp"
        if link == "EN10MB" and r.random() < 0.05:
            kw["outer_ihl"] = 6 if not is_v6(kw["underlay"][0]) else 5
        kw.update(over)
        kind = over.pop("kind", None) or kind
        kw["kind"] = kind + ("/v6" if is_v6(kw["underlay"][0]) else "") + (
            "/qinq" if len(kw["vlans"]) == 2 else "/vlan" if kw["vlans"] else "")
        return build(**kw)

    def plain_frame(self) -> Frame:
        r = self.r
        link = self.link()
        u = self.underlay_pair(link)
        pad = 60 if r.random() < 0.5 else 0
        x = r.random()
        if x < 0.3 and link not in ("RAW", "IPV4", "IPV6"):
            v4 = (f"192.168.1.{r.randrange(1, 255)}", f"192.168.1.{r.randrange(1, 255)}")
            return build(link, self.vlans(link), underlay=v4, vni=None, l4="arp", kind="arp",
                         pad_to=pad)
        if x < 0.55:
            return build(link, self.vlans(link), underlay=u, vni=None, l4="udp",
                         sport=r.randrange(32768, 61000), dport=r.choice(UDP_PORTS),
                         payload=bytes(r.randrange(0, 40)), kind="udp", pad_to=pad)
        if x < 0.8:
            return build(link, self.vlans(link), underlay=u, vni=None, l4="tcp",
                         sport=r.randrange(32768, 61000), dport=r.choice(TCP_PORTS),
                         seq=r.getrandbits(32), kind="tcp", pad_to=pad)
        return build(link, self.vlans(link), underlay=u, vni=None, l4="icmp", icmp_type=8,
                     ident=r.randrange(65536), seq=r.randrange(100), payload=bytes(56),
                     kind="icmp")

    def many(self, n: int) -> list[Frame]:
        out = []
        while len(out) < n:
            self.n += 1
            out.append(self.plain_frame() if self.r.random() < 0.1 else self.vxlan_frame())
        return out

    def bench_templates(self, count: int = 400) -> list[Frame]:
        """Good frames only: VXLAN of many tags/VNIs with TCP/UDP/ICMP inside, some VLAN,
        a few plain ones."""
        out = []
        while len(out) < count:
            self.n += 1
            f = self.plain_frame() if self.r.random() < 0.05 else self.vxlan_frame()
            out.append(f)
        return out

    def lab(self, n: int) -> list[Frame]:
        """A few Silk cells: underlay 10.0.0.c, apps 10.255.c.(10+k) with tag c*16+k, VNI 1,
        port ports[0]; ping and TCP conversations (request + answer, a few unanswered),
        ARP and SSH between the cells now and then."""
        r = self.r
        cells = 3
        apps = [(c, k) for c in range(1, cells + 1) for k in range(1, 4)]
        out: list[Frame] = []
        port = self.ports[0]

        def app_ip(c, k):
            return f"10.255.{c}.{10 + k}"

        while len(out) < n:
            self.n += 1
            link = self.link()
            x = r.random()
            if x < 0.05 and link == "EN10MB":
                out.append(build(link, underlay=("10.0.0.1", "10.0.0.2"), vni=None, l4="arp",
                                 kind="arp"))
                continue
            if x < 0.1:
                out.append(build(link, underlay=("10.0.0.1", "10.0.0.3"), vni=None, l4="tcp",
                                 sport=r.randrange(40000, 60000), dport=22,
                                 seq=r.getrandbits(32), tcp_flags=TCP_ACK, kind="tcp"))
                continue
            (c1, k1), (c2, k2) = r.sample(apps, 2)
            if c1 == c2:
                continue
            a, b = app_ip(c1, k1), app_ip(c2, k2)
            ua, ub = f"10.0.0.{c1}", f"10.0.0.{c2}"
            ta, tb = c1 * 16 + k1, c2 * 16 + k2
            answered = r.random() < 0.85
            if r.random() < 0.6:
                ident, sq = r.randrange(1, 65536), r.randrange(1, 50)
                out.append(build(link, underlay=(ua, ub), uport=port, gbp=ta, inner=(a, b),
                                 l4="icmp", icmp_type=8, ident=ident, seq=sq,
                                 payload=bytes(range(56)), kind="vxlan/icmp-request"))
                if answered:
                    out.append(build(link, underlay=(ub, ua), uport=port, gbp=tb, inner=(b, a),
                                     l4="icmp", icmp_type=0, ident=ident, seq=sq,
                                     payload=bytes(range(56)), kind="vxlan/icmp-reply"))
            else:
                sp, dp, isn = r.randrange(32768, 61000), r.choice([8080, 443]), r.getrandbits(32)
                out.append(build(link, underlay=(ua, ub), uport=port, gbp=ta, inner=(a, b),
                                 l4="tcp", sport=sp, dport=dp, seq=isn, tcp_flags=TCP_SYN,
                                 kind="vxlan/tcp-syn"))
                if answered:
                    out.append(build(link, underlay=(ub, ua), uport=port, gbp=tb, inner=(b, a),
                                     l4="tcp", sport=dp, dport=sp, seq=r.getrandbits(32),
                                     ack=(isn + 1) & 0xFFFFFFFF, tcp_flags=TCP_SYN | TCP_ACK,
                                     kind="vxlan/tcp-synack"))
        return out[:n]

    def bad(self, n: int) -> list[Frame]:
        """Every kind of damage, each after a good frame, repeated until n frames."""
        kinds = self.bad_kinds()
        out: list[Frame] = []
        i = 0
        while len(out) < n:
            self.n += 1
            out.append(self.vxlan_frame())
            if len(out) < n:
                out.append(kinds[i % len(kinds)]())
                i += 1
        return out

    def bad_kinds(self) -> list:
        """Builders of damaged frames (each call draws a fresh one)."""
        r = self.r
        ks: list = []

        def good(**over):
            return self.vxlan_frame(**over)

        def cuts(layer, ks_in, snap_too=True, **over):
            for k in ks_in:
                for snap in ((True, False) if snap_too else (True,)):
                    ks.append(lambda k=k, snap=snap: good(**over).cut(layer, k, snap))

        def tcp_frame(**o):
            return dict(l4="tcp", sport=r.randrange(32768, 61000), dport=443, seq=1,
                        tcp_flags=TCP_SYN, **o)

        link = self.links[0]
        eth = link == "EN10MB"
        cooked = link in ("LINUX_SLL", "LINUX_SLL2")
        v6only = link == "IPV6"
        v4only = link == "IPV4"
        und4 = {"underlay": ("192.168.7.1", "192.168.7.2")}
        und6 = {"underlay": ("fd00::7:1", "fd00::7:2")}
        if eth:
            cuts("link", [6, 13], vlans=())                       # inside outer Ethernet
            cuts("vlan1", [1], vlans=((ETH_8021Q, 100),))          # inside the 802.1Q TCI
            cuts("vlan2", [1], vlans=((ETH_8021AD, 100), (ETH_8021Q, 200)))
        if cooked:
            cuts("link", [5, 15 if link == "LINUX_SLL" else 19], vlans=())
        if not v6only:
            cuts("outer_ip", [0, 1, 9], vlans=(), **und4)         # inside outer IPv4
        if not v4only:
            cuts("outer_ip", [1, 7], vlans=(), **und6)            # inside outer IPv6
        cuts("udp", [0, 3], vlans=())                              # inside the UDP header
        cuts("vxlan", [0, 1, 4, 7], vlans=())                      # inside the VXLAN header
        cuts("inner_eth", [0, 5, 13], vlans=())                    # inside inner Ethernet
        cuts("inner_ip", [1, 9], vlans=(), inner=("10.255.9.1", "10.255.9.2"), l4="icmp")
        cuts("inner_ip", [1, 7], vlans=(), inner=("fd10::9:1", "fd10::9:2"), l4="icmp")
        cuts("inner_l4", [1, 3], vlans=(), **tcp_frame(inner=("10.255.9.1", "10.255.9.2")))
        cuts("inner_l4", [1, 3], vlans=(), l4="udp", sport=40000, dport=5000,
             inner=("10.255.9.1", "10.255.9.2"))
        cuts("inner_l4", [1, 5], vlans=(), l4="icmp", inner=("10.255.9.1", "10.255.9.2"))
        # snaplen cut in the payload only: every header complete, caplen < len
        ks.append(lambda: _snap_payload(good(vlans=(), l4="icmp", payload=bytes(range(56)),
                                             inner=("10.255.9.3", "10.255.9.4"))))
        if not v6only:
            ks.append(lambda: good(vlans=(), outer_version=7, kind="bad-outer-version", **und4))
            ks.append(lambda: good(vlans=(), outer_ihl=4, kind="bad-outer-ihl", **und4))
            ks.append(lambda: good(vlans=(), outer_totlen=12, kind="bad-outer-totlen", **und4))
        if not v4only:
            ks.append(lambda: good(vlans=(), outer_version=7, kind="bad-outer-v6-version",
                                   **und6))
        ks.append(lambda: good(vlans=(), inner=("10.255.9.5", "10.255.9.6"), inner_version=7,
                               kind="bad-inner-version"))
        ks.append(lambda: good(vlans=(), inner=("10.255.9.5", "10.255.9.6"), inner_ihl=3,
                               kind="bad-inner-ihl"))
        ks.append(lambda: good(vlans=(), inner=("10.255.9.5", "10.255.9.6"), inner_totlen=16,
                               kind="bad-inner-totlen"))
        ks.append(lambda: good(vlans=(), gbp=0x0003, vflags=0x80, kind="vxlan-noI-gbp"))
        ks.append(lambda: good(vlans=(), gbp=None, vflags=0x00, kind="vxlan-noI"))
        return ks


def _snap_payload(f: Frame) -> Frame:
    at = f.headers_end + 4
    return dataclasses.replace(f, data=f.data[:at], kind="snap-payload:" + f.kind)


# ---- writers ----------------------------------------------------------------------------

BASE_TS_NS = 1_760_000_000 * 10**9


def timestamps(frames: list[Frame], seed: int) -> None:
    r = random.Random(seed ^ 0x7155)
    t = BASE_TS_NS
    for f in frames:
        t += r.randrange(1000, 2_000_000)   # 1 us .. 2 ms apart, nanosecond digits too
        f.ts_ns = t


class PcapWriter:
    def __init__(self, out, link: str, nanosecond: bool = False, big: bool = False,
                 snaplen: int = 262144):
        self.out = out
        self.e = ">" if big else "<"
        self.ns = nanosecond
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        out.write(struct.pack(self.e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKTYPES[link]))
        self.rec = struct.Struct(self.e + "IIII")

    def record(self, ts_ns: int, data: bytes, orig_len: int) -> bytes:
        sec, sub = divmod(ts_ns, 10**9)
        if not self.ns:
            sub //= 1000
        return self.rec.pack(sec, sub, len(data), orig_len) + data

    def write(self, f: Frame) -> None:
        self.out.write(self.record(f.ts_ns, f.data, f.orig_len))


class PcapngWriter:
    """One section; interfaces are (link, tsresol exponent: 6 or 9, name)."""

    def __init__(self, out, interfaces: list[tuple[str, int, str]], big: bool = False):
        self.out = out
        self.e = ">" if big else "<"
        self.res = [r for _, r, _ in interfaces]
        opts = self._opt(4, b"netplay pcap_gen.py") + self._opt(0, b"")
        shb = struct.pack(self.e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + opts
        out.write(self._block(0x0A0D0D0A, shb))
        for link, res, name in interfaces:
            o = self._opt(2, name.encode())
            if res != 6:
                o += self._opt(9, bytes([res]))
            o += self._opt(0, b"")
            out.write(self._block(1, struct.pack(self.e + "HHI", LINKTYPES[link], 0, 262144) + o))

    def _opt(self, code: int, value: bytes) -> bytes:
        if code == 0:
            return struct.pack(self.e + "HH", 0, 0)
        return struct.pack(self.e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    def _block(self, typ: int, body: bytes) -> bytes:
        n = 12 + len(body)
        return struct.pack(self.e + "II", typ, n) + body + struct.pack(self.e + "I", n)

    def record(self, ts_ns: int, data: bytes, orig_len: int, iface: int = 0) -> bytes:
        ts = ts_ns // 1000 if self.res[iface] == 6 else ts_ns
        body = struct.pack(self.e + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                           orig_len) + data + b"\0" * (-len(data) % 4)
        return self._block(6, body)

    def write(self, f: Frame) -> None:
        self.out.write(self.record(f.ts_ns, f.data, f.orig_len, f.iface))


# ---- top level --------------------------------------------------------------------------

def generate(mix: str, frames: int, seed: int = 1, links=("EN10MB",), ports=(4789,),
             underlay: str = "both") -> list[Frame]:
    """The frames of a mix, with timestamps; f.iface is the index of f.link in links."""
    m = Mix(seed, list(links), list(ports), underlay)
    if mix == "lab":
        out = m.lab(frames)
    elif mix == "many":
        out = m.many(frames)
    elif mix == "bad":
        out = m.bad(frames)
    elif mix == "bench":
        out = m.many(frames)
    else:
        raise ValueError(f"unknown mix {mix}")
    for f in out:
        f.iface = list(links).index(f.link)
    timestamps(out, seed)
    return out


def write_file(path: str, frames: list[Frame], fmt: str = "pcap", links=("EN10MB",),
               tsresol: str = "us", big: bool = False) -> None:
    with open(path, "wb") as out:
        if fmt == "pcap":
            if len(set(links)) != 1:
                raise ValueError("a classic pcap file has one link type")
            w = PcapWriter(out, links[0], tsresol == "ns", big)
        else:
            # Interface i: its link type; every other interface nanosecond when asked.
            ifs = [(l, 9 if tsresol == "ns" and i % 2 == 0 else 6, f"if{i}-{l.lower()}")
                   for i, l in enumerate(links)]
            w = PcapngWriter(out, ifs, big)
        for f in frames:
            w.write(f)


def write_bench(path: str, frames: int, seed: int = 1, fmt: str = "pcap", link: str = "EN10MB",
                ports=(4789,), templates: int = 400, tsresol: str = "us") -> list[Frame]:
    """A large file fast: `templates` distinct frames built once, written again and again
    in a seeded order with rising timestamps (each record: a fresh timestamp between the
    template's constant bytes). Returns the templates."""
    m = Mix(seed, [link], list(ports), "both")
    tpl = m.bench_templates(templates)
    r = random.Random(seed)
    order = r.choices(range(len(tpl)), k=frames)
    steps = [r.randrange(200, 20000) for _ in range(4096)]   # microseconds between frames
    ns = tsresol == "ns"
    with open(path, "wb") as out:
        if fmt == "pcap":
            PcapWriter(out, link, ns)
            ts = struct.Struct("<II").pack
            heads = [b""] * len(tpl)
            tails = [struct.pack("<II", len(f.data), f.orig_len) + f.data for f in tpl]
        else:
            w = PcapngWriter(out, [(link, 9 if ns else 6, "bench0")])
            ts = struct.Struct("<II").pack
            heads, tails = [], []
            for f in tpl:
                rec = w.record(0, f.data, f.orig_len)
                heads.append(rec[:12])      # block type, length, interface id
                tails.append(rec[20:])      # caplen, len, data, padding, length
        sec, us = BASE_TS_NS // 10**9, 0
        chunk: list = []
        for i, j in enumerate(order):
            us += steps[i & 4095]
            if us >= 1_000_000:
                sec += 1
                us -= 1_000_000
            if fmt == "pcap":
                chunk.append(ts(sec, us * 1000 + (i % 997) if ns else us))
            else:
                t = (sec * 10**9 + us * 1000 + (i % 997)) if ns else sec * 10**6 + us
                chunk.append(heads[j])
                chunk.append(ts(t >> 32, t & 0xFFFFFFFF))
            chunk.append(tails[j])
            if len(chunk) >= 196608:
                out.writelines(chunk)
                chunk.clear()
        out.writelines(chunk)
    return tpl


def fuzz_seeds() -> dict[str, bytes]:
    """About twenty small inputs for a decoder fuzz target: byte 0 the link type (index in
    FUZZ_LINKS), then one frame."""
    seeds: dict[str, bytes] = {}

    def add(name, f: Frame):
        seeds[name] = bytes([FUZZ_LINKS.index(f.link)]) + f.data

    u4, u6 = ("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")
    add("vxlan-gbp-icmp", build(underlay=u4, gbp=3, vni=1, l4="icmp", ident=7, seq=1,
                                payload=bytes(8)))
    add("vxlan-gbp-icmp-reply", build(underlay=u4[::-1], gbp=4, vni=1, l4="icmp", icmp_type=0,
                                      ident=7, seq=1, inner=("10.255.2.11", "10.255.1.11")))
    add("vxlan-nogbp-tcp-syn", build(underlay=u4, gbp=None, vni=4242, l4="tcp", sport=40000,
                                     dport=8080, seq=1000))
    add("vxlan-gbp-udp-v6inner", build(underlay=u4, gbp=0xFFFF, vni=0xFFFFFF, l4="udp",
                                       sport=40000, dport=5000, inner=("fd10::1", "fd10::2")))
    add("vxlan-v6-underlay-icmpv6", build(underlay=u6, gbp=17, vni=7, l4="icmp", ident=1, seq=2,
                                          inner=("fd10::1", "fd10::2")))
    add("vxlan-8472", build(underlay=u4, uport=8472, gbp=5, vni=1, l4="icmp"))
    add("vxlan-vlan", build(vlans=((ETH_8021Q, 100),), underlay=u4, gbp=3, vni=1))
    add("vxlan-qinq", build(vlans=((ETH_8021AD, 100), (ETH_8021Q, 200)), underlay=u4, gbp=3,
                            vni=1))
    add("vxlan-inner-arp", build(underlay=u4, gbp=3, vni=1, inner_arp=True))
    add("vxlan-outer-options", build(underlay=u4, gbp=3, vni=1, outer_ihl=6))
    add("arp", build(underlay=u4, vni=None, l4="arp"))
    add("plain-udp", build(underlay=u4, vni=None, l4="udp", sport=53000, dport=53))
    add("sll-vxlan", build("LINUX_SLL", underlay=u4, gbp=3, vni=1))
    add("sll2-vxlan-v6", build("LINUX_SLL2", underlay=u6, gbp=3, vni=1, l4="tcp", sport=1,
                               dport=2))
    add("raw-vxlan", build("RAW", underlay=u4, gbp=3, vni=1, l4="udp", sport=1, dport=2))
    add("raw-v6-vxlan", build("RAW", underlay=u6, gbp=3, vni=1))
    add("cut-vxlan-header", build(underlay=u4, gbp=3, vni=1).cut("vxlan", 4))
    add("cut-inner-ip", build(underlay=u4, gbp=3, vni=1).cut("inner_ip", 9))
    add("cut-inner-tcp", build(underlay=u4, gbp=3, vni=1, l4="tcp", sport=1, dport=2)
        .cut("inner_l4", 3))
    add("bad-outer-ihl", build(underlay=u4, gbp=3, vni=1, outer_ihl=4))
    add("bad-inner-totlen", build(underlay=u4, gbp=3, vni=1, inner_totlen=16))
    add("vxlan-noI", build(underlay=u4, gbp=3, vni=1, vflags=0x80))
    return seeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--format", choices=["pcap", "pcapng"], default="pcap")
    ap.add_argument("--mix", choices=["lab", "many", "bad", "bench"], default="many")
    ap.add_argument("--link", default="EN10MB",
                    help="link type(s), comma-separated (several only with pcapng): "
                         + ", ".join(LINKTYPES))
    ap.add_argument("--ports", default="4789", help="UDP ports of the VXLAN frames")
    ap.add_argument("--underlay", choices=["v4", "v6", "both"], default="both")
    ap.add_argument("--tsresol", choices=["us", "ns"], default="us")
    ap.add_argument("--endian", choices=["little", "big"], default="little")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--templates", type=int, default=400, help="bench: distinct frames")
    ap.add_argument("--meta", help="write each frame's kind and truth as JSON lines")
    ap.add_argument("--fuzz-seeds", metavar="DIR", help="write the fuzz seeds into DIR")
    a = ap.parse_args(argv)
    if a.fuzz_seeds:
        os.makedirs(a.fuzz_seeds, exist_ok=True)
        for name, data in fuzz_seeds().items():
            with open(os.path.join(a.fuzz_seeds, name), "wb") as f:
                f.write(data)
        if not a.out:
            return 0
    if not a.out:
        ap.error("OUT is required")
    links = [l.strip().upper() for l in a.link.split(",")]
    for l in links:
        if l not in LINKTYPES:
            ap.error(f"unknown link type {l}")
    if a.format == "pcap" and len(links) > 1:
        ap.error("several link types need --format pcapng")
    ports = [int(p) for p in a.ports.split(",")]
    if a.mix == "bench":
        if len(links) > 1:
            ap.error("bench writes one link type")
        write_bench(a.out, a.frames, a.seed, a.format, links[0], ports, a.templates, a.tsresol)
        return 0
    frames = generate(a.mix, a.frames, a.seed, links, ports, a.underlay)
    write_file(a.out, frames, a.format, links, a.tsresol, a.endian == "big")
    if a.meta:
        with open(a.meta, "w") as f:
            for i, fr in enumerate(frames, 1):
                f.write(json.dumps(fr.meta(i)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
