"""The baseline of bench/sprint.py: one demo-team task done by hand with the raw primitives.

Per task, what the operator does, in the same order: `git worktree add` of a task branch, the task's
TASK.md and .sprint/task.json, `podman run --network none` of the demo team (same image, same team
script, same recipes), the orchestrator files moved out, `git add -A && git commit`, the tree exported
(`git archive`) and the gate run on it in a fresh `podman run`, `git merge --no-ff` into main (one
merge at a time), `git worktree remove`.

`git worktree add`/`remove` of one repository are serialized by a lock, as the operator serializes
them under its repository flock: git 2.39 races on the shared worktree metadata when two run at once
(one of them fails), so a baseline without the lock dies about one run in two.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
IMAGE = "localhost/sprint-orchestrator/base:bookworm"
TEAM = REPO / "operator" / "sprint_orchestrator" / "teams" / "files"
IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.com")


def sh(*args: str, cwd: Path | None = None, input: str | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, input=input, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


class Baseline:
    def __init__(self, root: Path, recipes: Path, bare: Path) -> None:
        self.root, self.recipes, self.bare = root, recipes, bare
        self.runs = 0
        self.metadata = threading.Lock()  # worktree add/remove, as the operator's repository flock
        self.merging = threading.Lock()  # one merge into main at a time, as the operator's merge queue

    def run(self, tasks: int, parallel: int) -> dict[str, Any]:
        """`tasks` tasks, `parallel` at a time, on a fresh clone: wall seconds and each task's seconds."""
        self.runs += 1
        work = self.root / f"run{self.runs}"
        work.mkdir(parents=True)
        repo = work / "repo"
        sh("git", "clone", "-q", str(self.bare), str(repo))
        started = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            times = list(pool.map(lambda i: self.task(work, repo, f"t{i:02d}"), range(tasks)))
        wall = time.perf_counter() - started
        shutil.rmtree(work, ignore_errors=True)
        return {"wall": wall, "tasks": times}

    def task(self, work: Path, repo: Path, task: str) -> float:
        started = time.perf_counter()
        tree, artifacts = work / "trees" / task, work / "artifacts" / task
        artifacts.mkdir(parents=True)
        with self.metadata:
            sh("git", "worktree", "add", "-q", "-b", f"task/{task}", str(tree), "main", cwd=repo)
        command = f"test -s files/{task}.txt"
        (tree / ".sprint").mkdir()
        (tree / ".sprint" / "task.json").write_text(
            json.dumps({"id": task, "title": f"write file {task}", "test_requirements": [command]})
        )
        (tree / "TASK.md").write_text(f"# {task}\n\nWrite files/{task}.txt.\n")
        self.podman_run(tree, artifacts)
        for name in ("TASK.md", "RESULTS.md"):
            shutil.move(str(tree / name), str(artifacts / name))
        shutil.rmtree(tree / ".sprint")
        sh("git", "add", "-A", cwd=tree)
        sh("git", *IDENTITY, "commit", "-qm", f"task {task}", cwd=tree)
        self.gate(tree, command)
        with self.merging:
            sh("git", *IDENTITY, "merge", "-q", "--no-ff", "-m", f"Merge {task}", f"task/{task}", cwd=repo)
        with self.metadata:
            sh("git", "worktree", "remove", "--force", str(tree), cwd=repo)
        return time.perf_counter() - started

    def podman_run(self, tree: Path, artifacts: Path) -> None:
        sh(
            "podman", "run", "--rm", "--network", "none",
            "-v", f"{tree}:/workspace", "-v", f"{artifacts}:/artifacts",
            "-v", f"{TEAM}:/opt/sprint-team:ro", "-v", f"{self.recipes}:/opt/demo-recipes:ro",
            "-w", "/workspace", IMAGE, "python3", "/opt/sprint-team/demo_team.py",
        )  # fmt: skip

    def gate(self, tree: Path, command: str) -> None:
        with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
            archive = subprocess.run(
                ["git", "archive", "HEAD"], cwd=tree, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            sh(
                "podman", "run", "--rm", "--network", "none", "-v", f"{tmp}:/workspace",
                "-w", "/workspace", IMAGE, "/bin/sh", "-c", command,
            )  # fmt: skip
