"""PURE: the reporting view's chart series from a Sprint and its Tasks.

velocity: cumulative completed tasks at each completion time; tokens by category and by model (sums
over tasks); gate pass rates per gate name; efficiency (actual / estimated tokens) per task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..board import ordered, task_id
from ..status import Column, parse_task_status

Body = Mapping[str, Any]


def velocity(tasks: Sequence[Body]) -> list[dict[str, Any]]:
    """[{time, completed}] — one point per completed task, in completion order."""
    done = sorted(
        str(s.completion_time)
        for s in (parse_task_status(t.get("status")) for t in tasks)
        if s.column == Column.COMPLETED and s.completion_time
    )
    return [{"time": when, "completed": i + 1} for i, when in enumerate(done)]


def token_sums(tasks: Sequence[Body], key: str) -> dict[str, int]:
    """Token totals over tasks by `by_category` or `by_model`, largest first."""
    total: Counter[str] = Counter()
    for task in tasks:
        tokens = parse_task_status(task.get("status")).tokens
        total.update(getattr(tokens, key, None) or {} if tokens else {})
    return dict(total.most_common())


def gate_rates(tasks: Sequence[Body]) -> list[dict[str, Any]]:
    """[{name, passed, total, rate}] per gate name, sorted by name."""
    passed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for task in tasks:
        for gate in parse_task_status(task.get("status")).gates or []:
            total[gate.name] += 1
            passed[gate.name] += int(gate.passed)
    return [
        {"name": n, "passed": passed[n], "total": total[n], "rate": round(passed[n] / total[n], 4)}
        for n in sorted(total)
    ]


def efficiency(sprint: Body, tasks: Sequence[Body]) -> list[dict[str, Any]]:
    """[{task_id, estimated, actual, ratio}] for tasks with an estimate; ratio None before any usage."""
    rows = []
    for task in ordered(sprint, tasks):
        estimated = int((task.get("spec") or {}).get("estimatedTokens") or 0)
        tokens = parse_task_status(task.get("status")).tokens
        actual = int(tokens.actual or 0) if tokens else 0
        if estimated:
            ratio = round(actual / estimated, 4) if actual else None
            rows.append({"task_id": task_id(task), "estimated": estimated, "actual": actual, "ratio": ratio})
    return rows


def charts(sprint: Body, tasks: Sequence[Body]) -> dict[str, Any]:
    return {
        "velocity": velocity(tasks),
        "tokens_by_category": token_sums(tasks, "by_category"),
        "tokens_by_model": token_sums(tasks, "by_model"),
        "gates": gate_rates(tasks),
        "efficiency": efficiency(sprint, tasks),
    }
