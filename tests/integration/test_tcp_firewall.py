"""tcp.connect, sockets.listen and firewall through the real binary, in namespaces this test
creates:

  P-c (client)  veth 10.77.0.1/24 fd77::1/64  <---->  P-s (server) 10.77.0.2/24 fd77::2/64
                veth 10.77.2.1/24             <---->  P-f (firewall) 10.77.2.2/24

P-s runs a python TCP listener on 80 (IPv4 and IPv6) and a UDP socket on 5353, and an
nftables table: tcp dport 81 drop, tcp dport 83 reject with icmp admin-prohibited,
udp dport 4789 counter drop, udp dport 5000 counter drop, meta mark set 0x10.
P-f has iptables (nft backend) rules: -p udp --dport 4789 -j DROP, -p udp --dport 6000 -j DROP.
P-c has no rules and no route beyond its subnets (10.78.0.9 is unreachable).

Needs root, nft and iptables; fails (never skips) without them. NETPLAY_BIN names the binary.
"""

import os
import shutil
import subprocess
import sys
import unittest

from procs import kill_all_with, wait_for
from silk_lab import playbook, require_root, run_playbook, sh, step_yaml, validate_playbook

PREFIX = f"nptf{os.getpid() % 100000}-"
C, S, F = PREFIX + "c", PREFIX + "s", PREFIX + "f"
MARKER = f"netplay-tcpfw-server-{os.getpid()}"
SENT = 5  # UDP packets sent to each firewall's port 4789

SERVER = r"""
import socket, sys, threading
def serve(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, 80)); s.listen(64)
    while True:
        c, _ = s.accept(); c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
threading.Thread(target=serve, args=(socket.AF_INET6, "::"), daemon=True).start()
serve(socket.AF_INET, "0.0.0.0")
"""

SERVER_RULES = """
table inet tcpfw {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 81 drop
    tcp dport 83 reject with icmp type admin-prohibited
    udp dport 4789 counter drop
    udp dport 5000 counter drop
    meta mark set 0x10
  }
}
"""


def in_ns(ns, *argv, check=True):
    return sh("ip", "netns", "exec", ns, *argv, check=check)


def send_udp(ns, addr, port, count):
    code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for _ in range({count}): s.sendto(b'x' * 20, ('{addr}', {port}))\n")
    in_ns(ns, sys.executable, "-c", code)


def resolve_neighbour(ns, addr):
    """A TCP attempt to a closed port: answered (RST) once the neighbour is resolved."""
    family = "socket.AF_INET6" if ":" in addr else "socket.AF_INET"
    code = (f"import socket; s = socket.socket({family}); s.settimeout(5)\n"
            f"try: s.connect(('{addr}', 9))\nexcept OSError: pass\n")
    in_ns(ns, sys.executable, "-c", code)


def listening(ns, port):
    return f":{port} " in in_ns(ns, "ss", "-ltnH").stdout


