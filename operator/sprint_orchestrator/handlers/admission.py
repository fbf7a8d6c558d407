"""Admission: the one place a sprint's free slots are filled (plan.admit), asked by the sprint loop's
round and, directly, by a runner whose task has just finished (the hand-off).

A finished task hands its slot to the next ready task while its own final status is written: its
runner asks the same decision point, with the finished task seen in its new phase, instead of waking
the loop and waiting for a round (the Sprint GET, the round's other writes, and any round already
under way: about 100 ms at 100 tasks, a second at 1,000 under load, bench/scale.py). One lock per
sprint serialises the decisions, and each is made on the freshest Task statuses (the watch-fed cache,
which every write of the operator updates first), so the loop and a runner never admit one task twice
nor fill one slot twice.

While the finished task's last write is in flight the API may show one task more in progress than
the limit (the new one Running, the finished one still Merging); its container has already exited.
An operator killed in between finds the finished task waiting to merge, and the round merges it
before it admits anything (the merge of a merged task is a no-op).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from .. import plan
from ..model import SprintSpec
from ..plan import TaskView
from . import counts


def views_after(views: Sequence[TaskView], finished: Mapping[str, str]) -> list[TaskView]:
    """PURE: the views with each finished task (id -> its new phase) in that phase."""
    return [dataclasses.replace(v, phase=finished[v.id]) if v.id in finished else v for v in views]


def refresh(rec: Any, tasks: list[dict[str, Any]]) -> None:
    """Each Task of `tasks` (the round's copies) as the cache holds it now: the cache is never older
    than a copy (the operator's writes update both; the watch only ever replaces an older version)."""
    cache = rec.ctx.task_cache
    for task in tasks:
        held = cache.get(rec.key, task["metadata"]["name"])
        if held is not None:
            task["metadata"], task["status"] = held["metadata"], held.get("status") or {}


def cached_tasks(rec: Any, spec: SprintSpec) -> list[dict[str, Any]] | None:
    """The Tasks of spec.tasks from the cache, in definition order; None while one is missing (the
    loop creates it)."""
    by_id = {t["spec"]["taskId"]: t for t in rec.ctx.task_cache.tasks(rec.key)}
    tasks = [by_id.get(definition.id) for definition in spec.tasks]
    return None if any(task is None for task in tasks) else [t for t in tasks if t is not None]


async def admit_ready(
    rec: Any,
    body: dict[str, Any],
    spec: SprintSpec,
    tasks: list[dict[str, Any]],
    finished: Mapping[str, str] | None = None,
) -> list[str]:
    """Admit what plan.admit says on the Tasks' current statuses; returns the ids admitted."""
    async with rec.admitting:
        if rec.closed:
            return []
        refresh(rec, tasks)
        views = views_after(counts.task_views(spec, tasks, dt.datetime.now(dt.UTC)), finished or {})
        slots = min(spec.max_parallel_tasks, rec.operator_slots())
        admitted = plan.admit(views, slots)
        by_id = {task["spec"]["taskId"]: task for task in tasks}
        for task_id in admitted:
            await rec.admit(body, spec, by_id[task_id])
        return admitted


async def hand_off(rec: Any, task_id: str, phase: str) -> None:
    """A runner's task is leaving its slot for `phase`: fill the slot now, from the loop's last view
    of the Sprint (a Running one, no cancel asked). Never raises: the round admits what this did not
    (merging._finish wakes the loop either way)."""
    try:
        latest = rec.latest
        if latest is None or rec.phase != "Running" or rec.closed:
            return
        body, spec = latest
        tasks = cached_tasks(rec, spec)
        if tasks is not None:
            await admit_ready(rec, body, spec, tasks, {task_id: phase})
    except Exception as exc:  # the API away, a bug: the next round admits
        rec.log.warning("hand-off of task %s's slot failed (%s); the next round admits", task_id, exc)
