"""Metrics: a projection of Sprint/Task status, change counters that ignore the first listing,
the exposition served over real HTTP, and reconcile errors counted from kopf's object log."""

from __future__ import annotations

import logging
import socket
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sprint_orchestrator.handlers.observe import ErrorCounter, _record
from sprint_orchestrator.metrics import (
    Metrics,
    TaskChange,
    project_sprints,
    project_tasks,
    start_metrics_server,
    status_written_at,
    task_change,
)


def sprint(name: str, status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {
        "kind": "Sprint",
        "metadata": {"name": name, "namespace": "ns", "generation": generation},
        "status": status or {},
    }


def task(name: str, status: dict[str, Any] | None = None, sprint_name: str = "s1") -> dict[str, Any]:
    return {
        "kind": "Task",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"sprintorchestrator.dev/sprint": sprint_name},
        },
        "spec": {"sprintRef": sprint_name},
        "status": status or {},
    }


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


# --- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({}, {"column": "ready"}, TaskChange()),
        ({"attempt": 1}, {"attempt": 3}, TaskChange(retries=2)),
        ({"attempt": 2}, {"attempt": 2}, TaskChange()),
        (
            {"column": "in-progress"},
            {"column": "completed", "completionTime": "2026-01-01T00:00:10Z", "durationSeconds": 10},
            TaskChange(finished=("completed", 10.0)),
        ),
        (
            {"column": "completed", "completionTime": "t"},
            {"column": "completed", "completionTime": "t", "durationSeconds": 10},
            TaskChange(),
        ),
        (
            {},
            {"gates": [{"name": "a", "passed": True}, {"name": "b", "passed": False}]},
            TaskChange(gates=(True, False)),
        ),
        (
            {"gates": [{"name": "a", "passed": True}]},
            {"gates": [{"name": "a", "passed": True}]},
            TaskChange(),
        ),
        ({}, {"conflicts": ["src/a.py"]}, TaskChange(conflict=True)),
        ({"conflicts": ["src/a.py"]}, {"conflicts": ["src/a.py"]}, TaskChange()),
    ],
)
def test_task_change_counts_only_what_is_new(
    before: dict[str, Any], after: dict[str, Any], expected: TaskChange
) -> None:
    assert task_change(before, after) == expected


def test_sprints_by_phase_include_every_phase_with_zero() -> None:
    families = {f.name: f for f in project_sprints([sprint("a", {"phase": "Running"}), sprint("b")], {})}
    by_phase = {s.labels["phase"]: s.value for s in families["sprint_orchestrator_sprints"].samples}
    assert by_phase["Running"] == 1 and by_phase["Pending"] == 1 and by_phase["Completed"] == 0
    assert len(by_phase) == 8


def test_tasks_by_column_and_running_container_limits_are_summed_per_sprint() -> None:
    running = {
        "column": "in-progress",
        "containerHealth": "running",
        "limits": {"cpus": 1.5, "memoryBytes": 1024},
    }
    tasks = [
        task("t1", running),
        task("t2", running),
        task("t3", {"column": "completed", "durationSeconds": 42}),
    ]
    families = {f.name: f for f in project_tasks(tasks)}
    cols = {s.labels["column"]: s.value for s in families["sprint_orchestrator_tasks"].samples}
    assert cols == {"in-progress": 2, "completed": 1}
    assert families["sprint_orchestrator_task_container_cpus"].samples[0].value == 3.0
    assert families["sprint_orchestrator_task_container_memory_bytes"].samples[0].value == 2048
    assert families["sprint_orchestrator_task_container_seconds"].samples[0].value == 42


def test_status_written_at_reads_the_newest_status_managed_field() -> None:
    body = {
        "metadata": {
            "managedFields": [
                {"subresource": "status", "time": "2026-01-01T00:00:05Z"},
                {"subresource": "status", "time": "2026-01-01T00:00:09Z"},
                {"time": "2026-01-01T00:01:00Z"},
            ]
        }
    }
    assert status_written_at(body) == 1767225609.0
    assert status_written_at({"metadata": {}}) is None


# --- stateful ------------------------------------------------------------------------------------


def test_sprint_gauges_follow_status_and_vanish_on_delete() -> None:
    metrics = Metrics()
    status = {
        "phase": "Running",
        "observedGeneration": 1,
        "columns": {"ready": 1},
        "tokens": {
            "used": 700,
            "estimated": 1000,
            "budget": 2000,
            "byCategory": {"input": 500},
            "byModel": {"claude": 700},
            "costUsd": 0.25,
        },
    }
    _record(metrics, "Sprint", {"type": None, "object": sprint("s1", status, generation=3)})
    assert (
        value(metrics, "sprint_orchestrator_sprint_tokens", namespace="ns", sprint="s1", kind="used") == 700
    )
    assert (
        value(
            metrics,
            "sprint_orchestrator_sprint_tokens_by_category",
            namespace="ns",
            sprint="s1",
            category="input",
        )
        == 500
    )
    assert value(metrics, "sprint_orchestrator_sprint_cost_usd", namespace="ns", sprint="s1") == 0.25
    assert value(metrics, "sprint_orchestrator_sprint_generation_lag", namespace="ns", sprint="s1") == 2
    assert (
        value(metrics, "sprint_orchestrator_sprint_phase", namespace="ns", sprint="s1", phase="Running") == 1
    )
    _record(metrics, "Sprint", {"type": "DELETED", "object": sprint("s1", status)})
    assert value(metrics, "sprint_orchestrator_sprints", phase="Running") == 0
    assert (
        value(metrics, "sprint_orchestrator_sprint_phase", namespace="ns", sprint="s1", phase="Running")
        is None
    )


