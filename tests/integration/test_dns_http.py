"""The dns and http steps against real servers in namespaces this test creates
(tests/integration/probe_lab.py): dnsmasq for an internal zone, a slow and a silent DNS
server, python's http.server (and over TLS), a TCP server that never answers, a closed port.

Needs root; fails (never skips) without it. Runs the real binary: NETPLAY_BIN.
"""

import json
import os
import unittest

from probe_lab import (BACKEND, HTTP_BODY, HTTP_PORT, HTTPS_PORT, SERVER_IP, SERVER_IP6,
                       SILENT_DNS_PORT, SILENT_TCP_PORT, SLOW_DNS_DELAY_MS, SLOW_DNS_PORT, SRV,
                       TLS_NAME, TXT, WEB, ProbeLab)
from silk_lab import playbook, require_root, run_playbook, validate_playbook


def step_yaml(sid, uses, netns, with_, expect=None, timeout=None):
    y = f"  - id: {sid}\n    uses: {uses}\n    netns: {netns}\n    with: {json.dumps(with_)}\n"
    if expect:
        y += f"    expect: {json.dumps(expect)}\n"
    if timeout:
        y += f"    timeout: {timeout}\n"
    return y


BASE = f"http://{SERVER_IP}:{HTTP_PORT}"


class DnsHttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_root()
        cls.lab = ProbeLab()
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
        ns = cls.lab.client
        dns = SERVER_IP
        steps = [
            ("dns_a", "dns", {"name": BACKEND[0], "server": dns}, None),
            ("dns_aaaa", "dns", {"name": BACKEND[0], "type": "AAAA", "server": dns}, None),
            ("dns_srv", "dns", {"name": SRV[0], "type": "SRV", "server": f"{dns}:53"}, None),
            ("dns_txt", "dns", {"name": TXT[0], "type": "TXT", "server": dns}, None),
            ("dns_ptr", "dns", {"name": BACKEND[1], "type": "PTR", "server": dns}, None),
            ("dns_v6_server", "dns", {"name": BACKEND[0], "server": f"[{SERVER_IP6}]:53"}, None),
            ("dns_nx", "dns", {"name": "nothing.apps.internal", "server": dns}, None),
            ("dns_nx_expected", "dns", {"name": "nothing.apps.internal", "server": dns},
             {"rcode": "NXDOMAIN"}),
            ("dns_default", "dns", {"name": BACKEND[0]}, None),
            ("dns_search", "dns", {"name": "backend", "search": True}, None),
            ("dns_no_search", "dns", {"name": "backend"}, {"rcode": {"ne": "NOERROR"}}),
            ("dns_slow", "dns", {"name": "slow.example", "server": f"{dns}:{SLOW_DNS_PORT}"},
             None),
            ("dns_silent", "dns", {"name": "a.example", "server": f"{dns}:{SILENT_DNS_PORT}",
                                   "timeout": "500ms"}, None),
            ("dns_count", "dns", {"name": BACKEND[0], "server": dns, "count": 20},
             {"timeouts": 0}),
            ("http_ok", "http", {"url": f"{BASE}/", "body_contains": "probe lab"}, None),
            ("http_by_name", "http", {"url": f"http://{WEB[0]}:{HTTP_PORT}/"}, None),
            ("http_search_name", "http", {"url": f"http://web:{HTTP_PORT}/"}, None),
            ("http_pinned", "http", {"url": f"http://pinned.netplay.test:{HTTP_PORT}/",
                                     "resolve": [f"pinned.netplay.test:{HTTP_PORT}:{SERVER_IP}"]},
             None),
            ("http_nxname", "http", {"url": f"http://nothing.apps.internal:{HTTP_PORT}/"}, None),
            ("http_refused", "http", {"url": f"http://{SERVER_IP}:9/"}, None),
            ("http_silent", "http", {"url": f"http://{SERVER_IP}:{SILENT_TCP_PORT}/",
                                     "timeout": "1s"}, None),
            ("http_404", "http", {"url": f"{BASE}/missing"}, None),
            ("http_404_expected", "http", {"url": f"{BASE}/missing"}, {"status": 404}),
            ("http_count", "http", {"url": f"{BASE}/", "count": 20}, {"failures": 0}),
            ("https_ca", "http", {"url": f"https://{TLS_NAME}:{HTTPS_PORT}/",
                                  "ca_file": cls.lab.cert, "body_contains": "probe lab"}, None),
            ("https_no_verify", "http", {"url": f"https://{SERVER_IP}:{HTTPS_PORT}/",
                                         "tls_verify": False}, None),
            ("https_untrusted", "http", {"url": f"https://{SERVER_IP}:{HTTPS_PORT}/"}, None),
            ("http_ftp", "http", {"url": "ftp://x"}, None),
            ("http_no_host", "http", {"url": "http://"}, None),
            ("http_not_url", "http", {"url": "not a url"}, None),
        ]
        body = "".join(step_yaml(sid, uses, ns, w, e) for sid, uses, w, e in steps)
        cls.rc, cls.report, cls.out, cls.err = run_playbook(playbook(body), "--jobs", "1")
        if cls.report is None:
            raise AssertionError(f"no JSON report (exit {cls.rc}): {cls.err}{cls.out}")
        cls.steps = {s["id"]: s for s in cls.report["steps"]}
        if os.environ.get("NETPLAY_TEST_VERBOSE"):
            for s in cls.report["steps"]:
                print(f"{s['id']:<18} {s['status']:<5} {s['message']}")

    def step(self, sid, status="pass"):
        s = self.steps[sid]
        self.assertEqual(s["status"], status, f"{sid}: {s['message']} {s.get('expectations')}")
        self.assertNotIn("\n", s["message"])
        return s

    # ---- dns ----
    def test_a_aaaa_srv_txt_ptr(self):
        f = self.step("dns_a")["facts"]
        self.assertEqual(f["rcode"], "NOERROR")
        self.assertEqual(f["addresses"], [BACKEND[1]])
        self.assertEqual(f["answers"][0]["name"], BACKEND[0])
        self.assertEqual(f["answers"][0]["type"], "A")
        self.assertEqual(f["server"], SERVER_IP)
        self.assertGreater(f["query_ms"], 0)
        self.assertIn(f"{BACKEND[0]} A: {BACKEND[1]} (NOERROR, ", self.step("dns_a")["message"])
        self.assertEqual(self.step("dns_aaaa")["facts"]["addresses"], [BACKEND[2]])
        srv = self.step("dns_srv")["facts"]
        self.assertEqual([a["data"] for a in srv["answers"]],
                         [f"{SRV[3]} {SRV[4]} {SRV[2]} {SRV[1]}"])
        self.assertEqual(srv["addresses"], [])
        self.assertEqual(self.step("dns_txt")["facts"]["answers"][0]["data"], TXT[1])
        ptr = self.step("dns_ptr")["facts"]
        self.assertEqual(ptr["name"], "11.1.255.10.in-addr.arpa")
        self.assertEqual(ptr["answers"][0]["data"], BACKEND[0])

    def test_ipv6_server(self):
        f = self.step("dns_v6_server")["facts"]
        self.assertEqual(f["server"], SERVER_IP6)
        self.assertEqual(f["addresses"], [BACKEND[1]])

    def test_nxdomain_fails_by_default_and_passes_when_expected(self):
        s = self.step("dns_nx", "fail")
        self.assertEqual(s["facts"]["rcode"], "NXDOMAIN")
        self.assertRegex(s["message"],
                         rf"^nothing\.apps\.internal A: NXDOMAIN from {SERVER_IP} \([0-9.]+ ms\)$")
        self.step("dns_nx_expected")

    def test_default_server_is_the_namespaces_resolv_conf(self):
        f = self.step("dns_default")["facts"]
        self.assertEqual(f["resolv_conf"], f"/etc/netns/{self.lab.client}/resolv.conf")
        self.assertEqual(f["server"], SERVER_IP)
        self.assertEqual(f["addresses"], [BACKEND[1]])
        s = self.step("dns_search")
        f = s["facts"]
        self.assertEqual(f["name"], BACKEND[0])
        self.assertTrue(s["message"].startswith(f"backend -> {BACKEND[0]} A: {BACKEND[1]} "),
                        s["message"])
        self.assertEqual(f["addresses"], [BACKEND[1]])
        # Without search: the bare name is asked as written (as dig does).
        self.assertEqual(self.step("dns_no_search")["facts"]["name"], "backend")

    def test_slow_server_query_time(self):
        f = self.step("dns_slow")["facts"]
        self.assertEqual(f["addresses"], ["10.9.9.9"])
        self.assertGreaterEqual(f["query_ms"], SLOW_DNS_DELAY_MS)

    def test_silent_server_times_out(self):
        s = self.step("dns_silent", "fail")
        self.assertEqual(s["facts"]["rcode"], "timeout")
        self.assertEqual(s["message"],
                         f"a.example A: no answer from {SERVER_IP}:{SILENT_DNS_PORT} within 500ms")
        self.assertGreaterEqual(s["facts"]["query_ms"], 500)

    def test_count_percentiles(self):
        f = self.step("dns_count")["facts"]
        self.assertEqual(f["queries"], 20)
        self.assertEqual(f["rcodes"], {"NOERROR": 20})
        self.assertLessEqual(f["min_ms"], f["p50_ms"])
        self.assertLessEqual(f["p50_ms"], f["p90_ms"])
        self.assertLessEqual(f["p90_ms"], f["p99_ms"])
        self.assertLessEqual(f["p99_ms"], f["max_ms"])

    # ---- http ----
    def test_ok_body_and_ordered_timings(self):
        s = self.step("http_ok")
        f = s["facts"]
        self.assertEqual(f["status"], 200)
        self.assertEqual(f["body_bytes"], len(HTTP_BODY))
        self.assertEqual(f["body"], HTTP_BODY)
        self.assertTrue(f["body_contains"])
        self.assertEqual(f["remote_ip"], SERVER_IP)
        self.assertEqual(f["remote_port"], HTTP_PORT)
        self.assertLessEqual(f["time_namelookup_ms"], f["time_connect_ms"])
        self.assertLessEqual(f["time_connect_ms"], f["time_first_byte_ms"])
        self.assertLessEqual(f["time_first_byte_ms"], f["time_total_ms"])
        self.assertGreater(f["time_connect_ms"], 0)
        self.assertRegex(s["message"], rf"^{BASE}/: 200 OK in [0-9.]+ ms \(dns [0-9.]+, "
                                       r"connect [0-9.]+, first byte [0-9.]+\)$")

    def test_names_resolved_in_the_namespace_or_pinned(self):
        for sid in ("http_by_name", "http_search_name"):
            f = self.step(sid)["facts"]
            self.assertEqual(f["status"], 200)
            self.assertEqual(f["remote_ip"], SERVER_IP)
            self.assertGreater(f["time_namelookup_ms"], 0)
            self.assertLessEqual(f["time_namelookup_ms"], f["time_connect_ms"])
            self.assertLessEqual(f["time_first_byte_ms"], f["time_total_ms"])
        f = self.step("http_pinned")["facts"]
        self.assertEqual(f["status"], 200)
        self.assertEqual(f["remote_ip"], SERVER_IP)
        s = self.step("http_nxname", "fail")
        self.assertEqual(s["facts"]["error"], "resolve")
        self.assertEqual(s["message"], f"http://nothing.apps.internal:{HTTP_PORT}/: cannot resolve "
                                       f"'nothing.apps.internal': NXDOMAIN from {SERVER_IP}")

    def test_refused_and_silent(self):
        s = self.step("http_refused", "fail")
        self.assertEqual(s["facts"]["error"], "refused")
        self.assertEqual(s["message"], f"http://{SERVER_IP}:9/: connection refused")
        s = self.step("http_silent", "fail")
        self.assertEqual(s["facts"]["error"], "timeout")
        self.assertEqual(s["facts"]["status"], 0)
        # curl's own clock ends the transfer at the timeout (it may read a hair under 1000).
        self.assertGreaterEqual(s["facts"]["time_total_ms"], 950)
        self.assertRegex(s["message"], rf"^http://{SERVER_IP}:{SILENT_TCP_PORT}/: timed out after "
                                       r"1s \(connected in [0-9.]+ ms, no first byte\)$")

    def test_https(self):
        for sid in ("https_ca", "https_no_verify"):
            s = self.step(sid)
            f = s["facts"]
            self.assertEqual(f["status"], 200)
            self.assertEqual(f["body"], HTTP_BODY)
            self.assertGreater(f["time_tls_ms"], f["time_connect_ms"])
            self.assertLessEqual(f["time_tls_ms"], f["time_first_byte_ms"])
            self.assertIn(", tls ", s["message"])
        s = self.step("https_untrusted", "fail")
        self.assertEqual(s["facts"]["error"], "tls")
        self.assertRegex(s["message"], rf"^https://{SERVER_IP}:{HTTPS_PORT}/: tls error: ")

    def test_404(self):
        s = self.step("http_404", "fail")
        self.assertEqual(s["facts"]["status"], 404)
        self.assertIn("404 File not found", s["message"])
        self.step("http_404_expected")

    def test_count(self):
        f = self.step("http_count")["facts"]
        self.assertEqual(f["requests"], 20)
        self.assertLessEqual(f["time_total_p50_ms"], f["time_total_p99_ms"])
        self.assertLessEqual(f["time_total_p99_ms"], f["time_total_max_ms"])

    def test_bad_urls_are_one_clear_line(self):
        self.assertEqual(self.step("http_ftp", "error")["message"],
                         "unsupported scheme 'ftp' in 'ftp://x' (http and https only)")
        self.assertTrue(
            self.step("http_no_host", "error")["message"].startswith("bad URL 'http://'"))
        self.assertEqual(self.step("http_not_url", "error")["message"],
                         "bad URL 'not a url': expected http://HOST[:PORT]/PATH or "
                         "https://HOST[:PORT]/PATH")

    def test_out_of_range_params_are_rejected_at_validate_time(self):
        for uses, with_ in (("dns", {"name": "a", "count": 5000}),
                            ("http", {"url": BASE, "count": 0}),
                            ("dns", {"name": "a", "type": "HINFO"})):
            rc, out, err = validate_playbook(playbook(step_yaml("s", uses, "host", with_)))
            self.assertNotEqual(rc, 0, out + err)
            self.assertRegex(err + out, r"pb\.yaml:\d+:\d+")


if __name__ == "__main__":
    unittest.main()
