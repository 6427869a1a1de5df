"""The netlink steps (link, addr, route, neigh, fdb, vxlan.vtep) on a Silk-like two-cell
overlay built in namespaces this test creates, checked against iproute2's own JSON output.

Needs root; fails (never skips) without it. Runs the real binary: NETPLAY_BIN.
"""

import re
import unittest

from silk_lab import Lab, playbook, require_root, run_playbook, validate_playbook


def steps_by_id(report):
    return {s["id"]: s for s in report["steps"]}


def step_yaml(sid, uses, netns, with_, expect=None):
    import json as _json
    y = f"  - id: {sid}\n    uses: {uses}\n    netns: {netns}\n    with: {_json.dumps(with_)}\n"
    if expect:
        y += f"    expect: {_json.dumps(expect)}\n"
    return y


class OracleTest(unittest.TestCase):
    """Every fact of every step equals what iproute2 reports for the same object."""

    @classmethod
    def setUpClass(cls):
        require_root()
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
        k1 = c1.containers[0]
        r2 = c2.containers[1]
        body = ""
        body += step_yaml("vtep_link", "link", c1.ns, {"name": "silk-vtep"})
        body += step_yaml("underlay_link", "link", c1.ns, {"name": "eth0"})
        body += step_yaml("host_link", "link", c1.ns, {"name": k1.host_if})
        body += step_yaml("cont_link", "link", k1.ns, {"name": k1.cont_if})
        body += step_yaml("lo_link", "link", k1.ns, {"index": 1})
        body += step_yaml("host_addr", "addr", c1.ns, {"ip": k1.ip})
        body += step_yaml("cont_addr", "addr", k1.ns, {"interface": k1.cont_if})
        body += step_yaml("vtep_addr", "addr", c1.ns, {"interface": "silk-vtep",
                                                       "family": "inet"})
        body += step_yaml("overlay_route", "route", c1.ns, {"destination": r2.ip})
        body += step_yaml("underlay_route", "route", c1.ns, {"destination": c2.underlay_ip})
        body += step_yaml("cont_route", "route", k1.ns, {"destination": r2.ip})
        body += step_yaml("cont_default", "route", k1.ns, {"default": True})
        body += step_yaml("remote_cidr", "route", c1.ns, {"cidr": c2.overlay_cidr})
        body += step_yaml("gw_arp", "neigh", k1.ns, {"ip": Lab.GATEWAY})
        body += step_yaml("remote_vtep_arp", "neigh", c1.ns,
                          {"ip": c2.overlay_ip, "dev": "silk-vtep"})
        body += step_yaml("fdb_all", "fdb", c1.ns, {"device": "silk-vtep"})
        body += step_yaml("fdb_remote", "fdb", c1.ns, {"device": "silk-vtep", "mac": c2.vtep_mac})
        body += step_yaml("vtep", "vxlan.vtep", c1.ns, {"device": "silk-vtep"},
                          {"vni": 1, "dstport": 4789, "gbp": True, "learning": False})
        cls.rc, cls.report, cls.out, cls.err = run_playbook(playbook(body))
        if cls.report is None:
            raise AssertionError(f"no JSON report (exit {cls.rc}): {cls.err}{cls.out}")
        cls.steps = steps_by_id(cls.report)

    def step(self, sid):
        s = self.steps[sid]
        self.assertEqual(s["status"], "pass", f"{sid}: {s['message']} {s.get('expectations')}")
        return s["facts"]

    def test_exit_code_and_all_pass(self):
        self.assertEqual(self.rc, 0, self.err + self.out)
        self.assertEqual(self.report["summary"]["fail"], 0)
        self.assertEqual(self.report["summary"]["error"], 0)

    def check_link(self, sid, ns, dev):
        f = self.step(sid)
        o = self.lab.ip_json(ns, "-d", "link", "show", "dev", dev)[0]
        self.assertTrue(f["exists"])
        self.assertEqual(f["name"], o["ifname"])
        self.assertEqual(f["index"], o["ifindex"])
        self.assertEqual(f["mtu"], o["mtu"])
        self.assertEqual(f["mac"], o["address"])
        self.assertEqual(f["oper_state"], o["operstate"])
        self.assertEqual(f["flags"], o["flags"])
        self.assertEqual(f["admin_up"], "UP" in o["flags"])
        self.assertEqual(f["qdisc"], o["qdisc"])
        self.assertEqual(f["txqlen"], o["txqlen"])
        kind = o.get("linkinfo", {}).get("info_kind")
        self.assertEqual(f["kind"], kind or ("loopback" if o["link_type"] == "loopback"
                                             else "device"))
        self.assertEqual(f.get("peer_index"), o.get("link_index"))
        self.assertEqual(f.get("peer_netnsid"), o.get("link_netnsid"))
        self.assertEqual(f.get("master"), o.get("master"))
        return f, o

    def test_links(self):
        c1 = self.lab.cells[0]
        k1 = c1.containers[0]
        self.check_link("vtep_link", c1.ns, "silk-vtep")
        self.check_link("underlay_link", c1.ns, "eth0")
        host, _ = self.check_link("host_link", c1.ns, k1.host_if)
        cont, _ = self.check_link("cont_link", k1.ns, k1.cont_if)
        self.check_link("lo_link", k1.ns, "lo")
        # The Silk naming facts, and the veth pair's two ends pointing at each other.
        self.assertEqual(host["mac"], k1.host_mac)
        self.assertEqual(cont["mac"], k1.cont_mac)
        self.assertEqual(host["peer_index"], cont["index"])
        self.assertEqual(cont["peer_index"], host["index"])
        self.assertEqual(self.steps["vtep_link"]["facts"]["kind"], "vxlan")

    def check_addrs(self, facts, oracle_if, family=None):
        oracle = [a for a in oracle_if["addr_info"] if family in (None, a["family"])]
        self.assertEqual(facts["interface"], oracle_if["ifname"])
        self.assertEqual(facts["index"], oracle_if["ifindex"])
        self.assertEqual(facts["count"], len(oracle))
        for ours, theirs in zip(facts["addresses"], oracle):
            self.assertEqual(ours["ip"], theirs["local"])
            self.assertEqual(ours["prefix"], theirs["prefixlen"])
            self.assertEqual(ours["family"], theirs["family"])
            self.assertEqual(ours["scope"], theirs["scope"])
            if theirs.get("address", theirs["local"]) != theirs["local"]:
                self.assertEqual(ours["peer"], theirs["address"])

    def test_addresses(self):
        c1 = self.lab.cells[0]
        k1 = c1.containers[0]
        f = self.step("host_addr")
        self.assertEqual(f["interface"], k1.host_if)
        self.assertEqual(f["matched_as"], "peer")
        self.assertEqual(f["matched"]["ip"], Lab.GATEWAY)
        self.check_addrs(f, self.lab.ip_json(c1.ns, "addr", "show", "dev", k1.host_if)[0])
        f = self.step("cont_addr")
        self.check_addrs(f, self.lab.ip_json(k1.ns, "addr", "show", "dev", k1.cont_if)[0])
        self.assertIn(k1.ip, f["ips"])
        f = self.step("vtep_addr")
        self.check_addrs(f, self.lab.ip_json(c1.ns, "addr", "show", "dev", "silk-vtep")[0], "inet")
        self.assertEqual(f["cidrs"], [f"{c1.overlay_ip}/16"])

    def check_route_get(self, sid, ns, dst):
        f = self.step(sid)
        o = self.lab.ip_json(ns, "route", "get", dst)[0]
        self.assertEqual(f["dev"], o["dev"])
        self.assertEqual(f["gateway"], o.get("gateway", ""))
        self.assertEqual(f["src"], o.get("prefsrc", ""))
        self.assertEqual(f["type"], o.get("type", "unicast"))
        self.assertEqual(f["table"], o.get("table", "main"))
        return f

    def test_routes(self):
        c1, c2 = self.lab.cells
        k1 = c1.containers[0]
        r2 = c2.containers[1]
        f = self.check_route_get("overlay_route", c1.ns, r2.ip)
        self.assertEqual((f["dev"], f["gateway"]), ("silk-vtep", c2.overlay_ip))
        f = self.check_route_get("underlay_route", c1.ns, c2.underlay_ip)
        self.assertEqual(f["dev"], "eth0")
        f = self.check_route_get("cont_route", k1.ns, r2.ip)
        self.assertEqual((f["dev"], f["gateway"], f["src"]), (k1.cont_if, Lab.GATEWAY, k1.ip))
        f = self.step("cont_default")
        o = self.lab.ip_json(k1.ns, "route", "show", "default")[0]
        self.assertEqual((f["dev"], f["gateway"], f["destination"]),
                         (o["dev"], o["gateway"], "default"))
        f = self.step("remote_cidr")
        o = self.lab.ip_json(c1.ns, "route", "show", "exact", c2.overlay_cidr)[0]
        self.assertEqual((f["dev"], f["gateway"], f["destination"]),
                         (o["dev"], o["gateway"], o["dst"]))
        self.assertEqual(f["count"], 1)

    def check_neigh(self, sid, ns, ip, dev=None):
        f = self.step(sid)
        args = ["neigh", "show", ip] + (["dev", dev] if dev else [])
        o = self.lab.ip_json(ns, *args)[0]
        self.assertTrue(f["present"])
        self.assertEqual(f["lladdr"], o["lladdr"])
        self.assertEqual(f["states"], o["state"])
        self.assertEqual(f["dev"], o.get("dev", dev))
        return f

    def test_neighbours(self):
        c1, c2 = self.lab.cells
        k1 = c1.containers[0]
        f = self.check_neigh("gw_arp", k1.ns, Lab.GATEWAY)
        self.assertEqual((f["state"], f["lladdr"]), ("PERMANENT", k1.host_mac))
        f = self.check_neigh("remote_vtep_arp", c1.ns, c2.overlay_ip, "silk-vtep")
        self.assertEqual(f["lladdr"], c2.vtep_mac)

    def test_fdb(self):
        c1, c2 = self.lab.cells
        f = self.step("fdb_all")
        oracle = self.lab.bridge_json(c1.ns, "fdb", "show", "dev", "silk-vtep")
        self.assertEqual(f["count"], len(oracle))
        ours = {(e["mac"], e.get("dst")): e for e in f["entries"]}
        for o in oracle:
            e = ours[(o["mac"], o.get("dst"))]
            self.assertEqual(e["flags"], o["flags"])
            if "state" in o:
                self.assertEqual(e["state"], o["state"])
        f = self.step("fdb_remote")
        self.assertEqual(f["count"], 1)
        self.assertEqual(f["entries"][0]["dst"], c2.underlay_ip)

    def test_vtep(self):
        c1 = self.lab.cells[0]
        f = self.step("vtep")
        o = self.lab.ip_json(c1.ns, "-d", "link", "show", "dev", "silk-vtep")[0]
        d = o["linkinfo"]["info_data"]
        self.assertEqual(f["vni"], d["id"])
        self.assertEqual(f["dstport"], d["port"])
        self.assertEqual(f["local"], d["local"])
        self.assertEqual(f["dev"], d["link"])
        self.assertEqual(f["learning"], d["learning"])
        self.assertEqual(f["gbp"], d.get("gbp", False))
        self.assertEqual(f["ttl"], d["ttl"])
        self.assertEqual(f["ageing"], d["ageing"])
        self.assertEqual(f["udp_csum"], d["udp_csum"])
        self.assertEqual((f["srcport_min"], f["srcport_max"]),
                         (d["port_range"]["low"], d["port_range"]["high"]))
        self.assertEqual(f["mtu"], o["mtu"])
        self.assertEqual(f["mac"], o["address"])
        self.assertEqual(f["mac"], c1.vtep_mac)
        self.assertEqual(f["admin_up"], "UP" in o["flags"])


