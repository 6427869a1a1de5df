#!/usr/bin/env python3
"""DNS and HTTP probe benchmark: 100 A queries to a local dnsmasq in a namespace.

Builds the lab of tests/integration/probe_lab.py (a client and a server namespace, dnsmasq
and python's http.server in the server one; all removed afterwards) and prints side by side:
  - the `dns` step with count N: p50/p90/p99/max of its query times (its facts), and the
    step's whole duration;
  - `dig @SERVER NAME`, run N times in a shell loop inside the client namespace: p50/p99 of
    its "Query time" lines (whole milliseconds) and the wall time per dig process;
  - the `http` step with count N against http.server: p50/p99 of the total request time.
Needs root.
  tests/bench/dns_bench.py [--bin build/netplay] [-n 100]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
from probe_lab import BACKEND, HTTP_PORT, SERVER_IP, ProbeLab  # noqa: E402
from silk_lab import playbook  # noqa: E402


def pct(values, p):
    v = sorted(values)
    k = max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))
    return v[int(k)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("-n", type=int, default=100)
    a = ap.parse_args()
    n = a.n
    with ProbeLab() as lab, tempfile.TemporaryDirectory() as d:
        ns = lab.client
        body = (f"  - id: dns\n    uses: dns\n    netns: {ns}\n"
                f"    with: {{name: {BACKEND[0]}, server: {SERVER_IP}, count: {n}}}\n"
                f"    timeout: 60s\n"
                f"  - id: http\n    uses: http\n    netns: {ns}\n"
                f"    with: {{url: 'http://{SERVER_IP}:{HTTP_PORT}/', count: {n}}}\n"
                f"    timeout: 60s\n")
        pb = os.path.join(d, "pb.yaml")
        rep = os.path.join(d, "r.json")
        with open(pb, "w") as f:
            f.write(playbook(body, name="dns-bench"))
        t0 = time.perf_counter()
        p = subprocess.run([a.bin, "run", pb, "--jobs", "1", "--output", f"json={rep}"],
                           capture_output=True, text=True)
        run_wall = (time.perf_counter() - t0) * 1000
        with open(rep) as f:
            r = json.load(f)
        steps = {s["id"]: s for s in r["steps"]}
        for sid in ("dns", "http"):
            if steps[sid]["status"] != "pass":
                sys.exit(f"bench: {sid} did not pass (exit {p.returncode}): "
                         f"{steps[sid]['message']}")
        dns, http = steps["dns"]["facts"], steps["http"]["facts"]

        loop = (f"for i in $(seq {n}); do dig @{SERVER_IP} {BACKEND[0]} A +tries=1 +time=2; "
                f"done")
        t0 = time.perf_counter()
        out = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", loop], capture_output=True,
                             text=True).stdout
        dig_wall = (time.perf_counter() - t0) * 1000
        dig_ms = [int(m) for m in re.findall(r"Query time: (\d+) msec", out)]
        if len(dig_ms) != n:
            sys.exit(f"bench: dig answered {len(dig_ms)} of {n} queries")

    load = os.getloadavg()[0]
    print(f"{n} A queries for {BACKEND[0]} to dnsmasq at {SERVER_IP} (load average {load:.2f})")
    print(f"{'measure':<44} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{'dns step, query_ms (count ' + str(n) + ')':<44} {dns['p50_ms']:>8.3f} "
          f"{dns['p90_ms']:>8.3f} {dns['p99_ms']:>8.3f} {dns['max_ms']:>8.3f}")
    print(f"{'dig, Query time (whole ms)':<44} {pct(dig_ms, 50):>8} {pct(dig_ms, 90):>8} "
          f"{pct(dig_ms, 99):>8} {max(dig_ms):>8}")
    print(f"{'http step, time_total (count ' + str(n) + ')':<44} {http['time_total_p50_ms']:>8.3f} "
          f"{http['time_total_p90_ms']:>8.3f} {http['time_total_p99_ms']:>8.3f} "
          f"{http['time_total_max_ms']:>8.3f}")
    print()
    dns_dur, http_dur = steps["dns"]["duration_ms"], steps["http"]["duration_ms"]
    print(f"{'dns step duration (all ' + str(n) + ' queries)':<44} {dns_dur:>8.1f} ms "
          f"= {dns_dur / n:.3f} ms per query")
    print(f"{'dig: wall per process (' + str(n) + ' runs)':<44} {dig_wall / n:>8.1f} ms")
    print(f"{'http step duration (all ' + str(n) + ' requests)':<44} {http_dur:>8.1f} ms")
    print(f"{'netplay run wall (both steps)':<44} {run_wall:>8.1f} ms")
    print(f"dns step avg {dns['avg_ms']:.3f} ms, min {dns['min_ms']:.3f} ms; "
          f"dig mean {statistics.mean(dig_ms):.2f} ms")


if __name__ == "__main__":
    main()
