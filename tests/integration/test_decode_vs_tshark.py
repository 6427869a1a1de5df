"""`netplay decode --format tsv` frame by frame against tshark, and the vxlan.decode step's
tallies against counts made from tshark's output, on files tests/integration/pcap_gen.py
writes (VXLAN-GBP with many tags and VNIs, IPv4 and IPv6 underlays, 802.1Q and QinQ, ports
4789 and 8472, EN10MB/LINUX_SLL/LINUX_SLL2/RAW/IPV4/IPV6, pcap and pcapng, frames cut at
every layer and malformed headers).

Needs /usr/bin/tshark (scripts/setup installs it); fails, never skips, without it. No root.

How tshark's output maps onto the tsv columns
---------------------------------------------
tshark 4.0 runs as `tshark -r FILE -n -T fields -E separator=/t -E occurrence=a
-E aggregator=, -e frame.number -e frame.protocols -e ieee8021ad.id -e vlan.id -e ip.src ...`.
A field that occurs in several layers (outer and inner ip.src, outer and inner udp.dstport)
comes as one comma-separated cell, values in the order of the layers. frame.protocols lists
the layers (`eth:ethertype:vlan:ethertype:ip:udp:vxlan:eth:ethertype:ip:icmp:data`); the
k-th `ip` layer owns the k-th value of ip.src, ip.dst and ip.proto, the k-th `ipv6` layer
the k-th ipv6.src/ipv6.dst/ipv6.nxt, the k-th `udp` the k-th udp.srcport/udp.dstport, the
k-th `tcp` the k-th tcp.srcport/tcp.dstport. Layers before `vxlan` are outer, after inner.
When tshark stops inside a layer (a cut frame) only the last layers lose values, so this
assignment stays right.

  frame        frame.number
  vlan         in layer order, the outer `ieee8021ad` layers' ieee8021ad.id (tshark 4.0
               dissects a 0x88a8 tag as ieee8021ad, not vlan) and the `vlan` layers'
               vlan.id, joined with ","; with LINUX_SLL/SLL2 the tags follow the cooked header
  outer_src    ip.src / ipv6.src of the first IP layer (outer_dst: ip.dst / ipv6.dst)
  udp_dport    udp.dstport of a `udp` layer right after that IP layer
  vxlan_flags  vxlan.flags is 16 bits (the flags byte, then the byte where the GBP draft
               keeps its D and A bits): "0x%02x" % (vxlan.flags >> 8)
  gbp          vxlan.gbp, only when vxlan.flags & 0x8000 (the G bit): tshark prints the
               field whether the G bit is set or not
  vni          vxlan.vni
  inner_src    the first IP layer after `vxlan`: ip.src / ipv6.src (inner_dst likewise)
  proto        ip.proto / ipv6.nxt of that layer
  sport, dport tcp.srcport/tcp.dstport or udp.srcport/udp.dstport of a `tcp`/`udp` layer
               right after the inner IP layer
  malformed    (netplay's free text is not compared, only whether it is empty) tshark
               reports a frame as damaged with an error-level expert item
               (_ws.expert.severity 8388608: "Malformed Packet", "Bogus IPv4 version",
               "Bogus IP header length", "Bogus IP length", "IPv4 total length exceeds
               packet length") or a short capture (_ws.short, "Packet size limited during
               capture"; a cut in the payload, every header whole, is not one), or a
               LINKTYPE_RAW frame whose IP version is neither 4 nor 6 (frame.protocols
               `raw:data`: tshark hands it to `data` without complaint); a VXLAN header
               whose I bit is clear (vxlan.flags & 0x0800 == 0) tshark decodes without
               complaint, but the contract calls it malformed.

VXLAN on port 8472: `-d udp.port==8472,vxlan` (tshark 4.0 has no VXLAN port preference; the
decode-as rule adds 8472, 4789 stays VXLAN). Files for `netplay decode --ports 8472` carry
no UDP to 4789, so both decoders see the same VXLAN frames. With netplay's default ports,
frames to 8472 are plain UDP for both (tshark shows them as `data`).

What is compared
----------------
A frame that is not damaged: every column equal (tshark empty = netplay empty), and
netplay's malformed empty.

A damaged frame (cut, bad header, I flag clear): netplay's malformed must be non-empty, and
  1. every column netplay prints equals tshark's value: netplay never invents a field;
  2. every column the generator's truth holds (the layers wholly captured before the
     damage: pcap_gen.Frame.truth) netplay prints, equal to tshark's: it keeps what comes
     before the problem;
  3. columns after the damage may be empty in netplay where tshark has a value. tshark
     decodes partial headers: flags and gbp from the first 4 bytes of a cut VXLAN header
     and the VNI from 7; the next header (proto) of an IPv6 header cut after byte 6; and
     the whole inner frame behind a VXLAN header whose I flag is clear. Rule 1 still holds
     for these columns.
GeneratorAgreesWithTshark checks first, without netplay, that tshark reads what the
generator meant to write: on undamaged frames every column equals the generator's truth; on
damaged ones tshark's value equals the truth wherever the truth has one, tshark's extra
values are only the three kinds above; and tshark's damage signal (above) agrees with the
generator on every frame, the frames cut by the snap length inside the payload
(`snap-payload`: every header whole) being undamaged for both.

The step (vxlan.decode): frames, bytes (sum of frame.len), first/last packet time,
vxlan_frames (frames with a `vxlan` layer), other_frames, the VNI and GBP tallies,
no_gbp_frames, the underlay table, ICMP echo request/reply and TCP SYN/SYN-ACK pairing, the
flows total and the flows table rows, and malformed (the frames tshark's damage signal
flags) are all counted from tshark's fields, never from the generator's bookkeeping;
`netplay decode --format json` reports the same. A flow is the frames of one (vni, gbp,
inner src, dst, protocol, TCP/UDP port or ICMP type) over one underlay path (outer src, dst,
port); the flows and underlay tables keep their `top` rows, most frames first. Whether a frame cut inside its UDP or
VXLAN header counts as a VXLAN frame the contract leaves open: for the file of damaged
frames vxlan_frames lies between the frames with a whole VXLAN header and those with any
VXLAN layer or UDP to a VXLAN port.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcap_gen  # noqa: E402

BIN = os.environ.get("NETPLAY_BIN", "")
TSHARK = "/usr/bin/tshark"
COLUMNS = pcap_gen.COLUMNS
FIELD_COLUMNS = COLUMNS[1:-1]
PI_ERROR = "8388608"

TSHARK_FIELDS = [
    "frame.number", "frame.protocols", "frame.len", "frame.time_epoch",
    "ieee8021ad.id", "vlan.id", "ip.src", "ip.dst", "ip.proto", "ipv6.src", "ipv6.dst",
    "ipv6.nxt", "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport", "tcp.flags",
    "tcp.seq_raw", "tcp.ack_raw", "icmp.type", "icmp.ident", "icmp.seq", "icmpv6.type",
    "icmpv6.echo.identifier", "icmpv6.echo.sequence_number", "vxlan.flags", "vxlan.gbp",
    "vxlan.vni", "_ws.expert.severity", "_ws.short", "_ws.malformed"]


def need_tools(test: unittest.TestCase, netplay: bool = True) -> None:
    if not os.access(TSHARK, os.X_OK):
        test.fail(f"{TSHARK} is missing: scripts/setup installs tshark")
    if netplay and (not BIN or not os.access(BIN, os.X_OK)):
        test.fail(f"NETPLAY_BIN does not name the built netplay binary: {BIN!r}")


# ---- tshark ---------------------------------------------------------------------------------

class TsharkFrame:
    """One frame as tshark dissected it, with the tsv columns rebuilt from its fields."""

    def __init__(self, cells: dict[str, str]):
        self.raw = cells
        self.f = {k: (v.split(",") if v else []) for k, v in cells.items()}
        protos = cells["frame.protocols"].split(":") if cells["frame.protocols"] else []
        seen: dict[str, int] = collections.Counter()
        self.layers = []
        for p in protos:
            self.layers.append((p, seen[p]))
            seen[p] += 1
        vx = next((i for i, (p, _) in enumerate(self.layers) if p == "vxlan"), None)
        self.is_vxlan = vx is not None
        self.outer = self.layers[:vx] if vx is not None else self.layers
        self.inner = self.layers[vx + 1:] if vx is not None else []
        self.columns = self._columns()

    def val(self, field: str, k: int = 0) -> str:
        v = self.f.get(field, [])
        return v[k] if k < len(v) else ""

    @staticmethod
    def _ip_layer(layers):
        for i, (p, k) in enumerate(layers):
            if p in ("ip", "ipv6"):
                return i, p, k
        return None

    def _columns(self) -> dict[str, str]:
        c = {name: "" for name in FIELD_COLUMNS}
        tags = []
        for p, k in self.outer:
            if p == "ieee8021ad" and self.val("ieee8021ad.id", k):
                tags.append(self.val("ieee8021ad.id", k))
            elif p == "vlan" and self.val("vlan.id", k):
                tags.append(self.val("vlan.id", k))
        c["vlan"] = ",".join(tags)
        self.outer_ip = o = self._ip_layer(self.outer)
        if o:
            i, p, k = o
            c["outer_src"], c["outer_dst"] = self.val(p + ".src", k), self.val(p + ".dst", k)
            if i + 1 < len(self.outer) and self.outer[i + 1][0] == "udp":
                c["udp_dport"] = self.val("udp.dstport", self.outer[i + 1][1])
        self.flags16 = int(self.val("vxlan.flags"), 16) if self.val("vxlan.flags") else None
        if self.is_vxlan:
            if self.flags16 is not None:
                c["vxlan_flags"] = f"0x{self.flags16 >> 8:02x}"
                if self.flags16 & 0x8000:
                    c["gbp"] = self.val("vxlan.gbp")
            c["vni"] = self.val("vxlan.vni")
        self.inner_ip = n = self._ip_layer(self.inner)
        self.inner_l4 = None
        if n:
            i, p, k = n
            c["inner_src"], c["inner_dst"] = self.val(p + ".src", k), self.val(p + ".dst", k)
            c["proto"] = self.val("ip.proto" if p == "ip" else "ipv6.nxt", k)
            if i + 1 < len(self.inner):
                self.inner_l4 = self.inner[i + 1]
                q, kk = self.inner_l4
                if q in ("tcp", "udp"):
                    c["sport"] = self.val(q + ".srcport", kk)
                    c["dport"] = self.val(q + ".dstport", kk)
        return c

    @property
    def damaged(self) -> bool:
        """tshark's own verdict: an error-level expert item or a short capture; or a raw IP
        frame tshark shows as `data` because its version is neither 4 nor 6."""
        return (PI_ERROR in self.f["_ws.expert.severity"] or bool(self.raw["_ws.short"])
                or self.raw["frame.protocols"] == "raw:data")

    @property
    def i_flag_clear(self) -> bool:
        return self.is_vxlan and self.flags16 is not None and not self.flags16 & 0x0800


_quiet = None


def port_dissectors_off() -> list[str]:
    """--disable-protocol for every dissector tshark registers on a TCP or UDP port, VXLAN
    excepted: tshark then decodes exactly the layers compared (the payload stays `data`),
    and an application dissector cannot trip over the generator's payload bytes and pass
    for damage (Manolito on UDP 41170 did)."""
    global _quiet
    if _quiet is None:
        def g(what):
            p = subprocess.run([TSHARK, "-G", what], capture_output=True, text=True,
                               timeout=120, check=True)
            return [line.split("\t") for line in p.stdout.splitlines()]
        protos = {row[2] for row in g("protocols") if len(row) > 2}
        on_ports = {row[2] for row in g("decodes")
                    if len(row) > 2 and row[0] in ("udp.port", "tcp.port")}
        _quiet = []
        for name in sorted((on_ports & protos) - {"vxlan"}):
            _quiet += ["--disable-protocol", name]
    return _quiet


def tshark(path: str, *extra: str) -> list[TsharkFrame]:
    cmd = [TSHARK, "-r", path, "-n", *port_dissectors_off(), *extra, "-T", "fields",
           "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        raise AssertionError(f"tshark failed on {path} ({p.returncode}): {p.stderr.strip()}")
    return [TsharkFrame(dict(zip(TSHARK_FIELDS, line.split("\t"))))
            for line in p.stdout.splitlines()]


# ---- netplay --------------------------------------------------------------------------------

def netplay(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def netplay_tsv(test: unittest.TestCase, path: str, *extra: str) -> list[dict[str, str]]:
    p = netplay("decode", path, "--format", "tsv", *extra)
    test.assertEqual(p.returncode, 0, f"netplay decode {path} {extra}: {p.stderr.strip()}")
    lines = p.stdout.split("\n")
    test.assertEqual(lines[0].split("\t"), COLUMNS, "the tsv header")
    test.assertEqual(lines[-1], "", "the output ends with a newline")
    rows = []
    for n, line in enumerate(lines[1:-1], 1):
        cells = line.split("\t")
        test.assertEqual(len(cells), len(COLUMNS), f"tsv line {n}: {line!r}")
        rows.append(dict(zip(COLUMNS, cells)))
    return rows


# ---- the files ------------------------------------------------------------------------------

class Capture:
    """A generated file with its frames (and their truth)."""

    def __init__(self, d: str, name: str, mix: str, frames: int, seed: int, fmt: str = "pcap",
                 links=("EN10MB",), ports=(4789,), underlay: str = "both",
                 tsresol: str = "us", big: bool = False):
        self.path = os.path.join(d, name + (".pcapng" if fmt == "pcapng" else ".pcap"))
        self.written = pcap_gen.generate(mix, frames, seed, links, ports, underlay)
        pcap_gen.write_file(self.path, self.written, fmt, links, tsresol, big)
        self.frames = self.written

    def seen_with(self, vxlan_ports) -> "Capture":
        """The frames as decoders that take `vxlan_ports` for VXLAN see them."""
        self.frames = [f.as_seen(vxlan_ports) for f in self.written]
        return self


def frame_label(fr: pcap_gen.Frame, n: int) -> str:
    return f"frame {n} ({fr.kind}, {fr.link})"


# Kinds of columns tshark decodes from partial headers (rule 3 of the module doc).
def tshark_extra_allowed(fr: pcap_gen.Frame, col: str) -> bool:
    if fr.bad == "VXLAN I flag not set":
        return col in ("inner_src", "inner_dst", "proto", "sport", "dport")
    if fr.kind.startswith("cut:vxlan+"):
        return col in ("vxlan_flags", "gbp", "vni")
    if fr.kind.startswith("cut:inner_ip+"):     # an IPv6 header cut after its byte 6
        return col == "proto"
    return False


def compare(test: unittest.TestCase, cap: Capture, np_rows, ts_rows) -> None:
    """The rules of the module doc; every disagreement is listed, not just the first."""
    test.assertEqual(len(ts_rows), len(cap.frames), "tshark read every frame")
    test.assertEqual(len(np_rows), len(cap.frames), "netplay printed one line per frame")
    problems = []
    for n, (fr, npr, tsf) in enumerate(zip(cap.frames, np_rows, ts_rows), 1):
        ts = tsf.columns
        label = frame_label(fr, n)
        if npr["frame"] != str(n):
            problems.append(f"{label}: frame column {npr['frame']!r}")
        if not fr.malformed:
            for c in FIELD_COLUMNS:
                if npr[c] != ts[c]:
                    problems.append(f"{label}: {c}: tshark {ts[c]!r}, netplay {npr[c]!r}")
            if npr["malformed"]:
                problems.append(f"{label}: netplay calls it malformed: {npr['malformed']!r}")
            continue
        if not npr["malformed"]:
            problems.append(f"{label}: damaged, but netplay's malformed column is empty")
        truth = fr.truth()
        for c in FIELD_COLUMNS:
            if npr[c] and npr[c] != ts[c]:
                problems.append(f"{label}: {c}: netplay {npr[c]!r}, tshark {ts[c]!r}")
            elif truth[c] and npr[c] != ts[c]:
                problems.append(f"{label}: {c}: decoded before the damage: tshark {ts[c]!r}, "
                                f"netplay {npr[c]!r}")
            elif ts[c] and not npr[c] and not truth[c] and not tshark_extra_allowed(fr, c):
                problems.append(f"{label}: {c}: tshark {ts[c]!r}, netplay empty")
    if problems:
        test.fail(f"{len(problems)} disagreements in {os.path.basename(cap.path)}:\n  "
                  + "\n  ".join(problems[:60]))


# name: (generator args, netplay decode args, tshark args)
CASES = {
    "many_tags_vnis_vlan_qinq": (dict(mix="many", frames=3000, seed=11), (), ()),
    "ipv6_underlay_ns_pcap": (dict(mix="many", frames=1000, seed=12, underlay="v6",
                                   tsresol="ns"), (), ()),
    "big_endian_pcap": (dict(mix="many", frames=500, seed=13, big=True), (), ()),
    "pcapng_two_interfaces": (dict(mix="many", frames=1500, seed=14, fmt="pcapng",
                                   links=("EN10MB", "EN10MB"), tsresol="ns"), (), ()),
    "pcapng_big_endian": (dict(mix="bad", frames=400, seed=15, fmt="pcapng", big=True), (), ()),
    "lab": (dict(mix="lab", frames=600, seed=16), (), ()),
    "truncated_malformed": (dict(mix="bad", frames=800, seed=17), (), ()),
    "port_8472": (dict(mix="many", frames=1000, seed=18, ports=(8472,)), ("--ports", "8472"),
                  ("-d", "udp.port==8472,vxlan")),
    "ports_4789_8472_default": (dict(mix="many", frames=1000, seed=19, ports=(4789, 8472)),
                                (), ()),
    "ports_4789_8472_both": (dict(mix="many", frames=1000, seed=19, ports=(4789, 8472)),
                             ("--ports", "4789,8472"), ("-d", "udp.port==8472,vxlan")),
    "linux_sll": (dict(mix="many", frames=800, seed=20, links=("LINUX_SLL",)), (), ()),
    "linux_sll2": (dict(mix="many", frames=800, seed=21, links=("LINUX_SLL2",)), (), ()),
    "raw": (dict(mix="many", frames=800, seed=22, links=("RAW",)), (), ()),
    "ipv4_linktype": (dict(mix="many", frames=300, seed=23, links=("IPV4",)), (), ()),
    "ipv6_linktype": (dict(mix="many", frames=300, seed=24, links=("IPV6",)), (), ()),
    "linux_sll_bad": (dict(mix="bad", frames=400, seed=25, links=("LINUX_SLL",)), (), ()),
    "linux_sll2_bad": (dict(mix="bad", frames=400, seed=26, links=("LINUX_SLL2",)), (), ()),
    "raw_bad": (dict(mix="bad", frames=400, seed=27, links=("RAW",)), (), ()),
}


class Files:
    """The captures of CASES, written once per test run."""
    _dir = None
    _caps: dict[str, Capture] = {}

    @classmethod
    def get(cls, name: str) -> Capture:
        if cls._dir is None:
            cls._dir = tempfile.TemporaryDirectory(prefix="netplay-decode-")
        if name not in cls._caps:
            np_args = CASES[name][1]
            ports = ([int(p) for p in np_args[1].split(",")] if "--ports" in np_args
                     else [4789])
            cls._caps[name] = Capture(cls._dir.name, name, **CASES[name][0]).seen_with(ports)
        return cls._caps[name]

    _tshark: dict[str, list] = {}

    @classmethod
    def tshark(cls, name: str) -> list[TsharkFrame]:
        if name not in cls._tshark:
            cls._tshark[name] = tshark(cls.get(name).path, *CASES[name][2])
        return cls._tshark[name]


def tearDownModule():
    if Files._dir is not None:
        Files._dir.cleanup()


class GeneratorAgreesWithTshark(unittest.TestCase):
    """The oracle first: tshark reads every file as the generator meant it."""

    def check(self, name: str) -> None:
        need_tools(self, netplay=False)
        cap = Files.get(name)
        rows = Files.tshark(name)
        self.assertEqual(len(rows), len(cap.frames))
        problems = []
        for n, (fr, tsf) in enumerate(zip(cap.frames, rows), 1):
            truth, ts = fr.truth(), tsf.columns
            label = frame_label(fr, n)
            for c in FIELD_COLUMNS:
                if fr.malformed:
                    if truth[c] and ts[c] != truth[c]:
                        problems.append(f"{label}: {c}: wrote {truth[c]!r}, tshark {ts[c]!r}")
                    elif ts[c] and not truth[c] and not tshark_extra_allowed(fr, c):
                        problems.append(f"{label}: {c}: tshark {ts[c]!r} after the damage")
                elif ts[c] != truth[c]:
                    problems.append(f"{label}: {c}: wrote {truth[c]!r}, tshark {ts[c]!r}")
            tshark_says = tsf.damaged or tsf.i_flag_clear
            if tshark_says != fr.malformed:
                problems.append(f"{label}: generator malformed={fr.malformed}, tshark "
                                f"{tsf.raw['_ws.expert.severity']!r} {tsf.raw['_ws.short']!r}")
        if problems:
            self.fail(f"{len(problems)} disagreements:\n  " + "\n  ".join(problems[:40]))


class DecodeVsTshark(unittest.TestCase):
    """`netplay decode FILE --format tsv` against tshark, per frame and per column."""

    def check(self, name: str) -> None:
        need_tools(self)
        cap = Files.get(name)
        np_args = CASES[name][1]
        compare(self, cap, netplay_tsv(self, cap.path, *np_args), Files.tshark(name))


for _name in CASES:
    setattr(GeneratorAgreesWithTshark, f"test_{_name}",
            lambda self, n=_name: self.check(n))
    setattr(DecodeVsTshark, f"test_{_name}", lambda self, n=_name: self.check(n))


class UnreadableFiles(unittest.TestCase):
    """Exit 2 and one line naming the file when libpcap cannot read it."""

    def setUp(self):
        need_tools(self)
        self.tmp = tempfile.TemporaryDirectory(prefix="netplay-decode-")
        self.addCleanup(self.tmp.cleanup)

    def expect_error(self, path: str, words: str) -> subprocess.CompletedProcess:
        p = netplay("decode", path, "--format", "tsv")
        self.assertEqual(p.returncode, 2, p.stdout[-500:] + p.stderr)
        err = p.stderr.strip().splitlines()
        self.assertEqual(len(err), 1, p.stderr)
        self.assertTrue(err[0].startswith(f"netplay: {path}"), err[0])
        self.assertIn(words, err[0])
        return p

    def test_not_a_capture(self):
        path = os.path.join(self.tmp.name, "x.pcap")
        with open(path, "wb") as f:
            f.write(b"this is not a capture file at all\n" * 4)
        self.expect_error(path, "unknown file format")

    def test_ends_inside_a_frame(self):
        # tshark reads the frames before the cut record; netplay prints them, then fails.
        cap = Capture(self.tmp.name, "cut", "many", 50, 31)
        with open(cap.path, "rb") as f:
            data = f.read()
        with open(cap.path, "wb") as f:
            f.write(data[:-30])
        p = self.expect_error(cap.path, "")
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 1 + 49, "the header and the 49 whole frames")

    def test_pcapng_with_two_link_types(self):
        # libpcap refuses an interface whose link type differs from the first one's;
        # tshark reads the file (it decodes every frame of it the generator's way).
        cap = Capture(self.tmp.name, "mixed", "many", 60, 32, fmt="pcapng",
                      links=("EN10MB", "LINUX_SLL2"))
        rows = tshark(cap.path)
        self.assertEqual([r.columns for r in rows], [f.truth() for f in cap.frames])
        self.expect_error(cap.path, "different from the type of the first interface")


# ---- the step -------------------------------------------------------------------------------

STEP_TOP = 50


def run_step(test: unittest.TestCase, path: str, ports=(4789,)) -> dict:
    with tempfile.TemporaryDirectory(prefix="netplay-decode-") as d:
        pb = os.path.join(d, "pb.yaml")
        rep = os.path.join(d, "r.json")
        with open(pb, "w") as f:
            f.write("apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: decode-test}\n"
                    "steps:\n  - id: decode\n    uses: vxlan.decode\n"
                    f"    with: {json.dumps({'file': path, 'ports': list(ports), 'top': STEP_TOP})}"
                    "\n")
        p = netplay("run", pb, "--output", f"json={rep}")
        test.assertEqual(p.returncode, 0, p.stdout[-2000:] + p.stderr)
        with open(rep) as f:
            step = json.load(f)["steps"][0]
    test.assertEqual(step["status"], "pass", step["message"])
    return step["facts"]


class Expected:
    """The step's facts, counted from tshark's fields."""

    def __init__(self, rows: list[TsharkFrame], ports):
        self.frames = len(rows)
        self.bytes = sum(int(r.val("frame.len")) for r in rows)
        times = [float(r.val("frame.time_epoch")) for r in rows]
        self.first_ts, self.last_ts = times[0], times[-1]
        vx = [r for r in rows if r.is_vxlan]
        self.vxlan_frames = len(vx)
        self.other_frames = self.frames - self.vxlan_frames
        self.vxlan_whole = sum(1 for r in vx if r.columns["vni"] and not r.damaged)
        self.vxlan_any = sum(1 for r in rows if r.is_vxlan or (
            r.outer_ip and r.outer_ip[0] + 1 < len(r.outer)
            and r.outer[r.outer_ip[0] + 1][0] == "udp"
            and r.val("udp.dstport", r.outer[r.outer_ip[0] + 1][1]) in {str(p) for p in ports}))
        self.malformed = sum(1 for r in rows if r.damaged or r.i_flag_clear)
        self.vnis = collections.Counter(r.columns["vni"] for r in vx if r.columns["vni"])
        self.gbp = collections.Counter(int(r.columns["gbp"]) for r in vx if r.columns["gbp"])
        self.no_gbp = sum(1 for r in vx if r.columns["vxlan_flags"] and not r.columns["gbp"])
        self.underlay = collections.Counter(
            (r.columns["outer_src"], r.columns["outer_dst"], int(r.columns["udp_dport"]))
            for r in vx if r.columns["outer_src"] and r.columns["udp_dport"])
        self.icmp = self._icmp(vx)
        self.tcp = self._tcp(vx)
        self.flows = self._flows(vx)

    @staticmethod
    def _echo(r: TsharkFrame):
        if not r.inner_ip or not r.inner_l4:
            return None
        q, k = r.inner_l4
        c = r.columns
        if q == "icmp" and r.val("icmp.type", k) in ("8", "0") and r.val("icmp.seq", k):
            return (r.val("icmp.type", k) == "8", c["inner_src"], c["inner_dst"],
                    int(r.val("icmp.ident", k), 0), int(r.val("icmp.seq", k), 0))
        if (q == "icmpv6" and r.val("icmpv6.type", k) in ("128", "129")
                and r.val("icmpv6.echo.sequence_number", k)):
            return (r.val("icmpv6.type", k) == "128", c["inner_src"], c["inner_dst"],
                    int(r.val("icmpv6.echo.identifier", k), 0),
                    int(r.val("icmpv6.echo.sequence_number", k), 0))
        return None

    def _icmp(self, vx) -> dict:
        reqs, reps = [], set()
        for r in vx:
            e = self._echo(r)
            if e is None:
                continue
            is_req, src, dst, ident, seq = e
            if is_req:
                reqs.append((src, dst, ident, seq))
            else:
                reps.add((dst, src, ident, seq))
        answered = sum(1 for q in reqs if q in reps)
        return {"requests": len(reqs), "replies": sum(1 for r in vx if (e := self._echo(r))
                                                      and not e[0]),
                "answered": answered, "unanswered": len(reqs) - answered}

    def _tcp(self, vx) -> dict:
        syns, synacks = [], set()
        for r in vx:
            if not r.inner_l4 or r.inner_l4[0] != "tcp":
                continue
            k = r.inner_l4[1]
            if not r.val("tcp.flags", k) or not r.val("tcp.ack_raw", k):
                continue    # a TCP header cut before its flags
            flags = int(r.val("tcp.flags", k), 0)
            c = r.columns
            key = (c["inner_src"], c["inner_dst"], c["sport"], c["dport"])
            seq, ack = int(r.val("tcp.seq_raw", k), 0), int(r.val("tcp.ack_raw", k), 0)
            if flags & 0x12 == 0x02:
                syns.append((key, seq))
            elif flags & 0x12 == 0x12:
                synacks.add(((key[1], key[0], key[3], key[2]), (ack - 1) & 0xFFFFFFFF))
        answered = sum(1 for s in syns if s in synacks)
        return {"syn": len(syns), "syn_ack": len(synacks), "answered": answered,
                "unanswered": len(syns) - answered}

    @staticmethod
    def _flows(vx) -> tuple[collections.Counter, collections.Counter]:
        """Flows keyed by what a row shows (vni, gbp, src, dst, proto, dport) and by that
        plus the underlay path (outer src, dst, port): netplay keeps apart the frames of one
        inner flow that took different underlay paths. A frame without an inner IP packet
        (inner ARP) is a flow with no src, dst, proto or dport."""
        names = {"1": "icmp", "6": "tcp", "17": "udp", "58": "icmpv6"}
        shown, full = collections.Counter(), collections.Counter()
        for r in vx:
            c = r.columns
            if not c["vni"]:
                continue
            proto, dport = None, None
            if c["inner_src"]:
                proto = names.get(c["proto"], c["proto"])
                if proto in ("tcp", "udp"):
                    dport = c["dport"] or None
                elif proto in ("icmp", "icmpv6") and r.inner_l4:
                    dport = r.val(r.inner_l4[0] + ".type", r.inner_l4[1]) or None
            gbp = int(c["gbp"]) if c["gbp"] else None
            key = (int(c["vni"]), gbp, c["inner_src"], c["inner_dst"], proto, dport)
            shown[key] += 1
            full[key + (c["outer_src"], c["outer_dst"], c["udp_dport"])] += 1
        return shown, full


class StepVsTshark(unittest.TestCase):
    """vxlan.decode's tallies (and `netplay decode --format json`) against tshark."""

    def facts_vs(self, facts: dict, e: Expected, label: str, top: int) -> None:
        self.assertEqual(facts["frames"], e.frames, label)
        self.assertEqual(facts["bytes"], e.bytes, label)
        self.assertEqual(facts["malformed"], e.malformed, label)
        self.assertEqual(sum(facts["malformed_reasons"].values()), facts["malformed"], label)
        self.assertAlmostEqual(facts["first_ts"], e.first_ts, delta=1e-6, msg=label)
        self.assertAlmostEqual(facts["last_ts"], e.last_ts, delta=1e-6, msg=label)
        self.assertAlmostEqual(facts["duration_s"], e.last_ts - e.first_ts, delta=1e-5,
                               msg=label)
        self.assertEqual(facts["vxlan_frames"] + facts["other_frames"], facts["frames"], label)
        if e.malformed:
            # Whether a frame cut inside its VXLAN header (or whose UDP header is cut) is a
            # VXLAN frame the contract leaves open: between the frames whose VXLAN header
            # tshark decoded whole and those with any VXLAN layer or UDP to a VXLAN port.
            self.assertGreaterEqual(facts["vxlan_frames"], e.vxlan_whole, label)
            self.assertLessEqual(facts["vxlan_frames"], e.vxlan_any, label)
            return
        self.assertEqual(facts["vxlan_frames"], e.vxlan_frames, label)
        self.assertEqual(facts["other_frames"], e.other_frames, label)
        self.assertEqual(facts["vnis"], {k: v for k, v in e.vnis.items()}, label)
        got_gbp = {g["id"]: g["frames"] for g in facts["gbp"]}
        self.assertEqual(got_gbp, dict(e.gbp), label)
        for g in facts["gbp"]:
            self.assertEqual(len(g["tag"]), 4, g)
            self.assertEqual(int(g["tag"], 16), g["id"], g)
        frames_desc = [g["frames"] for g in facts["gbp"]]
        self.assertEqual(frames_desc, sorted(frames_desc, reverse=True), "gbp sorted")
        self.assertEqual(facts["no_gbp_frames"], e.no_gbp, label)
        # The underlay table, like the flows table, keeps the `top` rows with most frames.
        for u in facts["underlay"]:
            key = (u["src"], u["dst"], u["dport"])
            self.assertEqual(u["frames"], e.underlay.get(key), f"{label}: underlay {u}")
        self.assertEqual([u["frames"] for u in facts["underlay"]],
                         sorted(e.underlay.values(), reverse=True)[:top],
                         f"{label}: underlay rows, most frames first")
        for k in ("requests", "replies", "answered", "unanswered"):
            self.assertEqual(facts["icmp"][k], e.icmp[k], f"{label}: icmp {k}")
        for k in ("syn", "syn_ack", "answered", "unanswered"):
            self.assertEqual(facts["tcp"][k], e.tcp[k], f"{label}: tcp {k}")
        shown, full = e.flows
        self.assertEqual(facts["flows_total"], len(full), f"{label}: flows_total")
        for fl in facts["flows"]:
            dport = None if fl["dport"] is None else str(fl["dport"])
            key = (fl["vni"], fl["gbp"], fl["src"], fl["dst"], fl["proto"], dport)
            self.assertLessEqual(fl["frames"], shown.get(key, 0), f"{label}: flow {fl}")
            if fl["gbp"] is not None:
                self.assertEqual(int(fl["tag"], 16), fl["gbp"], fl)
        self.assertEqual([fl["frames"] for fl in facts["flows"]],
                         sorted(full.values(), reverse=True)[:top], f"{label}: flows top")

    def check(self, name: str) -> Expected:
        need_tools(self)
        cap = Files.get(name)
        np_args = CASES[name][1]
        ports = tuple(int(p) for p in np_args[1].split(",")) if np_args else (4789,)
        e = Expected(Files.tshark(name), ports)
        facts = run_step(self, cap.path, ports)
        self.facts_vs(facts, e, f"vxlan.decode {name}", STEP_TOP)
        p = netplay("decode", cap.path, "--format", "json", *np_args)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.facts_vs(json.loads(p.stdout), e, f"decode --format json {name}", 20)
        return e

    def test_lab(self):
        e = self.check("lab")
        # The lab has ping and TCP conversations, some unanswered: the pairing has work to do.
        self.assertGreater(e.icmp["answered"], 0)
        self.assertGreater(e.icmp["unanswered"], 0)
        self.assertGreater(e.tcp["answered"], 0)
        self.assertGreater(e.tcp["unanswered"], 0)

    def test_many_tags_and_vnis(self):
        e = self.check("many_tags_vnis_vlan_qinq")
        self.assertGreater(len(e.gbp), 300)
        self.assertGreater(len(e.vnis), 500)
        self.assertGreater(e.no_gbp, 0)

    def test_port_8472(self):
        self.check("port_8472")

    def test_truncated_malformed(self):
        e = self.check("truncated_malformed")
        self.assertGreater(e.malformed, 300)


if __name__ == "__main__":
    unittest.main()
