"""The capture, vxlan.decode and trace.hops steps against the Silk-like lab with its GBP marks:
the runbook's "tcpdump -n port 4789 on each cell" as a playbook.

- A ping from an app container of cell 1 to one of cell 2, captured on both cells' underlay:
  each side sees the requests and the replies, the group policy ids of both apps (named by the
  policy server's tags list and the cells' container metadata stores), tcpdump's two-line
  form in the evidence; tshark, reading the pcap files netplay wrote, agrees on the ids.
- UDP 4789 dropped on the receiving cell: the sending cell sees requests and no replies, and a
  trace along the eight points of the path names the receiving cell's underlay as the last
  hop; in the healthy lab the trace loses nothing.
- A TCP connection across the overlay: SYN and SYN-ACK paired.
- Bad input (a truncated capture, a text file, a missing interface, a bad BPF filter, no
  privilege): one clear line, status `error`, exit code 3, no crash.
- Ctrl-C during a capture that writes a file: exit 130, the report written, the file readable.
"""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

from procs import wait_for
from silk_lab import (Lab, netplay_bin, playbook, require_root, run_playbook, sh, step_yaml,
                      validate_playbook)

TSHARK = "/usr/bin/tshark"
TCPDUMP = "/usr/bin/tcpdump"
SANITIZER_MARKS = ("terminate called", "Sanitizer", "runtime error:", "AddressSanitizer")


def step(sid: str, uses: str, with_: dict, netns: str | None = None, expect: dict | None = None,
         needs: list | None = None, background: bool = False, timeout: str | None = None) -> str:
    """step_yaml with the scheduling keys these tests use."""
    extra = {}
    if needs:
        extra["needs"] = needs
    if background:
        extra["background"] = True
    if timeout:
        extra["timeout"] = timeout
    return step_yaml(sid, uses, with_, netns=netns, expect=expect, extra=extra)


def tshark_fields(path: str, *fields: str, display_filter: str | None = None) -> list[list[str]]:
    """One row per frame of `path`, the given fields as tshark prints them."""
    argv = [TSHARK, "-n", "-r", path, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    if display_filter:
        argv += ["-Y", display_filter]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"tshark cannot read {path}: {p.stderr.strip()}")
    return [line.split("\t") for line in p.stdout.splitlines()]


class CaptureTestBase(unittest.TestCase):
    def setUp(self):
        require_root()
        for tool in (TSHARK, TCPDUMP):
            if not os.access(tool, os.X_OK):
                raise AssertionError(f"{tool} is missing: scripts/setup installs it")
        self.tmp = tempfile.mkdtemp(prefix="netplay-capture-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def make_lab(self, **kw) -> Lab:
        lab = Lab(cells=2, containers=2, **kw).up()
        self.addCleanup(lab.down)
        self.lab = lab
        self.c1, self.c2 = lab.cells
        # The sender (tag 0001) and the receiver (tag 0003) of the runbook's example.
        self.k1 = self.c1.containers[0]
        self.r1 = self.c2.containers[0]
        self.tags = lab.write_tags(self.tmp)
        self.stores = lab.write_stores(self.tmp)
        return lab

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def capture_step(self, sid: str, cell, write: str | None = None, needs=None,
                     timeout: str = "120s", **extra) -> str:
        w = {"interface": "eth0", "filter": "udp port 4789", "decode": "vxlan",
             "tags": self.tags, "store": self.stores}
        if write:
            w["write"] = write
        w.update(extra)
        return step(sid, "capture", w, netns=cell.ns, background=True, timeout=timeout,
                    needs=needs)

    def trace_step(self, sid: str = "trace") -> str:
        k1, r1, c1, c2 = self.k1, self.r1, self.c1, self.c2
        points = [
            {"name": "c1-eth0", "netns": k1.ns, "interface": k1.cont_if},
            {"name": "c1-veth", "netns": c1.ns, "interface": k1.host_if},
            {"name": "c1-vtep", "netns": c1.ns, "interface": Lab.VTEP},
            {"name": "c1-underlay", "netns": c1.ns, "interface": c1.underlay_if},
            {"name": "c2-underlay", "netns": c2.ns, "interface": c2.underlay_if},
            {"name": "c2-vtep", "netns": c2.ns, "interface": Lab.VTEP},
            {"name": "c2-veth", "netns": c2.ns, "interface": r1.host_if},
            {"name": "c2-eth0", "netns": r1.ns, "interface": r1.cont_if},
        ]
        return step(sid, "trace.hops",
                    {"points": points, "flow": {"host": r1.ip, "proto": "icmp"}, "ports": [4789]},
                    background=True, timeout="120s")

    def ping_step(self, needs, count: int = 3, sid: str = "ping") -> str:
        return step(sid, "ping", {"target": self.r1.ip, "count": count, "interval": "200ms",
                                  "timeout": "2s"},
                    netns=self.k1.ns, needs=needs)

    def run_pb(self, steps: str, *args: str, name: str = "capture-test"):
        code, report, out, err = run_playbook(playbook(steps, name=name), *args, timeout=300)
        self.assert_no_crash(code, err)
        self.assertIsNotNone(report, f"no JSON report; exit {code}; stderr: {err}")
        return code, {s["id"]: s for s in report["steps"]}, report, err

    def assert_no_crash(self, code: int, err: str):
        self.assertGreaterEqual(code, 0, f"netplay died of signal {-code}: {err}")
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, err)

    def assert_one_line_error(self, result: dict, *needles: str):
        self.assertEqual(result["status"], "error", result)
        msg = result["message"]
        self.assertTrue(msg.strip(), result)
        self.assertNotIn("\n", msg)
        for n in needles:
            self.assertIn(n, msg, result)


