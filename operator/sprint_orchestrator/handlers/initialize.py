"""A Sprint's first two phases: Pending (suspended, waiting for the sprint it runs after, queued behind
max_concurrent_sprints) and Initializing (the sprint branch, worktree and image; a missing API key or a
failed image build ends the sprint Failed before any task runs). Called by reconcile.py's loop with its
SprintReconciler as `rec`."""

from __future__ import annotations

from typing import Any

from .. import placement
from ..errors import ImageBuildFailed, OrchestratorError
from ..kube import SPRINTS
from ..model import SprintSpec
from ..stamps import now_iso
from ..teams import missing_key
from .conditions import set_condition

ACTIVE = frozenset({"Initializing", "Running", "Integrating"})  # the phases max_concurrent_sprints counts


async def pending(rec: Any, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]) -> float:
    await rec._write_counts(body, spec, tasks)
    status = body.get("status") or {}
    why = await wait_reason(rec, spec)
    if why:
        if status.get("message") != why:
            await rec.patch({"phase": "Pending", "message": why})
        return 2.0
    await rec.patch({"phase": "Initializing", "message": "creating the sprint branch and image"})
    rec.event(body, "Initializing", "sprint accepted; creating its branch, worktree and image")
    return 0.0


async def wait_reason(rec: Any, spec: SprintSpec) -> str | None:
    if spec.suspend:
        return "suspended: set spec.suspend=false (sprintctl start) to begin"
    if spec.after:
        before = await rec._call(rec.ctx.kube.get, SPRINTS, rec.namespace, spec.after)
        before_phase = ((before or {}).get("status") or {}).get("phase")
        if before_phase not in ("Completed", "Partial"):
            return f"waiting for sprint {spec.after!r} to complete (now {before_phase or 'absent'})"
    limit = int(getattr(getattr(rec.ctx.settings.config, "orchestrator", None), "max_concurrent_sprints", 1))
    # The sprints this operator runs, as their loops last saw them. Checked and claimed with no await
    # in between, so two sprints never take the last place at once.
    active = sorted(k for k, p in rec.ctx.sprint_phases.items() if p in ACTIVE and k != rec.key)
    if len(active) >= limit:
        running = ", ".join(active)
        return f"queued: {len(active)} sprint(s) running ({running}); max_concurrent_sprints is {limit}"
    rec.ctx.sprint_phases[rec.key] = "Initializing"
    return None


async def initializing(
    rec: Any, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]
) -> float:
    sprint_id = spec.resolved_id(rec.name)
    missing = missing_key(str(spec.team.type), rec.ctx.settings.api_keys)
    if missing:  # fail before any branch or image exists: the agent could not do a thing
        return await fail_init(rec, body, "MissingApiKey", missing)
    try:
        engine = await rec.engine(spec)
        refs = await rec._call(engine.create_sprint, sprint_id, f"{rec.namespace}/{rec.name}")
        rec.ref_events(body, refs.changes)
        runtime = await rec.ctx.get_runtime()
        image = await rec._call(build_image, rec, runtime, spec, sprint_id)
    except ImageBuildFailed as exc:
        return await fail_init(rec, body, "ImageBuildFailed", f"{exc}\n{exc.log_tail[-2000:]}")
    except OrchestratorError as exc:
        return await fail_init(rec, body, "InitFailed", str(exc))
    status = body.get("status") or {}
    await rec.patch(
        {
            "phase": "Running",
            "branch": refs.branch,
            "worktree": str(refs.worktree),
            "baseCommit": refs.base_commit,
            "image": image,
            "startedAt": status.get("startedAt") or now_iso(),
            "message": "running tasks" + ignored_placement(rec, spec),
            "conditions": set_condition(
                None,
                "Running",
                True,
                "Started",
                "tasks are being scheduled",
                now_iso(),
            ),
        }
    )
    rec.event(body, "Started", f"branch {refs.branch} at {refs.base_commit[:12]}, image {image}")
    return 0.0


def ignored_placement(rec: Any, spec: SprintSpec) -> str:
    """The podman runtime has no nodes: the scheduling fields the sprint set are ignored, said once."""
    containers = getattr(rec.ctx.settings.config, "containers", None)
    runtime = str(getattr(containers, "runtime", "podman"))
    return placement.ignored_by(runtime, spec.container.dump() if spec.container else None)


def build_image(rec: Any, runtime: Any, spec: SprintSpec, sprint_id: str) -> str:
    container = spec.container
    base = (container.base_image if container else None) or rec.default_base_image(spec.team.type)
    result = runtime.ensure_sprint_image(
        base,
        list(container.dependencies) if container else [],
        dict(container.environment) if container else {},
        {},  # images are content-addressed and shared by sprints: no sprint label on them
    )
    return str(result.tag)


async def fail_init(rec: Any, body: dict[str, Any], reason: str, message: str) -> float:
    await rec.patch(
        {
            "phase": "Failed",
            "message": message[:4000],
            "completedAt": now_iso(),
            "conditions": set_condition(None, "Ready", False, reason, message[:4000], now_iso()),
        }
    )
    rec.event(body, reason, message, warn=True)
    return 10.0
