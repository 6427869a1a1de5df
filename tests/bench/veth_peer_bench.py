#!/usr/bin/env python3
"""veth.peer `all: true` on a node with many container namespaces (issue 3).

Builds N network namespaces (default 500), each holding `eth0`, a veth whose peer lives in
the host namespace and is enslaved to one bridge, as on a container node. Then measures:
  1. `netplay run` of a one-step playbook `veth.peer {all: true}`, repeated: the step's own
     duration_ms from the JSON report, the whole run's wall time, and peak RSS
     (/usr/bin/time -v);
  2. the iproute2 baseline: `ip -n NS -j -d link show` once per namespace, timed on a
     sample and extrapolated to N (labelled as such);
  3. a raw-netlink reference in Python (setns + socket + one RTM_GETLINK dump per
     namespace, no parsing), for scale; the interpreter's overhead is included.
Every namespace and link it creates is removed on exit, also on failure or Ctrl-C.
Usage (root): tests/bench/veth_peer_bench.py [--bin build/netplay] [-n 500] [--repeat 10]
"""
import argparse
import ctypes
import json
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

CLONE_NEWNET = 0x40000000
RTM_GETLINK = 18
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_DONE = 3


def sh(*argv, check=True, **kw):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, **kw)


def ip_batch(lines):
    with tempfile.NamedTemporaryFile("w", suffix=".ip", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        p = sh("ip", "-force", "-batch", path, check=False)
        return p
    finally:
        os.unlink(path)


class Node:
    """N container namespaces with a veth each to the host namespace, on one bridge."""

    def __init__(self, n):
        tag = os.getpid() % 10000
        self.prefix = f"nb{tag}-"
        self.host_prefix = f"nb{tag}h"
        self.bridge = f"nb{tag}br"
        self.names = [f"{self.prefix}{i}" for i in range(n)]

    def up(self):
        t0 = time.monotonic()
        p = ip_batch([f"netns add {ns}" for ns in self.names])
        if p.returncode:
            raise RuntimeError(p.stderr)
        lines = [f"link add {self.bridge} type bridge", f"link set {self.bridge} up"]
        for i, ns in enumerate(self.names):
            h = f"{self.host_prefix}{i}"
            lines += [f"link add {h} type veth peer name eth0 netns {ns}",
                      f"link set {h} master {self.bridge}", f"link set {h} up"]
        p = ip_batch(lines)
        if p.returncode:
            raise RuntimeError(p.stderr)
        return time.monotonic() - t0

    def down(self):
        ip_batch([f"netns del {ns}" for ns in self.names])
        sh("ip", "link", "del", self.bridge, check=False)


def run_netplay(binary, playbook, report):
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v", binary, "run", playbook, "--output",
                        f"json={report}"], capture_output=True, text=True)
    wall = (time.monotonic() - t0) * 1000
    if p.returncode != 0:
        raise RuntimeError(f"netplay run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    rss_kb = int(m.group(1)) if m else 0
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", p.stderr))
    with open(report) as f:
        r = json.load(f)
    return r, wall, rss_kb, cpu * 1000


def iproute2_sample(names, sample):
    pick = names[:: max(1, len(names) // sample)][:sample]
    t0 = time.monotonic()
    for ns in pick:
        sh("ip", "-n", ns, "-j", "-d", "link", "show")
    sh("ip", "-j", "-d", "link", "show")  # the host side once
    dt = time.monotonic() - t0
    return dt, len(pick)


def raw_netlink(names):
    """setns + socket + one link dump per namespace, from Python."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    req = struct.pack("=IHHII", 32, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + bytes(16)
    buf = bytearray(65536)
    t0 = time.monotonic()
    for ns in ["/proc/thread-self/ns/net"] + [f"/run/netns/{n}" for n in names]:
        fd = os.open(ns, os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        if libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns home")
        os.close(fd)
        s.send(req)
        done = False
        while not done:
            n = s.recv_into(buf)
            off = 0
            while off < n:
                length, kind = struct.unpack_from("=IH", buf, off)
                if kind == NLMSG_DONE:
                    done = True
                off += (length + 3) & ~3
        s.close()
    dt = time.monotonic() - t0
    os.close(home)
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("-n", type=int, default=500, help="container namespaces")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--sample", type=int, default=50, help="iproute2 baseline sample size")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("veth_peer_bench: needs root (creates network namespaces)")
    binary = os.path.abspath(a.bin)
    node = Node(a.n)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        build_s = node.up()
        with tempfile.TemporaryDirectory() as tmp:
            pb = os.path.join(tmp, "veth-all.yaml")
            with open(pb, "w") as f:
                f.write("apiVersion: netplay/v1\nkind: Playbook\n"
                        "metadata: {name: bench-veth-all, title: 'Benchmark: veth.peer all'}\n"
                        "steps:\n  - id: pairs\n    uses: veth.peer\n    with: {all: true}\n"
                        "    timeout: 60s\n")
            report = os.path.join(tmp, "report.json")
            steps, walls, rss, cpus = [], [], [], []
            for i in range(a.repeat + 1):
                r, wall, kb, cpu = run_netplay(binary, pb, report)
                step = r["steps"][0]
                if step["status"] != "pass":
                    raise RuntimeError(f"step did not pass: {step['message']}")
                mine = [p for p in step["facts"]["pairs"] if p["netns"].startswith(node.prefix)]
                ok = (len(mine) == a.n and
                      all(p["peer_netns"] == "host" and p["peer_master"] == node.bridge and
                          p["peer_interface"] == f"{node.host_prefix}{p['netns'][len(node.prefix):]}"
                          for p in mine))
                if not ok:
                    raise RuntimeError(f"wrong pairs: {len(mine)} of {a.n} found correctly paired")
                if i == 0:
                    namespaces = step["facts"]["namespaces"]
                    continue  # warm-up: page cache, first netlink use
                steps.append(step["duration_ms"])
                walls.append(wall)
                rss.append(kb / 1024)
                cpus.append(cpu)
        ip_s, ip_n = iproute2_sample(node.names, a.sample)
        raw_s = raw_netlink(node.names)
    finally:
        node.down()

    med = statistics.median
    rows = [
        ("netplay veth.peer all: step duration_ms (median / min)",
         f"{med(steps):.1f} ms / {min(steps):.1f} ms"),
        ("netplay run, whole process wall time (median / min)",
         f"{med(walls):.1f} ms / {min(walls):.1f} ms"),
        ("netplay run, CPU time user+sys (median; 10 ms ticks)", f"{med(cpus):.0f} ms"),
        ("netplay run, peak RSS (max)", f"{max(rss):.1f} MB"),
        (f"iproute2 `ip -n NS -j -d link` x{a.n} (extrapolated from {ip_n})",
         f"{ip_s / ip_n * a.n * 1000:.0f} ms"),
        ("raw netlink from Python: setns + 1 dump per ns (measured, all)", f"{raw_s * 1000:.1f} ms"),
    ]
    print(f"veth.peer all: {a.n} container namespaces + host ({namespaces} namespaces scanned), "
          f"{a.n} pairs verified each run; {a.repeat} runs after 1 warm-up; setup took "
          f"{build_s:.1f} s")
    print(f"  (load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          "wall times grow with it)")
    width = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
