"""Metrics handlers: every Sprint and Task event updates the status projection in `metrics.py`.

The metrics server starts with the operator when `SPRINT_ORCHESTRATOR_METRICS_PORT` (settings
`metrics_port`) is above 0. Reconcile errors are counted from kopf's per-object log records at ERROR
level (handler failures and the sprint loop's `logger.exception`), so no handler needs to know.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from .. import GROUP, VERSION
from ..kube import SPRINTS, TASKS
from ..metrics import Metrics, start_metrics_server
from ..settings import from_env

log = logging.getLogger("sprint_orchestrator.metrics")
KOPF_OBJECT_LOGGER = "kopf.objects"


class ErrorCounter(logging.Handler):
    """Counts ERROR records about our objects into `reconcile_errors_total{kind}`."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(level=logging.ERROR)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        ref = getattr(record, "k8s_ref", None)
        kind = ref.get("kind") if isinstance(ref, Mapping) else None
        if kind in ("Sprint", "Task"):
            self.metrics.reconcile_error(str(kind))


def metrics_of(memo: kopf.Memo) -> Metrics:
    """The process's Metrics, created on first use (handlers may run before start-up finishes)."""
    metrics = memo.get("metrics")
    if not isinstance(metrics, Metrics):
        metrics = Metrics(writes=lambda: _writes(memo))
        memo["metrics"] = metrics
    return metrics


def _writes(memo: kopf.Memo) -> Mapping[str, int]:
    kube = getattr(memo.get("context"), "kube", None)
    return dict(getattr(kube, "writes", {}))


@kopf.on.startup()
def start_metrics(memo: kopf.Memo, **_: Any) -> None:
    metrics = metrics_of(memo)
    counter = ErrorCounter(metrics)
    logging.getLogger(KOPF_OBJECT_LOGGER).addHandler(counter)
    memo["metrics_error_counter"] = counter
    settings = getattr(memo.get("context"), "settings", None) or from_env()
    port = int(settings.metrics_port)
    if port > 0:
        address = str(getattr(settings, "metrics_address", "127.0.0.1"))
        memo["metrics_stop"] = start_metrics_server(port, metrics, address)
        log.info("metrics server started", extra={"port": port, "address": address})


@kopf.on.cleanup()
def stop_metrics(memo: kopf.Memo, **_: Any) -> None:
    counter = memo.get("metrics_error_counter")
    if isinstance(counter, logging.Handler):
        logging.getLogger(KOPF_OBJECT_LOGGER).removeHandler(counter)
    stop = memo.get("metrics_stop")
    if callable(stop):
        stop()


@kopf.on.event(GROUP, VERSION, SPRINTS)
def sprint_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _record(metrics_of(memo), "Sprint", event)


@kopf.on.event(GROUP, VERSION, TASKS)
def task_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _record(metrics_of(memo), "Task", event)


def _record(metrics: Metrics, kind: str, event: Mapping[str, Any]) -> None:
    body, event_type = event.get("object") or {}, event.get("type")
    if event_type == "DELETED":
        metrics.forget(kind, body)
    elif kind == "Sprint":
        metrics.sprint_seen(event_type, body, time.time())
    else:
        metrics.task_seen(event_type, body, time.time())