class CaptureHealthyLabTest(CaptureTestBase):
    def setUp(self):
        super().setUp()
        self.make_lab()

    def test_ping_across_the_overlay_seen_on_both_underlays_with_both_apps_gbp_ids(self):
        p1, p2 = self.path("c1.pcap"), self.path("c2.pcap")
        code, steps, report, err = self.run_pb(
            self.capture_step("cap_c1", self.c1, write=p1)
            + self.capture_step("cap_c2", self.c2, write=p2)
            + self.ping_step(["cap_c1", "cap_c2"]))
        self.assertEqual(code, 0, json.dumps(report, indent=1))
        self.assertEqual(steps["ping"]["facts"]["received"], 3, steps["ping"])
        k1, r1 = self.k1, self.r1
        self.assertEqual((k1.tag, r1.tag), ("0001", "0003"))

        for sid, pcap in (("cap_c1", p1), ("cap_c2", p2)):
            with self.subTest(capture=sid):
                cap = steps[sid]
                self.assertEqual(cap["status"], "pass", cap)
                f = cap["facts"]
                self.assertEqual(f["interface"], "eth0")
                self.assertEqual(f["linktype"], "EN10MB")
                self.assertEqual(f["stopped_by"], "stop")
                self.assertEqual(f["file"], pcap)
                # Three requests and three replies, one each way per echo.
                self.assertEqual(f["packets"], 6, f)
                self.assertEqual(f["in"], 3, f)
                self.assertEqual(f["out"], 3, f)
                self.assertEqual(f["kernel_drops"], 0)
                self.assertLessEqual(f["first_ts"], f["last_ts"])
                v = f["vxlan"]
                self.assertEqual(v["frames"], 6)
                self.assertEqual(v["vxlan_frames"], 6)
                self.assertEqual(v["other_frames"], 0)
                self.assertEqual(v["malformed"], 0, v["malformed_reasons"])
                self.assertEqual(v["vnis"], {"1": 6})
                self.assertEqual(v["icmp"], {"requests": 3, "replies": 3, "answered": 3,
                                             "unanswered": 0})
                self.assertEqual(v["no_gbp_frames"], 0)
                self.assertEqual(v["unknown_tags"], [])
                # The GBP ids are the two apps' tags, named by the tags list.
                gbp = {g["id"]: g for g in v["gbp"]}
                self.assertEqual(set(gbp), {k1.gbp, r1.gbp}, v["gbp"])
                self.assertEqual(gbp[1], {"id": 1, "tag": "0001", "app": k1.app_guid,
                                          "frames": 3})
                self.assertEqual(gbp[3], {"id": 3, "tag": "0003", "app": r1.app_guid,
                                          "frames": 3})
                # Inner addresses named by the cells' store.json.
                flows = {(fl["src"], fl["dst"]): fl for fl in v["flows"]}
                self.assertEqual(set(flows), {(k1.ip, r1.ip), (r1.ip, k1.ip)}, v["flows"])
                req, rep = flows[(k1.ip, r1.ip)], flows[(r1.ip, k1.ip)]
                self.assertEqual((req["proto"], req["dport"], req["vni"], req["gbp"], req["tag"],
                                  req["src_app"], req["dst_app"], req["frames"]),
                                 ("icmp", 8, 1, 1, "0001", k1.app_guid, r1.app_guid, 3))
                self.assertEqual((rep["proto"], rep["dport"], rep["vni"], rep["gbp"], rep["tag"],
                                  rep["src_app"], rep["dst_app"], rep["frames"]),
                                 ("icmp", 0, 1, 3, "0003", r1.app_guid, k1.app_guid, 3))
                self.assertEqual(v["flows_total"], 2)
                apps = {a["app"]: a for a in v["apps"]}
                self.assertEqual(apps[k1.app_guid]["tag"], "0001")
                self.assertEqual(apps[k1.app_guid]["ips"], [k1.ip])
                self.assertEqual((apps[k1.app_guid]["sent"], apps[k1.app_guid]["received"]),
                                 (3, 3))
                self.assertEqual((apps[r1.app_guid]["sent"], apps[r1.app_guid]["received"]),
                                 (3, 3))
                underlay = {(u["src"], u["dst"]): u for u in v["underlay"]}
                self.assertEqual(underlay[(self.c1.underlay_ip, self.c2.underlay_ip)]["frames"], 3)
                self.assertEqual(underlay[(self.c2.underlay_ip, self.c1.underlay_ip)]["frames"], 3)
                self.assertEqual({u["dport"] for u in v["underlay"]}, {4789})
                # tcpdump's form: the underlay packet, then the overlay packet inside it.
                self.assert_two_line_form(cap["evidence"])
                # tshark on the file netplay wrote sees the same ids, frame for frame.
                rows = tshark_fields(pcap, "vxlan.gbp", "vxlan.vni", "ip.src")
                self.assertEqual(len(rows), f["packets"])
                seen = collections.Counter(int(r[0], 0) for r in rows)
                self.assertEqual(seen, collections.Counter(
                    {g["id"]: g["frames"] for g in v["gbp"]}))
                self.assertEqual({r[1] for r in rows}, {"1"})

    def assert_two_line_form(self, evidence: list):
        lines = [line for e in evidence for line in e.splitlines()]
        outer = re.compile(r"^\d\d:\d\d:\d\d\.\d{6} IP (10\.0\.0\.\d)\.\d+ > (10\.0\.0\.\d)\.4789: "
                           r"VXLAN.*\(0x88\).* vni 1$")
        inner = re.compile(r"^\s*IP (10\.255\.\d+\.\d+) > (10\.255\.\d+\.\d+): ICMP echo "
                           r"(request|reply), id \d+, seq (\d), length \d+$")
        pairs = []
        for i, line in enumerate(lines[:-1]):
            m = outer.match(line)
            if not m:
                continue
            n = inner.match(lines[i + 1])
            self.assertIsNotNone(n, f"no overlay line after {line!r}: {lines}")
            pairs.append((m.group(1), m.group(2), n.group(1), n.group(2), n.group(3),
                          n.group(4)))
        u1, u2 = self.c1.underlay_ip, self.c2.underlay_ip
        k1, r1 = self.k1.ip, self.r1.ip
        self.assertEqual(pairs[:2], [(u1, u2, k1, r1, "request", "1"),
                                     (u2, u1, r1, k1, "reply", "1")], lines)
        self.assertEqual(len(pairs), 6, lines)
        self.assertIn("group policy id 1", "\n".join(lines))

    def test_healthy_trace_loses_nothing(self):
        code, steps, report, err = self.run_pb(
            self.trace_step() + self.ping_step(["trace"]))
        self.assertEqual(code, 0, json.dumps(report, indent=1))
        t = steps["trace"]
        self.assertEqual(t["status"], "pass", t)
        f = t["facts"]
        self.assertFalse(f["lost"], f)
        self.assertIsNone(f["last_hop"], f)
        self.assertEqual(f["rewrites"], [])
        names = [p["name"] for p in f["points"]]
        self.assertEqual(names, ["c1-eth0", "c1-veth", "c1-vtep", "c1-underlay", "c2-underlay",
                                 "c2-vtep", "c2-veth", "c2-eth0"])
        for p in f["points"]:
            self.assertEqual(p["packets"], 6, p)
        classes = {c["direction"]: c for c in f["classes"]}
        self.assertEqual(set(classes), {"forward", "reverse"}, f["classes"])
        fwd, rev = classes["forward"], classes["reverse"]
        self.assertEqual(fwd["class"], f"icmp echo-request {self.k1.ip} > {self.r1.ip}")
        self.assertEqual(rev["class"], f"icmp echo-reply {self.r1.ip} > {self.k1.ip}")
        for c in (fwd, rev):
            self.assertEqual(c["packets"], 3, c)
            self.assertEqual(c["seen"], {n: 3 for n in names}, c)
            self.assertEqual(c["missing_at"], [], c)
            self.assertIsNone(c["lost_after"], c)
        self.assertEqual(fwd["last_seen"], "c2-eth0")
        self.assertEqual(rev["last_seen"], "c1-eth0")

    def test_tcp_handshake_across_the_overlay_is_paired(self):
        port = 8080
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.r1.ns, sys.executable, "-m", "http.server",
             str(port), "--bind", self.r1.ip, "--directory", self.tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop_server():
            server.terminate()
            server.wait(timeout=30)
        self.addCleanup(stop_server)
        def listening():
            out = sh("ip", "netns", "exec", self.r1.ns, "ss", "-Hltn").stdout
            return f"{self.r1.ip}:{port}" in out
        self.assertTrue(wait_for(listening, 60), "http.server never listened")
        p2 = self.path("tcp.pcap")
        code, steps, report, err = self.run_pb(
            self.capture_step("cap_c2", self.c2, write=p2)
            + step("connect", "tcp.connect", {"host": self.r1.ip, "port": port, "count": 2},
                   netns=self.k1.ns, needs=["cap_c2"], expect={"open_count": 2})
            + step("get", "http", {"url": f"http://{self.r1.ip}:{port}/"},
                   netns=self.k1.ns, needs=["cap_c2", "connect"], expect={"status": 200}))
        self.assertEqual(code, 0, json.dumps(report, indent=1))
        v = steps["cap_c2"]["facts"]["vxlan"]
        tcp = v["tcp"]
        self.assertEqual(tcp["syn"], 3, tcp)        # two connects, one GET
        self.assertEqual(tcp["syn_ack"], 3, tcp)
        self.assertEqual(tcp["answered"], 3, tcp)
        self.assertEqual(tcp["unanswered"], 0, tcp)
        to_server = [fl for fl in v["flows"] if fl["proto"] == "tcp" and fl["dport"] == port]
        self.assertEqual(len(to_server), 1, v["flows"])
        fl = to_server[0]
        self.assertEqual((fl["src"], fl["dst"], fl["gbp"], fl["src_app"], fl["dst_app"]),
                         (self.k1.ip, self.r1.ip, self.k1.gbp, self.k1.app_guid,
                          self.r1.app_guid))
        back = [fl for fl in v["flows"] if fl["proto"] == "tcp" and fl["src"] == self.r1.ip]
        self.assertTrue(back and all(b["gbp"] == self.r1.gbp for b in back), v["flows"])
        # tshark: the SYN-ACKs in the file carry the server's id.
        rows = tshark_fields(p2, "vxlan.gbp", display_filter="tcp.flags.syn==1 && tcp.flags.ack==1")
        self.assertEqual([int(r[0], 0) for r in rows], [self.r1.gbp] * 3)


