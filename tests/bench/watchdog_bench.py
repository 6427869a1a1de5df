#!/usr/bin/env python3
"""Issue 7 benchmark: how long netplay takes to end a run whose Lua is stuck inside a C
function (string.gsub backtracking over 300,000 bytes: tens of seconds of C), and that it
still writes its report. Three cases, each REPEAT times: `--timeout 2s`, no timeout (the
expression's own 2 s limit), and Ctrl-C 0.5 s after the start. Prints the median and maximum
wall time to exit, and the exit codes seen.
  tests/bench/watchdog_bench.py [--bin build/netplay] [--repeat 5]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PLAYBOOK = """apiVersion: netplay/v1
kind: Playbook
metadata: {name: spin}
steps:
  - id: ok
    uses: sysctl
    with: {key: net.ipv4.ip_forward}
  - id: spin
    uses: sysctl
    needs: [ok]
    when: "select(2, string.rep('a', 300000):gsub('.-b', '')) == 0"
    with: {key: net.ipv4.ip_forward}
"""


def once(bin_, pb, report, extra, sigint_after=None):
    if os.path.exists(report):
        os.unlink(report)
    t0 = time.perf_counter()
    p = subprocess.Popen([bin_, "run", pb, "-q", "--output", f"json={report}", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if sigint_after is not None:
        time.sleep(sigint_after)
        p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        sys.exit("bench: netplay did not end within 60 s")
    wall = time.perf_counter() - t0
    with open(report) as f:
        r = json.load(f)
    if len(r["steps"]) != 2:
        sys.exit(f"bench: incomplete report: {r}")
    return wall, rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        pb = os.path.join(d, "spin.yaml")
        with open(pb, "w") as f:
            f.write(PLAYBOOK)
        report = os.path.join(d, "r.json")
        for name, extra, sig in [("--timeout 2s", ["--timeout", "2s"], None),
                                 ("no --timeout (2 s expression limit)", [], None),
                                 ("Ctrl-C after 0.5 s", [], 0.5)]:
            walls, rcs = [], set()
            for _ in range(a.repeat):
                w, rc = once(a.bin, pb, report, extra, sig)
                walls.append(w)
                rcs.add(rc)
            print(f"{name:38s} exit {sorted(rcs)}  wall median {statistics.median(walls):.2f} s"
                  f"  max {max(walls):.2f} s")


if __name__ == "__main__":
    main()
