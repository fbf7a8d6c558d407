"""Helpers for the operations tests: the metric names metrics.py really exports, PromQL names."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from sprint_orchestrator.metrics import Metrics

METRIC_NAME = re.compile(r"\bsprint_orchestrator_[a-z0-9_]+\b")


def _task(status: dict[str, Any]) -> dict[str, Any]:
    labels = {"sprintorchestrator.dev/sprint": "s1"}
    return {"metadata": {"name": "s1-t1", "namespace": "ns", "labels": labels}, "status": status}


def exported_metric_names() -> set[str]:
    """Every sample name the operator exposes once each metric has seen data."""
    metrics = Metrics(writes=lambda: {"status tasks": 1})
    tokens = {
        "used": 1,
        "estimated": 1,
        "budget": 1,
        "byCategory": {"input": 1},
        "byModel": {"m": 1},
        "costUsd": 0.1,
    }
    sprint = {
        "metadata": {"name": "s1", "namespace": "ns", "generation": 1},
        "status": {"phase": "Running", "tokens": tokens, "columns": {"ready": 1}},
    }
    metrics.sprint_seen(None, sprint, now=1.0)
    running = {"column": "in-progress", "containerHealth": "running", "limits": {"cpus": 1}}
    metrics.task_seen("ADDED", _task(running), now=1.0)
    done = {
        "column": "completed",
        "attempt": 2,
        "completionTime": "t",
        "durationSeconds": 5,
        "gates": [{"name": "g", "passed": True}],
        "conflicts": ["a"],
    }
    task = _task(done)
    task["metadata"]["managedFields"] = [{"subresource": "status", "time": "1970-01-01T00:00:00Z"}]
    metrics.task_seen("MODIFIED", task, now=1.0)
    metrics.reconcile_error("Sprint")
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        names.update(sample.name for sample in family.samples)
    return names


def referenced_metric_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))
