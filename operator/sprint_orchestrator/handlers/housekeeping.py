"""Retention at the edge: after a sprint ends (and at start-up), remove what the policy drops
(retention.py) and run git maintenance on each clone none of whose sprints is active.

What a sprint leaves: `{state}/artifacts/{ns}/{name}/`, `{state}/sessions/{ns}/{name}/`, its container
logs `{state}/logs/so-…-{tenant}.*`, and in its repository's clone its worktree, task branches and
salvage refs (gitops/leftovers.py). Files are removed only inside their root, no link followed
(prunefs.py). One run at a time; the outcome is a log line and, after a sprint end, an Event on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import GROUP, VERSION, prunefs, retention
from ..errors import OrchestratorError
from ..kube import SPRINTS
from ..runtime import tenant_of
from .context import OperatorContext

log = logging.getLogger("sprint_orchestrator.retention")
_LOCKS: dict[int, asyncio.Lock] = {}
_GC_LIMITS = (("git_prune_after", 3600), ("git_loose_objects", 250), ("git_packs", 10))


@dataclass(frozen=True)
class SprintInfo:
    key: str  # namespace/name
    sprint_id: str
    tenant: str
    phase: str
    finished_at: dt.datetime | None
    repository: tuple[str, str] | None  # (url, main branch)


@dataclass
class Outcome:
    removed: Counter[str] = field(default_factory=Counter)
    freed: int = 0
    sprints: set[str] = field(default_factory=set)
    maintained: list[str] = field(default_factory=list)

    def sentence(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.removed.items())) or "nothing"
        gc = "; git maintenance: " + ", ".join(self.maintained) if self.maintained else ""
        return f"retention pruned {len(self.sprints)} sprint(s): {kinds} ({self.freed} bytes){gc}"


def schedule(ctx: OperatorContext, ended: tuple[str, str] | None = None) -> None:
    """Run retention in the background (a sprint end does not wait for it); `ended`: (ns, name)."""
    task = asyncio.create_task(run(ctx, ended), name="retention")
    ctx.background.add(task)
    task.add_done_callback(ctx.background.discard)


async def run(ctx: OperatorContext, ended: tuple[str, str] | None = None) -> Outcome | None:
    section = getattr(ctx.settings.config, "retention", None)
    policy = retention.policy_of(section)
    if not policy.enabled and not getattr(section, "git_maintenance", True):
        return None
    async with _LOCKS.setdefault(id(ctx), asyncio.Lock()):
        try:
            outcome = await _run(ctx, policy, section)
            await _report(ctx, outcome, ended)
        except OrchestratorError as exc:  # the API server or git said no: the next sprint end tries again
            log.warning("retention did not run to its end: %s", exc)
            return None
        except Exception:  # a bug: said loudly, and the operator goes on
            log.exception("retention failed")
            return None
    return outcome


async def _report(ctx: OperatorContext, outcome: Outcome, ended: tuple[str, str] | None) -> None:
    """A log line; after a sprint end, an Event on that Sprint (also when there was nothing to do)."""
    log.info(outcome.sentence(), extra={"removed": dict(outcome.removed), "freed_bytes": outcome.freed})
    if ended is not None:
        meta = {"name": ended[1], "namespace": ended[0]}
        ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Sprint", "metadata": meta}
        message = outcome.sentence()[:1000]
        await asyncio.to_thread(ctx.kube.event, ref, "Retention", message, "Normal", "sprint-orchestrator")


async def _run(ctx: OperatorContext, policy: retention.Policy, section: Any) -> Outcome:
    sprints = await asyncio.to_thread(_sprints, ctx)
    now = dt.datetime.now(dt.UTC)
    outcome = Outcome()
    files = await asyncio.to_thread(_file_items, ctx, sprints)
    roots = {item.where: root for item, root in files}
    for item in retention.to_prune([item for item, _ in files], policy, now):
        root = roots[item.where]
        try:
            outcome.freed += await asyncio.to_thread(prunefs.remove, root, Path(item.where))
        except (OrchestratorError, OSError) as exc:
            log.warning("retention could not remove %s: %s", item.where, exc)
            continue
        outcome.removed[item.kind] += 1
        outcome.sprints.add(item.sprint or item.where)
    for clone, members in _by_clone(ctx, sprints).items():
        engine = _engine(ctx, clone)
        if engine is None:
            continue
        await _prune_clone(engine, members, policy, now, outcome)
        if getattr(section, "git_maintenance", True) and retention.may_maintain(s.phase for s in members):
            limits = [int(getattr(section, k, d)) for k, d in _GC_LIMITS]
            sizes = await asyncio.to_thread(engine.maintain, *limits)
            outcome.maintained.append(
                f"{clone.name} {sizes[0]} -> {sizes[1]} bytes" if sizes else f"{clone.name} not due"
            )
    return outcome


async def _prune_clone(
    engine: Any, members: list[SprintInfo], policy: retention.Policy, now: dt.datetime, outcome: Outcome
) -> None:
    by_id = {s.sprint_id: s for s in members}
    found = await asyncio.to_thread(engine.sprint_leftovers)
    items = [_git_item(left, by_id.get(left.sprint)) for left in found]
    dropped = {id(item) for item in retention.to_prune(items, policy, now)}
    for left, item in zip(found, items, strict=True):
        if id(item) not in dropped:
            continue
        try:
            outcome.freed += await asyncio.to_thread(engine.drop_leftover, left)
        except OrchestratorError as exc:
            log.warning("retention could not drop %s: %s", left.where, exc)
            continue
        outcome.removed[item.kind] += 1
        outcome.sprints.add(item.sprint or left.where)


def _git_item(left: Any, sprint: SprintInfo | None) -> retention.Item:
    if sprint is None:  # its Sprint resource is gone: by its own age
        return retention.Item(left.kind, "", left.where, dt.datetime.fromtimestamp(left.when, dt.UTC))
    return _item(left.kind, sprint, left.where)


def _item(kind: str, sprint: SprintInfo, where: str) -> retention.Item:
    running = sprint.phase not in retention.TERMINAL_PHASES
    return retention.Item(kind, sprint.key, where, sprint.finished_at, running)


def _sprints(ctx: OperatorContext) -> list[SprintInfo]:
    namespaces: tuple[str | None, ...] = ctx.settings.namespaces or (None,)
    bodies = [body for ns in namespaces for body in ctx.kube.list_objects(SPRINTS, ns)]
    return [_info(ctx, body) for body in bodies]


def _info(ctx: OperatorContext, body: dict[str, Any]) -> SprintInfo:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta["name"])
    phase = str(status.get("phase") or "Pending")
    # completedAt; a finished Sprint without one (an older status) counts from its creation
    finished = status.get("completedAt") or meta.get("creationTimestamp")
    repo = spec.get("repository") or {}
    git = getattr(ctx.settings.config, "git", None)
    url = repo.get("url") or getattr(git, "repository_url", None)
    main = repo.get("mainBranch") or getattr(git, "main_branch", "main") or "main"
    return SprintInfo(
        f"{namespace}/{name}",
        str(spec.get("sprintId") or name),
        tenant_of(namespace, name),
        phase,
        _parse_time(str(finished)) if finished and phase in retention.TERMINAL_PHASES else None,
        (str(url), str(main)) if url else None,
    )


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _file_items(ctx: OperatorContext, sprints: list[SprintInfo]) -> list[tuple[retention.Item, Path]]:
    by_key = {s.key: s for s in sprints}
    by_tenant = {s.tenant: s for s in sprints}
    out: list[tuple[retention.Item, Path]] = []
    state = ctx.settings.state_dir
    for kind, root in (("artifacts", ctx.settings.artifacts_dir), ("sessions", state / "sessions")):
        for ns_dir in prunefs.entries(root):
            for path in prunefs.entries(ns_dir):
                out.append((_file_item(kind, by_key.get(f"{ns_dir.name}/{path.name}"), path), root))
    logs = state / "logs"
    for path in prunefs.entries(logs):
        if path.name.startswith("so-") and not path.is_dir():
            tenant = path.name.split(".")[0].rsplit("-", 1)[-1]
            out.append((_file_item("logs", by_tenant.get(tenant), path), logs))
    return out


def _file_item(kind: str, sprint: SprintInfo | None, path: Path) -> retention.Item:
    if sprint is not None:
        return _item(kind, sprint, str(path))
    when = prunefs.mtime(path)  # its Sprint resource is gone: by its own age
    at = dt.datetime.fromtimestamp(when, dt.UTC) if when is not None else None
    return retention.Item(kind, "", str(path), at)


def _by_clone(ctx: OperatorContext, sprints: list[SprintInfo]) -> dict[Path, list[SprintInfo]]:
    """Sprints by the clone they use (one per repository URL, whatever its main branch)."""
    from ..gitops import GitEngine

    out: dict[Path, list[SprintInfo]] = {}
    for sprint in sprints:
        if sprint.repository is not None:
            root = GitEngine.root_for(ctx.settings.trees_dir, sprint.repository[0])
            out.setdefault(root, []).append(sprint)
    return out


def _engine(ctx: OperatorContext, clone: Path) -> Any:
    """The clone's engine when this process has opened it (retention never clones or opens one: a
    repository's sprints open it, and its next sprint end prunes it)."""
    for engine in list(ctx.engines.values()):
        if Path(engine.gitdir).parent == clone.resolve():
            return engine
    return None
