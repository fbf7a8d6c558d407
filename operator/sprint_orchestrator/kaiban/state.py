"""PURE: a Sprint and its Tasks -> the KaibanJS team state that the real Kaiban Board draws.

Mapping (see shared/kaiban.md): team name "Sprint {id}: {name}"; one KaibanJS task per Task with
column ready->TODO, in-progress->DOING, review->AWAITING_VALIDATION, completed->DONE,
failed->BLOCKED; one agent per task container; `workflowLogs` derived from status times: a DOING log
at startTime and, for a settled task, a DONE / BLOCKED / AWAITING_VALIDATION log at completionTime
carrying llmUsageStats and costDetails.

KaibanJS has no cache fields, so inputTokens = uncached input + cache read + cache creation.
Unknown costs are -1 (KaibanJS's own "unknown"); we only know a task's total cost, so the input/output
split is always -1. callsCount is unknown to the operator and reported as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..board import column_of, ordered, parse_time, sprint_id, sprint_title, task_id
from ..status import Column, TaskStatus, parse_sprint_status, parse_task_status

Body = Mapping[str, Any]

TASK_STATUS: dict[str, str] = {
    Column.READY: "TODO",
    Column.IN_PROGRESS: "DOING",
    Column.REVIEW: "AWAITING_VALIDATION",
    Column.COMPLETED: "DONE",
    Column.FAILED: "BLOCKED",
}
WORKFLOW_STATUS: dict[str, str] = {
    "Pending": "INITIAL",
    "Initializing": "RUNNING",
    "Running": "RUNNING",
    "Integrating": "RUNNING",
    "Completed": "FINISHED",
    "Partial": "FINISHED",
    "Failed": "ERRORED",
    "RolledBack": "STOPPED",
}
PROVIDERS: dict[str, str] = {
    "claude-code": "anthropic",
    "codex": "openai",
    "gemini": "google",
    "demo": "demo",
    "command": "custom",
}
SETTLED = ("DONE", "BLOCKED", "AWAITING_VALIDATION")


def kaiban_status(task: Body) -> str:
    return TASK_STATUS.get(column_of(task), "TODO")


def workflow_status(sprint: Body) -> str:
    phase = parse_sprint_status(sprint.get("status")).phase or "Pending"
    if (sprint.get("spec") or {}).get("suspend") and phase == "Pending":
        return "INITIAL"
    return WORKFLOW_STATUS.get(str(phase), "RUNNING")


def agent(sprint: Body, task: Body) -> dict[str, Any]:
    """The agent of a task's container: named after the container when there is one."""
    team = (sprint.get("spec") or {}).get("team") or {}
    status = parse_task_status(task.get("status"))
    models = list((status.tokens.by_model or {}) if status.tokens else {})
    kind = str(team.get("type") or "default")  # unset: the operator's default team
    return {
        "id": f"agent-{task_id(task)}",
        "name": status.container_name or f"{kind}-{task_id(task)}",
        "role": f"{kind} team for task {task_id(task)}",
        "goal": (task.get("spec") or {}).get("title") or task_id(task),
        "llmConfig": {
            "provider": PROVIDERS.get(kind, "custom"),
            "model": team.get("model") or (models[0] if models else "unknown"),
        },
    }


def description(task: Body) -> str:
    """The card face: title, then priority and estimate (the Kaiban Board shows no labels)."""
    spec = task.get("spec") or {}
    head = f"{spec.get('title') or task_id(task)} [priority {spec.get('priority') or 'medium'}, "
    return head + f"est. {int(spec.get('estimatedTokens') or 0)} tokens]"


def usage_stats(status: TaskStatus) -> dict[str, int]:
    tokens = status.tokens
    if tokens is None:
        return {
            "inputTokens": 0,
            "outputTokens": 0,
            "callsCount": 0,
            "callsErrorCount": 0,
            "parsingErrors": 0,
        }
    uncached = (tokens.input or 0) + (tokens.cache_read or 0) + (tokens.cache_creation or 0)
    output = tokens.output or 0
    if not uncached and not output and tokens.actual:
        uncached = tokens.actual  # only a total is known (e.g. agent-reported): count it as input
    return {
        "inputTokens": int(uncached),
        "outputTokens": int(output),
        "callsCount": 0,
        "callsErrorCount": 0,
        "parsingErrors": 0,
    }


def cost_details(status: TaskStatus) -> dict[str, float]:
    cost = status.tokens.cost_usd if status.tokens else None
    total = round(cost, 4) if cost is not None else -1
    return {"costInputTokens": -1, "costOutputTokens": -1, "totalCost": total}