class FaultTest(unittest.TestCase):
    """Each injected fault makes exactly the matching expectation fail, with a clear message."""

    def setUp(self):
        require_root()

    def expect_fail(self, steps_yaml, sid, *needles):
        rc, report, out, err = run_playbook(playbook(steps_yaml))
        self.assertIsNotNone(report, err + out)
        s = steps_by_id(report)[sid]
        self.assertEqual(s["status"], "fail", s)
        self.assertEqual(rc, 1, err + out)
        text = s["message"] + "\n" + "\n".join(
            e.get("message", "") for e in s.get("expectations", []) if not e["ok"])
        for n in needles:
            self.assertIn(n, text)
        return s

    def test_link_down(self):
        with Lab(cells=1, containers=1) as lab:
            c = lab.cells[0]
            k = c.containers[0]
            lab.link_down(c.ns, k.host_if)
            s = self.expect_fail(step_yaml("host", "link", c.ns, {"name": k.host_if},
                                           {"admin_up": True, "oper_state": "UP"}),
                                 "host", "admin_up: expected true, got false",
                                 "oper_state: expected")
            self.assertEqual(s["facts"]["oper_state"], "DOWN")

    def test_wrong_mac(self):
        with Lab(cells=1, containers=1) as lab:
            k = lab.cells[0].containers[0]
            lab.set_mac(k.ns, k.cont_if, "ee:ee:00:00:00:01")
            self.expect_fail(step_yaml("cont", "link", k.ns, {"name": k.cont_if},
                                       {"mac": k.cont_mac}),
                             "cont", f"mac: expected", k.cont_mac, "ee:ee:00:00:00:01")

    def test_missing_arp_entry(self):
        with Lab(cells=1, containers=1) as lab:
            k = lab.cells[0].containers[0]
            lab.del_neigh(k.ns, Lab.GATEWAY, k.cont_if)
            s = self.expect_fail(step_yaml("gw", "neigh", k.ns, {"ip": Lab.GATEWAY},
                                           {"state": "PERMANENT"}),
                                 "gw", f"no neighbour entry for {Lab.GATEWAY}")
            self.assertFalse(s["facts"]["present"])

    def test_missing_fdb_entry(self):
        with Lab(cells=2, containers=1) as lab:
            c1, c2 = lab.cells
            lab.del_fdb(c1.ns, c2.vtep_mac, dst=c2.underlay_ip)
            self.expect_fail(step_yaml("fdb", "fdb", c1.ns,
                                       {"device": "silk-vtep", "mac": c2.vtep_mac}),
                             "fdb", f"no FDB entry for {c2.vtep_mac} on silk-vtep")

    def test_vtep_with_another_dstport(self):
        with Lab(cells=2, containers=1) as lab:
            c2 = lab.cells[1]
            lab.vtep_dstport(c2, 8472)
            self.expect_fail(step_yaml("vtep", "vxlan.vtep", c2.ns, {"device": "silk-vtep"},
                                       {"dstport": 4789, "vni": 1}),
                             "vtep", "dstport: expected 4789, got 8472")