class TcpFirewall(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        require_root()
        for tool in ("nft", "iptables", "ss"):
            if not shutil.which(tool):
                raise AssertionError(f"{tool} is needed to build the test's firewalls")
        try:
            cls._up()
        except BaseException:
            cls._down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._down()

    @classmethod
    def _up(cls):
        for ns in (C, S, F):
            sh("ip", "netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "tfc0", "netns", C, "type", "veth", "peer", "tfs0", "netns", S)
        sh("ip", "link", "add", "tfc1", "netns", C, "type", "veth", "peer", "tff0", "netns", F)
        for ns, dev, v4, v6 in ((C, "tfc0", "10.77.0.1/24", "fd77::1/64"),
                                (S, "tfs0", "10.77.0.2/24", "fd77::2/64"),
                                (C, "tfc1", "10.77.2.1/24", None),
                                (F, "tff0", "10.77.2.2/24", None)):
            in_ns(ns, "ip", "addr", "add", v4, "dev", dev)
            if v6:
                in_ns(ns, "ip", "addr", "add", v6, "dev", dev, "nodad")
            in_ns(ns, "ip", "link", "set", dev, "up")
        # Names in C: its own hosts file, and a resolv.conf whose server (S, where nothing
        # listens on port 53) refuses at once: no name lookup leaves the test's namespaces.
        os.makedirs(f"/etc/netns/{C}", exist_ok=True)
        with open(f"/etc/netns/{C}/hosts", "w") as f:
            f.write("10.77.0.2 server.np.test\n")
        with open(f"/etc/netns/{C}/resolv.conf", "w") as f:
            f.write("nameserver 10.77.0.2\n")
        cls.server = subprocess.Popen(
            ["ip", "netns", "exec", S, sys.executable, "-c", SERVER, MARKER],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(lambda: listening(S, 80), 30):
            raise AssertionError("the test's TCP server did not start")
        sh("ip", "netns", "exec", S, "nft", "-f", "-", input=SERVER_RULES)
        for port in ("4789", "6000"):
            in_ns(F, "iptables", "-A", "INPUT", "-p", "udp", "--dport", port, "-j", "DROP")
        # Neighbours resolved first, so that every datagram sent reaches the rules.
        resolve_neighbour(C, "10.77.0.2")
        resolve_neighbour(C, "10.77.2.2")
        # The first SYN to a fresh IPv6 neighbour on a new veth is often lost (resent after
        # 1 s): resolved first, so that the 1 s probe below measures the path, not that.
        resolve_neighbour(C, "fd77::2")
        send_udp(C, "10.77.0.2", 4789, SENT)
        send_udp(C, "10.77.2.2", 4789, SENT)

        body = ""
        body += step_yaml("open", "tcp.connect", {"host": "10.77.0.2", "port": 80, "timeout": "5s"},
                          C)
        body += step_yaml("open6", "tcp.connect", {"host": "fd77::2", "port": 80, "timeout": "5s"},
                          C)
        body += step_yaml("open3", "tcp.connect",
                          {"host": "10.77.0.2", "port": 80, "count": 3, "interval": "10ms",
                           "timeout": "5s", "source": "10.77.0.1", "interface": "tfc0"}, C)
        body += step_yaml("refused", "tcp.connect", {"host": "10.77.0.2", "port": 82}, C)
        body += step_yaml("refused_expected", "tcp.connect", {"host": "10.77.0.2", "port": 82},
                          C, {"state": "refused"})
        body += step_yaml("filtered", "tcp.connect",
                          {"host": "10.77.0.2", "port": 81, "timeout": "500ms"}, C)
        body += step_yaml("filtered_expected", "tcp.connect",
                          {"host": "10.77.0.2", "port": 81, "timeout": "500ms"}, C,
                          {"state": "filtered"})
        body += step_yaml("prohibited", "tcp.connect", {"host": "10.77.0.2", "port": 83}, C)
        body += step_yaml("no_route", "tcp.connect", {"host": "10.78.0.9", "port": 80}, C)
        body += step_yaml("name", "tcp.connect", {"host": "no.such.name", "port": 80}, C)
        body += step_yaml("named", "tcp.connect", {"host": "server.np.test", "port": 80,
                                                   "timeout": "5s"}, C)
        body += step_yaml("listen_tcp", "sockets.listen", {"proto": "tcp", "port": 80}, S)
        body += step_yaml("listen_udp", "sockets.listen", {"proto": "udp", "port": 5353}, S)
        body += step_yaml("listen_none", "sockets.listen", {"proto": "tcp", "port": 9999}, S)
        body += step_yaml("listen_all", "sockets.listen", {}, S)
        body += step_yaml("listen_addr", "sockets.listen", {"address": "10.77.0.2"}, S)
        body += step_yaml("listen_lo6", "sockets.listen", {"address": "::1", "proto": "udp"},
                          S, {"listening": False})
        body += step_yaml("fw_nft", "firewall", {"match": {"proto": "udp", "dport": 4789}}, S)
        body += step_yaml("fw_marked", "firewall", {"match": {"proto": "udp", "dport": 7000}}, S)
        body += step_yaml("fw_nft_in", "firewall",
                          {"direction": "in", "match": {"proto": "udp", "dport": 4789}}, S)
        body += step_yaml("fw_nft_out", "firewall",
                          {"direction": "out", "match": {"proto": "udp", "dport": 4789}}, S)
        body += step_yaml("fw_ipt", "firewall", {"match": {"proto": "udp", "dport": 4789}}, F)
        body += step_yaml("fw_clean", "firewall", {"match": {"proto": "udp", "dport": 4789}}, C)
        body += step_yaml("fw_all", "firewall", {}, S)
        cls.rc, cls.report, cls.out, cls.err = run_playbook(playbook(body))
        if cls.report is None:
            raise AssertionError(f"no JSON report (exit {cls.rc}): {cls.err}{cls.out}")
        cls.steps = {s["id"]: s for s in cls.report["steps"]}

    @classmethod
    def _down(cls):
        if cls.server is not None:
            cls.server.kill()
            cls.server.wait()
        kill_all_with(MARKER)
        for ns in (C, S, F):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(f"/etc/netns/{C}", ignore_errors=True)

    def step(self, sid, status):
        s = self.steps[sid]
        self.assertEqual(s["status"], status, f"{sid}: {s['message']}")
        return s

    # ---- tcp.connect ----

    def test_open_with_both_ends(self):
        f = self.step("open", "pass")["facts"]
        self.assertEqual(f["state"], "open")
        self.assertEqual(f["peer"], "10.77.0.2:80")
        self.assertRegex(f["local"], r"^10\.77\.0\.1:\d+$")
        self.assertGreater(f["connect_ms"], 0)

    def test_open_over_ipv6(self):
        s = self.step("open6", "pass")
        self.assertEqual(s["facts"]["peer"], "[fd77::2]:80")
        self.assertRegex(s["facts"]["local"], r"^\[fd77::1\]:\d+$")
        self.assertTrue(s["message"].startswith("[fd77::2]:80 open in "), s["message"])

    def test_several_attempts_from_a_source_and_interface(self):
        f = self.step("open3", "pass")["facts"]
        self.assertEqual(f["states"], ["open"] * 3)
        self.assertEqual(f["open_count"], 3)
        self.assertLessEqual(f["connect_min_ms"], f["connect_max_ms"])

    def test_refused_fails_by_default_and_passes_when_expected(self):
        s = self.step("refused", "fail")
        self.assertRegex(s["message"], r"^10\.77\.0\.2:82 refused \(RST in [\d.]+ ms\)$")
        self.assertEqual(s["facts"]["state"], "refused")
        self.step("refused_expected", "pass")

    def test_dropped_port_is_filtered_within_the_timeout(self):
        s = self.step("filtered", "fail")
        self.assertEqual(s["message"], "10.77.0.2:81 filtered: no answer within 500ms")
        self.assertEqual(s["facts"]["state"], "filtered")
        self.assertNotIn("connect_ms", s["facts"])
        self.assertGreaterEqual(s["duration_ms"], 500)  # it waited the whole timeout
        self.step("filtered_expected", "pass")

    def test_unreachable(self):
        s = self.step("prohibited", "fail")
        self.assertEqual(s["facts"]["state"], "unreachable")
        self.assertEqual(s["message"], "10.77.0.2:83 unreachable: No route to host")
        s = self.step("no_route", "fail")
        self.assertEqual(s["facts"]["state"], "unreachable")
        self.assertEqual(s["message"], "10.78.0.9:80 unreachable: Network is unreachable")

    def test_names_resolve_in_the_steps_namespace(self):
        s = self.step("named", "pass")
        self.assertEqual(s["facts"]["state"], "open")
        self.assertEqual(s["facts"]["address"], "10.77.0.2")

    def test_an_unresolvable_name_is_a_clear_error(self):
        s = self.step("name", "error")
        self.assertRegex(s["message"], r"^cannot resolve 'no\.such\.name': .*10\.77\.0\.2")

    def test_bad_ports_are_rejected_by_validate_with_their_position(self):
        for port in (0, 70000):
            rc, out, err = validate_playbook(playbook(
                step_yaml("p", "tcp.connect", {"host": "10.77.0.2", "port": port})))
            self.assertNotEqual(rc, 0, out)
            self.assertRegex(out + err, r"pb\.yaml:\d+:\d+: .*port", out + err)

    # ---- sockets.listen ----

    def test_listener_with_its_process(self):
        f = self.step("listen_tcp", "pass")["facts"]
        self.assertEqual(f["count"], 2)  # 0.0.0.0:80 and [::]:80
        addresses = sorted(l["address"] for l in f["listeners"])
        self.assertEqual(addresses, ["0.0.0.0", "::"])
        for l in f["listeners"]:
            self.assertEqual(l["pid"], self.server.pid)
            self.assertEqual(l["program"], os.path.basename(sys.executable)[:15])
            self.assertEqual(l["uid"], 0)
        f = self.step("listen_udp", "pass")["facts"]
        self.assertEqual(f["listeners"][0]["proto"], "udp")
        self.assertEqual(f["listeners"][0]["pid"], self.server.pid)

    def test_nothing_on_a_port_fails_naming_what_listens(self):
        s = self.step("listen_none", "fail")
        self.assertEqual(s["message"], "nothing listens on tcp port 9999 (listening: 80)")
        s = self.step("listen_all", "pass")
        self.assertEqual(s["facts"]["ports"], [80, 5353])

    def test_an_address_matches_the_wildcards_of_its_family(self):
        f = self.step("listen_addr", "pass")["facts"]
        # 0.0.0.0:80 and 0.0.0.0:5353; not the v6only [::]:80.
        self.assertEqual([(l["proto"], l["address"], l["port"]) for l in f["listeners"]],
                         [("tcp", "0.0.0.0", 80), ("udp", "0.0.0.0", 5353)])
        s = self.step("listen_lo6", "pass")
        self.assertEqual(s["facts"]["count"], 0)

    # ---- firewall ----

    def test_nft_rule_named_with_its_counter(self):
        s = self.step("fw_nft", "fail")
        drops = s["facts"]["drops"]
        self.assertEqual(len(drops), 1, drops)
        d = drops[0]
        self.assertEqual((d["family"], d["table"], d["chain"], d["hook"], d["verdict"]),
                         ("inet", "tcpfw", "input", "input", "drop"))
        self.assertEqual(d["text"], "udp dport 4789 counter drop")
        self.assertTrue(d["exact"])
        self.assertGreaterEqual(d["packets"], SENT)
        self.assertRegex(s["message"],
                         r"^udp dport 4789 dropped by inet tcpfw input handle \d+ "
                         r"'udp dport 4789 counter drop' \(\d+ packets\)$")
        # The mark rule comes after the drop: a VXLAN packet never reaches it ...
        self.assertEqual(s["facts"]["marks"], [])
        # ... a packet that no rule drops does.
        marks = self.step("fw_marked", "pass")["facts"]["marks"]
        self.assertEqual([(m["kind"], m["value"]) for m in marks], [("meta", "0x10")])
        # In (input hook) is its path; out (output) is not.
        self.assertEqual(self.step("fw_nft_in", "fail")["facts"]["drop_count"], 1)
        self.assertEqual(self.step("fw_nft_out", "pass")["facts"]["drops"], [])

    def test_iptables_rule_named_with_its_counter(self):
        s = self.step("fw_ipt", "fail")
        drops = s["facts"]["drops"]
        self.assertEqual(len(drops), 1, drops)
        d = drops[0]
        self.assertEqual((d["family"], d["table"], d["chain"]), ("ip", "filter", "INPUT"))
        self.assertRegex(d["text"], r"^(meta l4proto udp )?udp dport 4789 counter drop$")
        self.assertTrue(d["exact"])
        self.assertGreaterEqual(d["packets"], SENT)

    def test_the_steps_own_namespace_is_read(self):
        s = self.step("fw_clean", "pass")
        self.assertEqual(s["facts"]["rule_count"], 0)
        self.assertEqual(s["facts"]["drops"], [])
        f = self.step("fw_all", "pass")["facts"]
        self.assertEqual(f["tables"], [{"family": "inet", "name": "tcpfw"}])
        self.assertEqual(f["rule_count"], 5)
        self.assertEqual(f["drop_count"], 4)


if __name__ == "__main__":
    unittest.main()
