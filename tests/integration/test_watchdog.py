"""The watchdog through the real binary: Lua stuck inside a C function (here string.gsub
backtracking over 300,000 bytes, tens of seconds of C with no hook) can neither hang
netplay nor lose its report. With --timeout, without it (the expression's own 2s limit),
and on Ctrl-C, the run ends with a complete JSON report naming the limit, and the
children of steps running at the time are killed. Ending at all is what is checked; no
assertion depends on how long anything took (the figures are in tests/bench).
"""

import json
import os
import random
import signal
import subprocess
import tempfile
import unittest

from procs import kill_all_with, processes_with, wait_for

BIN = os.environ.get("NETPLAY_BIN", "netplay")

# Quadratic backtracking in C: an unanchored '.-b' over a string without 'b'.
SPIN = "select(2, string.rep('a', 300000):gsub('.-b', '')) == 0"


class Watchdog(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="np-dog-")
        self.marker = f"60.{random.randrange(10**7, 10**8)}"
        self.pb = os.path.join(self.tmp.name, "spin.yaml")
        with open(self.pb, "w") as f:
            f.write(f"""apiVersion: netplay/v1
kind: Playbook
metadata: {{name: spin}}
steps:
  - id: sleeper
    uses: exec
    timeout: 90s
    with: {{argv: [sleep, "{self.marker}"]}}
  - id: spin
    uses: sysctl
    when: "{SPIN}"
    with: {{key: net.ipv4.ip_forward}}
  - id: late
    uses: sysctl
    needs: [spin]
    with: {{key: net.ipv4.ip_forward}}
""")
        self.report = os.path.join(self.tmp.name, "report.json")

    def tearDown(self):
        kill_all_with(self.marker)
        self.tmp.cleanup()

    def run_netplay(self, *extra: str, signal_after_start=None):
        proc = subprocess.Popen(
            [BIN, "run", self.pb, "--output", f"json={self.report}", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            if signal_after_start is not None:
                self.assertTrue(wait_for(lambda: processes_with(self.marker), 10),
                                "the exec step's `sleep` never started")
                proc.send_signal(signal_after_start)
            _, err = proc.communicate(timeout=60)  # a hang guard, not a timing assertion
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertTrue(wait_for(lambda: not processes_with(self.marker), 10),
                        f"child `sleep {self.marker}` still running")
        self.assertTrue(os.path.exists(self.report), "no JSON report written")
        with open(self.report) as f:
            return proc.returncode, json.load(f), err.decode(errors="replace")

    def check_complete(self, report: dict, limit: str):
        self.assertEqual([s["id"] for s in report["steps"]], ["sleeper", "spin", "late"])
        self.assertIn(limit, report["stopped"])
        steps = {s["id"]: s for s in report["steps"]}
        self.assertEqual(steps["sleeper"]["status"], "error")
        self.assertTrue(steps["sleeper"]["message"].startswith("not finished: "))
        self.assertEqual(steps["late"]["status"], "skip")
        self.assertEqual(report["summary"]["skip"], 1)

    def test_validate_does_not_run_the_lua(self):
        proc = subprocess.run([BIN, "validate", self.pb], capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_global_timeout(self):
        rc, report, err = self.run_netplay("--timeout", "2s", "--jobs", "2")
        self.assertEqual(rc, 3, err)
        self.assertEqual(report["status"], "error")
        self.assertFalse(report["interrupted"])
        self.check_complete(report, "run timed out after 2s")
        self.assertIn("run timed out after 2s", err)

    def test_expression_time_limit(self):
        rc, report, err = self.run_netplay("--jobs", "2")
        self.assertEqual(rc, 3, err)
        self.check_complete(report, "expression exceeded its time limit (2s)")
        spin = report["steps"][1]
        self.assertEqual(spin["status"], "error")
        self.assertIn("expression exceeded its time limit (2s)", spin["message"])

    def test_ctrl_c(self):
        rc, report, err = self.run_netplay("--jobs", "2", signal_after_start=signal.SIGINT)
        self.assertEqual(rc, 130, err)
        self.assertTrue(report["interrupted"])
        self.assertEqual(report["status"], "error")
        self.assertEqual([s["id"] for s in report["steps"]], ["sleeper", "spin", "late"])


if __name__ == "__main__":
    unittest.main()
