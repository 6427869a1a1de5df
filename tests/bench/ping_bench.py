#!/usr/bin/env python3
"""ping benchmark: 50 targets pinged by one `ping` step, against 50 separate steps.

Builds two namespaces joined by one veth: the prober (10.80.0.1/24) and a peer
(10.80.0.2/24) holding N /32 addresses 10.80.1.1.. on its loopback, routed from the
prober via the peer. Then, with the real binary, repeatedly:
  1. one `ping` step to the N addresses (count 3, interval 200ms): wall time of
     `netplay run`, the step's duration_ms, and what any pinger must wait here: the last
     request leaves (count - 1) * interval after the first and its reply comes at most the
     largest rtt_max_ms later (an upper bound of that floor: rtt_max may be an earlier reply);
  2. one `ping` step to a single address, same parameters (the per-target cost alone);
  3. N `ping` steps of one address each in one playbook, with the default --jobs (4) and
     with --jobs N: steps that wait hold a worker, so many one-target steps need the jobs.
Every run must get every reply. Prints median and minimum. Removes the namespaces on exit.
Needs root. Usage:
  tests/bench/ping_bench.py [--bin build/netplay] [-n 50] [--repeat 5]
(The kernel here may lack the dummy device, hence lo.)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

P = f"npb{os.getpid() % 100000}"
PROBER, PEER = P + "s", P + "p"
COUNT, INTERVAL_MS = 3, 200


def sh(*argv, input=None):
    r = subprocess.run(list(argv), capture_output=True, text=True, input=input)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)}: {r.stderr.strip()}")


def build(n):
    sh("ip", "netns", "add", PROBER)
    sh("ip", "netns", "add", PEER)
    sh("ip", "link", "add", "s0", "netns", PROBER, "type", "veth", "peer", "p0", "netns", PEER)
    sh("ip", "-n", PROBER, "addr", "add", "10.80.0.1/24", "dev", "s0")
    sh("ip", "-n", PEER, "addr", "add", "10.80.0.2/24", "dev", "p0")
    batch = "".join(f"addr add 10.80.1.{i}/32 dev lo\n" for i in range(1, n + 1))
    sh("ip", "-n", PEER, "-batch", "-", input=batch)
    for ns, dev in ((PROBER, "s0"), (PROBER, "lo"), (PEER, "p0"), (PEER, "lo")):
        sh("ip", "-n", ns, "link", "set", dev, "up")
    sh("ip", "-n", PROBER, "route", "add", "10.80.1.0/24", "via", "10.80.0.2")


def teardown():
    for ns in (PROBER, PEER):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def head():
    return "apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: bench-ping}\nsteps:\n"


def ping_step(sid, targets):
    return (f"  - id: {sid}\n    uses: ping\n    netns: {PROBER}\n"
            f"    with: {{target: {json.dumps(targets)}, count: {COUNT}, "
            f"interval: {INTERVAL_MS}ms}}\n")


def run(bin_, text, d, want_received, extra=()):
    pb, rep = os.path.join(d, "pb.yaml"), os.path.join(d, "report.json")
    with open(pb, "w") as f:
        f.write(text)
    t0 = time.perf_counter()
    r = subprocess.run([bin_, "run", pb, "--output", f"json={rep}", *extra], capture_output=True)
    wall = (time.perf_counter() - t0) * 1000
    with open(rep) as f:
        report = json.load(f)
    got = sum(s["facts"].get("received", 0) for s in report["steps"])
    if r.returncode != 0 or got != want_received:
        sys.exit(f"bench: run exited {r.returncode}, {got}/{want_received} replies: "
                 f"{r.stderr.decode()[:300]}")
    return wall, report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    targets = [f"10.80.1.{i}" for i in range(1, a.n + 1)]
    rows = []
    try:
        build(a.n)
        with tempfile.TemporaryDirectory(prefix="np-bench-") as d:
            run(a.bin, head() + ping_step("warm", targets), d, a.n * COUNT)
            walls, durs, floors = [], [], []
            for _ in range(a.repeat):
                wall, rep = run(a.bin, head() + ping_step("all", targets), d, a.n * COUNT)
                s = rep["steps"][0]
                walls.append(wall)
                durs.append(s["duration_ms"])
                slowest = max(t["rtt_max_ms"] for t in s["facts"]["targets"])
                floors.append((COUNT - 1) * INTERVAL_MS + slowest)
            rows.append((f"one step, {a.n} targets: netplay run (wall)", walls, ""))
            rows.append((f"one step, {a.n} targets: step duration_ms", durs, ""))
            rows.append(("  (count-1)*interval + largest rtt_max (>= the floor)", floors, ""))

            walls, durs = [], []
            for _ in range(a.repeat):
                wall, rep = run(a.bin, head() + ping_step("one", targets[:1]), d, COUNT)
                walls.append(wall)
                durs.append(rep["steps"][0]["duration_ms"])
            rows.append(("one step, 1 target: netplay run (wall)", walls, ""))
            rows.append(("one step, 1 target: step duration_ms", durs, ""))

            body = head() + "".join(ping_step(f"t{i}", [t]) for i, t in enumerate(targets))
            walls, durs = [], []
            for _ in range(a.repeat):
                wall, rep = run(a.bin, body, d, a.n * COUNT)
                walls.append(wall)
                durs.append(rep["duration_ms"])
            rows.append((f"{a.n} steps of 1 target, default --jobs: run (wall)", walls, ""))
            rows.append((f"{a.n} steps of 1 target, default --jobs: report duration_ms", durs,
                         ""))
            walls, durs = [], []
            for _ in range(a.repeat):
                wall, rep = run(a.bin, body, d, a.n * COUNT, ("--jobs", str(min(a.n, 64))))
                walls.append(wall)
                durs.append(rep["duration_ms"])
            rows.append((f"{a.n} steps of 1 target, --jobs {min(a.n, 64)}: run (wall)", walls, ""))
            rows.append((f"{a.n} steps of 1 target, --jobs {min(a.n, 64)}: report duration_ms",
                         durs, ""))
    finally:
        teardown()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"{'measure':<58} {'median ms':>10} {'min ms':>9}")
    for name, xs, _ in rows:
        print(f"{name:<58} {statistics.median(xs):>10.1f} {min(xs):>9.1f}")


if __name__ == "__main__":
    main()
