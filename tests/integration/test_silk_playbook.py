"""The shipped playbook playbooks/silk-cell-structure.yaml against a Silk-like two-cell
overlay built in namespaces this test creates: healthy, then with one fault at a time.
Each fault must fail the matching check with a clear message and raise the matching finding."""

import os
import unittest

from silk_lab import Lab, require_root, run_playbook

SOURCE = os.environ.get("NETPLAY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK = os.path.join(SOURCE, "playbooks", "silk-cell-structure.yaml")
CHECKS = ["underlay", "vtep", "vtep_offload", "vtep_addr", "overlay_route", "vtep_arp",
          "vtep_fdb", "host_veth", "host_addr", "container_if", "container_route",
          "container_arp", "veth_pair"]


class SilkPlaybookTest(unittest.TestCase):
    def setUp(self):
        require_root()
        self.lab = Lab(cells=2, containers=1).up()
        self.addCleanup(self.lab.down)
        self.cell, self.remote = self.lab.cells
        self.container = self.cell.containers[0]
        # Silk's cells turn checksum offload off on the VTEP; so does the healthy lab.
        self.lab.ip(self.cell.ns, "link", "show", "silk-vtep")
        os.system(f"ip netns exec {self.cell.ns} ethtool -K silk-vtep tx-checksum-ip-generic off"
                  " >/dev/null 2>&1")

    def run_silk(self):
        with open(PLAYBOOK) as f:
            text = f.read()
        code, report, out, err = run_playbook(
            text,
            "--set", f"cell_netns={self.cell.ns}",
            "--set", f"container_netns={self.container.ns}",
            "--set", f"container_ip={self.container.ip}",
            "--set", f"remote_overlay={self.remote.overlay_ip}",
            "--set", f"remote_underlay={self.remote.underlay_ip}")
        self.assertIsNotNone(report, f"no JSON report; exit {code}; stderr: {err}")
        steps = {s["id"]: s for s in report["steps"]}
        self.assertEqual(sorted(steps), sorted(CHECKS))
        return code, report, steps

    def assert_only_failure(self, steps, failing, skipped=()):
        bad = {i: (s["status"], s["message"]) for i, s in steps.items()
               if s["status"] != "pass" and i not in failing and i not in skipped}
        self.assertEqual(bad, {}, "only the injected fault may fail")
        for i in failing:
            self.assertEqual(steps[i]["status"], "fail", steps[i])
        for i in skipped:
            self.assertEqual(steps[i]["status"], "skip", steps[i])
            self.assertRegex(steps[i]["message"], r"needs '\w+', which failed")

    def findings(self, report):
        return {f["id"]: f for f in report["findings"]}

    def test_healthy_lab_passes_all_13_checks(self):
        code, report, steps = self.run_silk()
        self.assertEqual({i: s["status"] for i, s in steps.items()},
                         {i: "pass" for i in CHECKS}, report)
        self.assertEqual(code, 0)
        self.assertEqual(report["findings"], [])
        self.assertEqual(steps["veth_pair"]["facts"]["peer_name"], self.container.host_if)

    def test_vtep_with_another_port(self):
        self.lab.vtep_dstport(self.cell, 8472)
        os.system(f"ip netns exec {self.cell.ns} ethtool -K silk-vtep tx-checksum-ip-generic off"
                  " >/dev/null 2>&1")
        code, report, steps = self.run_silk()
        self.assertEqual(code, 1)
        self.assert_only_failure(steps, ["vtep"], skipped=["vtep_offload", "vtep_addr"])
        self.assertIn("dstport: expected 4789, got 8472", steps["vtep"]["message"])
        self.assertIn("vtep-misconfigured", self.findings(report))
        # The collector's evidence is attached to the failing step.
        self.assertTrue(any(e.startswith("on_fail link") for e in steps["vtep"]["evidence"]),
                        steps["vtep"]["evidence"])

    def test_missing_fdb_entry(self):
        self.lab.del_fdb(self.cell.ns, self.remote.vtep_mac, dst=self.remote.underlay_ip)
        code, report, steps = self.run_silk()
        self.assertEqual(code, 1)
        self.assert_only_failure(steps, ["vtep_fdb"])
        self.assertIn(self.remote.vtep_mac, steps["vtep_fdb"]["message"])
        self.assertIn("overlay-forwarding", self.findings(report))

    def test_container_arp_entry_missing(self):
        self.lab.del_neigh(self.container.ns, "169.254.0.1", self.container.cont_if)
        code, report, steps = self.run_silk()
        self.assertEqual(code, 1)
        self.assert_only_failure(steps, ["container_arp"])
        self.assertIn("169.254.0.1", steps["container_arp"]["message"])
        self.assertIn("container-wiring", self.findings(report))

    def test_wrong_host_side_mac(self):
        self.lab.set_mac(self.cell.ns, self.container.host_if, "aa:bb:0a:ff:01:0b")
        code, report, steps = self.run_silk()
        self.assertEqual(code, 1)
        # The container's ARP entry still names the right MAC: only the link check fails.
        self.assert_only_failure(steps, ["host_veth"])
        self.assertIn(f"mac: expected '{self.container.host_mac}', got 'aa:bb:0a:ff:01:0b'",
                      steps["host_veth"]["message"])

    def test_underlay_down(self):
        self.lab.link_down(self.cell.ns, "eth0")
        code, report, steps = self.run_silk()
        self.assertEqual(code, 1)
        self.assertEqual(steps["underlay"]["status"], "fail")
        self.assertIn("underlay-down", self.findings(report))


if __name__ == "__main__":
    unittest.main()
