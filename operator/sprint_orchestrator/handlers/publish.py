"""The last step of a sprint: main reaches the remote, or the sprint says why not and tries again.

Moving main is two steps, the clone's ref and the push, and an operator can die between them (or the
remote can refuse: a hook, permissions). A sprint is never Completed before the remote has its main:
each round of an Integrating sprint first retries a pending push (main ahead of the remote's in the
operator's clone), with exponential backoff, the reason on the `Pushed` condition and in the message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from ..diskspace import no_space
from ..stamps import now_iso
from .conditions import set_condition

FIRST_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 300.0


def backoff(attempts: int) -> float:
    """Seconds before push attempt `attempts + 1`: 2, 4, 8, ... capped at 5 minutes."""
    return float(min(FIRST_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def _seconds_until(when: str | None, now: dt.datetime) -> float:
    if not when:
        return 0.0
    at = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    return max((at - now).total_seconds(), 0.0)


async def retry_pending_push(integrator: Any, engine: Any) -> float | None:
    """Push the clone's main if it is ahead of the remote's and holds this sprint's head: the sprint
    then ends as its tasks say. Returns the loop's delay, or None when nothing of this sprint is pending
    (the integration goes on as usual)."""
    status = integrator.status
    wait = _seconds_until((status.get("push") or {}).get("nextAttemptAt"), dt.datetime.now(dt.UTC))
    if wait > 0:
        return wait
    result = await asyncio.to_thread(engine.publish_main)
    if result is None:
        return await _already_in_main(integrator, engine)
    integrator.rec.ref_events(integrator.body, result.changes)
    head = str(await asyncio.to_thread(engine.head, integrator.branch))
    if not await asyncio.to_thread(engine.is_ancestor, head, result.main_commit):
        return None  # another sprint's main waits for the remote; ours still has to get there
    if not result.pushed:
        return await record_refusal(integrator, result.main_commit, str(result.push_refused))
    integrator.rec.event(integrator.body, "MainPushed", f"main {result.main_commit[:12]} pushed")
    delay: float = await integrator.finish(
        result.main_commit, head, f"main updated to {result.main_commit[:12]} (pushed on a retry)"
    )
    return delay


async def _already_in_main(integrator: Any, engine: Any) -> float | None:
    """The tested sprint head (status.integratedCommit, written before main moves) is in the remote's
    main already: an operator killed after the push and before the sprint's end only has to end it
    (no second report, test run or merge)."""
    integrated = integrator.status.get("integratedCommit")
    main = await asyncio.to_thread(engine.head, engine.main_branch)
    if not integrated or main is None or not await asyncio.to_thread(engine.is_ancestor, integrated, main):
        return None
    return float(await integrator.finish(str(main), str(integrated), f"main updated to {main[:12]}"))


async def record_refusal(integrator: Any, main_commit: str, why: str) -> float:
    """The remote refused main: say so (condition Pushed=False/PushRefused, message, Event) and retry
    after a backoff. The sprint stays Integrating: its tested main is in the operator's clone."""
    status = integrator.status
    attempts = int((status.get("push") or {}).get("attempts") or 0) + 1
    delay = backoff(attempts)
    retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
    full = "the remote's disk is full: " if no_space(why) else ""  # the one rule of diskspace.py
    message = (
        f"main moved to {main_commit[:12]} in the operator's clone but the remote refused the push "
        f"(attempt {attempts}): {full}{why}; retrying in {delay:.0f}s"
    )[:4000]
    push = {
        "attempts": attempts,
        "lastError": why[:4000],
        "nextAttemptAt": retry_at.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }
    refused = set_condition(None, "Pushed", False, "PushRefused", message, now_iso())
    await integrator.rec.patch({"push": push, "message": message, "conditions": refused})  # by type
    status.update(push=push, message=message)
    integrator.rec.event(integrator.body, "PushRefused", message, warn=True)
    return delay


def pushed_condition(conditions: Any, main_commit: str) -> list[dict[str, Any]]:
    return set_condition(
        conditions, "Pushed", True, "Pushed", f"the remote's main is {main_commit[:12]}", now_iso()
    )
