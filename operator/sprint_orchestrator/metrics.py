"""Prometheus metrics: a projection of Sprint and Task status, plus a few operator counters.

Gauges (sprints by phase, tasks by column, tokens, allocated container resources, generation lag)
are computed at scrape time from the last status seen of every object (`StatusProjection`), so they
can never drift from `.status`. Counters and histograms (task durations, gate results, merge
conflicts, retries) count *changes* between two statuses of the same Task (`task_change`, pure), so
a restarted operator does not count history twice: the first listing only sets the baseline.
Reconcile errors and status-update lag are observed by the handlers; API writes are read from
`Kube.writes` at scrape time.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from . import LABEL_SPRINT, __version__
from .status import Column, SprintPhase

PREFIX = "sprint_orchestrator"
SPRINT_LABELS = ("namespace", "sprint")
DURATION_BUCKETS = (30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200)
LAG_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300)
FINISHED = {Column.COMPLETED.value, Column.FAILED.value, Column.REVIEW.value}

Key = tuple[str, str]
Body = Mapping[str, Any]


def key_of(body: Body) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _status(body: Body | None) -> Mapping[str, Any]:
    return (body or {}).get("status") or {}


def sprint_of(task: Body) -> str:
    labels = (task.get("metadata") or {}).get("labels") or {}
    return str(labels.get(LABEL_SPRINT) or (task.get("spec") or {}).get("sprintRef") or "")


# --- pure: what changed between two statuses of one Task ----------------------------------------


@dataclass(frozen=True)
class TaskChange:
    retries: int = 0
    finished: tuple[str, float] | None = None  # (outcome column, duration in seconds)
    gates: tuple[bool, ...] = ()  # one entry per gate result that appeared: passed?
    conflict: bool = False


def task_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> TaskChange:
    """Compare two `.status` dicts of the same Task; {} as `before` means a brand-new Task."""
    retries = max(0, int(after.get("attempt") or 1) - int(before.get("attempt") or 1))
    finished = None
    done = after.get("completionTime")
    if done and done != before.get("completionTime") and after.get("column") in FINISHED:
        finished = (str(after["column"]), float(after.get("durationSeconds") or 0.0))
    gates: tuple[bool, ...] = ()
    new_gates = after.get("gates") or []
    if new_gates and (new_gates != before.get("gates") or after.get("gatedAt") != before.get("gatedAt")):
        gates = tuple(bool(g.get("passed")) for g in new_gates)
    conflicts = after.get("conflicts") or []
    conflict = bool(conflicts) and conflicts != (before.get("conflicts") or [])
    return TaskChange(retries, finished, gates, conflict)


def status_written_at(body: Body) -> float | None:
    """The time of the last `.status` write, from managedFields (second precision), as a Unix time."""
    times = [
        str(entry["time"])
        for entry in (body.get("metadata") or {}).get("managedFields") or []
        if entry.get("subresource") == "status" and entry.get("time")
    ]
    if not times:
        return None
    return dt.datetime.fromisoformat(max(times).replace("Z", "+00:00")).timestamp()


# --- pure: gauges projected from the statuses ----------------------------------------------------


def _gauge(name: str, doc: str, labels: Iterable[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


def project_sprints(sprints: Iterable[Body], progress_at: Mapping[Key, float]) -> list[Metric]:
    by_phase = _gauge("sprints", "Sprints by phase.", ["phase"])
    phase = _gauge("sprint_phase", "1 for the current phase of each sprint.", [*SPRINT_LABELS, "phase"])
    tokens = _gauge("sprint_tokens", "Sprint tokens: used, estimated and budget.", [*SPRINT_LABELS, "kind"])
    by_cat = _gauge("sprint_tokens_by_category", "Tokens used by category.", [*SPRINT_LABELS, "category"])
    by_model = _gauge("sprint_tokens_by_model", "Tokens used by model.", [*SPRINT_LABELS, "model"])
    cost = _gauge("sprint_cost_usd", "Estimated cost of the tokens used, in USD.", SPRINT_LABELS)
    lag = _gauge(
        "sprint_generation_lag", "metadata.generation minus status.observedGeneration.", SPRINT_LABELS
    )
    progress = _gauge(
        "sprint_last_progress_timestamp_seconds", "When the task columns last changed.", SPRINT_LABELS
    )
    counts = dict.fromkeys((p.value for p in SprintPhase), 0)
    for body in sprints:
        ns, name = key_of(body)
        status = _status(body)
        current = str(status.get("phase") or SprintPhase.PENDING.value)
        counts[current] = counts.get(current, 0) + 1
        phase.add_metric([ns, name, current], 1)
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        lag.add_metric([ns, name], max(0, generation - int(status.get("observedGeneration") or 0)))
        if (ns, name) in progress_at:
            progress.add_metric([ns, name], progress_at[(ns, name)])
        tok = status.get("tokens") or {}
        for kind in ("used", "estimated", "budget"):
            if tok.get(kind) is not None:
                tokens.add_metric([ns, name, kind], float(tok[kind]))
        for family, breakdown in ((by_cat, tok.get("byCategory")), (by_model, tok.get("byModel"))):
            for label, value in sorted((breakdown or {}).items()):
                family.add_metric([ns, name, label], float(value))
        if tok.get("costUsd") is not None:
            cost.add_metric([ns, name], float(tok["costUsd"]))
    for value, count in counts.items():
        by_phase.add_metric([value], count)
    return [by_phase, phase, tokens, by_cat, by_model, cost, lag, progress]


def project_tasks(tasks: Iterable[Body]) -> list[Metric]:
    columns = _gauge("tasks", "Tasks by board column.", [*SPRINT_LABELS, "column"])
    health = _gauge("task_containers", "Task containers by health.", [*SPRINT_LABELS, "health"])
    cpus = _gauge("task_container_cpus", "CPU limit of running task containers (cores).", SPRINT_LABELS)
    memory = _gauge("task_container_memory_bytes", "Memory limit of running task containers.", SPRINT_LABELS)
    seconds = _gauge(
        "task_container_seconds", "Container run time of finished attempts, summed.", SPRINT_LABELS
    )
    acc: dict[str, dict[tuple[str, ...], float]] = {"col": {}, "health": {}, "cpu": {}, "mem": {}, "sec": {}}

    def add(table: str, labels: tuple[str, ...], value: float) -> None:
        acc[table][labels] = acc[table].get(labels, 0.0) + value

    for body in tasks:
        ns, status, sprint = key_of(body)[0], _status(body), sprint_of(body)
        add("col", (ns, sprint, str(status.get("column") or Column.READY.value)), 1)
        running = status.get("containerHealth") == "running"
        if status.get("containerHealth"):
            add("health", (ns, sprint, str(status["containerHealth"])), 1)
        limits = status.get("limits") or {}
        add("cpu", (ns, sprint), float(limits.get("cpus") or 0) if running else 0.0)
        add("mem", (ns, sprint), float(limits.get("memoryBytes") or 0) if running else 0.0)
        add("sec", (ns, sprint), float(status.get("durationSeconds") or 0))
    for family, table in (
        (columns, "col"),
        (health, "health"),
        (cpus, "cpu"),
        (memory, "mem"),
        (seconds, "sec"),
    ):
        for labels, value in sorted(acc[table].items()):
            family.add_metric(list(labels), value)
    return [columns, health, cpus, memory, seconds]


def project_writes(writes: Mapping[str, int]) -> Metric:
    """`Kube.writes` keys are "VERB RESOURCE" (e.g. "status tasks")."""
    family = CounterMetricFamily(
        f"{PREFIX}_api_writes", "Kubernetes API writes by the operator.", labels=["verb", "resource"]
    )
    for call, count in sorted(writes.items()):
        verb, _, resource = call.partition(" ")
        family.add_metric([verb, resource], count)
    return family


# --- state: the last status seen of every object, and the operator's counters -------------------


class StatusProjection(Collector):
    """Holds the last Sprint and Task bodies seen; its gauges are computed when Prometheus scrapes."""

    def __init__(self, writes: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.sprints: dict[Key, Body] = {}
        self.tasks: dict[Key, Body] = {}
        self.progress_at: dict[Key, float] = {}
        self.writes = writes
        self.lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            sprints, tasks = list(self.sprints.values()), list(self.tasks.values())
            progress = dict(self.progress_at)
        yield from project_sprints(sprints, progress)
        yield from project_tasks(tasks)
        if self.writes is not None:
            yield project_writes(dict(self.writes()))


class Metrics:
    """Every metric of one operator process, on its own registry (never the global default)."""

    def __init__(self, writes: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.projection = StatusProjection(writes)
        self.registry.register(self.projection)
        labels = SPRINT_LABELS

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, [*labels, *extra], registry=self.registry)

        self.task_duration = Histogram(
            f"{PREFIX}_task_duration_seconds",
            "Duration of finished task attempts, by outcome column.",
            [*labels, "outcome"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.gate_results = counter("gate_results", "Quality-gate results, by result.", ("result",))
        self.merge_conflicts = counter("merge_conflicts", "Tasks isolated by a merge conflict.")
        self.retries = counter("task_retries", "Task attempts started after the first.")
        self.reconcile_errors = Counter(
            f"{PREFIX}_reconcile_errors",
            "Handler and reconcile-loop failures, by resource kind.",
            ["kind"],
            registry=self.registry,
        )
        self.status_lag = Histogram(
            f"{PREFIX}_status_update_lag_seconds",
            "From a status write (managedFields time, 1 s precision) to the operator seeing it.",
            ["kind"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        info = Gauge(f"{PREFIX}_build_info", "The operator's version.", ["version"], registry=self.registry)
        info.labels(__version__).set(1)

    # --- events ----------------------------------------------------------------------------------

    def sprint_seen(self, event_type: str | None, body: Body, now: float) -> None:
        key = key_of(body)
        with self.projection.lock:
            before = self.projection.sprints.get(key)
            self.projection.sprints[key] = body
            if before is None or _status(before).get("columns") != _status(body).get("columns"):
                self.projection.progress_at[key] = now
        self._lag("Sprint", event_type, before, body, now)

    def task_seen(self, event_type: str | None, body: Body, now: float) -> None:
        key = key_of(body)
        with self.projection.lock:
            before = self.projection.tasks.get(key)
            self.projection.tasks[key] = body
        self._lag("Task", event_type, before, body, now)
        if before is None and event_type != "ADDED":
            return  # the first listing (or a restart): a baseline, not news
        self.count(key[0], sprint_of(body), task_change(_status(before), _status(body)))

    def forget(self, kind: str, body: Body) -> None:
        key = key_of(body)
        with self.projection.lock:
            if kind == "Sprint":
                self.projection.sprints.pop(key, None)
                self.projection.progress_at.pop(key, None)
            else:
                self.projection.tasks.pop(key, None)

    def count(self, namespace: str, sprint: str, change: TaskChange) -> None:
        if change.retries:
            self.retries.labels(namespace, sprint).inc(change.retries)
        if change.finished is not None:
            outcome, seconds = change.finished
            self.task_duration.labels(namespace, sprint, outcome).observe(seconds)
        for passed in change.gates:
            self.gate_results.labels(namespace, sprint, "passed" if passed else "failed").inc()
        if change.conflict:
            self.merge_conflicts.labels(namespace, sprint).inc()

    def reconcile_error(self, kind: str) -> None:
        self.reconcile_errors.labels(kind).inc()

    def _lag(self, kind: str, event_type: str | None, before: Body | None, body: Body, now: float) -> None:
        if event_type != "MODIFIED" or before is None or _status(before) == _status(body):
            return
        written = status_written_at(body)
        if written is not None:
            self.status_lag.labels(kind).observe(max(0.0, now - written))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def start_metrics_server(port: int, metrics: Metrics, addr: str = "127.0.0.1") -> Callable[[], None]:
    """Serve /metrics on `port` in a daemon thread; returns a function that stops the server."""
    server, thread = start_http_server(port, addr=addr, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
