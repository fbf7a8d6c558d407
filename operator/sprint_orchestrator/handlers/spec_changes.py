"""A user edits a running Sprint's spec: the loop follows it.

A task added to spec.tasks gets its Task resource on the next round (SprintReconciler._ensure_tasks)
and is scheduled like any other. A task removed from spec.tasks is stopped here: its runner
cancelled, its container removed, its uncommitted work salvaged (its commits stay on its task branch),
and its Task marked Failed with reason RemovedFromSpec, so nothing is left Running forever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..kube import TASKS
from ..model import SprintSpec
from ..runtime import tenant_of
from ..stamps import now_iso

log = logging.getLogger("sprint_orchestrator.operator")

REASON = "RemovedFromSpec"
FINISHED = frozenset({"Completed", "Failed"})


def removed_tasks(spec: SprintSpec, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Tasks of this Sprint whose taskId spec.tasks no longer lists and that have not finished."""
    wanted = {definition.id for definition in spec.tasks}
    return [
        task
        for task in existing
        if task["spec"]["taskId"] not in wanted and (task.get("status") or {}).get("phase") not in FINISHED
    ]


async def stop_removed(rec: Any, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]) -> None:
    for task in tasks:
        await _stop(rec, body, spec, task)


async def _stop(rec: Any, body: dict[str, Any], spec: SprintSpec, task: dict[str, Any]) -> None:
    task_id = task["spec"]["taskId"]
    sprint_id = spec.resolved_id(rec.name)
    # Under the merge lock: a merge of this task in progress finishes first (then the task is Completed
    # and stays so), and none starts while it is being stopped.
    async with rec.ctx.merge_lock(rec.key):
        runner = rec.ctx.runners.pop(f"{rec.key}/{task_id}", None)
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        fresh = await asyncio.to_thread(rec.ctx.kube.get, TASKS, rec.namespace, task["metadata"]["name"])
        if fresh is None:
            return
        task["status"] = fresh.get("status") or {}
        phase = task["status"].get("phase") or "Pending"
        if phase in FINISHED:
            return
        attempt = int(task["status"].get("attempt") or 0)
        if attempt:  # it ran (or started to): its container and its workspace
            runtime = await rec.ctx.get_runtime()
            containers = await asyncio.to_thread(
                runtime.find_task_containers, sprint_id, tenant_of(rec.namespace, rec.name)
            )
            for container in containers:
                if container.task_id == task_id:
                    await asyncio.to_thread(runtime.remove, container.name)
            engine = await rec.engine(spec)
            try:
                await asyncio.to_thread(engine.cleanup_task, sprint_id, task_id, attempt)
            except Exception:  # best effort: recover() and the sprint's end clean up again
                log.warning("cleanup of removed task %s failed", task_id, exc_info=True)
        why = f"task {task_id} was removed from the Sprint's spec.tasks while it was {phase}"
        await rec.patch_task(
            task,
            {
                "phase": "Failed",
                "column": "failed",
                "reason": REASON,
                "error": why,
                "containerHealth": "removed" if task["status"].get("containerName") else "none",
                "completionTime": now_iso(),
                "recoveryAction": "add it back to spec.tasks and sprintctl retry it",
            },
        )
    rec.event(body, "TaskRemoved", why, warn=True)
