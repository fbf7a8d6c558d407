"""Workspace preparation on a large repository against a full worktree checkout, in the same run.

A repository of 100,000 files (1,000 directories of 100) is generated with `git fast-import`. The
engine prepares a task with 10 listed files in 10 directories (task branch + sparse workspace: the
files, their siblings, the .gitignores); the baseline is `git worktree add --detach` of the same
commit (a full checkout). Both alternate; medians. Last line: one JSON object. Goal: ratio <= 0.05.

    .venv/bin/python bench/workspace.py [--files 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator")]

from sprint_orchestrator.gitops import GitEngine  # noqa: E402

ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
PER_DIR = 100


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, input=stdin)


def fast_import_stream(files: int) -> bytes:
    parts = [
        b"commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\n",
        b"data 7\ninitial\n",
    ]
    ignore = b"*.log\n"
    parts.append(b"M 100644 inline .gitignore\ndata %d\n%s\n" % (len(ignore), ignore))
    for i in range(files):
        body = b"def f%d():\n    return %d\n" % (i, i)
        path = b"d%04d/m%05d.py" % (i // PER_DIR, i)
        parts.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path, len(body), body))
    return b"".join(parts)


def make_origin(tmp: Path, files: int) -> Path:
    origin = tmp / "origin.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
    git(origin, "fast-import", "--quiet", stdin=fast_import_stream(files))
    return origin


def prepare(engine: GitEngine, round_: int, files: int) -> float:
    dirs = max(1, files // PER_DIR)
    listed = [f"d{(d * dirs // 10):04d}/m{(d * dirs // 10) * PER_DIR:05d}.py" for d in range(10)]
    start = time.perf_counter()
    ws = engine.create_task("s1", f"t{round_}", 1, listed)
    elapsed = time.perf_counter() - start
    if not ws.sparse:
        raise SystemExit("expected a sparse workspace on a large repository")
    return elapsed


def full_checkout(origin_clone: Path, round_: int) -> float:
    target = origin_clone.parent / f"full-{round_}"
    start = time.perf_counter()
    git(origin_clone, "worktree", "add", "-q", "--detach", str(target), "main")
    elapsed = time.perf_counter() - start
    git(origin_clone, "worktree", "remove", "--force", str(target))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        origin = make_origin(tmp, args.files)
        engine = GitEngine.open(str(origin), tmp / "engine")
        engine.create_sprint("s1")  # the sprint worktree itself is a full checkout, outside the timing
        plain = tmp / "plain.git"
        git(tmp, "clone", "-q", "--bare", str(origin), str(plain))
        prepared, full = [], []
        for round_ in range(args.rounds):
            prepared.append(prepare(engine, round_, args.files))
            full.append(full_checkout(plain, round_))
        sizes = sum(
            1 for p in (tmp / "engine" / "tasks" / "s1" / "t0" / "1" / "workspace").rglob("*") if p.is_file()
        )
        shutil.rmtree(tmp / "engine", ignore_errors=True)
    prepared_s, full_s = statistics.median(prepared), statistics.median(full)
    print(
        f"{args.files} files; workspace of {sizes} files; medians of {args.rounds}: "
        f"prepared {prepared_s:.3f} s, full checkout {full_s:.3f} s"
    )
    print(
        json.dumps(
            {
                "prepared_s": round(prepared_s, 4),
                "full_checkout_s": round(full_s, 4),
                "ratio": round(prepared_s / full_s, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
