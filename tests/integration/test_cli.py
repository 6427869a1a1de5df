"""The netplay command line end to end: report goldens from a real run in a namespace the
test creates, validate/describe/list/schema, usage errors and exit codes, Ctrl-C.

Needs root (network namespaces); fails, never skips, without it.
NETPLAY_UPDATE_GOLDEN=1 rewrites tests/golden/reports/run.{json,xml,txt} from this run.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

BIN = os.environ.get("NETPLAY_BIN", "")
SRC = os.environ.get("NETPLAY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(SRC, "tests", "golden", "reports")
VALIDATE = os.path.join(SRC, "tests", "golden", "validate")
XSD = os.path.join(SRC, "tests", "junit.xsd")
UPDATE = os.environ.get("NETPLAY_UPDATE_GOLDEN") == "1"


def netplay(*args, cwd=None, timeout=60):
    if not BIN or not os.path.exists(BIN):
        raise AssertionError(f"NETPLAY_BIN does not name the built binary: {BIN!r}")
    return subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def require_root(test):
    if os.geteuid() != 0:
        test.fail("this test creates network namespaces and must run as root")


# ---- normalisation of volatile fields ----------------------------------------------------

NS_RE = re.compile(r"np-cli-\d+")


def norm_json(value):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("duration_ms", "started_ms"):
                out[k] = 0
            else:
                out[k] = norm_json(v)
        return out
    if isinstance(value, list):
        return [norm_json(v) for v in value]
    if isinstance(value, str):
        return NS_RE.sub("np-cli-PID", value)
    return value


def norm_report_json(doc):
    doc = norm_json(doc)
    doc["started_at"] = "<time>"
    doc["playbook"]["sha256"] = "<sha256>"
    return json.dumps(doc, indent=2) + "\n"


def norm_xml(text):
    text = re.sub(r'time="[0-9.]+"', 'time="T"', text)
    text = re.sub(r'timestamp="[^"]*"', 'timestamp="TS"', text)
    text = re.sub(r'(name="playbook.sha256" value=")[0-9a-f]{64}"', r'\1<sha256>"', text)
    return NS_RE.sub("np-cli-PID", text)


def norm_text(text):
    text = re.sub(r" *\b\d+(?:\.\d+)? ms\b", " <ms>", text)
    return NS_RE.sub("np-cli-PID", text)


class GoldenRun(unittest.TestCase):
    """`netplay run` of tests/golden/reports/run.yaml in a fresh namespace."""

    def setUp(self):
        require_root(self)
        self.ns = f"np-cli-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns], check=False)
        for kv in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=2"):
            subprocess.run(["ip", "netns", "exec", self.ns, "sysctl", "-qw", kv], check=True)
        self.tmp = tempfile.TemporaryDirectory(prefix="np-cli-out-")
        self.addCleanup(self.tmp.cleanup)

    def compare(self, name, actual):
        path = os.path.join(GOLDEN, name)
        if UPDATE:
            with open(path, "w") as f:
                f.write(actual)
            return
        with open(path) as f:
            expected = f.read()
        self.maxDiff = None
        self.assertEqual(expected, actual, f"{name} differs (NETPLAY_UPDATE_GOLDEN=1 rewrites it)")

    def test_reports_match_goldens(self):
        out = self.tmp.name
        p = netplay("run", "run.yaml", "--set", f"ns={self.ns}",
                    "--output", f"json={out}/run.json", "--output", f"junit={out}/run.xml",
                    "--output", f"text={out}/run.txt", cwd=GOLDEN)
        self.assertEqual(p.returncode, 1, p.stderr)
        # No report went to stdout, so the text report did; progress went to stderr, one
        # plain line per step (stderr is no terminal here).
        self.assertEqual(p.stderr.count("\n"), 4, p.stderr)
        self.assertIn("[fail] rp_filter", p.stderr)
        self.assertTrue(p.stdout.startswith("playbook cli-golden"), p.stdout)
        self.assertRegex(p.stdout, r"netplay: FAIL - 2 passed, 1 failed, 0 warnings, 1 skipped, "
                                   r"0 errors, 3 findings in [0-9.]+ ms\n$")
        self.assertEqual(sorted(os.listdir(out)), ["run.json", "run.txt", "run.xml"])
        with open(f"{out}/run.txt") as f:
            self.assertEqual(p.stdout, f.read())  # exactly the report, nothing else

        with open(f"{out}/run.json") as f:
            doc = json.load(f)
        with open(os.path.join(GOLDEN, "run.yaml"), "rb") as f:
            self.assertEqual(doc["playbook"]["sha256"], hashlib.sha256(f.read()).hexdigest())
        self.assertEqual(doc["steps"][0]["netns"], self.ns)
        self.assertEqual(doc["status"], "fail")
        self.compare("run.json", norm_report_json(doc))

        x = subprocess.run(["xmllint", "--noout", "--schema", XSD, f"{out}/run.xml"],
                           capture_output=True, text=True)
        self.assertEqual(x.returncode, 0, x.stderr)
        with open(f"{out}/run.xml") as f:
            self.compare("run.xml", norm_xml(f.read()))

        with open(f"{out}/run.txt") as f:
            text = f.read()
        self.assertNotIn("\033[", text)
        self.compare("run.txt", norm_text(text))

    def test_machine_format_on_stdout_stays_clean(self):
        out = self.tmp.name
        p = netplay("run", "run.yaml", "--set", f"ns={self.ns}", "--output", "json",
                    "--output", f"markdown={out}/run.md", cwd=GOLDEN)
        self.assertEqual(p.returncode, 1, p.stderr)
        doc = json.loads(p.stdout)  # nothing but the JSON report on stdout
        self.assertIn("[fail] rp_filter", p.stderr)  # progress: stderr, plain lines
        self.assertEqual(doc["summary"], {"pass": 2, "fail": 1, "warn": 0, "skip": 1, "error": 0})
        with open(f"{out}/run.md") as f:
            md = f.read()
        self.assertTrue(md.startswith("# netplay: Report goldens"), md)
        self.assertLess(md.index("## Findings"), md.index("## Steps"))

    def test_only_and_quiet(self):
        p = netplay("run", "run.yaml", "--set", f"ns={self.ns}", "--only", "forwarding,hello",
                    "-q", cwd=GOLDEN)
        self.assertEqual(p.returncode, 0, p.stderr)
        # Steps left out by --only are not in the report at all; an info finding leaves PASS.
        self.assertRegex(p.stdout, r"^FINDING \(info\) forwarding-on: [^\n]*\n\n"
                                   r"netplay: PASS - 2 passed, 0 failed, 0 warnings, 0 skipped, "
                                   r"0 errors, 1 finding in [0-9.]+ ms\n$")
        self.assertEqual(p.stderr, "")  # -q: no progress anywhere


class Commands(unittest.TestCase):
    def one_line_error(self, p, *needles):
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("netplay: "), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertNotIn("Traceback", p.stderr)
        return lines[0]

    def test_version(self):
        p = netplay("--version")
        self.assertEqual((p.returncode, p.stdout), (0, "netplay 0.1.0\n"))

    def test_help_everywhere(self):
        for args in ([], ["run"], ["validate"], ["list"], ["describe"], ["schema"]):
            p = netplay(*args, "--help")
            self.assertEqual(p.returncode, 0, args)
            self.assertIn("Usage: netplay", p.stdout)
        self.assertIn("Exit codes", netplay("run", "--help").stdout)

    def test_list(self):
        p = netplay("list")
        self.assertEqual(p.returncode, 0)
        lines = p.stdout.splitlines()
        self.assertTrue(any(re.match(r"^sysctl +Read a kernel parameter", l) for l in lines), p.stdout)
        self.assertTrue(any(l.startswith("exec ") for l in lines))
        self.assertEqual(lines, sorted(lines))

    def test_describe(self):
        p = netplay("describe", "sysctl")
        self.assertEqual(p.returncode, 0)
        for part in ("sysctl - ", "Params:", "key (string, required)", "Facts:", "value (string)",
                     "Privileges: none", "Changes state: no", "Example:"):
            self.assertIn(part, p.stdout)
        self.one_line_error(netplay("describe", "sysctll"), "unknown step 'sysctll'",
                            "did you mean 'sysctl'")
        self.one_line_error(netplay("describe", "nosuch"), "unknown step 'nosuch'")

    def test_schema(self):
        p = netplay("schema")
        self.assertEqual(p.returncode, 0)
        schema = json.loads(p.stdout)
        self.assertIn("sysctl", p.stdout)
        self.assertEqual(schema["type"], "object")

    def test_validate(self):
        p = netplay("validate", "run.yaml", cwd=GOLDEN)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "run.yaml: ok (4 steps)\n", ""))
        p = netplay("validate", "broken.yaml", cwd=VALIDATE)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stdout, "")
        with open(os.path.join(VALIDATE, "broken.expected")) as f:
            expected = f.read().splitlines()
        actual = p.stderr.splitlines()
        self.assertGreaterEqual(len(actual), 5)
        self.assertEqual(len(actual), len(expected), p.stderr)
        for want, got in zip(expected, actual):
            # "SYNTAX" stands for the Lua parser's own wording.
            if want.endswith("SYNTAX"):
                self.assertTrue(got.startswith(want[:-len("SYNTAX")]), (want, got))
            else:
                self.assertEqual(want, got)
            self.assertRegex(got, r"^broken\.yaml:\d+:\d+: ")
        # Several files: every error of every file, "ok" for the valid ones, exit 2.
        p = netplay("validate", os.path.join(GOLDEN, "run.yaml"), os.path.join(VALIDATE, "broken.yaml"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("run.yaml: ok (4 steps)", p.stdout)
        self.assertEqual(len(p.stderr.splitlines()), len(expected))

    def test_usage_errors_are_one_line_naming_the_flag(self):
        pb = os.path.join(GOLDEN, "run.yaml")
        self.one_line_error(netplay("run", pb, "--jobs", "x"), "--jobs", "'x'")
        self.one_line_error(netplay("run", pb, "--jobs", "0"), "--jobs", "'0'")
        self.one_line_error(netplay("run", pb, "--jobs", "65"), "--jobs")
        self.one_line_error(netplay("run", pb, "--timeout", "soon"), "--timeout", "'soon'")
        self.one_line_error(netplay("run", pb, "--output", "xml"), "--output", "'xml'")
        self.one_line_error(netplay("run", pb, "--output", "json=/nonexistent-dir/r.json"),
                            "--output", "/nonexistent-dir")
        self.one_line_error(netplay("run", pb, "--bogus"), "--bogus")
        self.one_line_error(netplay("run", pb, "-q", "-v"), "--quiet", "--verbose")
        self.one_line_error(netplay("run"), "PLAYBOOK")
        self.one_line_error(netplay(), "command")
        self.one_line_error(netplay("frobnicate"), "unknown command 'frobnicate'")
        self.one_line_error(netplay("valdate", "x.yaml"), "did you mean 'validate'")

    def test_unknown_input_and_missing_file(self):
        pb = os.path.join(GOLDEN, "run.yaml")
        self.one_line_error(netplay("run", pb, "--set", "ns=np-x", "--set", "nss=x"),
                            "--set nss=x", "unknown input",
                            "did you mean 'ns'")
        self.one_line_error(netplay("run", pb, "--set", "ns=np-x", "--only", "forwardin"),
                            "--only", "forwardin", "did you mean 'forwarding'")
        self.one_line_error(netplay("run", "/nonexistent/pb.yaml"), "/nonexistent/pb.yaml")
        # A required input left out is a usage error too.
        self.one_line_error(netplay("run", pb), "'ns'", "required")


class ExitCodes(unittest.TestCase):
    """0 and 3 without namespaces: sysctl keys of the host, read only."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="np-cli-exit-")
        self.addCleanup(self.tmp.cleanup)

    def playbook(self, steps):
        path = os.path.join(self.tmp.name, "pb.yaml")
        with open(path, "w") as f:
            f.write("apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: exit-codes}\n"
                    "steps:\n" + steps)
        return path

    def test_pass_is_0(self):
        pb = self.playbook("  - {id: ostype, uses: sysctl, with: {key: kernel.ostype},"
                           " expect: {value: Linux}}\n")
        p = netplay("run", pb, "--output", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["status"], "pass")

    def test_warn_finding_is_0_and_shown(self):
        pb = self.playbook("  - {id: ostype, uses: sysctl, with: {key: kernel.ostype}}\n"
                           "diagnosis:\n"
                           "  - id: just-so\n"
                           "    when: \"steps.ostype.status == 'pass'\"\n"
                           "    severity: info\n"
                           "    finding: \"The kernel is {{ steps.ostype.facts.value }}\"\n"
                           "  - id: worth-a-look\n"
                           "    when: \"steps.ostype.facts.value == 'Linux'\"\n"
                           "    severity: warn\n"
                           "    finding: A warning about a healthy run\n"
                           "    next: [Look at it when there is time]\n")
        p = netplay("run", pb)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("FINDING (warn) worth-a-look: A warning about a healthy run\n"
                      "  next: Look at it when there is time\n"
                      "FINDING (info) just-so: The kernel is Linux\n", p.stdout)
        self.assertIn("netplay: WARN - 1 passed, 0 failed, 0 warnings, 0 skipped, 0 errors, "
                      "2 findings in ", p.stdout)
        p = netplay("run", pb, "--output", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        doc = json.loads(p.stdout)
        self.assertEqual(doc["status"], "warn")
        self.assertEqual([(f["id"], f["severity"]) for f in doc["findings"]],
                         [("worth-a-look", "warn"), ("just-so", "info")])
        # The same rule as a failure (the default severity) fails the run.
        with open(pb) as f:
            text = f.read()
        with open(pb, "w") as f:
            f.write(text.replace("    severity: warn\n", ""))
        p = netplay("run", pb, "-q")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("FINDING (fail) worth-a-look", p.stdout)

    def test_error_only_is_3(self):
        pb = self.playbook("  - {id: nokey, uses: sysctl, with: {key: kernel.no_such_key_here}}\n")
        for fmt in ("json", "junit", "markdown", "text"):
            p = netplay("run", pb, "--output", fmt)
            self.assertEqual(p.returncode, 3, (fmt, p.stdout, p.stderr))

    def test_interrupt_writes_partial_reports_and_exits_130(self):
        # `slow` writes a file once it runs (after `first`): then it is time for Ctrl-C.
        ready = os.path.join(self.tmp.name, "slow-started")
        pb = self.playbook("  - {id: first, uses: sysctl, with: {key: kernel.ostype}}\n"
                           "  - id: slow\n    uses: exec\n    needs: [first]\n"
                           f"    timeout: 60s\n    with: {{cmd: 'touch {ready}; exec sleep 30',"
                           " shell: true}\n"
                           "  - {id: later, uses: sysctl, needs: [slow], with: {key: kernel.ostype}}\n")
        out = os.path.join(self.tmp.name, "r.json")
        xml = os.path.join(self.tmp.name, "r.xml")
        proc = subprocess.Popen([BIN, "run", pb, "--output", f"json={out}",
                                 "--output", f"junit={xml}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(3000):
                if os.path.exists(ready) or proc.poll() is not None:
                    break
                time.sleep(0.01)
            self.assertTrue(os.path.exists(ready), "the slow step never started")
            proc.send_signal(signal.SIGINT)
            # The step would run for 30s more: the run ending before that is the point.
            stdout, stderr = proc.communicate(timeout=25)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 130, stderr)
        self.assertIn("interrupted", stderr)
        with open(out) as f:
            doc = json.load(f)
        self.assertTrue(doc["interrupted"])
        self.assertEqual(doc["steps"][0]["status"], "pass")
        self.assertNotEqual(doc["steps"][1]["status"], "pass")
        self.assertIn("INTERRUPTED", stdout)
        x = subprocess.run(["xmllint", "--noout", "--schema", XSD, xml], capture_output=True, text=True)
        self.assertEqual(x.returncode, 0, x.stderr)


if __name__ == "__main__":
    unittest.main()
