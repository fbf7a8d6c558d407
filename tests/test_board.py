"""The pure board projection: the PRD's board JSON exactly, the page's cards and overview, reports."""

from __future__ import annotations

import datetime as dt

import pytest

from _board import sprint_body, task_body
from sprint_orchestrator import board
from sprint_orchestrator.web import reports

NOW = dt.datetime(2026, 1, 1, 12, 0, 10, tzinfo=dt.UTC)


def test_board_has_the_prd_keys_ids_and_names() -> None:
    sprint = sprint_body("s7", displayName="Word counts")
    out = board.project(sprint, [task_body(sprint, "t0")])
    assert set(out) == {"board_id", "board_name", "columns", "cards"}
    assert out["board_id"] == "sprint-s7"
    assert out["board_name"] == "Sprint s7: Word counts"


def test_columns_are_the_five_of_the_prd_with_the_wip_limit_from_max_parallel_tasks() -> None:
    out = board.project(sprint_body(maxParallelTasks=3), [])
    assert out["columns"] == [
        {"id": "ready", "name": "Ready", "limit": None},
        {"id": "in-progress", "name": "In Progress", "limit": 3},
        {"id": "review", "name": "Quality Review", "limit": None},
        {"id": "completed", "name": "Completed", "limit": None},
        {"id": "failed", "name": "Failed", "limit": None},
    ]


def test_card_has_labels_and_custom_fields_from_spec_and_status() -> None:
    sprint = sprint_body()
    status = {
        "column": "in-progress",
        "startTime": "2026-01-01T12:00:00Z",
        "containerId": "abc123",
        "tokens": {"actual": 420},
    }
    card = board.project(sprint, [task_body(sprint, "t1", status)])["cards"][0]
    assert card == {
        "task_id": "t1",
        "title": "Task 1",
        "description": "",
        "labels": ["priority:medium", "estimated_tokens:2000"],
        "custom_fields": {
            "token_usage": 420,
            "start_time": "2026-01-01T12:00:00Z",
            "completion_time": None,
            "container_id": "abc123",
        },
        "column": "in-progress",
    }


def test_a_task_without_status_is_ready_and_cards_follow_the_spec_order() -> None:
    sprint = sprint_body(tasks=3)
    tasks = [task_body(sprint, t) for t in ("t2", "t0", "t1")]
    cards = board.project(sprint, tasks)["cards"]
    assert [c["task_id"] for c in cards] == ["t0", "t1", "t2"]
    assert {c["column"] for c in cards} == {"ready"}


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, None),
        ("2026-01-01T12:00:00Z", None, 10.0),
        ("2026-01-01T12:00:00Z", "2026-01-01T12:00:04Z", 4.0),
    ],
)
def test_elapsed_runs_until_completion(start: str | None, end: str | None, expected: float | None) -> None:
    assert board.elapsed_seconds(start, end, NOW) == expected


def test_page_card_carries_error_countdown_gates_and_attempt() -> None:
    sprint = sprint_body()
    status = {
        "column": "failed",
        "attempt": 2,
        "maxAttempts": 3,
        "error": "timed out after 60 s",
        "nextRetryAt": "2026-01-01T12:00:40Z",
        "containerHealth": "timed-out",
        "gates": [{"name": "pytest", "passed": False, "exitCode": 1}],
        "limits": {"memory": "128Mi", "memoryBytes": 128 << 20, "cpus": 1.5, "timeoutSeconds": 120.0},
    }
    card = board.page_card(task_body(sprint, "t0", status), NOW)
    assert (card["attempt"], card["max_attempts"], card["retry_in_seconds"]) == (2, 3, 30.0)
    assert card["limits"] == "memory 128Mi, 1.5 CPUs, timeout 120s"
    assert card["error"] == "timed out after 60 s"
    assert card["container_health"] == "timed-out"
    assert card["gates"] == [{"name": "pytest", "passed": False, "exitCode": 1}]


def test_overview_counts_columns_tokens_and_active_containers() -> None:
    sprint = sprint_body(tasks=3, tokenBudget=50000)
    tasks = [
        task_body(sprint, "t0", {"column": "completed", "tokens": {"actual": 1500}}),
        task_body(
            sprint,
            "t1",
            {
                "column": "in-progress",
                "containerHealth": "running",
                "startTime": "2026-01-01T12:00:01Z",
                "tokens": {"actual": 700},
            },
        ),
        task_body(sprint, "t2"),
    ]
    out = board.overview(sprint, tasks)
    assert out["columns"] == {"ready": 1, "in-progress": 1, "review": 0, "completed": 1, "failed": 0}
    assert (out["completed"], out["total"], out["active_containers"]) == (1, 3, 1)
    assert (out["tokens_used"], out["tokens_budget"]) == (2200, 50000)
    assert [r["task_id"] for r in out["timeline"]] == ["t1"]


def test_reports_sum_tokens_rate_gates_and_rank_velocity() -> None:
    sprint = sprint_body(tasks=2)
    tasks = [
        task_body(
            sprint,
            "t0",
            {
                "column": "completed",
                "completionTime": "2026-01-01T12:05:00Z",
                "tokens": {
                    "actual": 500,
                    "byCategory": {"implementation": 400, "testing": 100},
                    "byModel": {"m1": 500},
                },
                "gates": [{"name": "pytest", "passed": True}],
            },
        ),
        task_body(
            sprint,
            "t1",
            {
                "column": "completed",
                "completionTime": "2026-01-01T12:01:00Z",
                "tokens": {"actual": 4000, "byCategory": {"implementation": 50}},
                "gates": [{"name": "pytest", "passed": False}, {"name": "lint", "passed": True}],
            },
        ),
    ]
    out = reports.charts(sprint, tasks)
    assert out["tokens_by_category"] == {"implementation": 450, "testing": 100}
    assert out["velocity"] == [
        {"time": "2026-01-01T12:01:00Z", "completed": 1},
        {"time": "2026-01-01T12:05:00Z", "completed": 2},
    ]
    assert out["gates"] == [
        {"name": "lint", "passed": 1, "total": 1, "rate": 1.0},
        {"name": "pytest", "passed": 1, "total": 2, "rate": 0.5},
    ]
    assert [(e["task_id"], e["ratio"]) for e in out["efficiency"]] == [("t0", 0.5), ("t1", 2.0)]


def test_a_retry_is_pending_until_the_operator_records_its_nonce() -> None:
    sprint = sprint_body(tasks=1)
    task = task_body(sprint, "t0", {"column": "failed"})
    assert board.page_card(task, NOW)["retry_requested"] is False
    task["metadata"]["annotations"] = {"sprintorchestrator.dev/retry": "n1"}
    assert board.page_card(task, NOW)["retry_requested"] is True
    task["status"]["handledRetry"] = "n1"
    assert board.page_card(task, NOW)["retry_requested"] is False
