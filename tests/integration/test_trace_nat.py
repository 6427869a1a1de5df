"""trace.hops on the OpenShift/Kubernetes NAT question: a pod's traffic leaves its node with
the node's address (iptables MASQUERADE on the uplink). Built in namespaces the test creates:

  P pod   eth0 10.128.0.5/24  --veth--  P node  veth-pod 10.128.0.1/24
                                        P node  uplink 198.18.0.1/24  --veth--  P ext eth0 198.18.0.2/24
                                        MASQUERADE for 10.128.0.0/24 out of uplink

A ping from the pod to 198.18.0.2 is followed at the pod's eth0, the node's veth, the node's
uplink and the far end: the trace must show the pod's source address on the veth and the
node's on the uplink (a `src` rewrite between those two points), the reply rewritten back,
and nothing lost. With the far end dropping ICMP, the requests are last seen at ext-eth0.
"""

import os
import unittest

from silk_lab import playbook, require_root, run_playbook, sh, step_yaml


class TraceNatTest(unittest.TestCase):
    def setUp(self):
        require_root()
        p = f"np{os.getpid()}nat-"
        self.pod, self.node, self.ext = p + "pod", p + "node", p + "ext"
        for ns in (self.pod, self.node, self.ext):
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "netns", "add", ns)
            self.addCleanup(sh, "ip", "netns", "del", ns, check=False)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.node, "link", "add", "veth-pod", "type", "veth", "peer", "name",
           "eth0", "netns", self.pod)
        sh("ip", "-n", self.node, "link", "add", "uplink", "type", "veth", "peer", "name",
           "eth0", "netns", self.ext)
        for ns, dev, addr in ((self.pod, "eth0", "10.128.0.5/24"),
                              (self.node, "veth-pod", "10.128.0.1/24"),
                              (self.node, "uplink", "198.18.0.1/24"),
                              (self.ext, "eth0", "198.18.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", self.pod, "route", "add", "default", "via", "10.128.0.1")
        sh("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", self.node, "iptables", "-t", "nat", "-A", "POSTROUTING",
           "-s", "10.128.0.0/24", "-o", "uplink", "-j", "MASQUERADE")

    def trace(self):
        points = [{"name": "pod-eth0", "netns": self.pod, "interface": "eth0"},
                  {"name": "node-veth", "netns": self.node, "interface": "veth-pod"},
                  {"name": "node-uplink", "netns": self.node, "interface": "uplink"},
                  {"name": "ext-eth0", "netns": self.ext, "interface": "eth0"}]
        steps = (step_yaml("trace", "trace.hops",
                           {"points": points, "flow": {"host": "198.18.0.2", "proto": "icmp"}},
                           extra={"background": True, "timeout": "20s"})
                 + step_yaml("ping", "ping", {"target": "198.18.0.2", "count": 3,
                                              "interval": "100ms", "timeout": "500ms"},
                             netns=self.pod, extra={"needs": ["trace"]}))
        code, report, out, err = run_playbook(playbook(steps))
        self.assertIsNotNone(report, f"exit {code}: {err}")
        return code, {s["id"]: s for s in report["steps"]}

    def test_masquerade_shows_as_a_source_rewrite_on_the_uplink(self):
        code, steps = self.trace()
        t = steps["trace"]
        self.assertEqual(t["status"], "pass", t["message"])
        self.assertEqual(code, 0, t["message"])
        f = t["facts"]
        self.assertFalse(f["lost"])
        rewrites = {(r["from"], r["to"], r["field"], r["before"], r["after"]): r["packets"]
                    for r in f["rewrites"]}
        self.assertEqual(rewrites.get(("node-veth", "node-uplink", "src", "10.128.0.5",
                                       "198.18.0.1")), 3, f["rewrites"])
        self.assertEqual(rewrites.get(("node-uplink", "node-veth", "dst", "198.18.0.1",
                                       "10.128.0.5")), 3, f["rewrites"])
        classes = {c["class"]: c for c in f["classes"]}
        request = classes["icmp echo-request 10.128.0.5 > 198.18.0.2"]
        self.assertEqual(request["direction"], "forward")
        self.assertEqual(set(request["seen"].values()), {3})
        reply = classes["icmp echo-reply 198.18.0.2 > 198.18.0.1"]
        self.assertEqual(reply["direction"], "reverse")
        self.assertEqual(reply["lost_after"], None)

    def test_requests_dropped_at_the_far_end_are_last_seen_there(self):
        sh("ip", "netns", "exec", self.ext, "iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP")
        code, steps = self.trace()
        t = steps["trace"]
        self.assertEqual(code, 1)
        self.assertEqual(steps["ping"]["status"], "fail")
        # The far end is the path's last point: the request reached it (the capture sees it
        # before the firewall), so the loss shows as requests without replies.
        classes = {c["class"]: c for c in t["facts"]["classes"]}
        request = classes["icmp echo-request 10.128.0.5 > 198.18.0.2"]
        self.assertEqual(request["seen"]["ext-eth0"], 3)
        self.assertEqual(request["answered"], 0)
        self.assertFalse(any(c.startswith("icmp echo-reply") for c in classes))


if __name__ == "__main__":
    unittest.main()
