"""PURE: a Sprint and its Tasks -> the PRD's board JSON, and the richer card data of our board page.

Everything here is a projection of `.status` (DESIGN.md §6): no I/O, no clock unless passed in.

`project(sprint, tasks)` is the PRD's "Kaiban Board Configuration" exactly, plus one key per card,
`column`, without which a card has no place on the board. Labels are "key:value" strings of the
two labels the PRD names, e.g. ["priority:high", "estimated_tokens:12000"].
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from . import ANNOTATION_APPROVE, ANNOTATION_REQUEST_CHANGES, ANNOTATION_RETRY
from .status import Column, parse_sprint_status, parse_task_status

Body = Mapping[str, Any]

COLUMNS: tuple[tuple[str, str], ...] = (
    (Column.READY, "Ready"),
    (Column.IN_PROGRESS, "In Progress"),
    (Column.REVIEW, "Quality Review"),
    (Column.COMPLETED, "Completed"),
    (Column.FAILED, "Failed"),
)
DEFAULT_PARALLEL = 5


def sprint_id(sprint: Body) -> str:
    spec = sprint.get("spec") or {}
    return str(spec.get("sprintId") or sprint["metadata"]["name"])


def sprint_title(sprint: Body) -> str:
    spec = sprint.get("spec") or {}
    return str(spec.get("displayName") or sprint["metadata"]["name"])


def task_id(task: Body) -> str:
    return str((task.get("spec") or {}).get("taskId") or task["metadata"]["name"])


def column_of(task: Body) -> str:
    """The task's board column; a task the operator has not placed yet is Ready."""
    return str(parse_task_status(task.get("status")).column or Column.READY)


def ordered(sprint: Body, tasks: Sequence[Body]) -> list[Body]:
    """Tasks in the order of the Sprint's spec.tasks (unknown ones last, by id)."""
    order = {t.get("id"): i for i, t in enumerate((sprint.get("spec") or {}).get("tasks") or [])}
    return sorted(tasks, key=lambda t: (order.get(task_id(t), len(order)), task_id(t)))


def columns(sprint: Body) -> list[dict[str, Any]]:
    limit = int((sprint.get("spec") or {}).get("maxParallelTasks") or DEFAULT_PARALLEL)
    return [
        {"id": str(key), "name": name, "limit": limit if key == Column.IN_PROGRESS else None}
        for key, name in COLUMNS
    ]


def prd_card(task: Body) -> dict[str, Any]:
    spec, status = task.get("spec") or {}, parse_task_status(task.get("status"))
    return {
        "task_id": task_id(task),
        "title": spec.get("title") or task_id(task),
        "description": spec.get("description") or "",
        "labels": [
            f"priority:{spec.get('priority') or 'medium'}",
            f"estimated_tokens:{int(spec.get('estimatedTokens') or 0)}",
        ],
        "custom_fields": {
            "token_usage": actual_tokens(task),
            "start_time": status.start_time,
            "completion_time": status.completion_time,
            "container_id": status.container_id,
        },
        "column": column_of(task),
    }


def project(sprint: Body, tasks: Sequence[Body]) -> dict[str, Any]:
    """The PRD board JSON: board_id "sprint-{id}", board_name "Sprint {id}: {name}", columns, cards."""
    sid = sprint_id(sprint)
    return {
        "board_id": f"sprint-{sid}",
        "board_name": f"Sprint {sid}: {sprint_title(sprint)}",
        "columns": columns(sprint),
        "cards": [prd_card(t) for t in ordered(sprint, tasks)],
    }


def parse_time(stamp: str | None) -> dt.datetime | None:
    if not stamp:
        return None
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def elapsed_seconds(start: str | None, end: str | None, now: dt.datetime) -> float | None:
    """Seconds from start to end (or to now while running); None before the task started."""
    began = parse_time(start)
    if began is None:
        return None
    return round(max(((parse_time(end) or now) - began).total_seconds(), 0.0), 1)


