"""veth.peer, netns.inode and link.features through the real binary, on the Silk-like
two-cell overlay of silk_lab (namespaces this test creates), checked against iproute2's
JSON (`ip -j -d link`), `stat -L -c %i` and `ethtool -k`.

Needs root and ethtool; fails (never skips) without them. NETPLAY_BIN names the binary.
"""

import os
import shutil
import subprocess
import time
import unittest

from silk_lab import Lab, playbook, require_root, run_playbook, sh, step_yaml


def inode(path):
    return int(sh("stat", "-L", "-c", "%i", path).stdout)


def ethtool_k(ns, dev):
    """`ethtool -k` as {name: (on, fixed)}."""
    out = {}
    for line in sh("ip", "netns", "exec", ns, "ethtool", "-k", dev).stdout.splitlines()[1:]:
        name, _, rest = line.strip().partition(": ")
        if rest:
            out[name] = (rest.startswith("on"), "[fixed]" in rest)
    return out


class VethOnSilkLab(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        if not shutil.which("ethtool"):
            raise AssertionError("ethtool is needed as the oracle (scripts/setup installs it)")
        cls.lab = Lab(cells=2, containers=2)
        try:
            cls.lab.up()
            cls._run()
        except BaseException:
            cls.lab.down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.lab.down()

    @classmethod
    def _run(cls):
        lab = cls.lab
        c1, c2 = lab.cells
        k1, k2 = c1.containers
        # The field fault: checksum offload left on for one VTEP, switched off on the other.
        sh("ip", "netns", "exec", c2.ns, "ethtool", "-K", "silk-vtep", "tx-checksum-ip-generic",
           "off")
        cls.sleeper = subprocess.Popen(["ip", "netns", "exec", k1.ns, "sleep", "60"])
        for _ in range(3000):  # `ip netns exec` enters the namespace, then execs sleep
            if inode(f"/proc/{cls.sleeper.pid}/ns/net") == inode(f"/run/netns/{k1.ns}"):
                break
            time.sleep(0.01)
        body = ""
        body += step_yaml("from_cont", "veth.peer", {"interface": k1.cont_if}, k1.ns,
                          {"peer_name": k1.host_if, "peer_netns": c1.ns})
        body += step_yaml("from_host", "veth.peer", {"interface": k1.host_if}, c1.ns,
                          {"peer_name": k1.cont_if, "peer_netns": k1.ns})
        body += step_yaml("underlay", "veth.peer", {"interface": "eth0"}, c1.ns)
        body += step_yaml("node", "veth.peer", {"all": True})
        body += step_yaml("same_ns", "netns.inode",
                          {"pids": [cls.sleeper.pid], "paths": [k1.ns, k2.ns, c1.ns]}, c1.ns)
        body += step_yaml("vtep_all", "link.features", {"interface": "silk-vtep"}, c1.ns)
        body += step_yaml("csum_on", "link.features",
                          {"interface": "silk-vtep", "features": ["tx-checksum-ip-generic"]}, c1.ns,
                          {"active.tx-checksum-ip-generic": False})
        body += step_yaml("csum_off", "link.features",
                          {"interface": "silk-vtep", "features": ["tx-checksum-ip-generic"]}, c2.ns,
                          {"active.tx-checksum-ip-generic": False})
        body += step_yaml("wrong_peer", "veth.peer", {"interface": k2.cont_if}, k2.ns,
                          {"peer_name": k1.host_if})
        body += step_yaml("not_veth", "veth.peer", {"interface": "silk-vtep"}, c1.ns)
        body += step_yaml("missing", "veth.peer", {"interface": "eth9"}, k1.ns)
        body += step_yaml("missing_feat_if", "link.features", {"interface": "eth9"}, k1.ns)
        body += step_yaml("missing_ns", "veth.peer", {"interface": "eth0"}, lab.prefix + "nope")
        body += step_yaml("missing_pid", "netns.inode", {"pids": [999999999]})
        cls.rc, cls.report, cls.out, cls.err = run_playbook(playbook(body, "veth-steps"))
        cls.sleeper.kill()
        cls.sleeper.wait()
        if cls.report is None:
            raise AssertionError(f"no JSON report (exit {cls.rc}): {cls.err}{cls.out}")
        cls.steps = {s["id"]: s for s in cls.report["steps"]}

    def passed(self, sid):
        s = self.steps[sid]
        self.assertEqual(s["status"], "pass", f"{sid}: {s['message']} {s.get('expectations')}")
        return s["facts"]

    def test_peer_from_container_matches_iproute2(self):
        c1 = self.lab.cells[0]
        k1 = c1.containers[0]
        f = self.passed("from_cont")
        cont = self.lab.ip_json(k1.ns, "-d", "link", "show", k1.cont_if)[0]
        host = self.lab.ip_json(c1.ns, "-d", "link", "show", k1.host_if)[0]
        self.assertEqual(f["index"], cont["ifindex"])
        self.assertEqual(f["peer_index"], cont["link_index"])
        self.assertEqual(f["peer_index"], host["ifindex"])
        self.assertEqual(f["peer_netnsid"], cont["link_netnsid"])
        self.assertEqual(f["peer_netns_inode"], inode(f"/run/netns/{c1.ns}"))
        self.assertEqual(f["peer_mac"], host["address"])
        self.assertEqual(f["peer_mac"], k1.host_mac)
        self.assertEqual(f["peer_oper_state"], host["operstate"])
        self.assertIsNone(f["peer_master"])

    def test_peer_from_host_and_underlay(self):
        c1, c2 = self.lab.cells
        k1 = c1.containers[0]
        f = self.passed("from_host")
        host = self.lab.ip_json(c1.ns, "-d", "link", "show", k1.host_if)[0]
        self.assertEqual(f["peer_netnsid"], host["link_netnsid"])
        self.assertEqual(f["peer_netns_inode"], inode(f"/run/netns/{k1.ns}"))
        self.assertEqual(f["peer_mac"], k1.cont_mac)
        u = self.passed("underlay")
        self.assertEqual(u["peer_name"], "eth0")
        self.assertEqual(u["peer_netns"], c2.ns)
        self.assertEqual(u["peer_index"], self.lab.ip_json(c2.ns, "link", "show", "eth0")[0]["ifindex"])

    def test_all_pairs_cover_the_lab(self):
        f = self.passed("node")
        self.assertEqual(f["count"], len(f["pairs"]))
        mine = {(p["netns"], p["interface"]): p for p in f["pairs"]
                if p["netns"].startswith(self.lab.prefix)}
        for cell in self.lab.cells:
            for k in cell.containers:
                p = mine.get((k.ns, k.cont_if))
                self.assertIsNotNone(p, f"{k.ns}/{k.cont_if} missing from {f['pairs']}")
                self.assertEqual(p["peer_netns"], cell.ns)
                self.assertEqual(p["peer_interface"], k.host_if)
                self.assertEqual(p["netns_inode"], inode(f"/run/netns/{k.ns}"))
                self.assertEqual(p["peer_netns_inode"], inode(f"/run/netns/{cell.ns}"))
                self.assertEqual(p["peer_index"],
                                 self.lab.ip_json(cell.ns, "link", "show", k.host_if)[0]["ifindex"])
        c1, c2 = self.lab.cells
        cell_ns = {c1.ns, c2.ns}
        under = [p for p in mine.values() if p["netns"] in cell_ns and p["peer_netns"] in cell_ns]
        self.assertEqual(len(under), 1, under)
        self.assertEqual({under[0]["netns"], under[0]["peer_netns"]}, {c1.ns, c2.ns})
        self.assertEqual(len(mine), 5)  # 4 containers + the underlay, each once
        self.assertFalse([u for u in f["unresolved"] if u["netns"].startswith(self.lab.prefix)])

    def test_netns_inode(self):
        c1 = self.lab.cells[0]
        k1, k2 = c1.containers
        f = self.passed("same_ns")
        refs = [n["ref"] for n in f["namespaces"]]
        self.assertEqual(refs, [f"pid:{self.sleeper.pid}", k1.ns, k2.ns, c1.ns])
        self.assertEqual(f["inodes"], [inode(f"/run/netns/{n}") for n in (k1.ns, k1.ns, k2.ns, c1.ns)])
        self.assertFalse(f["all_same"])
        self.assertEqual(f["distinct"], 3)
        self.assertEqual(f["differ"], [k2.ns, c1.ns])
        # Seen from the cell, the container's NETNSID is the host veth's link-netnsid.
        host = self.lab.ip_json(c1.ns, "-d", "link", "show", k1.host_if)[0]
        self.assertEqual(f["namespaces"][1]["netnsid"], host["link_netnsid"])
        missing = self.steps["missing_pid"]
        self.assertEqual(missing["status"], "error")
        self.assertIn("process 999999999 not found", missing["message"])

    def test_vtep_features_match_ethtool(self):
        c1 = self.lab.cells[0]
        f = self.passed("vtep_all")
        oracle = ethtool_k(c1.ns, "silk-vtep")
        self.assertGreater(len(oracle), 20)
        for name, (on, fixed) in oracle.items():
            self.assertIn(name, f["features"])
            self.assertEqual(f["features"][name]["active"], on, name)
            self.assertEqual(f["features"][name]["fixed"], fixed, name)
            self.assertEqual(f["active"][name], on, name)

    def test_checksum_offload_left_on_fails_the_expectation(self):
        on = self.steps["csum_on"]
        self.assertEqual(on["status"], "fail")
        exp = [e for e in on["expectations"] if e["fact"] == "active.tx-checksum-ip-generic"][0]
        self.assertFalse(exp["ok"])
        self.assertEqual(exp["actual"], True)
        self.assertIn("tx-checksum-ip-generic", on["message"])
        self.passed("csum_off")

    def test_faults_and_bad_input(self):
        k2 = self.lab.cells[0].containers[1]
        wrong = self.steps["wrong_peer"]
        self.assertEqual(wrong["status"], "fail")
        self.assertIn("peer_name", wrong["message"])
        self.assertIn(k2.host_if, wrong["message"])
        nv = self.steps["not_veth"]
        self.assertEqual(nv["status"], "fail")
        self.assertEqual(nv["message"], "silk-vtep is a vxlan, not a veth")
        for sid in ("missing", "missing_feat_if"):
            m = self.steps[sid]
            self.assertEqual(m["status"], "fail")
            self.assertIn("'eth9' not found", m["message"])
            self.assertIn(self.lab.cells[0].containers[0].cont_if, m["message"])
        self.assertEqual(self.steps["missing_ns"]["status"], "error")
        self.assertIn("nope", self.steps["missing_ns"]["message"])
        self.assertEqual(self.rc, 1)  # steps failed


if __name__ == "__main__":
    unittest.main()
