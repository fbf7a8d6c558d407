"""A task whose gates pass (or that has none) is merged by its runner in its turn on the sprint's merge
lock, in the same status write that ends its phase: never written as Merging (merging.merge_now). Real
git (a GitEngine on a local origin); the Task's status write is played by `Rec.patch_task`, which checks
the move against the lifecycle table as the reconciler's does."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _gitrepo import make_origin, write_files
from sprint_orchestrator import lifecycle
from sprint_orchestrator.gitops import GitEngine
from sprint_orchestrator.handlers import merging
from sprint_orchestrator.model import validate_sprint_spec

KEY = "ns/s1"


class Rec:
    """What merging.py uses of a SprintReconciler; each status write is recorded with its move's event."""

    def __init__(self, engine: GitEngine) -> None:
        self.key, self.name, self.namespace, self.phase = KEY, "s1", "ns", "Running"
        self.closed, self.finishing, self.latest = False, 0, None
        self._engine = engine
        locks: dict[str, asyncio.Lock] = {}
        self.ctx = SimpleNamespace(
            merge_lock=lambda key: locks.setdefault(key, asyncio.Lock()), wake=lambda key: None
        )
        self.writes: list[tuple[str, dict[str, Any]]] = []  # (the move's event and what it says, status)
        self.events: list[str] = []

    async def engine(self, spec: Any) -> GitEngine:
        return self._engine

    async def patch_task(self, task: dict[str, Any], status: dict[str, Any], why: str | None = None) -> None:
        event = lifecycle.event_for_move(lifecycle.TASK_TRANSITIONS, task["status"]["phase"], status["phase"])
        self.writes.append((f"{event}: {why}", status))
        task["status"] = {**task["status"], **status}

    def ref_events(self, body: dict[str, Any], changes: Any) -> None:
        self.events += [f"RefChanged {c.ref}" for c in changes or ()]

    def event(self, body: dict[str, Any], reason: str, message: str, warn: bool = False) -> None:
        self.events.append(f"{reason} {message}")


def gated(engine: GitEngine, task_id: str) -> dict[str, Any]:
    ws = engine.create_task("s1", task_id, 1, [f"{task_id}.txt"])
    write_files(ws.workspace, {f"{task_id}.txt": task_id})
    commit = engine.commit_task(ws, "s1", task_id, [f"{task_id}.txt"], "Team", "team@example.com").commit
    status = {"phase": "Gating", "attempt": 1, "commit": commit, "startTime": "2026-12-07T00:00:00Z"}
    return {"metadata": {"name": f"s1-{task_id}"}, "spec": {"taskId": task_id}, "status": status, "ws": ws}


def test_gates_passed_merge_in_the_write_that_ends_the_gating(tmp_path: Path) -> None:
    engine = GitEngine.open(str(make_origin(tmp_path, {"README.md": "x\n"})), tmp_path / "wt")
    engine.create_sprint("s1")
    rec, task = Rec(engine), gated(engine, "a")
    spec = validate_sprint_spec({"tasks": [{"id": "a", "title": "a"}]})
    passed = {"phase": "Merging", "gates": [{"command": "true", "passed": True}], "gatedAt": "now"}

    asyncio.run(merging.merge_now(rec, {}, spec, task, passed))

    [(event, status)] = rec.writes  # one write: Gating -> Completed, the gates' results in it
    head = str(engine.head("sprint/s1"))
    # its Event tells the merge and the sprint branch's move (no second Event, none on the Sprint)
    assert re.fullmatch(rf"merged: into sprint/s1 as {head[:12]} \(\w{{12}} -> {head[:12]}\)", event), event
    assert status["phase"] == "Completed" and status["reason"] == "Merged"
    assert status["gates"] == passed["gates"] and status["gatedAt"] == "now"
    assert status["mergeCommit"] == engine.head("sprint/s1")
    assert engine.merge_order("s1", [task["status"]["commit"]]) == [task["status"]["commit"]]
    assert rec.events == []
    assert not task["ws"].workspace.exists()  # its worktree removed after


def test_tasks_waiting_for_the_lock_merge_in_arrival_order_each_in_one_write(tmp_path: Path) -> None:
    engine = GitEngine.open(str(make_origin(tmp_path, {"README.md": "x\n"})), tmp_path / "wt")
    engine.create_sprint("s1")
    rec = Rec(engine)
    tasks = [gated(engine, task_id) for task_id in ("c", "a", "b")]
    spec = validate_sprint_spec({"tasks": [{"id": i, "title": i} for i in ("a", "b", "c")]})
    before = engine.head("sprint/s1")

    async def while_held() -> None:
        lock = rec.ctx.merge_lock(KEY)
        await lock.acquire()  # another merge under way
        waiting = [
            asyncio.create_task(merging.merge_now(rec, {}, spec, t, {"phase": "Merging"}, False))
            for t in tasks
        ]
        await asyncio.sleep(0.05)
        assert rec.writes == [] and engine.head("sprint/s1") == before  # each still in Gating
        assert [t["status"]["phase"] for t in tasks] == ["Gating"] * 3
        lock.release()
        await asyncio.gather(*waiting)

    asyncio.run(while_held())
    assert [event.split(":")[0] for event, _ in rec.writes] == ["merged"] * 3  # Gating -> Completed
    commits = [t["status"]["commit"] for t in tasks]
    assert engine.merge_order("s1", commits) == commits  # in the order they asked
    assert all(t["ws"].workspace.exists() for t in tasks)  # cleanup=False: the caller removes them
