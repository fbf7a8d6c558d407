"""Human actions on Tasks, requested as annotations (`sprintctl retry|approve`), each applied once.

The annotation's value is a nonce; the Task status records the last nonce handled, so an action is
applied exactly once even when the operator restarts in between.
"""

from __future__ import annotations

from typing import Any

from .. import ANNOTATION_APPROVE, ANNOTATION_RETRY
from ..kube import now_iso
from ..model import SprintSpec

RETRY = ANNOTATION_RETRY
APPROVE = ANNOTATION_APPROVE
RETRYABLE = frozenset({"Failed", "Review"})


def pending_action(task: dict[str, Any], annotation: str, handled_field: str) -> str | None:
    nonce = (task["metadata"].get("annotations") or {}).get(annotation)
    if nonce and nonce != (task.get("status") or {}).get(handled_field):
        return str(nonce)
    return None


async def handle_task_actions(
    rec: Any, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]], terminal: bool
) -> None:
    for task in tasks:
        phase = (task.get("status") or {}).get("phase")
        task_id = task["spec"]["taskId"]
        nonce = pending_action(task, RETRY, "handledRetry")
        if nonce:
            if terminal or phase not in RETRYABLE:
                why = "the sprint has finished" if terminal else f"the task is {phase}"
                await rec.patch_task(task, {"handledRetry": nonce})
                rec.event(body, "RetryIgnored", f"retry of task {task_id} ignored: {why}", warn=True)
            else:
                await rec.patch_task(
                    task,
                    {
                        "handledRetry": nonce,
                        "phase": "Ready",
                        "column": "ready",
                        "error": "",
                        "reason": "RetryRequested",
                        "nextRetryAt": None,
                        "conflicts": [],
                        "gates": [],
                        "maxAttempts": max(
                            int(task["status"].get("maxAttempts") or 0),
                            int(task["status"].get("attempt") or 0) + 1,
                        ),
                    },
                )
                rec.event(body, "TaskRetry", f"task {task_id}: retry requested by a user")
        nonce = pending_action(task, APPROVE, "handledApprove")
        if nonce:
            if phase == "Review" and not terminal:
                await rec.patch_task(
                    task,
                    {
                        "handledApprove": nonce,
                        "phase": "Merging",
                        "column": "in-progress",
                        "gatedAt": now_iso(),
                        "reason": "Approved",
                    },
                )
                rec.event(body, "TaskApproved", f"task {task_id}: approved by a user; queued for merge")
            else:
                await rec.patch_task(task, {"handledApprove": nonce})
                rec.event(
                    body, "ApproveIgnored", f"approve of task {task_id} ignored: it is {phase}", warn=True
                )
