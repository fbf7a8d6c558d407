"""The sprint report's figures, from Sprint and Task data."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sprint_orchestrator import report

NOW = dt.datetime(2026, 1, 1, 12, 0, 20, tzinfo=dt.UTC)


def task(task_id: str, phase: str, start: str | None, seconds: float | None) -> dict[str, Any]:
    status = {"phase": phase, "startTime": start, "durationSeconds": seconds}
    return {"spec": {"taskId": task_id, "title": task_id}, "status": status}


def sprint(started: str = "2026-01-01T11:59:00Z", slots: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": "s"}, "spec": {"maxParallelTasks": slots}, "status": {"startedAt": started}}


def test_slot_utilization_counts_from_the_first_admission_not_from_the_sprint_set_up() -> None:
    # Set-up (branch, image) took a minute; then 2 slots for 10 s, tasks busy 6 s and 8 s: 14/20.
    tasks = [
        task("a", "Completed", "2026-01-01T12:00:10Z", 6),
        task("b", "Completed", "2026-01-01T12:00:12Z", 8),
    ]
    data = report.build(sprint(), tasks, NOW)
    assert (data["wallSeconds"], data["slotUtilization"]) == (10.0, 0.7)


def test_without_any_admission_the_window_is_the_sprint_start() -> None:
    data = report.build(sprint("2026-01-01T12:00:00Z"), [task("a", "Failed", None, None)], NOW)
    assert (data["wallSeconds"], data["slotUtilization"]) == (20.0, 0.0)


def test_outcomes_count_each_phase() -> None:
    tasks = [task("a", "Completed", None, 1), task("b", "Completed", None, 1), task("c", "Failed", None, 1)]
    assert report.build(sprint(), tasks, NOW)["outcomes"] == {"completed": 2, "failed": 1}
