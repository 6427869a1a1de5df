#!/usr/bin/env python3
"""tcp.connect benchmark: a playbook of 200 TCP probes to refused ports.

Builds two namespaces joined by a veth (client 10.79.0.1, server 10.79.0.2, nothing
listening on the server), runs a playbook of N `tcp.connect` steps from the client to
distinct closed ports of the server (each expects `state: refused`, so every step must
pass), for several --jobs values, and prints per setting the median of:
  - the wall time of `netplay run`,
  - the run's own duration_ms (from the JSON report),
  - the slowest single probe (max connect_ms) and the sum of all probes' connect_ms,
so that the runner's cost per probe and its concurrency can be read off. Needs root.
Removes its namespaces on exit. Usage:
  tests/bench/tcp_bench.py [--bin build/netplay] [--steps 200] [--repeat 5] [--jobs 4 8 16]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PREFIX = f"nptb{os.getpid() % 100000}-"
CLIENT, SERVER = PREFIX + "c", PREFIX + "s"


def sh(*argv):
    subprocess.run(list(argv), check=True, capture_output=True)


def up():
    for ns in (CLIENT, SERVER):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", "tbc0", "netns", CLIENT, "type", "veth", "peer", "tbs0",
       "netns", SERVER)
    sh("ip", "-n", CLIENT, "addr", "add", "10.79.0.1/24", "dev", "tbc0")
    sh("ip", "-n", SERVER, "addr", "add", "10.79.0.2/24", "dev", "tbs0")
    sh("ip", "-n", CLIENT, "link", "set", "tbc0", "up")
    sh("ip", "-n", SERVER, "link", "set", "tbs0", "up")


def down():
    for ns in (CLIENT, SERVER):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def playbook(steps):
    lines = ["apiVersion: netplay/v1", "kind: Playbook",
             "metadata: {name: bench-tcp, title: 'Benchmark: tcp.connect to refused ports'}",
             "steps:"]
    for i in range(steps):
        lines += [f"  - id: p{i}", "    uses: tcp.connect", f"    netns: {CLIENT}",
                  f"    with: {{host: 10.79.0.2, port: {20000 + i}}}",
                  "    expect: {state: refused}"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, nargs="+", default=[4, 8, 16])
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tcp_bench: needs root (it creates network namespaces)")

    up()
    try:
        with tempfile.TemporaryDirectory(prefix="np-bench-") as d:
            pb = os.path.join(d, "bench.yaml")
            with open(pb, "w") as f:
                f.write(playbook(a.steps))
            print(f"{a.steps} tcp.connect steps to refused ports, median of {a.repeat} runs "
                  f"(load average {os.getloadavg()[0]:.2f})")
            print(f"{'jobs':>4} {'wall ms':>9} {'run ms':>9} {'max probe ms':>13} "
                  f"{'sum probes ms':>14} {'wall/step ms':>13}")
            for jobs in a.jobs:
                walls, durs, maxes, sums = [], [], [], []
                for _ in range(a.repeat):
                    report = os.path.join(d, "report.json")
                    cmd = [a.bin, "run", pb, "--jobs", str(jobs), "--output", f"json={report}"]
                    t0 = time.perf_counter()
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    walls.append((time.perf_counter() - t0) * 1000)
                    if r.returncode != 0:
                        sys.exit(f"tcp_bench: netplay run exited {r.returncode}: "
                                 f"{(r.stderr or r.stdout)[:500]}")
                    with open(report) as f:
                        rep = json.load(f)
                    probes = [s["facts"]["connect_ms"] for s in rep["steps"]]
                    if len(probes) != a.steps:
                        sys.exit(f"tcp_bench: {len(probes)} of {a.steps} steps reported")
                    durs.append(rep.get("duration_ms", 0))
                    maxes.append(max(probes))
                    sums.append(sum(probes))
                wall = statistics.median(walls)
                print(f"{jobs:>4} {wall:>9.1f} {statistics.median(durs):>9.1f} "
                      f"{statistics.median(maxes):>13.3f} {statistics.median(sums):>14.2f} "
                      f"{wall / a.steps:>13.3f}")
    finally:
        down()


if __name__ == "__main__":
    main()
