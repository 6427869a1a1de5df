#!/usr/bin/env python3
"""Active-probe benchmark (issue 8): 200 `tcp.connect` probes to refused ports and one `ping`
step to 50 targets, all in one playbook, against a peer namespace this script creates.

Prints the wall time of `netplay run` next to its slowest single probe (the ping step: the
50 targets are pinged concurrently, so it lasts about count x interval) and the sum of every
probe's own time: the run should cost little more than its slowest probe. Needs root.
Usage:
  tests/bench/probe_bench.py [--bin build/netplay] [--repeat 5] [--jobs 4]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PREFIX = f"npb{os.getpid()}-"
CLIENT, SERVER = PREFIX + "cl", PREFIX + "sv"
TARGETS = [f"10.77.1.{i}" for i in range(1, 51)]
PORTS = list(range(20000, 20200))


def sh(*argv, input=None):
    p = subprocess.run(argv, capture_output=True, text=True, input=input)
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)}: {p.stderr.strip()}")
    return p


def up():
    for ns in (CLIENT, SERVER):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", CLIENT, "link", "add", "v0", "type", "veth", "peer", "name", "v0", "netns", SERVER)
    sh("ip", "-n", CLIENT, "addr", "add", "10.77.0.1/24", "dev", "v0")
    sh("ip", "-n", SERVER, "addr", "add", "10.77.0.2/24", "dev", "v0")
    for ns in (CLIENT, SERVER):
        sh("ip", "-n", ns, "link", "set", "v0", "up")
    batch = "".join(f"addr add {t}/32 dev lo\n" for t in TARGETS)
    sh("ip", "-n", SERVER, "-batch", "-", input=batch)
    sh("ip", "-n", CLIENT, "route", "add", "10.77.1.0/24", "via", "10.77.0.2")


def down():
    for ns in (CLIENT, SERVER):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def playbook(count, interval_ms):
    lines = ["apiVersion: netplay/v1", "kind: Playbook",
             "metadata: {name: bench-probes, title: 'Benchmark: 200 TCP probes and 50 pings'}",
             "steps:",
             "  - id: pings",
             "    uses: ping",
             f"    netns: {CLIENT}",
             f"    with: {{target: [{', '.join(TARGETS)}], count: {count}, interval: {interval_ms}ms}}"]
    for p in PORTS:
        lines += [f"  - id: tcp{p}", "    uses: tcp.connect", f"    netns: {CLIENT}",
                  f"    with: {{host: 10.77.0.2, port: {p}, timeout: 1s}}",
                  "    expect: {state: refused}"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--interval-ms", type=int, default=200)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (it creates network namespaces)")
    down()
    up()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pb = os.path.join(tmp, "probes.yaml")
            with open(pb, "w") as f:
                f.write(playbook(args.count, args.interval_ms))
            rows = []
            for _ in range(args.repeat):
                out = os.path.join(tmp, "r.json")
                t0 = time.perf_counter()
                r = subprocess.run([args.bin, "run", pb, "--jobs", str(args.jobs), "-q",
                                    "--output", f"json={out}"], capture_output=True, text=True)
                wall = (time.perf_counter() - t0) * 1000
                if r.returncode != 0:
                    sys.exit(f"bench: run exited {r.returncode}: {r.stderr[:500]}")
                with open(out) as f:
                    rep = json.load(f)
                steps = {s["id"]: s for s in rep["steps"]}
                tcp = [s["duration_ms"] for i, s in steps.items() if i.startswith("tcp")]
                rows.append({"wall": wall, "run": rep["duration_ms"],
                             "ping": steps["pings"]["duration_ms"],
                             "tcp_max": max(tcp), "tcp_sum": sum(tcp),
                             "received": steps["pings"]["facts"]["received"]})
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"one playbook: 1 ping step x {len(TARGETS)} targets (count {args.count}, interval "
              f"{args.interval_ms} ms) + {len(PORTS)} tcp.connect to refused ports, --jobs "
              f"{args.jobs}, median of {args.repeat}")
        print(f"  netplay run wall:                {med['wall']:8.1f} ms")
        print(f"  report duration_ms (the run):    {med['run']:8.1f} ms")
        print(f"  slowest probe (the ping step):   {med['ping']:8.1f} ms")
        print(f"  run minus slowest probe:         {med['run'] - med['ping']:8.1f} ms")
        print(f"  slowest tcp.connect step:        {med['tcp_max']:8.2f} ms")
        print(f"  sum of all probes' durations:    {med['ping'] + med['tcp_sum']:8.1f} ms")
        print(f"  ping replies received:           {med['received']:8.0f} of "
              f"{len(TARGETS) * args.count}")
    finally:
        down()


if __name__ == "__main__":
    main()
