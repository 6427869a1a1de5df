#!/usr/bin/env python3
"""Issue 3 benchmark: the 13 structural checks of a Silk-like two-cell overlay in one run.

Builds the lab of tests/integration/silk_lab.py (namespaces only, removed afterwards), runs
playbooks/silk-cell-structure.yaml against it REPEAT times and prints the median and minimum
wall time of `netplay run` and of the run itself (the report's duration_ms). Needs root.
  tests/bench/overlay_bench.py [--bin build/netplay] [--repeat 30]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
from silk_lab import Lab  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("--repeat", type=int, default=30)
    a = ap.parse_args()
    pb = os.path.join(SOURCE, "playbooks", "silk-cell-structure.yaml")
    with Lab(cells=2, containers=1) as lab, tempfile.TemporaryDirectory() as d:
        cell, remote = lab.cells
        c = cell.containers[0]
        subprocess.run(["ip", "netns", "exec", cell.ns, "ethtool", "-K", "silk-vtep",
                        "tx-checksum-ip-generic", "off"], capture_output=True)
        report = os.path.join(d, "r.json")
        cmd = [a.bin, "run", pb, "--output", f"json={report}",
               "--set", f"cell_netns={cell.ns}", "--set", f"container_netns={c.ns}",
               "--set", f"container_ip={c.ip}", "--set", f"remote_overlay={remote.overlay_ip}",
               "--set", f"remote_underlay={remote.underlay_ip}"]
        walls, durs = [], []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            walls.append((time.perf_counter() - t0) * 1000)
            with open(report) as f:
                r = json.load(f)
            if p.returncode != 0 or r["summary"]["pass"] != 13:
                sys.exit(f"bench: expected 13 passing checks, got {r['summary']} "
                         f"(exit {p.returncode}): {p.stderr[:300]}")
            durs.append(r["duration_ms"])
    print(f"{'measure':<50} {'median ms':>10} {'min ms':>9}")
    print(f"{'13 overlay checks: netplay run (wall)':<50} {statistics.median(walls):>10.2f} {min(walls):>9.2f}")
    print(f"{'13 overlay checks: the run (report duration_ms)':<50} {statistics.median(durs):>10.2f} {min(durs):>9.2f}")


if __name__ == "__main__":
    main()
