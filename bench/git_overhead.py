"""Per-task git overhead of the engine against raw git commands, measured in the same run.

One task = task branch + worktree + prepared workspace + commit + merge into the sprint branch.
Engine: GitEngine.create_task / commit_task / merge_task (libgit2, in-memory merge, CAS refs).
Baseline: `git worktree add -b` + `git add -A` + `git commit` + `git merge --no-ff` in the sprint
worktree, run as subprocesses from this same process, on a clone of the same small repository.
Tasks alternate between the two so machine noise hits both alike. Last line: one JSON object.

    .venv/bin/python bench/git_overhead.py [--tasks 30] [--files 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator")]

from sprint_orchestrator.gitops import GitEngine  # noqa: E402

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True)


def make_origin(tmp: Path, files: int) -> Path:
    seed = tmp / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    for i in range(files):
        path = seed / f"pkg{i % 6}" / f"mod{i}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"VALUE = {i}\n" * 30)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "initial")
    git(tmp, "clone", "-q", "--bare", str(seed), str(tmp / "origin.git"))
    return tmp / "origin.git"


def engine_task(engine: GitEngine, i: int) -> float:
    start = time.perf_counter()
    path = f"out/t{i}.txt"
    ws = engine.create_task("s1", f"t{i}", 1, [path])
    (ws.workspace / path).write_text(f"task {i}\n")
    result = engine.commit_task(ws, "s1", f"t{i}", [path], "Team", "team@example.com")
    merged = engine.merge_task("s1", f"t{i}", str(result.commit))
    elapsed = time.perf_counter() - start
    if not merged.merged:
        raise SystemExit(f"engine merge failed: {merged.reason}")
    return elapsed


def raw_task(clone: Path, sprint_wt: Path, i: int) -> float:
    start = time.perf_counter()
    wt = clone.parent / "raw-tasks" / f"t{i}"
    git(clone, "worktree", "add", "-q", "-b", f"task/s1/t{i}", str(wt), "sprint/s1")
    (wt / "out").mkdir(exist_ok=True)
    (wt / "out" / f"t{i}.txt").write_text(f"task {i}\n")
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "-m", f"task t{i}")
    git(sprint_wt, "merge", "-q", "--no-ff", "-m", f"Merge task t{i}", f"task/s1/t{i}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--files", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        origin = make_origin(tmp, args.files)
        engine = GitEngine.open(str(origin), tmp / "engine")
        engine.create_sprint("s1")
        clone = tmp / "raw" / "repo"
        git(tmp, "clone", "-q", str(origin), str(clone))
        git(clone, "config", "gc.auto", "0")
        sprint_wt = tmp / "raw" / "sprint"
        git(clone, "worktree", "add", "-q", "-b", "sprint/s1", str(sprint_wt), "main")
        ours, raw = [], []
        for i in range(args.tasks):
            ours.append(engine_task(engine, i))
            raw.append(raw_task(clone, sprint_wt, i))
    task_s, raw_s = statistics.median(ours), statistics.median(raw)
    print(
        f"{args.tasks} tasks on a {args.files}-file repository; medians: engine {task_s * 1000:.1f} ms, "
        f"raw git {raw_s * 1000:.1f} ms"
    )
    print(
        json.dumps(
            {"task_git_s": round(task_s, 4), "raw_git_s": round(raw_s, 4), "ratio": round(task_s / raw_s, 3)}
        )
    )


if __name__ == "__main__":
    main()