def test_first_listing_sets_a_baseline_and_later_changes_count() -> None:
    metrics = Metrics()
    failed = {
        "column": "failed",
        "attempt": 2,
        "completionTime": "t1",
        "durationSeconds": 90,
        "gates": [{"name": "g", "passed": False}],
        "conflicts": ["a.py"],
    }
    _record(metrics, "Task", {"type": None, "object": task("t1", failed)})
    assert value(metrics, "sprint_orchestrator_task_retries_total", namespace="ns", sprint="s1") is None
    retried = {
        "column": "completed",
        "attempt": 3,
        "completionTime": "t2",
        "durationSeconds": 30,
        "gates": [{"name": "g", "passed": True}],
    }
    _record(metrics, "Task", {"type": "MODIFIED", "object": task("t1", retried)})
    assert value(metrics, "sprint_orchestrator_task_retries_total", namespace="ns", sprint="s1") == 1
    assert (
        value(metrics, "sprint_orchestrator_gate_results_total", namespace="ns", sprint="s1", result="passed")
        == 1
    )
    assert (
        value(
            metrics,
            "sprint_orchestrator_task_duration_seconds_count",
            namespace="ns",
            sprint="s1",
            outcome="completed",
        )
        == 1
    )
    assert (
        value(
            metrics,
            "sprint_orchestrator_task_duration_seconds_sum",
            namespace="ns",
            sprint="s1",
            outcome="completed",
        )
        == 30
    )


def test_a_new_task_counts_from_an_empty_status() -> None:
    metrics = Metrics()
    _record(metrics, "Task", {"type": "ADDED", "object": task("t9", {"conflicts": ["x"]})})
    assert value(metrics, "sprint_orchestrator_merge_conflicts_total", namespace="ns", sprint="s1") == 1


def test_status_lag_is_observed_on_status_changes_only() -> None:
    metrics = Metrics()
    body = task("t1", {"column": "ready"})
    body["metadata"]["managedFields"] = [{"subresource": "status", "time": "2000-01-01T00:00:00Z"}]
    metrics.task_seen(None, body, now=946684800.0)
    metrics.task_seen("MODIFIED", body, now=946684801.0)
    assert value(metrics, "sprint_orchestrator_status_update_lag_seconds_count", kind="Task") is None
    changed = {**body, "status": {"column": "in-progress"}}
    metrics.task_seen("MODIFIED", changed, now=946684803.0)
    assert value(metrics, "sprint_orchestrator_status_update_lag_seconds_sum", kind="Task") == 3.0


def test_api_writes_are_read_from_the_kube_adapter_counter_at_scrape_time() -> None:
    writes = {"status tasks": 4}
    metrics = Metrics(writes=lambda: writes)
    assert value(metrics, "sprint_orchestrator_api_writes_total", verb="status", resource="tasks") == 4
    writes["create events"] = 2
    assert value(metrics, "sprint_orchestrator_api_writes_total", verb="create", resource="events") == 2


def test_error_records_about_our_objects_count_as_reconcile_errors() -> None:
    metrics = Metrics()
    logger = logging.getLogger("kopf.objects.test-metrics")
    counter = ErrorCounter(metrics)
    logger.addHandler(counter)
    logger.propagate = False
    try:
        ref = {"k8s_ref": {"kind": "Sprint", "name": "s1"}}
        logger.error("Handler 'x' failed with an exception. Will retry.", extra=ref)
        logger.warning("only a warning", extra=ref)
        logger.error("not ours", extra={"k8s_ref": {"kind": "Pod"}})
    finally:
        logger.removeHandler(counter)
    assert value(metrics, "sprint_orchestrator_reconcile_errors_total", kind="Sprint") == 1
    assert value(metrics, "sprint_orchestrator_reconcile_errors_total", kind="Pod") is None


def test_metrics_server_serves_the_exposition_over_http() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics = Metrics()
    metrics.sprint_seen(None, sprint("s1", {"phase": "Completed"}), now=0.0)
    stop = start_metrics_server(port, metrics, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        stop()
    assert 'sprint_orchestrator_sprints{phase="Completed"} 1.0' in text
    assert "sprint_orchestrator_build_info" in text