def epoch_ms(stamp: str | None) -> int | None:
    when = parse_time(stamp)
    return None if when is None else int(when.timestamp() * 1000)


def kaiban_task(sprint: Body, task: Body) -> dict[str, Any]:
    spec, status = task.get("spec") or {}, parse_task_status(task.get("status"))
    return {
        "id": task_id(task),
        "title": spec.get("title") or task_id(task),
        "description": description(task),
        "status": kaiban_status(task),
        "agent": agent(sprint, task),
        "result": (status.results.summary if status.results else None) or status.error,
        "dependencies": list(spec.get("dependencies") or []),
        "stats": _stats(status),
        "externalValidationRequired": kaiban_status(task) == "AWAITING_VALIDATION",
        "feedbackHistory": feedback_history(status),
    }


def feedback_history(status: TaskStatus) -> list[dict[str, Any]]:
    """KaibanJS's feedback on a task: each review that requested changes, PROCESSED once a later
    attempt has run (one text per review: its message, then `path:line: comment` lines)."""
    out = []
    for review in status.reviews or []:
        lines = [review.message] if review.message else []
        for c in review.comments or []:
            anchor = f"{c.path}:{c.line}" if c.path and c.line else (c.path or "task")
            lines.append(f"{anchor}: {c.body}")
        done = (status.attempt or 0) > review.attempt and status.phase not in ("Ready", "Pending")
        out.append(
            {
                "content": f"{review.by}: " + "\n".join(lines),
                "status": "PROCESSED" if done else "PENDING",
                "timestamp": epoch_ms(review.time),
            }
        )
    return out


def _stats(status: TaskStatus) -> dict[str, Any] | None:
    if not status.start_time:
        return None
    return {
        "startTime": epoch_ms(status.start_time),
        "endTime": epoch_ms(status.completion_time),
        "duration": status.duration_seconds,
        "llmUsageStats": usage_stats(status),
        "iterationCount": status.attempt or 1,
    }


def task_logs(sprint: Body, task: Body) -> list[dict[str, Any]]:
    """The TaskStatusUpdate logs of one task, derived from its status times."""
    status = parse_task_status(task.get("status"))
    final = kaiban_status(task)
    logs = []
    if status.start_time:
        logs.append(_log(sprint, task, "DOING", epoch_ms(status.start_time), {}))
    if final in SETTLED and status.completion_time:
        metadata = {
            "llmUsageStats": usage_stats(status),
            "costDetails": cost_details(status),
            "duration": status.duration_seconds,
            "startTime": epoch_ms(status.start_time),
            "endTime": epoch_ms(status.completion_time),
            "result": kaiban_task(sprint, task)["result"],
        }
        logs.append(_log(sprint, task, final, epoch_ms(status.completion_time), metadata))
    return logs


def _log(sprint: Body, task: Body, status: str, when: int | None, metadata: dict[str, Any]) -> dict[str, Any]:
    title = (task.get("spec") or {}).get("title") or task_id(task)
    return {
        "timestamp": when or 0,
        "logDescription": f"Task {task_id(task)} ({title}): {status}",
        "logType": "TaskStatusUpdate",
        "taskStatus": status,
        "task": kaiban_task(sprint, task) if status not in SETTLED else _short_task(sprint, task),
        "agent": agent(sprint, task),
        "agentName": agent(sprint, task)["name"],
        "taskTitle": title,
        "metadata": metadata,
    }


def _short_task(sprint: Body, task: Body) -> dict[str, Any]:
    return {k: v for k, v in kaiban_task(sprint, task).items() if k != "stats"}


def team_state(sprint: Body, tasks: Sequence[Body]) -> dict[str, Any]:
    """The KaibanJS team state of a sprint (what `team.useStore().getState()` would hold)."""
    tasks = ordered(sprint, tasks)
    logs = sorted((log for t in tasks for log in task_logs(sprint, t)), key=lambda log: log["timestamp"])
    status = parse_sprint_status(sprint.get("status"))
    return {
        "name": f"Sprint {sprint_id(sprint)}: {sprint_title(sprint)}",
        "teamWorkflowStatus": workflow_status(sprint),
        "agents": [agent(sprint, t) for t in tasks],
        "tasks": [kaiban_task(sprint, t) for t in tasks],
        "workflowLogs": logs,
        "inputs": {"sprint_id": sprint_id(sprint)},
        "workflowResult": status.report.summary if status.report else None,
        "env": {},
        "logLevel": "info",
    }
