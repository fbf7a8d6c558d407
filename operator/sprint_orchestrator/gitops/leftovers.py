"""What finished sprints leave in the operator's clone, dropping it, and git maintenance between sprints.

A finished sprint leaves its sprint worktree (`sprints/<id>`), its task branches
(`refs/heads/task/<id>/*`) and the salvage refs cleanup wrote (`refs/sprint-orchestrator/salvage/<id>/…`,
`salvage-sprint/<id>`); a push that found main moved leaves `salvage-main/<commit>` (no sprint). The
retention policy (retention.py) decides which go; `drop` removes one, `maintain` runs `git gc` when due.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import GitError
from ..prunefs import inside, size
from ..retention import gc_plan
from . import worktrees
from .core import ORCHESTRATOR_REFS, Core, sprint_worktree_name, task_worktree_name
from .validate import check_ref_component

TASK_BRANCHES = "refs/heads/task/"
SALVAGE = f"{ORCHESTRATOR_REFS}/salvage/"
SALVAGE_SPRINT = f"{ORCHESTRATOR_REFS}/salvage-sprint/"
SALVAGE_MAIN = f"{ORCHESTRATOR_REFS}/salvage-main/"
GC_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Leftover:
    kind: str  # worktree, task-trees, task-branch, salvage-ref
    sprint: str  # the sprint id ("" for salvage-main)
    where: str  # a ref name or a path
    when: float  # unix time: the ref's commit time, the directory's mtime


def leftovers(core: Core) -> list[Leftover]:
    """Every per-sprint leftover in the clone and its trees directory."""
    out = [_of_ref(core, name) for name in sorted(core.repo().references)]
    found = [item for item in out if item is not None]
    root = core.layout.root
    for kind, parent in (("worktree", root / "sprints"), ("task-trees", root / "tasks")):
        for path in sorted(parent.glob("*")) if parent.is_dir() else []:
            found.append(Leftover(kind, path.name, str(path), os.lstat(path).st_mtime))
    return found


def _of_ref(core: Core, name: str) -> Leftover | None:
    if name.startswith(TASK_BRANCHES):
        kind, sprint = "task-branch", name.removeprefix(TASK_BRANCHES).split("/")[0]
    elif name.startswith(SALVAGE):
        kind, sprint = "salvage-ref", name.removeprefix(SALVAGE).split("/")[0]
    elif name.startswith(SALVAGE_SPRINT):
        kind, sprint = "salvage-ref", name.removeprefix(SALVAGE_SPRINT)
    elif name.startswith(SALVAGE_MAIN):
        kind, sprint = "salvage-ref", ""
    else:
        return None
    head = core.head(name)
    when = float(core.commit(head, name).commit_time) if head else 0.0
    return Leftover(kind, sprint, name, when)


def drop(core: Core, item: Leftover) -> int:
    """Remove one leftover; the bytes of the directories removed (a ref's objects go at the next gc)."""
    if item.sprint:
        check_ref_component(item.sprint, "sprint id")
    with core.lock.held():
        if item.kind in ("task-branch", "salvage-ref"):
            head = core.head(item.where)
            if head is not None:
                core.delete_ref(item.where, head, "retention: past the policy", item.sprint or None)
            return 0
        root = core.layout.root
        path = root / ("sprints" if item.kind == "worktree" else "tasks") / item.sprint
        if not inside(root, path):  # a symlinked sprints/ or tasks/: nothing of ours to remove there
            raise GitError(f"retention: {path} is not inside {root}; not removed")
        freed = size(path)
        if item.kind == "worktree":
            worktrees.drop(core, sprint_worktree_name(item.sprint), path)
            return freed
        _drop_task_trees(core, item.sprint, path)
        return freed


def _drop_task_trees(core: Core, sprint: str, path: Path) -> None:
    for attempt in sorted(path.glob("*/*")):
        if attempt.name.isdigit():
            name = task_worktree_name(sprint, attempt.parent.name, int(attempt.name))
            worktrees.drop(core, name, attempt / "worktree")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)


def maintain(core: Core, prune_after_s: int, loose_limit: int, pack_limit: int) -> tuple[int, int] | None:
    """Git maintenance of the clone when due (retention.gc_plan), under the repository lock (so no
    sprint starts meanwhile): git gc --auto's steps, decided here so they are deterministic. Past
    `loose_limit` loose objects, they go into a new pack (`repack -d -l`: a walk, no rewrite of the old
    packs), unreachable loose objects older than `prune_after_s` are pruned and refs packed; past
    `pack_limit` packs, a full `git gc` makes one pack. Returns the clone's bytes before and after, None
    when nothing was due. GitError when git is missing or fails."""
    gitdir = core.layout.gitdir
    with core.lock.held():
        plan = gc_plan(*object_counts(gitdir), loose_limit, pack_limit)
        if plan is None:
            return None
        before = size(gitdir)
        grace = f"{int(prune_after_s)}.seconds.ago"
        steps = {
            "incremental": [
                ["repack", "-d", "-l", "-q"],
                ["prune", f"--expire={grace}"],
                ["pack-refs", "--all", "--prune"],
            ],
            "full": [["-c", "gc.autoDetach=false", "gc", "--quiet", f"--prune={grace}"]],
        }[plan]  # fmt: skip
        for step in steps:
            _git(gitdir, step)
        return before, size(gitdir)


def _git(gitdir: Path, args: list[str]) -> None:
    try:
        done = subprocess.run(
            ["git", f"--git-dir={gitdir}", *args], capture_output=True, text=True, timeout=GC_TIMEOUT_S,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git maintenance of {gitdir} did not run: {exc}") from exc
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed on {gitdir}: {done.stderr.strip()[-500:]}")


def object_counts(gitdir: Path) -> tuple[int, int]:
    """(loose objects, packs) of a repository, as `git count-objects` counts them."""
    objects = gitdir / "objects"
    loose = sum(
        len(os.listdir(d)) for d in objects.glob("[0-9a-f][0-9a-f]") if d.is_dir() and not d.is_symlink()
    )
    return loose, len(list((objects / "pack").glob("*.pack")))
