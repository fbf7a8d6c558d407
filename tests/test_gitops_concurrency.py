"""Parallel tasks, several processes, and crash recovery after SIGKILL at random points."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _gitrepo import fsck, git, make_origin, reachable, worktree_list, write_files
from sprint_orchestrator.gitops import GitEngine

HELPER = Path(__file__).with_name("_gitrepo.py")
TEAM = ("Task Team", "team@example.com")


def many_files(count: int) -> dict[str, str | bytes]:
    return {f"pkg{i % 20}/mod{i}.py": f"VALUE = {i}\n" * 20 for i in range(count)}


def run_task(engine: GitEngine, task: str) -> str:
    path = f"out/{task}.txt"
    ws = engine.create_task("s1", task, 1, [path])
    write_files(ws.workspace, {path: f"{task}\n"})
    result = engine.commit_task(ws, "s1", task, [path], *TEAM)
    return str(result.commit)


def test_fifty_task_worktrees_created_and_committed_in_parallel(tmp_path: Path) -> None:
    engine = GitEngine.open(str(make_origin(tmp_path, many_files(60))), tmp_path / "wt")
    engine.create_sprint("s1")
    tasks = [f"t{i}" for i in range(50)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        commits = list(pool.map(lambda t: run_task(engine, t), tasks))
    assert len(set(commits)) == 50
    assert worktree_list(engine.gitdir).count("branch refs/heads/task/s1/") == 50
    assert "prunable" not in worktree_list(engine.gitdir)
    for task, commit in zip(tasks, commits, strict=True):
        assert engine.head(f"task/s1/{task}") == commit
    merged = [engine.merge_task("s1", t, c) for t, c in zip(tasks, commits, strict=True)]
    assert all(m.merged for m in merged)
    fsck(engine.gitdir)


def test_two_processes_share_one_clone_without_failures(tmp_path: Path) -> None:
    origin = make_origin(tmp_path, many_files(40))
    root = tmp_path / "wt"
    GitEngine.open(str(origin), root).create_sprint("s1")
    children = [
        subprocess.Popen(
            [sys.executable, str(HELPER), "merge", str(origin), str(root), "8"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    shas = [line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("ok ")]
    assert len(shas) == 32 and set(shas) <= reachable(root / "repo.git")
    fsck(root / "repo.git")


class Child:
    """The crash child, whose stdout lines are collected by a thread until it is killed."""

    def __init__(self, mode: str, origin: Path, root: Path, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HELPER), mode, str(origin), str(root), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def kill_after(self, done: int, delay: float) -> None:
        deadline = time.monotonic() + 120
        while sum(line.startswith("ok ") for line in self.lines) < done and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"child died early: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            time.sleep(0.005)
        time.sleep(delay)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def committed(self) -> list[str]:
        return [line.split()[1] for line in self.lines if line.startswith("ok ")]


def check_recovered(origin: Path, root: Path, survivors: list[str], label: str) -> None:
    engine = GitEngine.open(str(origin), root)  # runs recover()
    gitdir = root / "repo.git"
    fsck(gitdir)
    assert set(survivors) <= reachable(gitdir), f"lost commits after kill ({label})"
    assert "prunable" not in worktree_list(gitdir)
    assert not list((root / "journal").glob("*.json"))
    assert git(root / "sprints" / "s1", "status", "--porcelain") == ""
    commit = run_task(engine, f"after-{label}")
    assert engine.merge_task("s1", f"after-{label}", commit).merged


@pytest.mark.parametrize("mode", ["create", "merge"])
def test_sigkill_at_random_points_then_recovery_loses_no_commits(tmp_path: Path, mode: str) -> None:
    """create: most kills land inside worktree creation; merge: after 12 commits, inside the merges."""
    origin = make_origin(tmp_path, many_files(400))
    root = tmp_path / "wt"
    GitEngine.open(str(origin), root).create_sprint("s1")
    rng = random.Random(f"{mode}-seed")
    count, warmup = (1000, 0) if mode == "create" else (12, 12)
    survivors: list[str] = []
    for round_ in range(4):
        child = Child(mode, origin, root, count)
        child.kill_after(warmup + rng.randint(1, 3), rng.uniform(0.0, 0.1))
        survivors += child.committed()
        check_recovered(origin, root, survivors, f"{mode}{round_}")
    assert len(survivors) >= 4 * (warmup + 1)


def test_recovery_removes_stale_locks_but_keeps_held_ones(tmp_path: Path) -> None:
    origin = make_origin(tmp_path, {"a.txt": "a\n"})
    engine = GitEngine.open(str(origin), tmp_path / "wt")
    engine.create_sprint("s1")
    stale = [engine.gitdir / "config.lock", engine.gitdir / "refs" / "heads" / "sprint" / "s1.lock"]
    for path in stale:
        path.write_text("")
    held = engine.gitdir / "packed-refs.lock"
    with held.open("w"):
        report = engine.recover()
        assert held.exists()
    assert sorted(report.removed_locks) == sorted(str(p) for p in stale)
    assert not any(p.exists() for p in stale)


def test_recovery_prunes_half_created_worktrees(tmp_path: Path) -> None:
    origin = make_origin(tmp_path, {"a.txt": "a\n"})
    engine = GitEngine.open(str(origin), tmp_path / "wt")
    engine.create_sprint("s1")
    half_admin = engine.gitdir / "worktrees" / "task-2-s1-tx-1"
    half_admin.mkdir()
    (half_admin / "HEAD").write_text("ref: refs/heads/task/s1/tx\n")
    orphan_dir = tmp_path / "wt" / "tasks" / "s1" / "ty" / "1" / "worktree"
    orphan_dir.mkdir(parents=True)
    (orphan_dir / "a.txt").write_text("a\n")
    report = engine.recover()
    assert report.pruned_worktrees == ["task-2-s1-tx-1"] and str(orphan_dir) in report.removed_dirs
    assert not half_admin.exists() and not orphan_dir.exists()
    assert engine.create_task("s1", "tx", 1, ["a.txt"]).worktree is not None
