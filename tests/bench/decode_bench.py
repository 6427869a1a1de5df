#!/usr/bin/env python3
"""Decoding a million VXLAN-GBP frames: `netplay decode --format json` and `netplay run` of a
one-step vxlan.decode playbook, optionally next to tshark and tcpdump on the same file.

The file (tests/integration/pcap_gen.py --mix bench: a few hundred distinct frames, many
tags and VNIs, TCP/UDP/ICMP inside, some 802.1Q and QinQ, both underlays, a few plain
frames, rewritten with rising timestamps) is cached in $TMPDIR/netplay-decode-bench/ under a
name that changes with the frame count, the seed and the generator's text.

Each measurement is a fresh process run under GNU time (/usr/bin/time, from scripts/setup),
which reports its own child's ru_maxrss and CPU time: a child of this interpreter would
inherit Python's RSS as its peak (Linux keeps the high-water mark across exec). Prints, for
the best (fastest) of --repeat runs: wall time, frames per second, CPU time (user + sys,
what the figure would be on an idle machine) and peak RSS (the largest of the runs); every
run must report all the frames. The load average is printed with them. With --compare, also
`tshark -n -T fields -e vxlan.gbp -e vxlan.vni -e ip.src -e ip.dst` (on the first
--tshark-frames frames, extrapolated to the whole file and labelled so, unless that is the
whole file) and `tcpdump -nr FILE` (output to /dev/null), once each.
  tests/bench/decode_bench.py [--bin build/netplay] [--frames 1000000] [--repeat 3]
                              [--compare] [--tshark-frames 100000]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
import pcap_gen  # noqa: E402

SEED = 7


def bench_file(frames: int) -> str:
    with open(pcap_gen.__file__, "rb") as f:
        h = hashlib.sha1(f.read()).hexdigest()[:10]
    d = os.path.join(tempfile.gettempdir(), "netplay-decode-bench")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"vxlan-{frames}-s{SEED}-{h}.pcap")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        tmp = path + ".part"
        pcap_gen.write_bench(tmp, frames, SEED)
        os.rename(tmp, path)
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return path


def measure(argv: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, float]:
    """Runs argv once under GNU time; returns (wall s, CPU s, peak RSS MB of that process).

    Not os.wait4 on a child of this interpreter: Linux keeps a process's largest RSS
    across exec, so a child forked from Python reports at least Python's own RSS (tens of
    MB here). GNU time forks the program from a process of a few hundred KB."""
    with tempfile.NamedTemporaryFile("r", prefix="netplay-bench-time-") as t:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", t.name, *argv],
                           stdout=stdout, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"bench: {' '.join(argv)} exited {p.returncode}: "
                     f"{p.stderr.decode(errors='replace').strip()[-500:]}")
        user, sys_s, rss_kb = t.read().split()[-3:]
    return wall, float(user) + float(sys_s), int(rss_kb) / 1024.0


def best_of(repeat: int, run) -> tuple[float, float, float]:
    """(best wall, CPU of that run, largest peak RSS) over `repeat` runs of run()."""
    runs = [run() for _ in range(repeat)]
    wall, cpu, _ = min(runs)
    return wall, cpu, max(r[2] for r in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("NETPLAY_BIN", "build/netplay"))
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", action="store_true", help="also time tshark and tcpdump")
    ap.add_argument("--tshark-frames", type=int, default=100_000,
                    help="tshark reads only the first N frames (0: all), extrapolated")
    a = ap.parse_args()
    n = a.frames
    path = bench_file(n)
    size_mb = os.path.getsize(path) / 1e6
    rows = []

    with tempfile.TemporaryDirectory(prefix="netplay-decode-bench-") as d:
        out = os.path.join(d, "facts.json")

        def decode_json():
            with open(out, "w") as f:
                m = measure([a.bin, "decode", path, "--format", "json"], stdout=f)
            with open(out) as f:
                facts = json.load(f)
            if facts["frames"] != n:
                sys.exit(f"bench: netplay decode counted {facts['frames']} of {n} frames")
            return m

        subprocess.run([a.bin, "decode", path, "--format", "json"], stdout=subprocess.DEVNULL,
                       check=True)   # warm the page cache
        dec_wall, dec_cpu, dec_rss = best_of(a.repeat, decode_json)
        rows.append(("netplay decode --format json", dec_wall, dec_cpu, n, dec_rss, ""))

        pb = os.path.join(d, "pb.yaml")
        rep = os.path.join(d, "r.json")
        with open(pb, "w") as f:
            f.write("apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: decode-bench}\n"
                    "steps:\n  - id: decode\n    uses: vxlan.decode\n"
                    f"    with: {{file: {json.dumps(path)}}}\n    timeout: 600s\n")
        step_ms = []

        def run_step():
            m = measure([a.bin, "run", pb, "--output", f"json={rep}"])
            with open(rep) as f:
                s = json.load(f)["steps"][0]
            if s["status"] != "pass" or s["facts"]["frames"] != n:
                sys.exit(f"bench: vxlan.decode {s['status']}: {s['message']}")
            step_ms.append(s["duration_ms"])
            return m

        run_wall, run_cpu, run_rss = best_of(a.repeat, run_step)
        rows.append(("netplay run (one vxlan.decode step)", run_wall, run_cpu, n, run_rss,
                     f"step duration_ms best {min(step_ms):.0f}"))

        if a.compare:
            tn = n if a.tshark_frames <= 0 or a.tshark_frames >= n else a.tshark_frames
            argv = ["tshark", "-r", path, "-n", "-T", "fields", "-e", "vxlan.gbp",
                    "-e", "vxlan.vni", "-e", "ip.src", "-e", "ip.dst"]
            if tn < n:
                argv[3:3] = ["-c", str(tn)]
            w, c, r = measure(argv)
            label = "tshark -T fields (gbp, vni, ip.src, ip.dst)"
            note = ""
            if tn < n:
                note = f"EXTRAPOLATED x{n / tn:g}: read {tn} frames in {w:.2f} s"
                w, c = w * n / tn, c * n / tn
                label = f"tshark -T fields [first {tn // 1000}k, x{n / tn:g}]"
            rows.append((label, w, c, n, r, note))
            w, c, r = measure(["tcpdump", "-nr", path])
            rows.append(("tcpdump -nr FILE > /dev/null", w, c, n, r, ""))

    load = os.getloadavg()[0]
    print(f"{n} frames, {size_mb:.1f} MB, pcap EN10MB ({path}); best of {a.repeat} for "
          f"netplay, peak RSS the largest of the runs; load average {load:.2f}")
    print(f"{'measure':<40} {'wall s':>8} {'Mframes/s':>10} {'CPU s':>8} {'Mframes/CPU s':>14} "
          f"{'peak RSS MB':>12}")
    for label, w, c, frames, rss, note in rows:
        print(f"{label:<40} {w:>8.2f} {frames / w / 1e6:>10.3f} {c:>8.2f} "
              f"{frames / max(c, 1e-9) / 1e6:>14.3f} {rss:>12.1f}" + (f"   {note}" if note else ""))
    print(f"decode: {n / dec_wall / 1e6:.2f} Mframes/s, peak RSS {dec_rss:.1f} MB "
          f"(target >= 5 Mframes/s, < 50 MB)")


if __name__ == "__main__":
    main()
