"""Hostile and careless input end to end: values typed on the command line never become
shell code. Runs the real binary on the host's own namespace (exec, sysctl); no root-only setup,
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


if __name__ == "__main__":
    unittest.main()
