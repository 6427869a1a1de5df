#!/usr/bin/env python3
"""Fails when a file includes a netplay header its layer may not see.

The engine's layers are the folders of runner/ (one CMake library each); steps/ is the
built-in steps. Allowed: each layer may include itself and the layers listed for it.
Run: tests/check_layers.py [SOURCE_DIR]; exits 1 and names every offending include.
`--self-test` checks the checker on a tree it makes with known violations.
"""
import pathlib
import re
import sys
import tempfile

ALLOWED = {
    "runner/base": {"runner/base"},
    "runner/step": {"runner/step", "runner/base"},
    "runner/lua": {"runner/lua", "runner/base"},
    "runner/report": {"runner/report", "runner/base"},
    "runner/load": {"runner/load", "runner/lua", "runner/step", "runner/base"},
    "runner/run": {"runner/run", "runner/load", "runner/lua", "runner/step", "runner/base"},
    "runner/cli": {"runner/cli", "runner/run", "runner/load", "runner/report", "runner/lua",
                   "runner/step", "runner/base"},
    "steps": {"steps", "runner/step", "runner/base"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"((?:runner|steps)/[^"]+)"', re.M)


def layer_of(rel: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if rel == layer or rel.startswith(layer + "/"):
            return layer
    return None


def check(root: pathlib.Path) -> tuple[int, list[str]]:
    problems = []
    checked = 0
    for top in ("runner", "steps"):
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in (".h", ".cc", ".in"):
                continue
            rel = path.relative_to(root).as_posix()
            layer = layer_of(rel)
            if layer is None:
                problems.append(f"{rel}: not in any layer (put it in one of runner/<layer>/)")
                continue
            checked += 1
            text = path.read_text(encoding="utf-8", errors="replace")
            for m in INCLUDE.finditer(text):
                target = m.group(1)
                tlayer = layer_of(target)
                line = text.count("\n", 0, m.start()) + 1
                if tlayer is None:
                    problems.append(f"{rel}:{line}: includes {target}, which is in no layer")
                elif tlayer not in ALLOWED[layer]:
                    problems.append(
                        f"{rel}:{line}: {layer} may not include {target} ({tlayer}); "
                        f"allowed: {', '.join(sorted(ALLOWED[layer]))}")
    return checked, problems


def self_test() -> int:
    """A tree with one allowed include and three forbidden ones; all three must be named."""
    files = {
        "runner/base/core.h": "",
        "runner/run/scheduler.h": '#include "runner/base/core.h"\n',
        "runner/report/text.cc": '#include "runner/run/scheduler.h"\n',
        "steps/link.cc": '#include "runner/step/step.h"\n#include "runner/load/loader.h"\n',
        "runner/step/step.h": '#include "runner/lua/expr.h"\n',
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        _, problems = check(root)
    expected = ["runner/report/text.cc:1: runner/report may not include runner/run/scheduler.h",
                "runner/step/step.h:1: runner/step may not include runner/lua/expr.h",
                "steps/link.cc:2: steps may not include runner/load/loader.h"]
    got = sorted(p.split(" (")[0] for p in problems)
    if got != expected:
        print("self-test failed:\n  expected " + repr(expected) + "\n  got      " + repr(got))
        return 1
    print("layers self-test: the three violations were found")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    checked, problems = check(root)
    for p in problems:
        print(p)
    if checked == 0:
        print(f"no sources found under {root}")
        return 1
    print(f"layers: {checked} files checked, {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