class CaptureDroppedVxlanTest(CaptureTestBase):
    def test_receiving_cell_drops_vxlan_sender_sees_no_reply_trace_names_its_underlay(self):
        self.make_lab()
        self.lab.drop_vxlan(self.c2)
        code, steps, report, err = self.run_pb(
            self.capture_step("cap_c1", self.c1) + self.trace_step()
            + self.ping_step(["cap_c1", "trace"]))
        self.assertEqual(code, 1, json.dumps(report, indent=1))  # the ping and the trace fail
        self.assertEqual(steps["ping"]["status"], "fail")
        self.assertEqual(steps["ping"]["facts"]["received"], 0)
        cap = steps["cap_c1"]
        self.assertEqual(cap["status"], "pass", cap)
        v = cap["facts"]["vxlan"]
        self.assertEqual(v["icmp"], {"requests": 3, "replies": 0, "answered": 0,
                                     "unanswered": 3})
        self.assertEqual([(g["id"], g["app"], g["frames"]) for g in v["gbp"]],
                         [(self.k1.gbp, self.k1.app_guid, 3)])
        self.assertEqual(cap["facts"]["out"], 3)
        self.assertEqual(cap["facts"]["in"], 0)

        t = steps["trace"]
        self.assertEqual(t["status"], "fail", t)
        f = t["facts"]
        self.assertTrue(f["lost"])
        self.assertEqual(f["last_hop"], "c2-underlay", f)
        self.assertIn("c2-underlay", t["message"])
        self.assertIn("echo-request", t["message"])
        fwd = [c for c in f["classes"] if c["direction"] == "forward"]
        self.assertEqual(len(fwd), 1, f["classes"])
        fwd = fwd[0]
        self.assertEqual(fwd["class"], f"icmp echo-request {self.k1.ip} > {self.r1.ip}")
        self.assertEqual(fwd["lost_after"], "c2-underlay")
        self.assertEqual(fwd["last_seen"], "c2-underlay")
        self.assertEqual(fwd["answered"], 0)
        # missing_at lists blind points between sightings: there are none here.
        self.assertEqual(fwd["missing_at"], [])
        self.assertEqual(f["lost_between"], ["c2-underlay", "c2-vtep"])
        self.assertEqual({k: n for k, n in fwd["seen"].items() if n},
                         {"c1-eth0": 3, "c1-veth": 3, "c1-vtep": 3, "c1-underlay": 3,
                          "c2-underlay": 3})
        self.assertFalse([c for c in f["classes"] if c["direction"] == "reverse"
                          and c["packets"] > 0], f["classes"])


