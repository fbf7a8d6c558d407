"""The KaibanJS team state projection (shared/kaiban.md)."""

from __future__ import annotations

import pytest

from _board import sprint_body, task_body
from sprint_orchestrator.kaiban.state import team_state


@pytest.mark.parametrize(
    ("column", "status"),
    [
        ("ready", "TODO"),
        ("in-progress", "DOING"),
        ("review", "AWAITING_VALIDATION"),
        ("completed", "DONE"),
        ("failed", "BLOCKED"),
    ],
)
def test_columns_map_to_kaiban_task_statuses(column: str, status: str) -> None:
    sprint = sprint_body(tasks=1)
    state = team_state(sprint, [task_body(sprint, "t0", {"column": column})])
    assert state["tasks"][0]["status"] == status


@pytest.mark.parametrize(
    ("phase", "workflow"),
    [("Running", "RUNNING"), ("Completed", "FINISHED"), ("Failed", "ERRORED"), ("RolledBack", "STOPPED")],
)
def test_sprint_phase_maps_to_the_team_workflow_status(phase: str, workflow: str) -> None:
    sprint = {**sprint_body(tasks=1), "status": {"phase": phase}}
    assert team_state(sprint, [])["teamWorkflowStatus"] == workflow


def test_team_is_named_after_the_sprint_with_one_agent_per_task() -> None:
    sprint = sprint_body("s9", tasks=2, displayName="Counts", team={"type": "claude-code", "model": "m-1"})
    state = team_state(sprint, [task_body(sprint, "t0"), task_body(sprint, "t1")])
    assert state["name"] == "Sprint s9: Counts"
    assert [a["id"] for a in state["agents"]] == ["agent-t0", "agent-t1"]
    assert state["agents"][0]["llmConfig"] == {"provider": "anthropic", "model": "m-1"}
    assert "priority high" in state["tasks"][0]["description"]
    assert "est. 1000 tokens" in state["tasks"][0]["description"]


def test_a_settled_task_logs_usage_with_cache_tokens_counted_as_input_and_its_cost() -> None:
    sprint = sprint_body(tasks=1)
    status = {
        "column": "completed",
        "startTime": "2026-01-01T12:00:00Z",
        "completionTime": "2026-01-01T12:00:30Z",
        "durationSeconds": 30.0,
        "tokens": {"input": 100, "cacheRead": 1000, "cacheCreation": 50, "output": 20, "costUsd": 0.012345},
    }
    logs = team_state(sprint, [task_body(sprint, "t0", status)])["workflowLogs"]
    assert [log["taskStatus"] for log in logs] == ["DOING", "DONE"]
    assert logs[0]["timestamp"] == 1767268800000
    done = logs[1]["metadata"]
    assert done["llmUsageStats"]["inputTokens"] == 1150
    assert done["llmUsageStats"]["outputTokens"] == 20
    assert done["costDetails"] == {"costInputTokens": -1, "costOutputTokens": -1, "totalCost": 0.0123}
    assert (done["duration"], done["endTime"]) == (30.0, 1767268830000)
    assert all(log["logType"] == "TaskStatusUpdate" for log in logs)


def test_unknown_cost_is_minus_one_and_a_waiting_task_has_no_logs() -> None:
    sprint = sprint_body(tasks=2)
    failed = {
        "column": "failed",
        "startTime": "2026-01-01T12:00:00Z",
        "completionTime": "2026-01-01T12:00:01Z",
    }
    state = team_state(sprint, [task_body(sprint, "t0", failed), task_body(sprint, "t1")])
    blocked = [log for log in state["workflowLogs"] if log["taskStatus"] == "BLOCKED"]
    assert blocked[0]["metadata"]["costDetails"]["totalCost"] == -1
    assert all(log["task"]["id"] == "t0" for log in state["workflowLogs"])
