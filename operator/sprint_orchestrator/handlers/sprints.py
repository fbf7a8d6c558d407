"""Sprint handlers: validation on every spec change, and one level-based loop per Sprint.

The loop (a kopf daemon) re-reads the Sprint and its Tasks from the API server each round, asks the
pure core what to do (plan.py), acts, and sleeps until a Task changes or a second passes. Being
level-based, it needs no memory across operator restarts: everything it needs is in `.status`.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import kopf

from .. import GROUP, VERSION
from ..errors import InvalidInput
from ..kube import SPRINTS, unreachable
from ..stamps import now_iso
from .conditions import merge_conditions, set_condition
from .context import OperatorContext
from .reconcile import SprintReconciler

IDLE_SECONDS = 1.0


def _ctx(memo: Any) -> OperatorContext:
    ctx = memo.get("context")
    assert isinstance(ctx, OperatorContext), "the operator's start-up handler did not run"
    return ctx


@kopf.on.create(GROUP, VERSION, SPRINTS, field="spec")
@kopf.on.update(GROUP, VERSION, SPRINTS, field="spec")
@kopf.on.resume(GROUP, VERSION, SPRINTS, field="spec")
async def check_spec(
    spec: kopf.Spec,
    status: kopf.Status,
    name: str,
    namespace: str | None,
    meta: kopf.Meta,
    memo: Any,
    **_: Any,
) -> None:
    """Validate the spec; a bad one gets Ready=False/InvalidSpec once, with no retry storm."""
    ctx = _ctx(memo)
    generation = int(meta.get("generation") or 0)
    try:
        ctx.accept_spec(spec)
        ready, reason, message = True, "Accepted", "the sprint spec is valid"
    except InvalidInput as exc:
        ready, reason, message = False, "InvalidSpec", "; ".join(exc.problems)[:4000]
    now = now_iso()
    ready_condition = set_condition(None, "Ready", ready, reason, message, now, generation)
    patch: dict[str, Any] = {"observedGeneration": generation}
    if not ready:
        patch["message"] = message
        if not status.get("phase"):
            patch["phase"] = "Pending"
        kopf.warn(cast(Any, _body_ref(name, str(namespace))), reason="InvalidSpec", message=message[:1000])
    # Ready merged by type into the conditions the Sprint has now: the sprint loop writes the others.
    await asyncio.to_thread(
        ctx.kube.patch_status_merged,
        SPRINTS,
        str(namespace),
        name,
        patch,
        lambda current: merge_conditions(current, ready_condition, now),
    )
    ctx.wake(f"{namespace}/{name}")


def _body_ref(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Sprint",
        "metadata": {"name": name, "namespace": namespace},
    }


@kopf.daemon(GROUP, VERSION, SPRINTS, cancellation_timeout=30.0, initial_delay=0.1)
async def sprint_loop(
    name: str, namespace: str | None, memo: Any, stopped: kopf.DaemonStopped, logger: Any, **_: Any
) -> None:
    ctx = _ctx(memo)
    key = f"{namespace}/{name}"
    wakeup = ctx.wakeup(key)
    reconciler = SprintReconciler(ctx, str(namespace), name, logger)
    try:
        while not stopped:
            wakeup.clear()
            try:
                delay = await reconciler.step()
            except Exception as exc:  # a bug or an unreachable API server: log, back off, keep the loop
                if unreachable(exc):
                    logger.warning("the API server is unreachable (%s); reconciling again in 5 s", exc)
                else:
                    logger.exception("sprint reconcile failed")
                delay = 5.0
            if delay is None:
                return
            await _sleep(wakeup, stopped, delay)
    finally:
        await reconciler.close()


async def _sleep(wakeup: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    waiters = [asyncio.ensure_future(wakeup.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
