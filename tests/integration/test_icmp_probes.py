"""`ping` and `mtu` on topologies built in namespaces this test creates: a direct veth link
(IPv4 and IPv6), a path through a router whose far side has a smaller MTU, and a VXLAN
overlay. Every address is private and lives only in these namespaces.

  direct:   A a0 10.77.1.1/24 fd00:77:1::1/64  <-- veth -->  B b0 10.77.1.2/24 fd00:77:1::2/64
  routed:   A a1 10.78.1.1 (mtu 1500) -- R r1 10.78.1.254 | r2 10.78.2.254 (mtu 1400)
            -- B b2 10.78.2.2 (mtu 1400); IPv6 fd00:78:1::/64 and fd00:78:2::/64 alike
  overlay:  X u0 10.79.0.1 <-- veth --> Y u0 10.79.0.2; vx0 (vxlan id 42, MTU 1450)
            10.79.42.1/24 and 10.79.42.2/24

Needs root; fails (never skips) without it. Runs the real binary: NETPLAY_BIN.
"""

import json
import os
import re
import shutil
import unittest

from procs import wait_for
from silk_lab import playbook, require_root, run_playbook, sh, validate_playbook

P = f"np{os.getpid() % 100000}i"
A, B, R, C, X, Y = (P + s for s in ("a", "b", "r", "c", "x", "y"))
NOBODY = "10.77.1.9"  # in A's subnet; no namespace has it


def ns(name, *cmd, check=True):
    return sh("ip", "netns", "exec", name, *cmd, check=check)


def step(sid, uses, netns, with_, expect=None, extra=""):
    y = f"  - id: {sid}\n    uses: {uses}\n    netns: {netns}\n    with: {json.dumps(with_)}\n"
    if expect is not None:
        y += f"    expect: {json.dumps(expect)}\n"
    return y + extra


def by_id(report):
    return {s["id"]: s for s in report["steps"]}


