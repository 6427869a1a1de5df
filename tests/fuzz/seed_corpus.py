#!/usr/bin/env python3
"""Rebuilds the seed corpora of tests/fuzz from the repository: playbooks (shipped, golden,
the YAML blocks of the docs) for fuzz_loader; the expressions, templates and chunks of the
unit tests and playbooks for fuzz_expr, each prefixed by the byte that picks its kind
(0 expression, 1 template, 2 shell template, 3 chunk). Run from anywhere; review the diff.
"""

import ast
import glob
import hashlib
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def save(kind_dir, data):
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(OUT, kind_dir, name), "wb") as f:
        f.write(data)


def playbooks():
    files = glob.glob(os.path.join(ROOT, "playbooks", "*.yaml"))
    files += glob.glob(os.path.join(ROOT, "tests", "golden", "*", "*.yaml"))
    files += glob.glob(os.path.join(ROOT, "tests", "fuzz", "seeds", "*.yaml"))
    for path in sorted(files):
        with open(path, "rb") as f:
            yield f.read()
    for doc in ["README.md", "docs/playbook-format.md", "docs/adding-a-step.md"]:
        path = os.path.join(ROOT, doc)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for block in re.findall(r"```yaml\n(.*?)```", f.read(), re.S):
                yield block.encode()


CALL = re.compile(r'\b(run|run_template|run_shell|run_chunk|compile_expr|compile_template|'
                  r'compile_shell_template|compile_chunk|chunk_error)\(\s*e,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\)?')
KIND = {"run": 0, "compile_expr": 0, "run_template": 1, "compile_template": 1,
        "run_shell": 2, "compile_shell_template": 2, "run_chunk": 3, "compile_chunk": 3,
        "chunk_error": 3}


def c_string(lits):
    # Adjacent C string literals; the escapes the tests use read the same in Python.
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', lits)
    try:
        return "".join(ast.literal_eval('"' + p + '"') for p in parts).encode("utf-8", "replace")
    except (ValueError, SyntaxError):
        return None


def expressions():
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "unit", "*_test.cc"))):
        with open(path) as f:
            text = f.read()
        for m in CALL.finditer(text):
            s = c_string(m.group(2))
            if s is not None:
                yield bytes([KIND[m.group(1)]]) + s
    for pb in playbooks():
        for m in re.finditer(rb'when: "([^"\n]*)"', pb):
            yield b"\x00" + m.group(1)
        for m in re.finditer(rb'"([^"\n]*\{\{[^"\n]*)"', pb):
            yield b"\x01" + m.group(1)
            yield b"\x02" + m.group(1)


def main():
    for d in ("loader", "expr"):
        os.makedirs(os.path.join(OUT, d), exist_ok=True)
        for old in glob.glob(os.path.join(OUT, d, "*")):
            os.remove(old)
    for pb in playbooks():
        save("loader", pb)
    for e in expressions():
        save("expr", e)
    for d in ("loader", "expr"):
        print(d, len(os.listdir(os.path.join(OUT, d))))


if __name__ == "__main__":
    main()
