"""Deleting a Sprint: our finalizer (sprintorchestrator.dev/finalizer) holds it until nothing of it runs.

The delete handler is not optional, so kopf puts the finalizer on every Sprint and runs this before the
Sprint goes, whatever phase it was in (and again after an operator restart until it succeeds). It stops
the sprint's runners and every task container of this Sprint resource, then cleans its git state:
worktrees removed, uncommitted work and task commits the sprint branch lacks kept under
refs/sprint-orchestrator/salvage/..., task branches deleted. Main and the sprint branch are not touched.
Its Task resources go with it (owner references).
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from .. import GROUP, VERSION
from ..errors import InvalidInput, OrchestratorError
from ..kube import SPRINTS
from ..runtime import tenant_of
from .context import OperatorContext
from .reconcile import SprintReconciler


@kopf.on.delete(GROUP, VERSION, SPRINTS)
async def sprint_deleted(
    name: str, namespace: str | None, spec: kopf.Spec, memo: Any, logger: Any, **_: Any
) -> None:
    ctx = memo.get("context")
    assert isinstance(ctx, OperatorContext), "the operator's start-up handler did not run"
    key = f"{namespace}/{name}"
    ctx.wake(key)  # its loop sees the deletionTimestamp and stops
    runners = [ctx.runners.pop(k) for k in [k for k in ctx.runners if k.startswith(key + "/")]]
    for runner in runners:
        runner.cancel()
    await asyncio.gather(*runners, return_exceptions=True)
    rec = SprintReconciler(ctx, str(namespace), name, logger)
    try:
        accepted = ctx.accept_spec(spec)
    except InvalidInput:
        accepted = None
    sprint_id = accepted.resolved_id(name) if accepted is not None else str(spec.get("sprintId") or name)
    try:
        runtime = await ctx.get_runtime()
        containers = await asyncio.to_thread(
            runtime.find_task_containers, sprint_id, tenant_of(str(namespace), name)
        )
        for container in containers:
            await asyncio.to_thread(runtime.remove, container.name)
    except OrchestratorError as exc:
        raise kopf.TemporaryError(f"could not stop the sprint's containers: {exc}", delay=10) from exc
    salvaged: list[str] = []
    if accepted is not None:
        try:
            engine = await rec.engine(accepted)
            salvaged = (await asyncio.to_thread(engine.abandon_sprint, sprint_id)).salvage_refs
        except OrchestratorError as exc:  # no repository (never started): nothing of git to clean
            logger.info("sprint %s deleted; no git state cleaned: %s", key, exc)
    logger.info(
        "sprint %s deleted: %d container(s) stopped, work kept in %s",
        key,
        len(containers),
        ", ".join(salvaged) or "no salvage ref (nothing unmerged)",
    )