def build():
    for n in (A, B, R, C, X, Y):
        sh("ip", "netns", "add", n)
        sh("ip", "-n", n, "link", "set", "lo", "up")
    # direct: A <-> B
    sh("ip", "link", "add", "a0", "netns", A, "type", "veth", "peer", "b0", "netns", B)
    sh("ip", "-n", A, "addr", "add", "10.77.1.1/24", "dev", "a0")
    sh("ip", "-n", A, "addr", "add", "fd00:77:1::1/64", "dev", "a0", "nodad")
    sh("ip", "-n", B, "addr", "add", "10.77.1.2/24", "dev", "b0")
    sh("ip", "-n", B, "addr", "add", "fd00:77:1::2/64", "dev", "b0", "nodad")
    sh("ip", "-n", A, "link", "set", "a0", "up")
    sh("ip", "-n", B, "link", "set", "b0", "up")
    # Unprivileged ping sockets allowed in B only (the setting is per namespace).
    ns(B, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    # routed: A -- R -- C, the R--C link with MTU 1400
    sh("ip", "link", "add", "a1", "netns", A, "type", "veth", "peer", "r1", "netns", R)
    sh("ip", "link", "add", "r2", "netns", R, "mtu", "1400", "type", "veth", "peer", "c2",
       "netns", C, "mtu", "1400")
    for n, dev, v4, v6 in ((A, "a1", "10.78.1.1/24", "fd00:78:1::1/64"),
                           (R, "r1", "10.78.1.254/24", "fd00:78:1::fe/64"),
                           (R, "r2", "10.78.2.254/24", "fd00:78:2::fe/64"),
                           (C, "c2", "10.78.2.2/24", "fd00:78:2::2/64")):
        sh("ip", "-n", n, "addr", "add", v4, "dev", dev)
        sh("ip", "-n", n, "addr", "add", v6, "dev", dev, "nodad")
        sh("ip", "-n", n, "link", "set", dev, "up")
    sh("ip", "-n", A, "route", "add", "10.78.2.0/24", "via", "10.78.1.254")
    sh("ip", "-n", A, "-6", "route", "add", "fd00:78:2::/64", "via", "fd00:78:1::fe")
    sh("ip", "-n", C, "route", "add", "10.78.1.0/24", "via", "10.78.2.254")
    sh("ip", "-n", C, "-6", "route", "add", "fd00:78:1::/64", "via", "fd00:78:2::fe")
    ns(R, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
       # Every probe gets its frag needed / packet too big, however fast they come.
       "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
    # overlay: X <-> Y underlay, vx0 over it
    sh("ip", "link", "add", "u0", "netns", X, "type", "veth", "peer", "u0", "netns", Y)
    for n, me, peer, ov in ((X, "10.79.0.1", "10.79.0.2", "10.79.42.1/24"),
                            (Y, "10.79.0.2", "10.79.0.1", "10.79.42.2/24")):
        sh("ip", "-n", n, "addr", "add", me + "/24", "dev", "u0")
        sh("ip", "-n", n, "link", "set", "u0", "up")
        sh("ip", "-n", n, "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
           "local", me, "remote", peer, "dev", "u0")
        sh("ip", "-n", n, "addr", "add", ov, "dev", "vx0")
        sh("ip", "-n", n, "link", "set", "vx0", "up")
    # Names in A: its own hosts file and a resolv.conf whose server (B, where nothing listens
    # on port 53) refuses at once: names never leave the test's namespaces.
    os.makedirs(f"/etc/netns/{A}", exist_ok=True)
    with open(f"/etc/netns/{A}/hosts", "w") as f:
        f.write("10.77.1.2 peer.np.test\n")
    with open(f"/etc/netns/{A}/resolv.conf", "w") as f:
        f.write("nameserver 10.77.1.2\n")
    wait_for_dad()


def wait_for_dad():
    """Global addresses are added with nodad, but every link's fe80:: address still goes
    through duplicate address detection, and neighbour discovery through a router is
    unreliable until it is done: wait until no address is tentative."""
    def settled():
        return all(not sh("ip", "-n", n, "-6", "addr", "show", "tentative").stdout.strip()
                   for n in (A, B, R, C, X, Y))
    if not wait_for(settled, 20):
        raise AssertionError("IPv6 addresses still tentative after 20 s")


def teardown():
    for n in (A, B, R, C, X, Y):
        sh("ip", "netns", "del", n, check=False)
    shutil.rmtree(f"/etc/netns/{A}", ignore_errors=True)


class IcmpProbes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        try:
            build()
        except BaseException:
            teardown()
            raise

    @classmethod
    def tearDownClass(cls):
        teardown()

    def run_steps(self, body, want_rc=None):
        rc, report, out, err = run_playbook(playbook(body))
        self.assertIsNotNone(report, f"no JSON report (exit {rc}): {err}{out}")
        if want_rc is not None:
            self.assertEqual(rc, want_rc, f"{err}{out}")
        return by_id(report)

    def check(self, s, status):
        self.assertEqual(s["status"], status, f"{s['id']}: {s['message']} {s.get('expectations')}")
        self.current = s
        return s["facts"]

    def explain(self):
        s = getattr(self, "current", None)
        return f"{s['id']}: {s['message']} {s.get('evidence')}" if s else ""


    # ---- ping ----

    def test_ping_v4_and_v6(self):
        st = self.run_steps(step("v4", "ping", A, {"target": "10.77.1.2", "count": 3})
                            + step("v6", "ping", A, {"target": "fd00:77:1::2", "count": 3}),
                            want_rc=0)
        for sid, target in (("v4", "10.77.1.2"), ("v6", "fd00:77:1::2")):
            f = self.check(st[sid], "pass")
            self.assertEqual((f["sent"], f["received"], f["loss_pct"]), (3, 3, 0))
            self.assertEqual(f["socket"], "raw")  # ping_group_range is "1 0" in A
            self.assertEqual(f["errors"], [])
            self.assertEqual(f["targets"][0]["target"], target)
            self.assertLessEqual(f["rtt_min_ms"], f["rtt_avg_ms"])
            self.assertLessEqual(f["rtt_avg_ms"], f["rtt_max_ms"])
            self.assertRegex(st[sid]["message"], rf"^{re.escape(target)}: 3/3 received, rtt avg ")

    def test_ping_socket_where_ping_group_range_allows_it(self):
        st = self.run_steps(step("v4", "ping", B, {"target": "10.77.1.1", "count": 2})
                            + step("v6", "ping", B, {"target": "fd00:77:1::1", "count": 2}),
                            want_rc=0)
        for sid in ("v4", "v6"):
            f = self.check(st[sid], "pass")
            self.assertEqual(f["socket"], "ping")
            self.assertEqual(f["received"], 2)

    def test_a_target_without_a_host_fails_by_default_naming_it(self):
        targets = ["10.77.1.2", NOBODY, "fd00:77:1::2"]
        st = self.run_steps(
            step("plain", "ping", A, {"target": targets, "count": 3})
            + step("judged", "ping", A, {"target": targets, "count": 3},
                   {"received": {"ge": 6}, "targets.0.received": 3}),
            want_rc=1)
        s = st["plain"]
        f = self.check(s, "fail")
        self.assertTrue(s["message"].startswith(f"{NOBODY}: 0/3 received"), s["message"])
        self.assertNotIn("10.77.1.2:", s["message"])
        self.assertEqual((f["sent"], f["received"]), (9, 6))
        self.assertEqual([t["received"] for t in f["targets"]], [3, 0, 3])
        self.assertAlmostEqual(f["loss_pct"], 33.33)
        self.check(st["judged"], "pass")

    def test_names_resolve_in_the_steps_namespace(self):
        st = self.run_steps(step("named", "ping", A, {"target": "peer.np.test"}), want_rc=0)
        self.assertEqual(st["named"]["facts"]["received"], 3)
        self.assertIn("10.77.1.2", st["named"]["message"])

    def test_unresolvable_target_is_an_error(self):
        st = self.run_steps(step("bad", "ping", A, {"target": "nowhere.np.test"}), want_rc=3)
        s = st["bad"]
        self.assertEqual(s["status"], "error")
        self.assertIn("cannot resolve 'nowhere.np.test'", s["message"])

    def test_bad_source_is_an_error(self):
        st = self.run_steps(step("src", "ping", A, {"target": "10.77.1.2", "source": "10.77.9.9"}),
                            want_rc=3)
        self.assertEqual(st["src"]["status"], "error")
        self.assertIn("10.77.9.9", st["src"]["message"])

    def test_one_target_from_an_input(self):
        text = ("apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: lab-test}\n"
                "inputs:\n  peer: {type: ip, required: true}\nsteps:\n"
                + step("t", "ping", A, {"target": "{{ inputs.peer }}", "count": 1}))
        rc, report, out, err = run_playbook(text, "--set", "peer=10.77.1.2")
        self.assertEqual(rc, 0, err + out)
        f = self.check(by_id(report)["t"], "pass")
        self.assertEqual([t["target"] for t in f["targets"]], ["10.77.1.2"])

    def test_more_requests_than_the_step_timeout_allows_is_an_error_at_once(self):
        st = self.run_steps(step("long", "ping", A, {"target": "10.77.1.2", "count": 100},
                                 extra="    timeout: 2s\n"), want_rc=3)
        s = st["long"]
        self.assertEqual(s["status"], "error")
        self.assertRegex(s["message"], r"^100 requests every 200ms take 19\.8s, longer than the "
                                       r"step's timeout \(.* left\): raise the step's timeout")
        self.assertNotIn("sent", s["facts"])

    def test_count_and_size_out_of_range_are_rejected_by_validate(self):
        for param, value, text in (("count", 0, "expected an integer from 1 to 1000, got 0"),
                                   ("size", 70000,
                                    "expected an integer from 0 to 65507, got 70000")):
            rc, out, err = validate_playbook(playbook(step("p", "ping", A, {"target": "10.77.1.2",
                                                                           param: value})))
            self.assertEqual(rc, 2, out + err)
            # file:line:col of the value
            self.assertRegex(out + err, rf"pb\.yaml:\d+:\d+: .*with\.{param}: {re.escape(text)}")

    # ---- a path whose far side has a smaller MTU ----

    def test_mtu_finds_the_smaller_hop(self):
        st = self.run_steps(
            step("v4", "mtu", A, {"target": "10.78.2.2"})
            + step("v6", "mtu", A, {"target": "fd00:78:2::2"})
            + step("judged", "mtu", A, {"target": "10.78.2.2"}, {"path_mtu": 1400}),
            want_rc=1)
        for sid, hop in (("v4", "10.78.1.254"), ("v6", "fd00:78:1::fe")):
            s = st[sid]
            f = self.check(s, "fail")
            self.assertEqual(f["path_mtu"], 1400, self.explain())
            self.assertEqual(f["hop"], hop)
            self.assertEqual(f["reported_mtu"], 1400)
            self.assertEqual(f["interface"], "a1")
            self.assertEqual(f["interface_mtu"], 1500)
            self.assertEqual(f["mtus"][0], {"interface": "a1", "mtu": 1500})
            target = "10.78.2.2" if sid == "v4" else "fd00:78:2::2"
            self.assertEqual(s["message"],
                             f"{target}: path MTU 1400 < a1 MTU 1500: hop {hop} reported 1400")
        self.check(st["judged"], "pass")

    def test_ping_with_dont_fragment_reports_frag_needed(self):
        st = self.run_steps(
            step("df", "ping", A, {"target": "10.78.2.2", "size": 1472, "dont_fragment": True,
                                   "count": 2})
            + step("fits", "ping", A, {"target": "10.78.2.2", "size": 1372,
                                       "dont_fragment": True, "count": 2}),
            want_rc=1)
        s = st["df"]
        f = self.check(s, "fail")
        self.assertEqual(f["frag_needed_mtu"], 1400)
        self.assertEqual(f["received"], 0)
        e = f["errors"][0]
        self.assertEqual((e["kind"], e["from"], e["type"], e["code"], e["mtu"]),
                         ("frag_needed", "10.78.1.254", 3, 4, 1400))
        self.assertIn("from 10.78.1.254", s["message"])
        self.check(st["fits"], "pass")

    def test_too_big_for_the_interface_is_a_local_error(self):
        st = self.run_steps(step("local", "ping", A, {"target": "10.78.2.2", "size": 1600,
                                                       "dont_fragment": True, "count": 1}),
                            want_rc=1)
        f = self.check(st["local"], "fail")
        e = f["errors"][0]
        self.assertEqual((e["kind"], e["mtu"]), ("local", 1500))

    # ---- a VXLAN overlay ----

    def test_overlay(self):
        st = self.run_steps(step("ping", "ping", X, {"target": "10.79.42.2"})
                            + step("mtu", "mtu", X, {"target": "10.79.42.2"}),
                            want_rc=0)
        self.assertEqual(self.check(st["ping"], "pass")["received"], 3)
        f = self.check(st["mtu"], "pass")
        self.assertEqual(f["path_mtu"], 1450)
        self.assertEqual(f["interface"], "vx0")
        self.assertEqual(f["interface_mtu"], 1450)
        self.assertEqual(f["mtus"], [{"interface": "vx0", "mtu": 1450},
                                     {"interface": "u0", "mtu": 1500}])
        self.assertNotIn("hop", f)


if __name__ == "__main__":
    unittest.main()