def page_card(task: Body, now: dt.datetime) -> dict[str, Any]:
    """Everything the board page shows on a card and in its drill-down."""
    spec, status = task.get("spec") or {}, parse_task_status(task.get("status"))
    tokens = status.tokens.dump() if status.tokens else {}
    return {
        **prd_card(task),
        "name": task["metadata"]["name"],
        "priority": spec.get("priority") or "medium",
        "dependencies": list(spec.get("dependencies") or []),
        "phase": status.phase,
        "attempt": status.attempt or 0,
        "max_attempts": status.max_attempts,
        "container_health": status.container_health or "none",
        "elapsed_seconds": elapsed_seconds(status.start_time, status.completion_time, now),
        "tokens": {"estimated": int(spec.get("estimatedTokens") or 0), **tokens},
        "error": status.error,
        "reason": status.reason,
        "recovery_action": status.recovery_action,
        "next_retry_at": status.next_retry_at,
        "retry_in_seconds": _countdown(status.next_retry_at, now),
        "retry_requested": _pending(task, ANNOTATION_RETRY, status.handled_retry),
        "approve_requested": _pending(task, ANNOTATION_APPROVE, status.handled_approve),
        "changes_requested": _pending(task, ANNOTATION_REQUEST_CHANGES, status.handled_request_changes),
        "commit": status.commit,
        "approved_commit": status.approved_commit,
        "reviews": [r.dump() for r in status.reviews or []],
        "auto_fix_rounds": status.auto_fix_rounds or 0,
        "results": status.results.dump() if status.results else {},
        "gates": [g.dump() for g in status.gates or []],
        "conflicts": list(status.conflicts or []),
        "out_of_scope": list(status.out_of_scope or []),
        "protected_paths": list(status.protected_paths or []),
        "protected_diff": status.protected_diff or "",
        "audit": [a.dump() for a in status.audit or []],
        "log_path": status.log_path,
        "artifacts_path": status.artifacts_path,
        "limits": limits_text(status.limits.dump() if status.limits else {}),
    }


def limits_text(limits: dict[str, Any]) -> str:
    """The normalized limits of the current attempt: "memory 128Mi, 1.5 CPUs, timeout 600s"."""
    parts = []
    if limits.get("memory"):
        parts.append(f"memory {limits['memory']}")
    if limits.get("cpus"):
        parts.append(f"{limits['cpus']:g} CPUs")
    if limits.get("timeoutSeconds"):
        parts.append(f"timeout {limits['timeoutSeconds']:g}s")
    return ", ".join(parts)


def _pending(task: Body, key: str, handled: str | None) -> bool:
    """A human action was requested (annotation nonce) and the operator has not applied it yet."""
    nonce = (task["metadata"].get("annotations") or {}).get(key)
    return bool(nonce) and nonce != handled


def _countdown(stamp: str | None, now: dt.datetime) -> float | None:
    when = parse_time(stamp)
    return None if when is None else round(max((when - now).total_seconds(), 0.0), 1)


def overview(sprint: Body, tasks: Sequence[Body]) -> dict[str, Any]:
    """The sprint overview: phase, progress, tokens vs budget, active containers, timeline."""
    status = parse_sprint_status(sprint.get("status"))
    spec = sprint.get("spec") or {}
    cols = {key: 0 for key, _ in COLUMNS}
    for task in tasks:
        cols[column_of(task)] = cols.get(column_of(task), 0) + 1
    tokens = status.tokens
    used = sum(actual_tokens(t) for t in tasks)
    return {
        "sprint_id": sprint_id(sprint),
        "name": sprint["metadata"]["name"],
        "title": sprint_title(sprint),
        "namespace": sprint["metadata"].get("namespace"),
        "phase": status.phase or "Pending",
        "suspended": bool(spec.get("suspend")),
        "total": len(tasks),
        "completed": cols[Column.COMPLETED],
        "columns": cols,
        "tokens_used": int(tokens.used) if tokens and tokens.used is not None else used,
        "tokens_budget": (tokens.budget if tokens else None) or spec.get("tokenBudget"),
        "cost_usd": tokens.cost_usd if tokens else None,
        "active_containers": sum(1 for t in tasks if _active(t)),
        "started_at": status.started_at,
        "completed_at": status.completed_at,
        "message": status.message,
        "report": status.report.dump() if status.report else None,
        "timeline": timeline(tasks),
    }


def actual_tokens(task: Body) -> int:
    tokens = parse_task_status(task.get("status")).tokens
    return int(tokens.actual or 0) if tokens else 0


def _active(task: Body) -> bool:
    health = parse_task_status(task.get("status")).container_health
    return health in ("starting", "running")


def timeline(tasks: Sequence[Body]) -> list[dict[str, Any]]:
    """One bar per started task: [{task_id, start, end, column}], ordered by start time."""
    rows = []
    for task in tasks:
        status = parse_task_status(task.get("status"))
        if status.start_time:
            rows.append(
                {
                    "task_id": task_id(task),
                    "start": status.start_time,
                    "end": status.completion_time,
                    "column": column_of(task),
                }
            )
    return sorted(rows, key=lambda r: (r["start"], r["task_id"]))


def page(sprint: Body, tasks: Sequence[Body], now: dt.datetime) -> dict[str, Any]:
    """The whole board page's data: the PRD board, richer cards and the overview."""
    return {
        **project(sprint, tasks),
        "cards": [page_card(t, now) for t in ordered(sprint, tasks)],
        "overview": overview(sprint, tasks),
    }
