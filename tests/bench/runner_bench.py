#!/usr/bin/env python3
"""Runner benchmarks (issue 2): start-up, validation and per-step runner overhead.

Measures, with the real binary:
  1. `netplay --version` wall time;
  2. `netplay validate` of a generated 500-step playbook;
  3. `netplay run` of a generated 500-step playbook of `sysctl` reads: wall time of the
     whole run and runner overhead per step (run duration / steps), for --jobs 1 and 4.
Each figure is the median (and min) of several runs. Usage:
  tests/bench/runner_bench.py [--bin build/netplay] [--steps 500] [--repeat 20]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

KEYS = [
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.lo.forwarding",
    "net.ipv4.tcp_syncookies",
    "net.core.somaxconn",
]


def playbook(steps: int) -> str:
    lines = [
        "apiVersion: netplay/v1",
        "kind: Playbook",
        "metadata: {name: bench-sysctl, title: 'Benchmark: sysctl reads'}",
        "steps:",
    ]
    for i in range(steps):
        key = KEYS[i % len(KEYS)]
        lines.append(f"  - id: s{i}")
        lines.append("    uses: sysctl")
        lines.append(f"    with: {{key: {key}}}")
        lines.append("    expect: {value: {present: true}}")
    return "\n".join(lines) + "\n"


def timed(cmd, repeat, ok_codes=(0,)):
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        walls.append((time.perf_counter() - t0) * 1000)
        if r.returncode not in ok_codes:
            sys.exit(f"bench: {' '.join(cmd)} exited {r.returncode}: {r.stderr.decode()[:500]}")
    return statistics.median(walls), min(walls)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()

    rows = []
    med, mn = timed([a.bin, "--version"], a.repeat * 2)
    rows.append(("netplay --version (wall)", med, mn, ""))

    with tempfile.TemporaryDirectory(prefix="np-bench-") as d:
        pb = os.path.join(d, "bench.yaml")
        with open(pb, "w") as f:
            f.write(playbook(a.steps))
        med, mn = timed([a.bin, "validate", pb], a.repeat)
        rows.append((f"validate, {a.steps} steps (wall)", med, mn, ""))

        for jobs in (1, 4):
            report = os.path.join(d, f"report-{jobs}.json")
            cmd = [a.bin, "run", pb, "--jobs", str(jobs), "--output", f"json={report}"]
            walls, durs = [], []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                walls.append((time.perf_counter() - t0) * 1000)
                if r.returncode != 0:
                    sys.exit(f"bench: run exited {r.returncode}: {r.stderr.decode()[:500]}")
                with open(report) as f:
                    rep = json.load(f)
                if rep["summary"]["pass"] != a.steps:
                    sys.exit(f"bench: expected {a.steps} passing steps, got {rep['summary']}")
                durs.append(rep["duration_ms"])
            per_step_us = statistics.median(durs) * 1000 / a.steps
            rows.append((f"run, {a.steps} sysctl steps, --jobs {jobs} (wall)",
                         statistics.median(walls), min(walls), ""))
            rows.append((f"run, {a.steps} sysctl steps, --jobs {jobs} (scheduler, per report)",
                         statistics.median(durs), min(durs),
                         f"{per_step_us:.1f} us/step"))

    print(f"{'measure':<58} {'median ms':>10} {'min ms':>9}  note")
    for name, med, mn, note in rows:
        print(f"{name:<58} {med:>10.2f} {mn:>9.2f}  {note}")


if __name__ == "__main__":
    main()
