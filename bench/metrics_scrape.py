"""Cost of the metrics projection: one Prometheus scrape and one watch event, at scale.

Gauges are computed at scrape time from the last status of every object, so a scrape costs
O(sprints + tasks). Baseline in the same run: a scrape of the same Metrics with no objects.

    .venv/bin/python bench/metrics_scrape.py [--sprints 100] [--tasks 50]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from sprint_orchestrator.metrics import Metrics

COLUMNS = ("ready", "in-progress", "review", "completed", "failed")


def sprint(i: int) -> dict[str, Any]:
    tokens = {
        "used": 1000 * i,
        "estimated": 900 * i,
        "budget": 2000 * i,
        "byCategory": {"input": 600 * i, "output": 400 * i},
        "byModel": {"claude": 1000 * i},
        "costUsd": 0.01 * i,
    }
    return {
        "metadata": {"name": f"s{i}", "namespace": "bench", "generation": 1},
        "status": {"phase": "Running", "observedGeneration": 1, "tokens": tokens, "columns": {"ready": 1}},
    }


def task(i: int, j: int, attempt: int) -> dict[str, Any]:
    status = {
        "column": COLUMNS[j % len(COLUMNS)],
        "attempt": attempt,
        "containerHealth": "running",
        "limits": {"cpus": 1.0, "memoryBytes": 2**30},
        "durationSeconds": 60.0,
    }
    return {
        "metadata": {
            "name": f"s{i}-t{j}",
            "namespace": "bench",
            "labels": {"sprintorchestrator.dev/sprint": f"s{i}"},
        },
        "status": status,
    }


def best_of(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sprints", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    metrics = Metrics(writes=lambda: {"status tasks": 1})
    baseline = best_of(metrics.render, args.repeat)
    for i in range(args.sprints):
        metrics.sprint_seen(None, sprint(i), now=0.0)
        for j in range(args.tasks):
            metrics.task_seen(None, task(i, j, 1), now=0.0)
    events = [task(i, j, 2) for i in range(args.sprints) for j in range(args.tasks)]
    start = time.perf_counter()
    for body in events:
        metrics.task_seen("MODIFIED", body, now=0.0)
    per_event = (time.perf_counter() - start) / len(events)
    scrape = best_of(metrics.render, args.repeat)
    size = len(metrics.render())
    print(
        json.dumps(
            {
                "sprints": args.sprints,
                "tasks": args.sprints * args.tasks,
                "scrape_ms": round(scrape * 1000, 2),
                "baseline_empty_scrape_ms": round(baseline * 1000, 3),
                "task_event_us": round(per_event * 1e6, 1),
                "exposition_bytes": size,
            }
        )
    )


if __name__ == "__main__":
    main()
