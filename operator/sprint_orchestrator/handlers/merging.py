"""The merge queue: one merge at a time per sprint, in the order tasks passed their gates."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import MergeRefused
from ..faults import checkpoint
from ..gitops.core import sprint_branch
from ..kube import TASKS
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
    """Merge one task waiting in Merging, holding the sprint's merge lock (FIFO: the order tasks passed
    their gates).

    Called by the task's runner for a task an approved review sent here, and by the sprint loop for
    tasks a restarted operator finds waiting. Under the lock the Task is read again, so a task is merged
    exactly once, whoever gets there first.
    """
    async with rec.ctx.merge_lock(rec.key):
        fresh = await asyncio.to_thread(rec.ctx.kube.get, TASKS, rec.namespace, task["metadata"]["name"])
        rec.ctx.task_cache.remember(fresh)
        task["status"] = ((fresh or task).get("status")) or {}
        if task["status"].get("phase") != "Merging":
            return True  # merged (or failed) meanwhile
        await _merge(rec, body, spec, task, {}, True)
    return True


async def merge_now(
    rec: Any,
    body: dict[str, Any],
    spec: SprintSpec,
    task: dict[str, Any],
    mergeable: dict[str, Any],
    cleanup: bool = True,
) -> None:
    """A task that has just become mergeable (its gates passed, or it has none), merged by its runner
    when its turn on the sprint's merge lock comes: `mergeable` (the gates' results, the container's
    facts) and the merge's outcome go in one status write, so the task is never written as Merging (one status
    write and one Event fewer per task). `cleanup=False`: the caller removes the task's worktree
    (after its container, whose disk still covers it).

    A crash between the merge and that write leaves the task in its phase before (Gating, or Running
    with its container ended): its runner gates or collects it again and finds it merged (merge_task),
    as the queue does for one left in Merging.
    """
    async with rec.ctx.merge_lock(rec.key):
        await _merge(rec, body, spec, task, mergeable, cleanup)


async def _merge(
    rec: Any,
    body: dict[str, Any],
    spec: SprintSpec,
    task: dict[str, Any],
    carried: dict[str, Any],
    cleanup: bool,
) -> None:
    """Merge the task and write how it ended, with `carried` (what its runner has not written yet);
    `cleanup`: then remove its worktree."""
    status = {**(task.get("status") or {}), **carried}
    task_id = task["spec"]["taskId"]
    sprint_id = spec.resolved_id(rec.name)
    engine = await rec.engine(spec)
    done = {"completionTime": now_iso(), "durationSeconds": duration(task)}
    if status.get("noChanges"):
        # its PhaseChanged Event ("Running -> Completed (merged): NoChanges") says it all
        await _finish(
            rec, task, {**carried, "phase": "Completed", "column": "completed", "reason": "NoChanges", **done}
        )
    else:
        try:
            result = await asyncio.to_thread(engine.merge_task, sprint_id, task_id, status["commit"])
        except MergeRefused as exc:
            if status.get("approvedCommit"):
                await _ask_again(rec, body, engine, sprint_id, task, str(exc), carried)
                return
            await _finish(
                rec,
                task,
                {
                    **carried,
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
        # The sprint branch's move is told by the Task's own Event of its move to Completed ("… ->
        # Completed (merged): into sprint/x as NEW (OLD -> NEW)"): one Event per merge, on the Task;
        # every other ref the merge moved gets its RefChanged Event.
        branch = f"refs/heads/{sprint_branch(sprint_id)}"
        moved = [c for c in result.changes or () if result.merged and c.ref == branch]
        rec.ref_events(body, [c for c in result.changes or () if c not in moved])
        if result.merged:
            move = "".join(f" ({(c.old or 'none')[:12]} -> {(c.new or 'deleted')[:12]})" for c in moved)
            await _finish(
                rec,
                task,
                {
                    **carried,
                    "phase": "Completed",
                    "column": "completed",
                    "mergeCommit": result.merge_commit,
                    "reason": "Merged",
                    **done,
                },
                f"into sprint/{sprint_id} as {(result.merge_commit or '')[:12]}{move}",
            )
        else:
            paths = list(result.conflicts)
            await _finish(
                rec,
                task,
                {
                    **carried,
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
    if cleanup:
        await clean_up(rec, spec, task)


async def _finish(rec: Any, task: dict[str, Any], status: dict[str, Any], why: str | None = None) -> None:
    """The task's final status (`why`: what its phase Event says, else its reason), and meanwhile its
    slot handed to the next ready task (admission.py); then the loop is woken, to count both at once."""
    rec.finishing += 1
    try:
        await asyncio.gather(
            rec.patch_task(task, status, why), hand_off(rec, task["spec"]["taskId"], status["phase"])
        )
    finally:
        rec.finishing -= 1
        rec.ctx.wake(rec.key)


async def _ask_again(
    rec: Any,
    body: dict[str, Any],
    engine: Any,
    sprint_id: str,
    task: dict[str, Any],
    why: str,
    carried: dict[str, Any],
) -> None:
    """A reviewer approved one commit and the task branch has moved since: nothing is merged, and the
    task waits in Review again, at the branch's new head, for a reviewer to look at what changed."""
    task_id = task["spec"]["taskId"]
    head = await asyncio.to_thread(engine.head, f"task/{sprint_id}/{task_id}")
    approved = str({**task["status"], **carried}.get("approvedCommit") or "")
    await rec.patch_task(
        task,
        {
            **carried,
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


async def clean_up(rec: Any, spec: SprintSpec, task: dict[str, Any]) -> None:
    """Remove a finished task's worktree (after its merge; a caller of merge_now after its container)."""
    engine = await rec.engine(spec)
    attempt = int((task.get("status") or {}).get("attempt") or 1)
    await asyncio.to_thread(_cleanup, engine, spec.resolved_id(rec.name), task["spec"]["taskId"], attempt)


def _cleanup(engine: Any, sprint_id: str, task_id: str, attempt: int) -> None:
    try:
        engine.cleanup_task(sprint_id, task_id, attempt)
    except Exception:  # best effort: the work is safe on the task branch; recover() retries later
        log.warning("cleanup of task %s/%s failed", sprint_id, task_id, exc_info=True)
