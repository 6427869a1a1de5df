"""Hostile and careless input against the real binary, as root: report paths that are not
plain files (/dev/null, a FIFO, a symlink, a file of /proc), and a namespace that root may
not open (inside a user namespace).

Needs root; fails, never skips, without it.
"""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import unittest

BIN = os.environ.get("NETPLAY_BIN", "")

PLAYBOOK = """apiVersion: netplay/v1
kind: Playbook
metadata: {name: hostile}
steps:
  - id: ostype
    uses: sysctl
    with: {key: kernel.ostype}
    hooks: {before: "netplay_ran_marker = true"}
    expect: {value: Linux}
"""


def netplay(*args, cwd=None, timeout=60, prefix=()):
    if not BIN or not os.path.exists(BIN):
        raise AssertionError(f"NETPLAY_BIN does not name the built binary: {BIN!r}")
    return subprocess.run([*prefix, BIN, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


class ReportPaths(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("this test writes to /dev/null and must run as root")
        self.tmp = tempfile.mkdtemp(prefix="np-hostile-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.pb = os.path.join(self.tmp, "pb.yaml")
        with open(self.pb, "w") as f:
            f.write(PLAYBOOK)

    def test_dev_null_stays_a_character_device(self):
        p = netplay("run", self.pb, "--output", "json=/dev/null", "-q")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))
        self.assertEqual(os.stat("/dev/null").st_rdev, os.makedev(1, 3))

    def test_fifo_with_a_reader_gets_the_json(self):
        fifo = os.path.join(self.tmp, "report.fifo")
        os.mkfifo(fifo)
        got = {}

        def read():
            with open(fifo) as f:
                got["text"] = f.read()

        reader = threading.Thread(target=read)
        reader.start()
        p = netplay("run", self.pb, "--output", f"json={fifo}", "-q")
        reader.join(timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(got["text"])["status"], "pass")
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))

    def test_fifo_without_a_reader_is_reported_not_a_hang(self):
        fifo = os.path.join(self.tmp, "lonely.fifo")
        os.mkfifo(fifo)
        p = netplay("run", self.pb, "--output", f"json={fifo}", "-q", timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("no reader", p.stderr)
        self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))

    def test_symlink_to_a_file_replaces_the_file_and_keeps_the_link(self):
        real = os.path.join(self.tmp, "real.json")
        with open(real, "w") as f:
            f.write("old")
        link = os.path.join(self.tmp, "latest.json")
        os.symlink("real.json", link)
        p = netplay("run", self.pb, "--output", f"json={link}", "-q")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.islink(link))
        with open(real) as f:
            self.assertEqual(json.load(f)["status"], "pass")

    def test_unwritable_paths_are_refused_before_any_step_runs(self):
        os.mkdir(os.path.join(self.tmp, "adir"))
        os.symlink("/nonexistent/x.json", os.path.join(self.tmp, "dangling.json"))
        cases = {
            "/proc/version": "kernel filesystem (procfs)",
            os.path.join(self.tmp, "adir"): "is a directory",
            os.path.join(self.tmp, "dangling.json"): "dangling symlink",
            "/dev/zero/x.json": "does not exist",
        }
        for path, why in cases.items():
            with self.subTest(path=path):
                before = open("/proc/version").read() if path == "/proc/version" else None
                # -v would print the step's facts had it run; progress lines likewise.
                p = netplay("run", self.pb, "--output", f"json={path}", "-v")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(p.stdout, "")
                self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
                self.assertTrue(p.stderr.startswith(f"netplay: --output json={path}: "),
                                p.stderr)
                self.assertIn(why, p.stderr)
                self.assertNotIn("ostype", p.stderr)
                if before is not None:
                    self.assertEqual(open("/proc/version").read(), before)


class Namespaces(unittest.TestCase):
    def test_root_denied_is_not_told_to_run_as_root(self):
        if os.geteuid() != 0:
            self.fail("this test must run as root")
        tmp = tempfile.mkdtemp(prefix="np-hostile-ns-")
        self.addCleanup(shutil.rmtree, tmp)
        pb = os.path.join(tmp, "pb.yaml")
        with open(pb, "w") as f:
            f.write("apiVersion: netplay/v1\nkind: Playbook\nmetadata: {name: pid-one}\n"
                    "steps:\n  - {id: a, uses: sysctl, netns: 'pid:1', "
                    "with: {key: kernel.ostype}}\n")
        # Root of a user namespace of its own: euid 0, yet /proc/1/ns/net is out of reach.
        p = netplay("run", pb, "--output", "json", prefix=("unshare", "--user", "--map-root-user"))
        self.assertEqual(p.returncode, 3, p.stderr)
        msg = json.loads(p.stdout)["steps"][0]["message"]
        self.assertNotIn("run as root", msg)
        self.assertIn("although running as root", msg)
        self.assertIn("pid:1", msg)


if __name__ == "__main__":
    unittest.main()