class CaptureBadInputTest(CaptureTestBase):
    """Each bad input: status error, one line saying what is wrong, exit code 3, no crash."""

    def setUp(self):
        super().setUp()
        self.make_lab()

    def tcpdump_file(self, name: str) -> str:
        """A real capture of a 3-echo ping across the overlay, taken with tcpdump on cell 2's
        underlay (the runbook's command). tcpdump stops by itself after the 6 frames: on
        Ctrl-C it would drop what it had not read from the kernel yet."""
        out = self.path(name)
        proc = subprocess.Popen(["ip", "netns", "exec", self.c2.ns, TCPDUMP, "-n", "-i", "eth0",
                                 "--immediate-mode", "-c", "6", "-w", out, "udp", "port",
                                 "4789"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            # tcpdump says "listening on eth0" once its socket is open.
            line = proc.stderr.readline()
            self.assertIn("listening on", line)
            code, _, _, err = run_playbook(playbook(self.ping_step(None)))
            self.assertEqual(code, 0, err)
            _, err = proc.communicate(timeout=120)
            self.assertEqual(proc.returncode, 0, err)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(len(tshark_fields(out, "frame.number")), 6)
        return out

    def decode(self, path: str, sid: str = "decode"):
        return self.run_pb(step(sid, "vxlan.decode",
                                {"file": path, "tags": self.tags, "store": self.stores}))

    def test_decode_of_a_tcpdump_file_agrees_with_tshark(self):
        src = self.tcpdump_file("full.pcap")
        code, steps, report, err = self.decode(src)
        self.assertEqual(code, 0, err)
        f = steps["decode"]["facts"]
        self.assertEqual(f["frames"], 6)
        self.assertTrue(f["complete"])
        self.assertEqual(f["icmp"]["answered"], 3)
        rows = tshark_fields(src, "vxlan.gbp")
        self.assertEqual(collections.Counter(int(r[0], 0) for r in rows),
                         collections.Counter({g["id"]: g["frames"] for g in f["gbp"]}))
        self.assertEqual({g["app"] for g in f["gbp"]}, {self.k1.app_guid, self.r1.app_guid})
        # `netplay decode --format tsv`, frame by frame, against tshark.
        p = subprocess.run([netplay_bin(), "decode", src, "--format", "tsv"],
                           capture_output=True, text=True, timeout=120)
        self.assert_no_crash(p.returncode, p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        header = lines[0].split("\t")
        self.assertEqual(header, ["frame", "vlan", "outer_src", "outer_dst", "udp_dport",
                                  "vxlan_flags", "gbp", "vni", "inner_src", "inner_dst", "proto",
                                  "sport", "dport", "malformed"])
        ours = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
        theirs = tshark_fields(src, "frame.number", "vxlan.gbp", "vxlan.vni", "ip.src", "ip.dst",
                               "udp.dstport")
        self.assertEqual(len(ours), len(theirs))
        for o, t in zip(ours, theirs):
            outer_src, inner_src = t[3].split(",")
            outer_dst, inner_dst = t[4].split(",")
            self.assertEqual(
                (o["frame"], o["gbp"], o["vni"], o["outer_src"], o["outer_dst"], o["inner_src"],
                 o["inner_dst"], o["udp_dport"], o["vxlan_flags"], o["proto"], o["malformed"]),
                (t[0], str(int(t[1], 0)), t[2], outer_src, outer_dst, inner_src, inner_dst,
                 t[5], "0x88", "1", ""))

    def test_truncated_capture(self):
        src = self.tcpdump_file("full.pcap")
        with open(src, "rb") as f:
            data = f.read()
        # pcap: a 24-byte file header, then per frame a 16-byte record header (caplen at 8).
        offsets, off = [], 24
        while off < len(data):
            offsets.append(off)
            off += 16 + int.from_bytes(data[off + 8:off + 12], "little")
        self.assertEqual(len(offsets), 6)
        # Cut in the middle of the fourth frame: the three before are decoded, the file is
        # said to end inside frame 4 (a capture still being written): a warning.
        mid = self.path("cut-mid.pcap")
        with open(mid, "wb") as f:
            f.write(data[:offsets[3] + 16 + 40])
        code, steps, report, err = self.decode(mid)
        s = steps["decode"]
        self.assertEqual(s["status"], "warn", s)
        self.assertEqual(code, 0, err)
        self.assertNotIn("\n", s["message"])
        self.assertIn(mid, s["message"])
        self.assertIn("frame 4", s["message"])
        self.assertEqual(s["facts"]["frames"], 3)
        self.assertFalse(s["facts"]["complete"])
        # Cut inside the first frame: nothing to decode, an error.
        first = self.path("cut-first.pcap")
        with open(first, "wb") as f:
            f.write(data[:offsets[0] + 16 + 30])
        code, steps, report, err = self.decode(first)
        self.assert_one_line_error(steps["decode"], first)
        self.assertEqual(code, 3, err)
        # Cut inside the file header: libpcap cannot open it.
        header = self.path("cut-header.pcap")
        with open(header, "wb") as f:
            f.write(data[:10])
        code, steps, report, err = self.decode(header)
        self.assert_one_line_error(steps["decode"], header)
        self.assertEqual(code, 3, err)

    def test_decode_of_a_text_file(self):
        txt = self.path("notes.txt")
        with open(txt, "w") as f:
            f.write("tcpdump -n port 4789\nthis is not a capture file, only notes about one\n")
        code, steps, report, err = self.decode(txt)
        self.assert_one_line_error(steps["decode"], txt, "unknown file format")
        self.assertEqual(code, 3, err)
        # `netplay decode` on it: a usage-level error, one line naming the file.
        p = subprocess.run([netplay_bin(), "decode", txt], capture_output=True, text=True,
                           timeout=120)
        self.assert_no_crash(p.returncode, p.stderr)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(p.stderr.strip().splitlines(),
                         [f"netplay: {txt}: unknown file format"])

    def test_decode_of_a_missing_file(self):
        missing = self.path("nope.pcap")
        code, steps, report, err = self.decode(missing)
        self.assert_one_line_error(steps["decode"], missing)
        self.assertEqual(code, 3, err)

    def test_capture_on_an_interface_missing_in_its_namespace(self):
        # silk-vtep exists in the cell, not in the container.
        code, steps, report, err = self.run_pb(step(
            "cap", "capture", {"interface": Lab.VTEP, "duration": "1s"}, netns=self.k1.ns))
        self.assert_one_line_error(steps["cap"], Lab.VTEP)
        self.assertEqual(code, 3, err)

    def test_bad_bpf_filter_carries_libpcap_message(self):
        pb = playbook(step("cap", "capture", {"interface": "eth0", "duration": "1s",
                                              "filter": "udp port 4789 and and"},
                           netns=self.c1.ns))
        # The playbook validates (the filter is compiled when the capture opens); the step
        # errors with libpcap's message.
        code, out, err = validate_playbook(pb)
        self.assertEqual(code, 0, err)
        code, report, out, err = run_playbook(pb, timeout=300)
        self.assert_no_crash(code, err)
        self.assertEqual(code, 3, err)
        steps = {s["id"]: s for s in report["steps"]}
        self.assert_one_line_error(steps["cap"], "bad filter 'udp port 4789 and and'",
                                   "syntax error")

    def test_capture_without_privilege_names_cap_net_raw(self):
        # The playbook, the report and the binary must be reachable by nobody.
        os.chmod(self.tmp, 0o777)
        pb, rep = self.path("pb.yaml"), self.path("report.json")
        with open(pb, "w") as f:
            f.write(playbook(step("cap", "capture", {"interface": "eth0", "duration": "1s"})))
        os.chmod(pb, 0o644)
        # Run inside cell 1's namespace (entered as root) so the capture is attempted on the
        # lab's eth0, then drop to uid 65534 without any capability.
        p = subprocess.run(["ip", "netns", "exec", self.c1.ns, "setpriv", "--reuid=65534",
                            "--regid=65534", "--clear-groups", "--inh-caps=-all",
                            "--bounding-set=-all", netplay_bin(), "run", pb, "--output",
                            f"json={rep}"], capture_output=True, text=True, timeout=300)
        self.assert_no_crash(p.returncode, p.stderr)
        self.assertTrue(os.path.exists(rep), f"no report; exit {p.returncode}: {p.stderr}")
        with open(rep) as f:
            cap = json.load(f)["steps"][0]
        self.assert_one_line_error(cap, "CAP_NET_RAW")
        self.assertEqual(p.returncode, 3, p.stderr)


class CaptureInterruptTest(CaptureTestBase):
    def test_ctrl_c_during_a_capture_writing_a_file(self):
        self.make_lab()
        pcap, rep, ready = self.path("long.pcap"), self.path("report.json"), self.path("ready")
        pb = self.path("pb.yaml")
        with open(pb, "w") as f:
            f.write(playbook(
                self.capture_step("cap", self.c1, write=pcap, duration="600s", timeout="900s")
                + self.ping_step(["cap"])
                # Keeps the capture running: it needs the capture, and it waits.
                + step("hold", "exec", {"cmd": f"touch {ready}; exec sleep 600", "shell": True},
                       needs=["cap", "ping"], timeout="900s")))
        proc = subprocess.Popen([netplay_bin(), "run", pb, "--output", f"json={rep}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(wait_for(lambda: os.path.exists(ready) or proc.poll() is not None,
                                     300), "the hold step never started")
            self.assertIsNone(proc.poll(), "netplay ended before Ctrl-C")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assert_no_crash(proc.returncode, err)
        self.assertEqual(proc.returncode, 130, err)
        with open(rep) as f:
            report = json.load(f)
        self.assertTrue(report["interrupted"])
        steps = {s["id"]: s for s in report["steps"]}
        self.assertEqual(steps["ping"]["status"], "pass", steps["ping"])
        cap = steps["cap"]
        self.assertEqual(cap["status"], "error", cap)
        self.assertEqual(cap["message"], "interrupted")
        # The facts of what it saw until then are kept, and say why it stopped.
        self.assertEqual(cap["facts"]["stopped_by"], "interrupt", cap)
        self.assertEqual(cap["facts"]["file"], pcap)
        self.assertEqual(cap["facts"]["vxlan"]["icmp"]["answered"], 3, cap)
        # What was captured before Ctrl-C is in the file, and tshark reads it.
        self.assertTrue(os.path.exists(pcap), "the capture file is gone")
        rows = tshark_fields(pcap, "vxlan.gbp", "icmp.type")
        self.assertEqual(collections.Counter((int(g, 0), t) for g, t in rows),
                         collections.Counter({(self.k1.gbp, "8"): 3, (self.r1.gbp, "0"): 3}))


if __name__ == "__main__":
    unittest.main()
