"""PURE projections of Task statuses onto the Sprint: board counts, token totals, scheduler views."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from .. import lifecycle
from ..model import SprintSpec
from ..plan import TaskView

COLUMN_KEYS = {
    "ready": "ready",
    "in-progress": "inProgress",
    "review": "review",
    "completed": "completed",
    "failed": "failed",
}


def _status(task: Mapping[str, Any]) -> Mapping[str, Any]:
    return task.get("status") or {}


def task_views(spec: SprintSpec, tasks: Sequence[Mapping[str, Any]], now: dt.datetime) -> list[TaskView]:
    """Scheduler views in definition order; a task waiting out a retry backoff is not admissible."""
    by_id = {t["spec"]["taskId"]: t for t in tasks}
    views = []
    for index, definition in enumerate(spec.tasks):
        status = _status(by_id.get(definition.id, {}))
        phase = status.get("phase") or "Pending"
        retry_at = status.get("nextRetryAt")
        if phase in ("Pending", "Ready") and retry_at and _parse(retry_at) > now:
            phase = "Backoff"
        views.append(
            TaskView(definition.id, definition.priority, tuple(definition.dependencies), phase, index)
        )
    return views


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def settled(tasks: Sequence[Mapping[str, Any]]) -> bool:
    """The lifecycle's rule (lifecycle.all_settled) applied to the Tasks' phases."""
    return lifecycle.all_settled((_status(t).get("phase") or "Pending") for t in tasks)


def _add(into: dict[str, int], more: Mapping[str, Any] | None) -> None:
    for key, value in (more or {}).items():
        if isinstance(value, int):
            into[key] = into.get(key, 0) + value


def sprint_counts(
    spec: SprintSpec, tasks: Sequence[Mapping[str, Any]], budget: int, current: Mapping[str, Any]
) -> dict[str, Any]:
    """The Sprint status fields derived from its Tasks; only those that differ from `current`."""
    columns = {COLUMN_KEYS[column]: 0 for column in lifecycle.COLUMNS}
    used = estimated = 0
    by_category: dict[str, int] = {}
    by_model: dict[str, int] = {}
    cost: float | None = None
    for task in tasks:
        status = _status(task)
        columns[COLUMN_KEYS.get(status.get("column") or "ready", "ready")] += 1
        tokens = status.get("tokens") or {}
        used += int(tokens.get("actual") or 0) + sum(
            v for v in (status.get("tokensByAttempt") or {}).values() if isinstance(v, int)
        )
        estimated += int(tokens.get("estimated") or task["spec"].get("estimatedTokens") or 0)
        _add(by_category, tokens.get("byCategory"))
        _add(by_model, tokens.get("byModel"))
        if tokens.get("costUsd") is not None:
            cost = round((cost or 0.0) + float(tokens["costUsd"]), 6)
    total = len(spec.tasks)
    patch = {
        "columns": columns,
        "total": total,
        "progress": f"{columns['completed']}/{total}",
        "tokens": {
            "budget": budget,
            "used": used,
            "estimated": estimated,
            "byCategory": by_category,
            "byModel": by_model,
            **({"costUsd": cost} if cost is not None else {}),
        },
        "tokenSummary": f"{used}/{budget}",
    }
    return {key: value for key, value in patch.items() if current.get(key) != value}
