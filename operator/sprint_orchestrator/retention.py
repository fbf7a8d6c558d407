"""What the operator keeps of finished sprints, and when it may run git maintenance: pure decisions.

Each thing a sprint leaves behind (its artifacts, container logs, agent sessions, worktree, task
branches, salvage refs) is an `Item` naming its sprint. The policy keeps everything of the
`keep_sprints` most recently finished sprints that finished less than `max_age_s` ago, and everything of
a sprint that has not finished; the rest is pruned. An item whose Sprint resource is gone (deleted, so
its finalizer already salvaged what it had) carries its own time and goes when that is older than
`max_age_s`: it takes no place in the count.

    keep_sprints=2, now=day 10: sprints finished on days 9, 8, 7 and one running
    -> the items of day 7 go; those of days 9 and 8 and the running one stay.

Salvage refs and unmerged task branches of a pruned sprint are the only holders of that work: past the
window, dropping them is what the policy is for (README "Retention").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ACTIVE_PHASES = frozenset({"Initializing", "Running", "Integrating"})
TERMINAL_PHASES = frozenset({"Completed", "Partial", "Failed", "RolledBack"})


@dataclass(frozen=True)
class Policy:
    keep_sprints: int = 20
    max_age_s: int = 30 * 86400
    enabled: bool = True


@dataclass(frozen=True)
class Item:
    kind: str  # artifacts, sessions, logs, worktree, task-branch, salvage-ref
    sprint: str  # "namespace/name" of its Sprint resource; "" when that resource is gone
    where: str  # a path, or a ref name
    finished_at: dt.datetime | None  # the sprint's completedAt; for an orphan, the item's own time
    running: bool = False  # its sprint has not finished (any phase but a terminal one)


def policy_of(section: object | None) -> Policy:
    """The configuration's retention section (config.RetentionSection) as a Policy."""
    if section is None:
        return Policy()
    return Policy(
        keep_sprints=int(getattr(section, "keep_sprints", 20)),
        max_age_s=int(getattr(section, "max_age_days", 30)) * 86400,
        enabled=bool(getattr(section, "enabled", True)),
    )


def kept_sprints(items: Iterable[Item], policy: Policy, now: dt.datetime) -> set[str]:
    """The finished sprints whose items stay: the newest `keep_sprints`, none past `max_age_s`."""
    finished: dict[str, dt.datetime] = {}
    for item in items:
        if item.sprint and not item.running and item.finished_at is not None:
            finished[item.sprint] = max(item.finished_at, finished.get(item.sprint, item.finished_at))
    newest = sorted(finished, key=lambda key: (finished[key], key), reverse=True)
    return {key for key in newest[: policy.keep_sprints] if not _expired(finished[key], policy, now)}


def to_prune(items: Sequence[Item], policy: Policy, now: dt.datetime) -> list[Item]:
    """The items the policy drops, in the order given; never one of a sprint that has not finished."""
    if not policy.enabled:
        return []
    running = {item.sprint for item in items if item.sprint and item.running}
    kept = kept_sprints(items, policy, now)
    out = []
    for item in items:
        if item.running or item.finished_at is None or item.sprint in running:
            continue
        if item.sprint not in kept if item.sprint else _expired(item.finished_at, policy, now):
            out.append(item)
    return out


def may_maintain(phases: Iterable[str]) -> bool:
    """Git maintenance on a repository's clone only between sprints: none of its sprints active. A
    Pending sprint has not touched git yet, and its start waits for the repository lock maintenance
    holds."""
    return not any(phase in ACTIVE_PHASES for phase in phases)


def gc_plan(loose: int, packs: int, loose_limit: int, pack_limit: int) -> str | None:
    """Which git maintenance a clone needs, as `git gc --auto` decides (with its thresholds given):
    "full" (one pack of everything) past `pack_limit` packs, "incremental" (the loose objects into a
    new pack) past `loose_limit` loose objects (each a file, a disk block at least), else None.

    (1001, 3, 1000, 10) -> "incremental"; (5, 11, 1000, 10) -> "full"; (10, 1, 1000, 10) -> None
    """
    if packs > pack_limit:
        return "full"
    return "incremental" if loose > loose_limit else None


def _expired(when: dt.datetime, policy: Policy, now: dt.datetime) -> bool:
    return (now - when).total_seconds() > policy.max_age_s
