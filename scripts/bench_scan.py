#!/usr/bin/env python3
"""Scanner benchmark: `coffer scan` against detect-secrets and trufflehog3 (from PyPI), in one run.

1. Quality on the labelled corpus (crates/coffer-scan/tests/corpus, EXPECTED.tsv): a labelled
   secret is found when a tool reports its file and line; every other file/line a tool reports
   is a false positive. Posture rows of EXPECTED.tsv (encryption-*, rbac-*, pod-*) are not
   secrets and are left out for every tool.
2. Speed on a large tree (default: a copy of the first 40 MB of Rust sources in the cargo
   registry, made once under target/bench-scan-tree): wall time and MB/s.

Usage: scripts/bench.sh scan   (installs the Python tools into target/bench-venv)
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "crates/coffer-scan/tests/corpus"
VENV = ROOT / "target/bench-venv/bin"
COFFER = Path(os.environ.get("COFFER_BIN", ROOT / "target/release/coffer"))
POSTURE = ("encryption-", "rbac-", "pod-")


def labelled():
    rows = set()
    for line in (CORPUS / "EXPECTED.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        path, lineno, rule = line.split("\t")
        if not rule.startswith(POSTURE):
            rows.add((path, int(lineno)))
    return rows


def coffer(target):
    out = subprocess.run([str(COFFER), "scan", str(target), "--format", "json", "--fail-on", "never",
                          "--no-posture", "--allowlist", os.devnull],
                         capture_output=True, text=True, check=True).stdout
    return {(f["location"]["path"], f["location"]["line"]) for f in json.loads(out)["findings"]
            if f.get("category") == "secret"}


def detect_secrets(target):
    out = subprocess.run([str(VENV / "detect-secrets"), "scan", "--all-files", "."], cwd=target,
                         capture_output=True, text=True, check=True).stdout
    return {(path, r["line_number"]) for path, rs in json.loads(out)["results"].items() for r in rs}


def trufflehog3(target):
    out = subprocess.run([str(VENV / "trufflehog3"), "--no-history", "-z", "-f", "json", "."], cwd=target,
                         capture_output=True, text=True).stdout
    return {(f["path"], int(f["line"])) for f in json.loads(out or "[]")}


def large_tree():
    tree = ROOT / "target/bench-scan-tree"
    if tree.exists():
        return tree
    registry = Path.home() / ".cargo/registry/src"
    budget = 40 * 1024 * 1024
    for src in sorted(registry.glob("*/*/**/*.rs")):
        if budget <= 0:
            break
        dest = tree / src.relative_to(registry)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        budget -= src.stat().st_size
    return tree


def tree_bytes(tree):
    return sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())


def main():
    tools = [("coffer scan", coffer), ("detect-secrets", detect_secrets), ("trufflehog3", trufflehog3)]
    expected = labelled()
    print(f"Corpus: {len(expected)} labelled secrets in {CORPUS.relative_to(ROOT)}\n")
    print("| tool | secrets found | false positives |")
    print("|---|---|---|")
    for name, run in tools:
        found = run(CORPUS)
        print(f"| {name} | {len(found & expected)}/{len(expected)} | {len(found - expected)} |")
    tree = large_tree()
    size = tree_bytes(tree) / 1e6
    print(f"\nSpeed on {size:.1f} MB of source ({tree.relative_to(ROOT)}):\n")
    print("| tool | seconds | MB/s | vs coffer |")
    print("|---|---|---|---|")
    base = None
    for name, run in tools:
        start = time.monotonic()
        run(tree)
        secs = time.monotonic() - start
        base = base or secs
        print(f"| {name} | {secs:.2f} | {size / secs:.1f} | {secs / base:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