class BadInputTest(unittest.TestCase):
    def setUp(self):
        require_root()

    def test_missing_interface_lists_the_ones_that_exist(self):
        with Lab(cells=1, containers=1) as lab:
            c = lab.cells[0]
            k = c.containers[0]
            rc, report, out, err = run_playbook(playbook(
                step_yaml("x", "link", c.ns, {"name": "eth9"})))
            self.assertEqual(rc, 1, err + out)
            s = steps_by_id(report)["x"]
            self.assertEqual(s["status"], "fail")
            self.assertIn("interface 'eth9' not found in this namespace; interfaces here: "
                          f"lo, eth0-peer, eth0, silk-vtep, {k.host_if}", s["message"])
            # must_exist: false turns absence into a checkable fact.
            rc, report, out, err = run_playbook(playbook(
                step_yaml("x", "link", c.ns, {"name": "eth9", "must_exist": False},
                          {"exists": False})))
            self.assertEqual(rc, 0, err + out)

    def test_missing_namespace_errors(self):
        rc, report, out, err = run_playbook(playbook(
            step_yaml("x", "link", "np-no-such-netns", {"name": "lo"})))
        self.assertIsNotNone(report, err + out)
        s = steps_by_id(report)["x"]
        self.assertEqual(s["status"], "error", s)
        self.assertIn("np-no-such-netns", s["message"])
        self.assertEqual(rc, 3, err + out)

    def test_ip_param_that_is_not_an_ip_is_a_validation_error(self):
        text = playbook("  - id: gw\n    uses: neigh\n    with: {ip: not-an-ip}\n")
        rc, out, err = validate_playbook(text)
        self.assertEqual(rc, 2, out + err)
        # steps: starts on line 4; the value sits on line 7.
        self.assertRegex(out + err, r"pb\.yaml:7:\d+:.*not-an-ip")

    def test_unknown_fact_in_expect_is_a_validation_error(self):
        text = playbook("  - id: v\n    uses: vxlan.vtep\n    expect: {dst_port: 4789}\n")
        rc, out, err = validate_playbook(text)
        self.assertEqual(rc, 2, out + err)
        self.assertTrue(re.search(r"pb\.yaml:7:\d+:.*dst_port", out + err), out + err)


if __name__ == "__main__":
    unittest.main()
