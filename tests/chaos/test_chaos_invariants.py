"""The invariant checker itself: each check finds the violation it is about, in real git repositories
and a hand-made API state, and a clean world passes. (A checker that never fails proves nothing.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import invariants
from invariants import Transition, World


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def commit(work: Path, path: str, text: str, message: str) -> str:
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    sh(work, "git", "add", "-A")
    sh(work, "git", "commit", "-qm", message)
    return sh(work, "git", "rev-parse", "HEAD")


def world(tmp: Path) -> tuple[World, Path]:
    """A remote (keeping a reflog), an operator clone and a work tree; a sprint that moved main once
    to its tested commit, with one task merged once."""
    work = tmp / "work"
    work.mkdir()
    sh(work, "git", "init", "-q", "-b", "main")
    base = commit(work, "README.md", "x\n", "initial")
    remote = tmp / "remote.git"
    sh(tmp, "git", "init", "-q", "--bare", "-b", "main", str(remote))
    sh(remote, "git", "config", "core.logAllRefUpdates", "always")
    sh(work, "git", "push", "-q", str(remote), "main")
    sh(work, "git", "checkout", "-qb", "task/s1/a")
    task_commit = commit(work, "a.txt", "a\n", "task a")
    sh(work, "git", "checkout", "-qb", "sprint/s1", "main")
    sh(work, "git", "merge", "-q", "--no-ff", "-m", "Merge task a into sprint s1", "task/s1/a")
    head = sh(work, "git", "rev-parse", "HEAD")
    sh(work, "git", "checkout", "-q", "main")
    sh(work, "git", "merge", "-q", "--ff-only", "sprint/s1")
    sh(work, "git", "push", "-q", str(remote), "main")
    (tmp / "trees" / "r").mkdir(parents=True)
    clone = tmp / "trees" / "r" / "repo.git"
    sh(tmp, "git", "clone", "-q", "--bare", str(work), str(clone))
    state = tmp / "state"
    state.mkdir()
    sprint: dict[str, Any] = {
        "metadata": {"name": "s1"},
        "spec": {},
        "status": {
            "phase": "Completed",
            "mainCommit": head,
            "integratedCommit": head,
            "integration": [{"command": "true", "passed": True}],
            "merged": ["a"],
            "conditions": [{"type": "Pushed", "status": "True"}],
        },
    }
    task: dict[str, Any] = {
        "metadata": {"name": "s1-a"},
        "spec": {"sprintRef": "s1", "taskId": "a"},
        "status": {"phase": "Completed", "column": "completed", "commit": task_commit, "mergeCommit": head},
    }
    events = [
        {"reason": "PhaseChanged", "involvedObject": {"kind": "Task", "name": "s1-a"}, "message": m}
        for m in ("Merging -> Completed (merged)",)
    ] + [
        {"reason": "PhaseChanged", "involvedObject": {"kind": "Sprint", "name": "s1"},
         "message": "Integrating -> Completed (integration_passed)"}
    ]  # fmt: skip
    return (
        World(
            namespace="ns",
            sprints=[sprint],
            tasks=[task],
            events=events,
            remote=remote,
            clones=[clone],
            state_dir=state,
            trees_dir=tmp / "trees",
            logs=[],
            base_main=base,
            transitions=[Transition("Task", "s1-a", "Merging", "Completed")],
        ),
        work,
    )


def test_a_clean_run_has_no_violations(tmp_path: Path) -> None:
    w, _ = world(tmp_path)
    assert invariants.check(w) == []


def test_a_forced_main_is_found(tmp_path: Path) -> None:
    w, work = world(tmp_path)
    sh(work, "git", "reset", "-q", "--hard", w.base_main)
    commit(work, "other.txt", "o\n", "someone else")
    sh(work, "git", "push", "-qf", str(w.remote), "main")
    found = invariants.main_fast_forward(w)
    assert any("not a fast-forward" in v for v in found), found
    assert any("no Sprint reports" in v for v in invariants.main_tested(w))


def test_main_moved_after_failed_integration_tests_is_found(tmp_path: Path) -> None:
    w, _ = world(tmp_path)
    w.sprints[0]["status"]["integration"] = [{"command": "pytest", "passed": False}]
    assert any("integration tests failed" in v for v in invariants.main_tested(w))


def test_a_status_that_claims_a_push_the_remote_lacks_is_found(tmp_path: Path) -> None:
    w, work = world(tmp_path)
    w.sprints[0]["status"]["mainCommit"] = commit(work, "late.txt", "l\n", "never pushed")
    assert any("does not contain it" in v for v in invariants.remote_agrees(w))


def test_a_task_merged_twice_or_still_running_in_a_finished_sprint_is_found(tmp_path: Path) -> None:
    w, work = world(tmp_path)
    sh(work, "git", "checkout", "-q", "sprint/s1")
    sh(work, "git", "commit", "-q", "--allow-empty", "-m", "Merge task a into sprint s1")
    sh(tmp_path, "git", "--git-dir", str(w.clones[0]), "fetch", "-q", str(work), "+sprint/s1:sprint/s1")
    w.tasks.append({"metadata": {"name": "s1-b"}, "spec": {"sprintRef": "s1", "taskId": "b"},
                    "status": {"phase": "Running", "column": "in-progress"}})  # fmt: skip
    found = invariants.tasks_settled(w)
    assert any("merged 2 times" in v for v in found), found
    assert any("still Running in the finished sprint" in v for v in found), found


def test_a_task_commit_no_ref_holds_is_found(tmp_path: Path) -> None:
    w, work = world(tmp_path)
    sh(work, "git", "checkout", "-qb", "task/s1/b", "main")
    lost = commit(work, "b.txt", "b\n", "task b")
    sh(tmp_path, "git", "--git-dir", str(w.clones[0]), "fetch", "-q", str(work), "task/s1/b")
    w.task_commits.add(lost)  # in the clone's objects, on no ref
    lost_text = f"task commit {lost[:12]} is reachable from no branch or salvage ref (lost)"
    assert invariants.work_kept(w) == [lost_text]


def test_task_commits_the_retention_policy_let_go_are_not_lost_work(tmp_path: Path) -> None:
    """An unmerged task branch past the retention window is deleted on purpose, with an audit line: its
    tip and the earlier commits only it held are not lost work; a commit it never held still is."""
    w, work = world(tmp_path)
    sh(work, "git", "checkout", "-qb", "task/s1/b", "main")
    first = commit(work, "b.txt", "b\n", "task b, attempt 1")
    tip = commit(work, "b.txt", "b2\n", "task b, attempt 2")
    sh(work, "git", "checkout", "-qb", "task/s1/c", "main")
    other = commit(work, "c.txt", "c\n", "task c")
    for branch in ("task/s1/b", "task/s1/c"):
        sh(tmp_path, "git", "--git-dir", str(w.clones[0]), "fetch", "-q", str(work), f"{branch}:{branch}")
        sh(tmp_path, "git", "--git-dir", str(w.clones[0]), "update-ref", "-d", f"refs/heads/{branch}")
    w.task_commits.update({first, tip, other})
    audit = tmp_path / "retention.log"
    audit.write_text(
        json.dumps(
            {
                "git_ref": "refs/heads/task/s1/b",
                "old": tip,
                "new": None,
                "reason": "retention: past the policy",
            }
        )
        + "\n"
    )
    w.logs = [*w.logs, audit]
    assert invariants.work_kept(w) == [
        f"task commit {other[:12]} is reachable from no branch or salvage ref (lost)"
    ]


def test_a_phase_change_without_its_event_is_found(tmp_path: Path) -> None:
    w, _ = world(tmp_path)
    w.transitions = [*(w.transitions or []), Transition("Task", "s1-a", "Running", "Gating")]
    assert invariants.events(w) == ["Task s1-a went Running -> Gating with no PhaseChanged Event"]
    w.transitions = None
    w.events = w.events[1:]
    assert invariants.events(w) == ["Task s1-a is Completed with no PhaseChanged Event for that move"]


def test_a_phase_seen_across_a_gap_of_the_recorder_needs_an_event_into_it_and_is_found_without(
    tmp_path: Path,
) -> None:
    w, _ = world(tmp_path)
    w.transitions = [Transition("Task", "s1-a", "", "Completed")]  # listed again: the moves between lost
    assert invariants.events(w) == []  # the world's Event says "... -> Completed"
    w.events = w.events[1:]
    assert invariants.events(w) == ["Task s1-a became Completed with no PhaseChanged Event for that move"]


def test_leftover_locks_worktrees_sockets_and_temporary_files_are_found(tmp_path: Path) -> None:
    w, _ = world(tmp_path)
    (w.clones[0] / "refs" / "heads" / "main.lock").write_text("")
    (w.state_dir / "run" / "llm" / "s1.a.1").mkdir(parents=True)
    (w.state_dir / "tmp" / "sprint-gate-x").mkdir(parents=True)
    (w.trees_dir / "r" / "tasks" / "s1" / "a" / "1").mkdir(parents=True)
    (w.trees_dir / "r" / "tasks" / "s1" / "a" / "1" / "f").write_text("")
    labels = {"sprintorchestrator.dev/sprint": "s1", "sprintorchestrator.dev/role": "task"}
    w.containers = [{"Names": ["so-s1-a-1"], "State": "exited", "Labels": labels}]
    found = "\n".join(invariants.nothing_left(w))
    for text in ("main.lock", "s1.a.1", "sprint-gate-x", "still holds a", "so-s1-a-1"):
        assert text in found, found


def test_a_corrupt_repository_fails_fsck(tmp_path: Path) -> None:
    w, _ = world(tmp_path)
    objects = sorted(p for p in (w.clones[0] / "objects").rglob("*") if p.is_file() and len(p.name) == 38)
    if not objects:  # a packed clone: unpack one object's worth of damage instead
        pack = next((w.clones[0] / "objects" / "pack").glob("*.pack"))
        data = bytearray(pack.read_bytes())
        data[len(data) // 2] ^= 0xFF
        pack.chmod(0o644)
        pack.write_bytes(bytes(data))
    else:
        objects[0].chmod(0o644)
        objects[0].write_bytes(b"garbage")
    assert invariants.fsck(w), "fsck found nothing wrong in a damaged clone"


def test_a_ref_move_without_its_audit_line_is_found(tmp_path: Path) -> None:
    w, work = world(tmp_path)
    sh(w.clones[0], "git", "config", "core.logAllRefUpdates", "always")
    moved = commit(work, "c.txt", "c\n", "unaudited")
    sh(tmp_path, "git", "--git-dir", str(w.clones[0]), "fetch", "-q", str(work), "main")
    sh(w.clones[0], "git", "update-ref", "-m", "by hand", "refs/heads/sprint/s1", moved)
    found = invariants.refs_audited(w)
    assert any(moved[:12] in v and "no audit line" in v for v in found), found
