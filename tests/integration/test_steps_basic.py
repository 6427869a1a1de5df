"""exec, file and sysctl through the real binary, inside a network namespace the test creates:
a command sees the step's namespace, templates stay one argument each, a file value feeds a
later step, a background exec is stopped and passes, a failing command fails the run, a
YAML file with a recursive alias is a step error (not a crash), and the shipped host-basics
playbook only warns (exit 0) about strict reverse-path filtering.
Needs root (ip netns); fails without it.
"""

import json
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("NETPLAY_BIN", "netplay")


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class StepsBasic(unittest.TestCase):
    def setUp(self):
        self.assertEqual(os.geteuid(), 0, "needs root to create network namespaces")
        self.ns = f"np-steps-{os.getpid()}"
        sh("ip", "netns", "add", self.ns)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Only in the namespace: a veth pair with an address, and forwarding switched on.
        sh("ip", "-n", self.ns, "link", "add", "np0", "type", "veth", "peer", "name", "np1")
        sh("ip", "-n", self.ns, "addr", "add", "10.99.0.1/24", "dev", "np0")
        sh("ip", "netns", "exec", self.ns, "sysctl", "-w", "net.ipv4.conf.np0.forwarding=1")
        self.tmp = tempfile.TemporaryDirectory(prefix="np-steps-")
        self.addCleanup(self.tmp.cleanup)
        self.store = os.path.join(self.tmp.name, "store.json")
        with open(self.store, "w") as f:
            json.dump({"handle-1": {"ip": "10.99.0.1", "metadata": {"app_id": "app a; rm -rf /"}}}, f)

    def run_playbook(self, text: str) -> tuple[int, dict, str]:
        pb = os.path.join(self.tmp.name, "pb.yaml")
        with open(pb, "w") as f:
            f.write(text)
        report = os.path.join(self.tmp.name, "report.json")
        p = subprocess.run([BIN, "run", pb, "--output", f"json={report}"],
                           capture_output=True, text=True, timeout=60)
        with open(report) as f:
            return p.returncode, json.load(f), p.stderr

    def test_steps_in_a_namespace(self):
        # The listener is stopped once the steps that need it are done: after_listener waits
        # until it is listening, so what it printed is there however slow the machine is.
        ready = os.path.join(self.tmp.name, "listening")
        code, rep, err = self.run_playbook(f"""apiVersion: netplay/v1
kind: Playbook
metadata: {{name: steps-basic}}
steps:
  - id: meta
    uses: file
    with: {{path: {self.store}, json_path: /handle-1/metadata/app_id}}
    expect: {{found: true}}
  - id: addrs
    uses: exec
    netns: {self.ns}
    with: {{argv: [ip, -j, addr, show, dev, np0], json: true}}
    expect: {{json.0.addr_info.0.local: 10.99.0.1}}
  - id: echo_value
    uses: exec
    needs: [meta]
    with: {{argv: [printf, "%s|", "{{{{ steps.meta.facts.value }}}}"]}}
    expect: {{stdout: "app a; rm -rf /|"}}
  - id: forwarding
    uses: sysctl
    netns: {self.ns}
    with: {{key: net.ipv4.conf.np0.forwarding}}
    expect: {{value: "1"}}
  - id: listener
    uses: exec
    background: true
    with: {{cmd: "echo up; touch {ready}; exec sleep 60", shell: true}}
  - id: after_listener
    uses: exec
    needs: [listener]
    with: {{argv: [sh, -c, "while [ ! -e {ready} ]; do sleep 0.01; done"]}}
""")
        steps = {s["id"]: s for s in rep["steps"]}
        self.assertEqual(code, 0, err + json.dumps(rep, indent=1))
        for sid in ("meta", "addrs", "echo_value", "forwarding", "listener"):
            self.assertEqual(steps[sid]["status"], "pass", steps[sid])
        self.assertEqual(steps["listener"]["facts"]["stdout"], "up")
        self.assertTrue(steps["listener"]["message"].startswith("stopped after"))

    def test_failing_command_fails_the_run(self):
        code, rep, err = self.run_playbook("""apiVersion: netplay/v1
kind: Playbook
metadata: {name: steps-fail}
steps:
  - id: bad
    uses: exec
    with: {cmd: "echo 'no route to host' >&2; exit 2", shell: true}
  - id: missing
    uses: file
    with: {path: /nonexistent/netplay/store.json}
    expect: {exists: false}
""")
        steps = {s["id"]: s for s in rep["steps"]}
        self.assertEqual(code, 1, err)
        self.assertEqual(steps["bad"]["status"], "fail")
        self.assertEqual(steps["bad"]["message"], "exit code 2: no route to host")
        self.assertEqual(steps["missing"]["status"], "pass", steps["missing"])

    def test_recursive_yaml_alias_is_a_step_error_not_a_crash(self):
        loop = os.path.join(self.tmp.name, "loop.yaml")
        with open(loop, "w") as f:
            f.write("a: &x [*x]\n")
        code, rep, err = self.run_playbook(f"""apiVersion: netplay/v1
kind: Playbook
metadata: {{name: steps-yaml-alias}}
steps:
  - id: loop
    uses: file
    with: {{path: {loop}, yaml_path: a.0}}
""")
        self.assertEqual(code, 3, err)  # errored, none failed: the report was written
        step = rep["steps"][0]
        self.assertEqual(step["status"], "error")
        self.assertIn("recursive alias", step["message"])


    def test_shipped_host_basics_warns_on_strict_rp_filter_and_exits_0(self):
        # A healthy namespace whose only oddity is strict rp_filter: the playbook's
        # strict-rp-filter rule is a warning, so the run warns and exits 0.
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.ns, "sysctl", "-w", "net.ipv4.conf.all.rp_filter=1")
        src = os.environ.get("NETPLAY_SOURCE_DIR",
                             os.path.join(os.path.dirname(__file__), "..", ".."))
        report = os.path.join(self.tmp.name, "report.json")
        p = subprocess.run([BIN, "run", os.path.join(src, "playbooks", "host-basics.yaml"),
                            "--set", f"netns={self.ns}", "--output", f"json={report}"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("FINDING (warn) strict-rp-filter: ", p.stdout)
        with open(report) as f:
            rep = json.load(f)
        self.assertEqual(rep["status"], "warn")
        self.assertEqual([(f["id"], f["severity"]) for f in rep["findings"]],
                         [("strict-rp-filter", "warn")])


if __name__ == "__main__":
    unittest.main()
