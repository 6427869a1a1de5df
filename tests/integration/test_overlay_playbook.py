"""The shipped playbook playbooks/overlay-connectivity.yaml against the Silk-like two-cell lab:
healthy, then with the faults of the "packets won't flow" runbook. A blocked VTEP port and a
remote cell on another port must each be found from either cell: named exactly on the cell
that has the fault, and as "underlay answers, overlay does not" from the other one."""

import os
import sys
import unittest

from silk_lab import Lab, require_root, run_playbook, sh

SOURCE = os.environ.get("NETPLAY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK = os.path.join(SOURCE, "playbooks", "overlay-connectivity.yaml")
ALWAYS = ["underlay", "vtep", "vtep_socket", "vtep_firewall", "overlay", "overlay_mtu"]
REMOTE = ["remote_vtep", "remote_firewall"]
CONTAINER = ["container_to_container", "container_mtu"]


class OverlayPlaybookTest(unittest.TestCase):
    def setUp(self):
        require_root()
        self.lab = Lab(cells=2, containers=1).up()
        self.addCleanup(self.lab.down)
        self.c1, self.c2 = self.lab.cells

    def run_from(self, cell, other, remote_netns=False, containers=False):
        with open(PLAYBOOK) as f:
            text = f.read()
        args = ["--set", f"cell_netns={cell.ns}",
                "--set", f"remote_underlay={other.underlay_ip}",
                "--set", f"remote_overlay={other.overlay_ip}"]
        if remote_netns:
            args += ["--set", f"remote_cell_netns={other.ns}"]
        if containers:
            args += ["--set", f"container_netns={cell.containers[0].ns}",
                     "--set", f"remote_container_ip={other.containers[0].ip}"]
        code, report, out, err = run_playbook(text, *args)
        self.assertIsNotNone(report, f"no JSON report; exit {code}; stderr: {err}")
        steps = {s["id"]: s for s in report["steps"]}
        findings = {f["id"]: f for f in report["findings"]}
        return code, steps, findings, report

    def statuses(self, steps, ids):
        return {i: steps[i]["status"] for i in ids}

    def test_healthy_cells_pass_from_both_sides_with_every_optional_check(self):
        for cell, other in ((self.c1, self.c2), (self.c2, self.c1)):
            code, steps, findings, report = self.run_from(cell, other, remote_netns=True,
                                                          containers=True)
            self.assertEqual(self.statuses(steps, ALWAYS + REMOTE + CONTAINER),
                             {i: "pass" for i in ALWAYS + REMOTE + CONTAINER},
                             {i: steps[i]["message"] for i in steps})
            self.assertEqual(code, 0)
            self.assertEqual(findings, {})
            self.assertEqual(steps["underlay"]["facts"]["received"], 3)
            self.assertEqual(steps["overlay"]["facts"]["received"], 3)
            self.assertEqual(steps["vtep_firewall"]["facts"]["drops"], [])
            self.assertTrue(steps["vtep_socket"]["facts"]["listening"])
            vtep_mtu = self.lab.vtep_mtu(cell)
            self.assertEqual(steps["overlay_mtu"]["facts"]["path_mtu"], vtep_mtu)
            self.assertEqual(steps["container_mtu"]["facts"]["path_mtu"], vtep_mtu)

    def test_optional_checks_are_skipped_without_their_inputs(self):
        code, steps, findings, _ = self.run_from(self.c1, self.c2)
        self.assertEqual(code, 0, {i: steps[i]["message"] for i in steps})
        for i in REMOTE + CONTAINER:
            self.assertEqual(steps[i]["status"], "skip", steps[i])

    def check_blocked_vtep_port(self, tool):
        self.lab.drop_vxlan(self.c2, 4789, tool=tool)
        # VXLAN from cell 1 before the run, so the rule's counter has moved when it is read.
        sh("ip", "netns", "exec", self.c1.ns, sys.executable, "-c",
           "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
           f"for _ in range(3): s.sendto(b'x' * 16, ('{self.c2.underlay_ip}', 4789))\n")
        # From the cell with the rule: the rule itself, with its counter.
        code, steps, findings, _ = self.run_from(self.c2, self.c1)
        self.assertEqual(code, 1)
        self.assertEqual(steps["vtep_firewall"]["status"], "fail")
        drops = steps["vtep_firewall"]["facts"]["drops"]
        self.assertEqual(len(drops), 1, drops)
        self.assertEqual(drops[0]["verdict"], "drop")
        self.assertGreaterEqual(drops[0]["packets"], 3)
        self.assertIn("vtep-port-blocked-here", findings)
        self.assertIn("4789", findings["vtep-port-blocked-here"]["finding"])
        self.assertNotIn("overlay-lost", findings)
        # From the other cell: the underlay answers, the overlay does not.
        code, steps, findings, _ = self.run_from(self.c1, self.c2)
        self.assertEqual(code, 1)
        self.assertEqual(self.statuses(steps, ["underlay", "vtep", "vtep_firewall", "overlay"]),
                         {"underlay": "pass", "vtep": "pass", "vtep_firewall": "pass",
                          "overlay": "fail"})
        self.assertEqual(steps["overlay"]["facts"]["received"], 0)
        self.assertEqual(steps["overlay_mtu"]["status"], "skip")
        self.assertIn("overlay-lost", findings)
        # ... and with the remote cell's namespace at hand, the remote rule by name.
        code, steps, findings, _ = self.run_from(self.c1, self.c2, remote_netns=True)
        self.assertEqual(steps["remote_firewall"]["status"], "fail")
        self.assertIn("vtep-port-blocked-remote", findings)
        self.assertNotIn("overlay-lost", findings)

    def test_vtep_port_blocked_by_nftables_is_found_from_either_cell(self):
        self.check_blocked_vtep_port("nft")

    def test_vtep_port_blocked_by_iptables_is_found_from_either_cell(self):
        self.check_blocked_vtep_port("iptables")

    def test_remote_cell_on_another_port_is_found_from_either_cell(self):
        self.lab.vtep_dstport(self.c2, 4790)
        # On the cell with the other port: its VTEP and its socket say so.
        code, steps, findings, _ = self.run_from(self.c2, self.c1)
        self.assertEqual(code, 1)
        self.assertEqual(steps["vtep"]["status"], "fail")
        self.assertIn("dstport: expected 4789, got 4790", steps["vtep"]["message"])
        self.assertEqual(steps["vtep_socket"]["status"], "fail")
        self.assertFalse(steps["vtep_socket"]["facts"]["listening"])
        self.assertIn("vtep-port-here", findings)
        self.assertIn("vtep-not-listening", findings)
        # From the healthy cell: underlay yes, overlay no.
        code, steps, findings, _ = self.run_from(self.c1, self.c2)
        self.assertEqual(code, 1)
        self.assertEqual(self.statuses(steps, ["underlay", "vtep", "overlay"]),
                         {"underlay": "pass", "vtep": "pass", "overlay": "fail"})
        self.assertIn("overlay-lost", findings)
        # With the remote namespace: the two ports side by side.
        code, steps, findings, _ = self.run_from(self.c1, self.c2, remote_netns=True)
        self.assertEqual(steps["remote_vtep"]["status"], "fail")
        self.assertIn("vtep-port-mismatch", findings)
        self.assertIn("4790", findings["vtep-port-mismatch"]["finding"])

    def test_container_mtu_bigger_than_the_overlay(self):
        k = self.c1.containers[0]
        self.lab.set_mtu(self.c1.ns, k.host_if, 1500)
        self.lab.set_mtu(k.ns, k.cont_if, 1500)
        code, steps, findings, _ = self.run_from(self.c1, self.c2, containers=True)
        self.assertEqual(code, 1)
        self.assertEqual(steps["container_to_container"]["status"], "pass")
        self.assertEqual(steps["container_mtu"]["status"], "fail")
        self.assertEqual(steps["container_mtu"]["facts"]["path_mtu"], self.lab.vtep_mtu(self.c1))
        self.assertIn("container-mtu", findings)

    def test_underlay_down(self):
        self.lab.link_down(self.c2.ns, "eth0")
        code, steps, findings, _ = self.run_from(self.c1, self.c2)
        self.assertEqual(code, 1)
        self.assertEqual(steps["underlay"]["status"], "fail")
        self.assertEqual(steps["overlay"]["status"], "fail")
        self.assertIn("underlay-unreachable", findings)
        self.assertNotIn("overlay-lost", findings)


if __name__ == "__main__":
    unittest.main()
