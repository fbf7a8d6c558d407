"""The merge queue: one merge at a time per sprint, in the order tasks passed their gates."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import MergeRefused
from ..faults import checkpoint
from ..gitops.core import sprint_branch
from ..kube import SPRINTS, TASKS
from ..model import SprintSpec
from ..stamps import now_iso
from .admission import hand_off

log = logging.getLogger("sprint_orchestrator.operator")


def queue(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    waiting = [t for t in tasks if (t.get("status") or {}).get("phase") == "Merging"]
    return sorted(waiting, key=lambda t: (t["status"].get("gatedAt") or "", t["metadata"]["name"]))


def duration(task: dict[str, Any]) -> float | None:
    import datetime as dt

    start = (task.get("status") or {}).get("startTime")
    if not start:
        return None
    began = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    return round((dt.datetime.now(dt.UTC) - began).total_seconds(), 1)


async def merge_next(rec: Any, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]) -> bool:
    """Merge the head of the queue into the sprint branch; returns whether the queue moved."""
    waiting = queue(tasks)
    if not waiting:
        return False
    return await merge_one(rec, body, spec, waiting[0])


async def merge_one(rec: Any, body: dict[str, Any], spec: SprintSpec, task: dict[str, Any]) -> bool:
    """Merge one gated task, holding the sprint's merge lock (FIFO: the order tasks passed their gates).

    Called by the task's runner right after its gates pass, and by the sprint loop for tasks a
    restarted operator finds waiting. Under the lock the Task and the Sprint are read again, so a
    task is merged (and listed in status.merged) exactly once, whoever gets there first.
    """
    async with rec.ctx.merge_lock(rec.key):
        fresh = await asyncio.to_thread(rec.ctx.kube.get, TASKS, rec.namespace, task["metadata"]["name"])
        rec.ctx.task_cache.remember(fresh)
        task["status"] = ((fresh or task).get("status")) or {}
        if task["status"].get("phase") != "Merging":
            return True  # merged (or failed) meanwhile
        sprint = await asyncio.to_thread(rec.ctx.kube.get, SPRINTS, rec.namespace, rec.name)
        merged = list(((sprint or body).get("status") or {}).get("merged") or [])
        await _merge(rec, body, spec, task, merged)
    return True


async def _merge(
    rec: Any, body: dict[str, Any], spec: SprintSpec, task: dict[str, Any], merged: list[str]
) -> None:
    status = task["status"]
    task_id = task["spec"]["taskId"]
    sprint_id = spec.resolved_id(rec.name)
    engine = await rec.engine(spec)
    done = {"completionTime": now_iso(), "durationSeconds": duration(task)}
    if status.get("noChanges"):
        # its PhaseChanged Event ("Merging -> Completed (merged): NoChanges") says it all
        await _finish(rec, task, {"phase": "Completed", "column": "completed", "reason": "NoChanges", **done})
    else:
        try:
            result = await asyncio.to_thread(engine.merge_task, sprint_id, task_id, status["commit"])
        except MergeRefused as exc:
            if status.get("approvedCommit"):
                await _ask_again(rec, body, engine, sprint_id, task, str(exc))
                return
            await _finish(
                rec,
                task,
                {
                    "phase": "Failed",
                    "column": "failed",
                    "reason": "BranchMoved",
                    "error": str(exc),
                    "recoveryAction": "sprintctl retry",
                    **done,
                },
            )
            rec.event(body, "MergeRefused", f"task {task_id}: {exc}", warn=True)
            return
        checkpoint("task-merged-before-status")
        # The sprint branch's move is told by the TaskMerged Event (one Event per merge, not two); every
        # other ref the merge moved gets its RefChanged Event.
        branch = f"refs/heads/{sprint_branch(sprint_id)}"
        moved = [c for c in result.changes or () if result.merged and c.ref == branch]
        rec.ref_events(body, [c for c in result.changes or () if c not in moved])
        if result.merged:
            # The Sprint's merge order first: a crash before the Task's write merges nothing twice
            # (merge_task finds it merged), while one after it would leave the task out of the order
            # that bisection rebuilds the sprint from.
            if task_id not in merged:
                merged.append(task_id)
                await rec.patch({"merged": merged})
                body.setdefault("status", {})["merged"] = merged
            await _finish(
                rec,
                task,
                {
                    "phase": "Completed",
                    "column": "completed",
                    "mergeCommit": result.merge_commit,
                    "reason": "Merged",
                    **done,
                },
            )
            move = "".join(f" ({(c.old or 'none')[:12]} -> {(c.new or 'deleted')[:12]})" for c in moved)
            rec.event(
                body,
                "TaskMerged",
                f"task {task_id} merged into sprint/{sprint_id} as {(result.merge_commit or '')[:12]}{move}",
            )
        else:
            paths = list(result.conflicts)
            await _finish(
                rec,
                task,
                {
                    "phase": "Failed",
                    "column": "failed",
                    "reason": "Conflict",
                    "conflicts": paths[:200],
                    "error": f"merge conflict in {', '.join(paths[:10])}: manual merge required",
                    "recoveryAction": "manual merge required",
                    **done,
                },
            )
            rec.event(
                body,
                "MergeConflict",
                f"task {task_id} conflicts in {', '.join(paths[:10])}; isolated, the sprint goes on",
                warn=True,
            )
    # the slot is free now: the loop refills it while the task's worktree is removed
    rec.ctx.wake(rec.key)
    await asyncio.to_thread(_cleanup, engine, sprint_id, task_id, int(status.get("attempt") or 1))


async def _finish(rec: Any, task: dict[str, Any], status: dict[str, Any]) -> None:
    """The task's final status, and meanwhile its slot handed to the next ready task (admission.py);
    then the loop is woken, to count both at once."""
    rec.finishing += 1
    try:
        await asyncio.gather(
            rec.patch_task(task, status), hand_off(rec, task["spec"]["taskId"], status["phase"])
        )
    finally:
        rec.finishing -= 1
        rec.ctx.wake(rec.key)


async def _ask_again(
    rec: Any, body: dict[str, Any], engine: Any, sprint_id: str, task: dict[str, Any], why: str
) -> None:
    """A reviewer approved one commit and the task branch has moved since: nothing is merged, and the
    task waits in Review again, at the branch's new head, for a reviewer to look at what changed."""
    task_id = task["spec"]["taskId"]
    head = await asyncio.to_thread(engine.head, f"task/{sprint_id}/{task_id}")
    approved = str(task["status"].get("approvedCommit") or "")
    await rec.patch_task(
        task,
        {
            "phase": "Review",
            "column": "review",
            "reason": "ReviewedCommitMoved",
            "error": f"the task branch moved after review (approved {approved[:12]}, now at "
            f"{(head or 'none')[:12]}): not merged; review the new commit (its gates have not run)",
            "recoveryAction": "review the diff again: sprintctl approve, request-changes or retry",
            "commit": head or task["status"].get("commit"),
            "approvedCommit": None,
            "gates": [],
        },
    )
    rec.event(body, "MergeRefused", f"task {task_id}: {why}; it waits for a new review", warn=True)


def _cleanup(engine: Any, sprint_id: str, task_id: str, attempt: int) -> None:
    try:
        engine.cleanup_task(sprint_id, task_id, attempt)
    except Exception:  # best effort: the work is safe on the task branch; recover() retries later
        log.warning("cleanup of task %s/%s failed", sprint_id, task_id, exc_info=True)
