"""Human actions on Tasks, requested as annotations (`sprintctl retry|approve|request-changes`), each
applied once.

The annotation's value is a nonce; the Task status records the last nonce handled, so an action is
applied exactly once even when the operator restarts in between.
"""

from __future__ import annotations

from typing import Any

from .. import (
    ANNOTATION_APPROVE,
    ANNOTATION_APPROVE_COMMIT,
    ANNOTATION_REQUEST_CHANGES,
    ANNOTATION_RETRY,
    ANNOTATION_REVIEW,
)
from ..errors import InvalidInput
from ..model import SprintSpec
from ..review import parse_annotation
from ..stamps import now_iso

RETRY = ANNOTATION_RETRY
APPROVE = ANNOTATION_APPROVE
REQUEST_CHANGES = ANNOTATION_REQUEST_CHANGES
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
                        "continueFrom": None,  # a retry starts afresh from the sprint head
                        "autoFixRounds": 0,
                        "approvedCommit": None,
                        "maxAttempts": max(
                            int(task["status"].get("maxAttempts") or 0),
                            int(task["status"].get("attempt") or 0) + 1,
                        ),
                    },
                )
                rec.event(body, "TaskRetry", f"task {task_id}: retry requested by a user")
        await _request_changes(rec, body, task, terminal)
        phase = (task.get("status") or {}).get("phase")
        nonce = pending_action(task, APPROVE, "handledApprove")
        if nonce:
            current = str((task.get("status") or {}).get("commit") or "")
            wanted = (task["metadata"].get("annotations") or {}).get(ANNOTATION_APPROVE_COMMIT)
            if phase == "Review" and not terminal and wanted and wanted != current:
                await rec.patch_task(task, {"handledApprove": nonce})
                rec.event(
                    body,
                    "ApproveIgnored",
                    f"approve of task {task_id} ignored: it was given for commit {wanted[:12]}, the task "
                    f"is now at {current[:12] or 'no commit'}; review it again",
                    warn=True,
                )
            elif phase == "Review" and not terminal:
                await rec.patch_task(
                    task,
                    {
                        "handledApprove": nonce,
                        "phase": "Merging",
                        "column": "in-progress",
                        "gatedAt": now_iso(),
                        "reason": "Approved",
                        "approvedCommit": current or None,
                    },
                )
                rec.event(
                    body,
                    "TaskApproved",
                    f"task {task_id}: approved by a user at {current[:12] or 'no commit'}; queued for merge",
                )
            else:
                await rec.patch_task(task, {"handledApprove": nonce})
                rec.event(
                    body, "ApproveIgnored", f"approve of task {task_id} ignored: it is {phase}", warn=True
                )


async def _request_changes(rec: Any, body: dict[str, Any], task: dict[str, Any], terminal: bool) -> None:
    """A reviewer's request for changes: the review is recorded in status.reviews and the task gets a
    new attempt that starts from the reviewed commit (status.continueFrom), the review in its TASK.md."""
    nonce = pending_action(task, REQUEST_CHANGES, "handledRequestChanges")
    if not nonce:
        return
    status = task.get("status") or {}
    phase, task_id = status.get("phase"), task["spec"]["taskId"]
    current = str(status.get("commit") or "")
    try:
        review = parse_annotation((task["metadata"].get("annotations") or {}).get(ANNOTATION_REVIEW))
        why = ""
    except InvalidInput as exc:
        why = "; ".join(exc.problems)
    if not why and (terminal or phase != "Review"):
        why = "the sprint has finished" if terminal else f"the task is {phase}"
    if not why and review.commit and review.commit != current:
        why = f"it reviewed commit {review.commit[:12]}, the task is now at {current[:12] or 'no commit'}"
    if why:
        await rec.patch_task(task, {"handledRequestChanges": nonce})
        rec.event(
            body, "RequestChangesIgnored", f"request-changes of task {task_id} ignored: {why}", warn=True
        )
        return
    attempt = int(status.get("attempt") or 0)
    record = {
        "attempt": attempt,
        "by": review.by,
        "time": now_iso(),
        "commit": current or None,
        "message": review.message,
        "comments": [c.dump() for c in review.comments],
    }
    await rec.patch_task(
        task,
        {
            "handledRequestChanges": nonce,
            "phase": "Ready",
            "column": "ready",
            "reason": "ChangesRequested",
            "error": "",
            "recoveryAction": "",
            "nextRetryAt": None,
            "conflicts": [],
            "gates": [],
            "approvedCommit": None,
            "continueFrom": current or None,
            "reviews": [*list(status.get("reviews") or [])[-19:], record],
            "maxAttempts": max(int(status.get("maxAttempts") or 0), attempt + 1),
        },
    )
    rec.event(
        body,
        "ChangesRequested",
        f"task {task_id}: {review.by} requested changes on attempt {attempt} ({len(review.comments)} "
        f"comment(s)); attempt {attempt + 1} continues from {current[:12] or 'the sprint head'}",
    )
