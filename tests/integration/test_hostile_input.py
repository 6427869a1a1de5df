"""Hostile and careless input end to end: values typed on the command line never become
shell code, and a diagnosis rule that cannot be evaluated is reported, never taken for a
pass. Runs the real binary on the host's own namespace (exec, sysctl); no root-only setup,
but like every integration test it runs as root in CI.
"""

import json
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("NETPLAY_BIN", "")


def netplay(*args, cwd=None, timeout=60):
    if not BIN or not os.path.exists(BIN):
        raise AssertionError(f"NETPLAY_BIN does not name the built binary: {BIN!r}")
    return subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


class Case(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="np-hostile-")
        self.addCleanup(self.tmp.cleanup)

    def playbook(self, body):
        path = os.path.join(self.tmp.name, "pb.yaml")
        with open(path, "w") as f:
            f.write("apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: hostile}\n" + body)
        return path

    def run_json(self, *args):
        p = netplay("run", *args, "--output", "json", cwd=self.tmp.name)
        try:
            doc = json.loads(p.stdout)
        except json.JSONDecodeError:
            self.fail(f"no JSON report (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
        return p, doc


class ShellQuoting(Case):
    PLAYBOOK = ("inputs:\n"
                "  name: {type: string, default: world}\n"
                "  filter: {type: string, default: 'tr a-z A-Z'}\n"
                "steps:\n"
                "  - id: greet\n"
                "    uses: exec\n"
                "    with: {cmd: 'echo hello {{ inputs.name }}', shell: true}\n"
                "  - id: piped\n"
                "    uses: exec\n"
                "    with: {cmd: 'echo {{ inputs.name }} | {{ netplay.raw(inputs.filter) }}',"
                " shell: true}\n")

    def test_a_set_value_is_one_word_of_literal_text(self):
        pb = self.playbook(self.PLAYBOOK)
        for value in ("$(touch MARKER)", "`touch MARKER`", "x; touch MARKER",
                      "it's'; touch MARKER; echo '", "a\ntouch MARKER", "$HOME ~ * ?"):
            with self.subTest(value=value):
                p, doc = self.run_json(pb, "--set", f"name={value}")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "MARKER")),
                                 f"{value!r} ran as shell code")
                steps = {s["id"]: s for s in doc["steps"]}
                self.assertEqual(steps["greet"]["facts"]["stdout"], "hello " + value)
                self.assertEqual(steps["piped"]["facts"]["stdout"], value.upper())

    def test_netplay_raw_pastes_shell_syntax_on_purpose(self):
        pb = self.playbook(self.PLAYBOOK)
        p, doc = self.run_json(pb, "--set", "filter=wc -c; touch RAW")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        steps = {s["id"]: s for s in doc["steps"]}
        self.assertEqual(steps["piped"]["facts"]["stdout"].strip(), "6")
        self.assertTrue(os.path.exists(os.path.join(self.tmp.name, "RAW")))
        # The evidence shows the command as the shell got it.
        self.assertIn("$ echo world | wc -c; touch RAW", steps["piped"]["evidence"])


class DiagnosisErrors(Case):
    STEPS = ("steps:\n"
             "  - {id: ostype, uses: sysctl, with: {key: kernel.ostype}}\n")

    def test_a_rule_that_cannot_be_evaluated_is_an_error_finding(self):
        pb = self.playbook(self.STEPS +
                           "diagnosis:\n"
                           "  - id: typo\n"
                           "    when: \"steps.ostype.facts.valeu.x == 'Linux'\"\n"
                           "    finding: never shown\n"
                           "  - id: fine\n"
                           "    when: \"steps.ostype.facts.value == 'Linux'\"\n"
                           "    severity: info\n"
                           "    finding: \"The kernel is {{ steps.ostype.facts.value }}\"\n")
        p, doc = self.run_json(pb)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertEqual(doc["status"], "error")
        findings = {f["id"]: f for f in doc["findings"]}
        self.assertEqual(findings["typo"]["severity"], "error")
        self.assertIn("diagnosis rule 'typo'", findings["typo"]["finding"])
        self.assertIn("attempt to index a nil value", findings["typo"]["finding"])
        self.assertEqual(findings["fine"]["finding"], "The kernel is Linux")
        p = netplay("run", pb, "-q", cwd=self.tmp.name)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn("FINDING (error) typo: diagnosis rule 'typo'", p.stdout)

    def test_a_broken_finding_template_is_reported_not_printed_raw(self):
        pb = self.playbook(self.STEPS +
                           "diagnosis:\n"
                           "  - id: render\n"
                           "    when: \"steps.ostype.status == 'pass'\"\n"
                           "    severity: warn\n"
                           "    finding: \"value {{ steps.ostype.facts.nope.deeper }}\"\n")
        p, doc = self.run_json(pb)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        (f,) = doc["findings"]
        self.assertEqual((f["id"], f["severity"]), ("render", "error"))
        self.assertNotIn("{{", f["finding"])
        self.assertIn("diagnosis rule 'render'", f["finding"])

    def test_a_failed_step_still_exits_1(self):
        pb = self.playbook("steps:\n"
                           "  - {id: ostype, uses: sysctl, with: {key: kernel.ostype},"
                           " expect: {value: Plan9}}\n"
                           "diagnosis:\n"
                           "  - id: typo\n"
                           "    when: \"steps.ostype.facts.valeu.x\"\n"
                           "    finding: never shown\n")
        p, doc = self.run_json(pb)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertEqual(doc["findings"][0]["severity"], "error")


if __name__ == "__main__":
    unittest.main()
