"""The shipped playbook playbooks/overlay-capture.yaml against the Silk-like two-cell lab whose
cells mark app traffic as Silk's policy agent does (so the kernel writes real GBP ids):

- healthy, from a container of cell 1 to a container of cell 2: request/reply pairs on the
  underlay, both apps named from the tags list and the container metadata store, exit 0;
- UDP 4789 dropped by cell 2's firewall: on the sending cell "requests left, no reply came
  back" (exit 1); on the receiving cell, capturing while cell 1 pings, "requests arrived and
  this cell sent no reply";
- a stale tags list: the unknown tag is a warning finding.
"""

import os
import subprocess
import tempfile
import threading
import unittest

from silk_lab import Lab, netplay_bin, require_root, run_playbook

SOURCE = os.environ.get("NETPLAY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK = os.path.join(SOURCE, "playbooks", "overlay-capture.yaml")


class OverlayCapturePlaybookTest(unittest.TestCase):
    def setUp(self):
        require_root()
        self.lab = Lab(cells=2, containers=1).up()
        self.addCleanup(self.lab.down)
        self.c1, self.c2 = self.lab.cells
        self.k1, self.k2 = self.c1.containers[0], self.c2.containers[0]
        self.tmp = tempfile.mkdtemp(prefix="np-capture-pb-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.tmp])
        with open(PLAYBOOK) as f:
            self.text = f.read()

    def run_pb(self, *args):
        code, report, out, err = run_playbook(self.text, *args)
        self.assertIsNotNone(report, f"no JSON report; exit {code}; stderr: {err}")
        self.assertNotIn("terminate called", err)
        steps = {s["id"]: s for s in report["steps"]}
        findings = {f["id"]: f for f in report["findings"]}
        return code, steps, findings

    def sender_args(self, tags=None):
        return ["--set", f"cell_netns={self.c1.ns}",
                "--set", f"ping_target={self.k2.ip}",
                "--set", f"ping_netns={self.k1.ns}",
                "--set", f"tags={tags or self.lab.write_tags(self.tmp)}",
                "--set", f"store={self.lab.write_store(self.c1, self.tmp)}"]

    def test_healthy_pairs_and_both_apps_named(self):
        code, steps, findings = self.run_pb(*self.sender_args())
        self.assertEqual(steps["capture_send"]["status"], "pass", steps["capture_send"]["message"])
        self.assertEqual(steps["ping"]["status"], "pass", steps["ping"]["message"])
        self.assertEqual(steps["capture_recv"]["status"], "skip")
        self.assertEqual(findings, {})
        self.assertEqual(code, 0)
        v = steps["capture_send"]["facts"]["vxlan"]
        self.assertEqual(v["icmp"]["requests"], 3)
        self.assertEqual(v["icmp"]["answered"], 3)
        by_id = {g["id"]: g for g in v["gbp"]}
        self.assertEqual(by_id[self.k1.gbp]["app"], self.k1.app_guid)
        self.assertEqual(by_id[self.k2.gbp]["app"], self.k2.app_guid)
        # The sender's address is in this cell's store; the receiver's app comes from its tag.
        request = [f for f in v["flows"] if f["src"] == self.k1.ip][0]
        self.assertEqual(request["src_app"], self.k1.app_guid)
        self.assertEqual(request["gbp"], self.k1.gbp)
        self.assertEqual(v["unknown_tags"], [])
        self.assertEqual(v["tag_mismatches"], [])

    def test_dropped_vtep_port_is_named_from_both_cells(self):
        self.lab.drop_vxlan(self.c2)
        code, steps, findings = self.run_pb(*self.sender_args())
        self.assertEqual(code, 1)
        self.assertIn("requests-unanswered", findings, findings)
        self.assertNotIn("ping-not-encapsulated", findings)
        v = steps["capture_send"]["facts"]["vxlan"]
        self.assertEqual((v["icmp"]["requests"], v["icmp"]["replies"]), (3, 0))

        # The receiving cell captures while the sending container pings it.
        # Pings go on for as long as the capture runs, so some arrive while it listens.
        done = threading.Event()

        def pinger():
            while not done.is_set():
                subprocess.run(["ip", "netns", "exec", self.k1.ns, netplay_bin(), "run",
                                os.path.join(self.tmp, "ping.yaml"), "-q"],
                               capture_output=True, timeout=30)
        with open(os.path.join(self.tmp, "ping.yaml"), "w") as f:
            f.write("apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: ping}\n"
                    "steps:\n  - id: ping\n    uses: ping\n"
                    f"    with: {{target: {self.k2.ip}, count: 2, interval: 100ms, timeout: 300ms}}\n")
        t = threading.Thread(target=pinger)
        t.start()
        try:
            code, steps, findings = self.run_pb("--set", f"cell_netns={self.c2.ns}",
                                                "--set", "duration=4s")
        finally:
            done.set()
            t.join()
        self.assertEqual(steps["capture_send"]["status"], "skip")
        self.assertEqual(steps["capture_recv"]["status"], "pass", steps["capture_recv"]["message"])
        v = steps["capture_recv"]["facts"]["vxlan"]
        self.assertGreater(v["icmp"]["requests"], 0)
        self.assertEqual(v["icmp"]["replies"], 0)
        self.assertIn("arrive-unanswered", findings, findings)
        self.assertEqual(code, 1)

    def test_stale_tags_list_is_a_warning(self):
        stale = os.path.join(self.tmp, "stale-tags.json")
        with open(stale, "w") as f:
            f.write('{"tags": [{"id": "%s", "tag": "%s"}]}' % (self.k1.app_guid, self.k1.tag))
        code, steps, findings = self.run_pb(*self.sender_args(tags=stale))
        self.assertIn("unknown-tags", findings, findings)
        self.assertEqual(findings["unknown-tags"]["severity"], "warn")
        self.assertEqual(code, 0)
        v = steps["capture_send"]["facts"]["vxlan"]
        self.assertIn(self.k2.tag.lower(), [t.lower() for t in v["unknown_tags"]])


if __name__ == "__main__":
    unittest.main()
