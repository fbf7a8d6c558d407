"""Chaos of the operator's own disk: the filesystem of its clones, worktrees and task workspaces
(git.working_trees_path, a small tmpfs) fills while two tasks' containers end and the operator takes
their work in. The work must stay (the workspace, the attempt: no "no changes", no failed attempt),
the repository uncorrupted (git fsck, no lock file left), the Task must say why (reason DiskFull, its
message, an Event) with no error in the operator's log, and once space is freed the work goes in and
the sprint ends Completed with every invariant of tests/chaos/invariants.py holding.

Two windows. With the containers' own size-capped disks (the default as root, runtime/disks.py) the
team writes there, and the first write to the full disk is the copy of its work back: its blocks are
filled. Without them the team writes straight into the workspace and the first write of the operator
is the commit: the disk's inodes are used up there (the kernel's answer is the same ENOSPC, "No space
left on device"), and the team's last write (RESULTS.md, which the test creates beforehand, so the team
only rewrites it) still lands, so the fault hits the operator's commit and nothing else on every run (a
block fill would race the team's write against the commit of the other task). The engine's own block
fill is tests/test_diskspace.py. Real control plane, git and Podman."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _chaos import ChaosRun
from test_chaos_restarts import assert_completed, held_running, held_sprint, release, release_all

from _disks import fill, fill_inodes, tmpfs
from _e2e import apply, wait_for
from localcluster import LocalCluster
from test_lifecycle_e2e import by_id, events_in

pytestmark = [pytest.mark.cluster, pytest.mark.podman]


@pytest.fixture
def trees(tmp_path: Path) -> Iterator[Path]:
    """The operator's working trees (config: git.working_trees_path = tmp/trees) on a small tmpfs."""
    with tmpfs(tmp_path / "trees", "size=64m,nr_inodes=4096,mode=0700") as disk:
        yield disk


def results_in_place(status: dict[str, Any]) -> None:
    """Create the workspace's RESULTS.md (as the workspace's owner, the team's user), so the team's
    write of it after the release needs no new inode."""
    workspace = Path(status["workspace"])
    owner = workspace.stat()
    results = workspace / "RESULTS.md"
    results.write_text("")
    os.chown(results, owner.st_uid, owner.st_gid)


def written(path: Path) -> None:
    wait_for(lambda: path.is_file() and path.stat().st_size, timeout=300, what=f"{path} written")


def waiting_for_space(run: ChaosRun, sprint: str) -> tuple[str, dict[str, Any]]:
    def found() -> tuple[str, dict[str, Any]] | None:
        tasks = by_id(run.cluster, run.namespace, sprint).items()
        return next(((t, s) for t, s in tasks if s.get("reason") == "DiskFull"), None)

    waiting: tuple[str, dict[str, Any]] = wait_for(found, timeout=600, what="a task waiting for space")
    return waiting


def full_then_freed(run: ChaosRun, trees: Path, fill_up: Callable[[Path], Path], window: str) -> None:
    """Hold both tasks running, fill the disk, release them: a task says it waits for space in
    `window`, its work kept; free the space: the sprint ends Completed, nothing redone, all clean."""
    cluster, namespace = run.cluster, run.namespace
    apply(cluster, namespace, held_sprint("opdisk", run.repo, run.tmp / "r"))
    run.start()
    held = held_running(run, "opdisk", ("left", "right"))
    for task in ("left", "right"):
        written(Path(held[task]["workspace"], "out", f"{task}.txt"))  # the team's work, then its hold
        results_in_place(held[task])
    filler = fill_up(trees)
    for task in ("left", "right"):
        release(held[task])
    task, waiting = waiting_for_space(run, "opdisk")
    assert waiting["phase"] == "Running" and waiting["attempt"] == 1, waiting  # no attempt lost
    assert window in waiting["error"], waiting["error"]
    assert "No space left on device" in waiting["error"], waiting["error"]  # the system's own words
    assert "the work of attempt 1 is kept, retrying in" in waiting["error"], waiting["error"]
    found = [e for e in events_in(cluster, namespace) if e.get("reason") == "DiskFull"]
    assert any(e["message"].startswith(f"task {task}: no space left on device") for e in found), found
    wait_for(  # tried again on the full disk: still waiting, nothing lost or redone, no lock left
        lambda: any("(try 2)" in s.get("error", "") for s in by_id(cluster, namespace, "opdisk").values()),
        timeout=300,
        what="a second try on the full disk",
    )
    now = by_id(cluster, namespace, "opdisk")
    for held_task in ("left", "right"):
        why = {key: now[held_task].get(key) for key in ("reason", "error", "recoveryAction")}
        assert (now[held_task]["phase"], now[held_task]["attempt"]) == ("Running", 1), (held_task, why)
    assert not list(trees.glob("*/repo.git/**/*.lock")), "a git lock file was left on the full disk"
    if filler.is_dir():
        shutil.rmtree(filler)
    else:
        filler.unlink()
    release_all(run, "opdisk")
    assert_completed(run, "opdisk")
    tasks = by_id(cluster, namespace, "opdisk")
    assert {t["phase"] for t in tasks.values()} == {"Completed"}
    assert all(t.get("attempt") == 1 for t in tasks.values()), tasks  # taken in, not redone
    assert all(t.get("reason") != "DiskFull" for t in tasks.values()), tasks  # the wait is over
    run.finish()  # git fsck of the remote and the clone, no lock file left, among the invariants


def test_an_operator_disk_that_fills_while_tasks_commit_keeps_their_work_says_why_and_commits_once_freed(
    cluster: LocalCluster, namespace: str, tmp_path: Path, trees: Path
) -> None:
    run = ChaosRun(cluster, namespace, tmp_path)
    try:
        config = Path(run.env["SPRINT_ORCHESTRATOR_CONFIG"])  # no size-capped disks: the team writes
        config.write_text(config.read_text().replace("containers: {", "containers: {default_disk: 0, "))
        full_then_freed(
            run, trees, fill_inodes, "no space left on device while committing the work of attempt 1"
        )
    finally:
        run.close()


def test_an_operator_disk_that_fills_while_tasks_end_keeps_their_work_on_their_own_disks_until_freed(
    cluster: LocalCluster, namespace: str, tmp_path: Path, trees: Path
) -> None:
    run = ChaosRun(cluster, namespace, tmp_path)
    try:
        full_then_freed(run, trees, fill, "no space left on device while copying the work of so-opdisk-")
    finally:
        run.close()
