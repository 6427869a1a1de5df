"""The scheduler through the real binary: Ctrl-C and SIGTERM during a long `exec` step end
the run (long before the step would) with exit 130, a valid partial JSON report, and no
child left behind; a global timeout ends a run the same way with its own reason. No
assertion depends on how long anything took.

Each run's `sleep` gets a unique argument (a valid number such as 30.48213377) so the test
can find exactly its own child processes in /proc.
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


def playbook(marker: str) -> str:
    return f"""apiVersion: netplay/v1
kind: Playbook
metadata: {{name: sched-interrupt, title: "Interrupt a long step"}}
steps:
  - id: quick
    uses: sysctl
    with: {{key: net.ipv4.ip_forward}}
  - id: long
    uses: exec
    needs: [quick]  # so `quick` has surely finished when the signal comes
    timeout: 60s
    with: {{argv: [sleep, "{marker}"]}}
  - id: after
    uses: exec
    needs: [long]
    with: {{argv: ["true"]}}
"""


class SchedulerSignals(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="np-sched-")
        self.marker = f"30.{random.randrange(10**7, 10**8)}"
        self.pb = os.path.join(self.tmp.name, "long.yaml")
        with open(self.pb, "w") as f:
            f.write(playbook(self.marker))
        self.report = os.path.join(self.tmp.name, "report.json")

    def tearDown(self):
        kill_all_with(self.marker)
        self.tmp.cleanup()

    def start(self, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [BIN, "run", self.pb, "--output", f"json={self.report}", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def read_report(self) -> dict:
        self.assertTrue(os.path.exists(self.report), "no JSON report written")
        with open(self.report) as f:
            return json.load(f)

    def steps_by_id(self, report: dict) -> dict:
        return {s["id"]: s for s in report["steps"]}

    def interrupt_with(self, sig: int):
        proc = self.start()
        try:
            self.assertTrue(
                wait_for(lambda: processes_with(self.marker), 10),
                "the exec step's `sleep` never started",
            )
            proc.send_signal(sig)
            # Without the signal the run would go on for 60s: ending at all is the point.
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        err = err.decode(errors="replace")
        self.assertEqual(proc.returncode, 130, err)
        self.assertTrue(
            wait_for(lambda: not processes_with(self.marker), 10),
            f"child `sleep {self.marker}` still running: {processes_with(self.marker)}",
        )
        report = self.read_report()
        self.assertTrue(report["interrupted"])
        steps = self.steps_by_id(report)
        self.assertEqual(steps["quick"]["status"], "pass")
        self.assertEqual(steps["long"]["status"], "error")
        self.assertEqual(steps["long"]["message"], "interrupted")
        self.assertEqual(steps["after"]["status"], "skip")
        self.assertEqual(steps["after"]["message"], "not run: interrupted")

    def test_sigint_stops_run_and_kills_children(self):
        self.interrupt_with(signal.SIGINT)

    def test_sigterm_stops_run_and_kills_children(self):
        self.interrupt_with(signal.SIGTERM)

    def test_global_timeout(self):
        proc = self.start("--timeout", "500ms")
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 3, err.decode(errors="replace"))
        self.assertTrue(wait_for(lambda: not processes_with(self.marker), 10))
        report = self.read_report()
        self.assertFalse(report["interrupted"])
        steps = self.steps_by_id(report)
        self.assertEqual(steps["long"]["status"], "error")
        self.assertEqual(steps["long"]["message"], "run timed out after 500ms")
        self.assertEqual(steps["after"]["message"], "not run: global timeout")


if __name__ == "__main__":
    unittest.main()
