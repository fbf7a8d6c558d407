"""While a task's container runs: what the runtime says about a Pod that waits (the PodScheduled
condition), the growing token usage pushed into the Task status, and the container's start shown once
it has run a while. All end with the container."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..stamps import now_iso
from . import tokens
from .conditions import set_condition

LIVE_USAGE_SECONDS = 2.0
NOTICE_SECONDS = 5.0  # how often a waiting Pod's notice ("no node fits") is looked at
SHOWN_RUNNING_AFTER_SECONDS = 5.0  # a container still running then is shown running (its own write)


async def notices(runner: Any, waiter: asyncio.Future[Any], runtime: Any, name: str) -> None:
    """What the runtime says about a Pod that waits (pods: "no node fits: ..." once it has been
    unschedulable for containers.unschedulable_report_after) as the Task's PodScheduled condition
    and a warning Event; cleared when the Pod is scheduled after all."""
    notice = getattr(runtime, "notice", None)
    shown: str | None = None
    while notice is not None and not waiter.done():
        await asyncio.wait([waiter], timeout=NOTICE_SECONDS)
        text = await asyncio.to_thread(notice, name)
        if text is None or text == shown or waiter.done():
            continue
        shown = text
        fits = not text
        condition = set_condition(
            runner.status.get("conditions"), "PodScheduled", fits, "Scheduled" if fits else "Unschedulable",
            "the Pod was scheduled" if fits else text[:2000], now_iso(),
        )  # fmt: skip
        await runner.patch({"conditions": condition})
        if not fits:
            why = f"task {runner.task_id}: {text[:1000]}"
            runner.rec.event(runner.body, "TaskUnschedulable", why, warn=True)


async def shown_running(runner: Any, waiter: asyncio.Future[Any]) -> None:
    """The started container's facts (TaskRunner.unwritten: health running, id, branch, workspace) in
    the Task's status once it has run SHOWN_RUNNING_AFTER_SECONDS, unless a write (live usage, a notice)
    took them before; a shorter run has them in its end's phase write, one status write fewer. Watchers
    (`kubectl get stask`, the board, the running-containers gauges) see "starting" until then."""
    await asyncio.wait([waiter], timeout=SHOWN_RUNNING_AFTER_SECONDS)
    if waiter.done():
        return
    try:
        await runner.flush()
    except Exception as exc:  # the API server away: the facts stay for the next write
        runner.rec.log.warning("task %s: its start could not be written yet (%s)", runner.task_id, exc)


async def live_usage(
    runner: Any, waiter: asyncio.Future[Any], artifacts: Path, runtime: Any, handle: Any, metered: Any
) -> None:
    """While the container runs, push its growing token usage into the Task status (at most every
    LIVE_USAGE_SECONDS): the proxy's count when metered (woken by its on_usage), else the team's file.
    A metered task is not killed here: the proxy refuses its requests once a budget is spent."""
    last: int | None = None
    while not waiter.done():
        await asyncio.wait([waiter], timeout=LIVE_USAGE_SECONDS)
        if metered is not None and not waiter.done():
            await _first_of(waiter, metered.changed)
        if waiter.done():
            return
        current = metered.usage() if metered else tokens.read_live(artifacts, "usage-jsonl")
        if current is None or current.total_tokens == last:
            continue
        last = current.total_tokens
        estimated = runner.definition.estimated_tokens
        metered_usage = current if metered is not None else None
        await runner.patch({"tokens": tokens.status_tokens(metered_usage, current, estimated, partial=True)})
        if metered is not None:
            continue
        verdict = runner.budget_verdict(current)
        if verdict is not None:
            runner.budget_stop = verdict
            await asyncio.to_thread(runtime.remove, handle.name)


async def _first_of(waiter: asyncio.Future[Any], event: asyncio.Event) -> None:
    """Wait until the container ends or the event is set (then clear it)."""
    signal = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter, signal], return_when=asyncio.FIRST_COMPLETED)
    finally:
        signal.cancel()
    event.clear()
