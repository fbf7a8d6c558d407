"""Salvage, cleanup and crash recovery: nothing is deleted before its work is reachable from a ref."""

from __future__ import annotations

import shutil
from pathlib import Path

import pygit2

from . import worktrees
from .core import (
    ORCHESTRATOR_REFS,
    Core,
    sprint_branch,
    sprint_worktree_name,
    task_branch,
    task_worktree_name,
)
from .locks import stale_lock_files
from .results import CleanupResult, RecoveryReport, RefChange
from .snapshot import snapshot
from .validate import check_ref_component


def salvage(core: Core, sprint: str, task: str, attempt: int) -> list[RefChange]:
    """Save a task attempt's uncommitted work (workspace, worktree) under the salvage refs."""
    task_dir = core.layout.task_dir(sprint, task, attempt)
    data = worktrees.read_json(task_dir / "manifest.json")
    head = core.head(f"refs/heads/{task_branch(sprint, task)}")
    if data is None or head is None:
        return []
    scope = None if data["paths"] is None else set(data["paths"])
    prefix = f"{ORCHESTRATOR_REFS}/salvage/{sprint}/{task}/{attempt}"
    changes = []
    for ref, directory, dir_scope in (
        (prefix, task_dir / "workspace", scope),
        (f"{prefix}-worktree", task_dir / "worktree", None),
    ):
        change = _save_dir(core, ref, head, directory, dir_scope, sprint, task)
        if change is not None:
            changes.append(change)
    return changes


def _save_dir(
    core: Core, ref: str, head: str, directory: Path, scope: set[str] | None, sprint: str, task: str | None
) -> RefChange | None:
    if not directory.is_dir():
        return None
    repo = core.repo()
    base = core.commit(head, "branch head").tree
    tree_id = snapshot(repo, base, directory, scope)
    if tree_id == base.id:
        return None
    sig = core.committer()
    message = f"Salvage of uncommitted work in {directory}\n\nSprint: {sprint}\nTask: {task or '-'}\n"
    commit = str(repo.create_commit(None, sig, sig, message, tree_id, [pygit2.Oid(hex=head)]))
    with core.lock.held():
        return core.set_ref(ref, commit, core.head(ref), "salvage uncommitted work", sprint, task)


def cleanup_task(core: Core, sprint: str, task: str, attempt: int, delete_branch: bool) -> CleanupResult:
    check_ref_component(sprint, "sprint_id")
    check_ref_component(task, "task_id")
    changes = salvage(core, sprint, task, attempt)
    task_dir = core.layout.task_dir(sprint, task, attempt)
    name = task_worktree_name(sprint, task, attempt)
    removed = []
    with core.lock.held():
        if worktrees.drop(core, name, task_dir / "worktree"):
            removed.append(str(task_dir / "worktree"))
        if task_dir.exists():
            shutil.rmtree(task_dir)
            removed.append(str(task_dir))
        (core.layout.journal / f"{name}.json").unlink(missing_ok=True)
        if delete_branch:
            changes += _delete_task_branch(core, sprint, task, attempt)
        _remove_empty_parents(task_dir, core.layout.root)
    return CleanupResult(
        removed, [c.ref for c in changes if c.new is not None and "salvage" in c.ref], tuple(changes)
    )


def _delete_task_branch(core: Core, sprint: str, task: str, attempt: int) -> list[RefChange]:
    ref = f"refs/heads/{task_branch(sprint, task)}"
    head = core.head(ref)
    if head is None:
        return []
    changes = []
    sprint_head = core.head(f"refs/heads/{sprint_branch(sprint)}")
    merged = sprint_head is not None and (sprint_head == head or core.repo().descendant_of(sprint_head, head))
    if not merged:
        keep = f"{ORCHESTRATOR_REFS}/salvage/{sprint}/{task}/{attempt}-branch"
        changes.append(core.set_ref(keep, head, core.head(keep), "keep unmerged task commits", sprint, task))
    changes.append(core.delete_ref(ref, head, "delete task branch", sprint, task))
    return changes


def cleanup_sprint(core: Core, sprint: str) -> CleanupResult:
    """Clean every task attempt of the sprint and the sprint worktree; the sprint branch stays."""
    check_ref_component(sprint, "sprint_id")
    removed: list[str] = []
    changes: list[RefChange] = []
    for attempt_dir in sorted((core.layout.root / "tasks" / sprint).glob("*/*")):
        if attempt_dir.name.isdigit():
            result = cleanup_task(core, sprint, attempt_dir.parent.name, int(attempt_dir.name), False)
            removed += result.removed
            changes += result.changes
    path = core.layout.sprint_worktree(sprint)
    head = core.head(f"refs/heads/{sprint_branch(sprint)}")
    if head is not None:
        change = _save_dir(
            core, f"{ORCHESTRATOR_REFS}/salvage-sprint/{sprint}", head, path, None, sprint, None
        )
        changes += [change] if change is not None else []
    with core.lock.held():
        if worktrees.drop(core, sprint_worktree_name(sprint), path):
            removed.append(str(path))
    return CleanupResult(
        removed, [c.ref for c in changes if c.new is not None and "salvage" in c.ref], tuple(changes)
    )


def abandon_sprint(core: Core, sprint: str) -> CleanupResult:
    """A deleted Sprint: clean it (cleanup_sprint) and delete its task branches, each one's commits that
    the sprint branch lacks kept first under salvage/{sprint}/{task}/abandoned-{commit}. The sprint
    branch, with the work merged into it, stays."""
    result = cleanup_sprint(core, sprint)
    changes = list(result.changes)
    prefix = f"refs/heads/{task_branch(sprint, '')}"
    with core.lock.held():
        sprint_head = core.head(f"refs/heads/{sprint_branch(sprint)}")
        for ref in sorted(r for r in core.repo().references if r.startswith(prefix)):
            head = core.head(ref)
            task = ref.removeprefix(prefix)
            if head is None or "/" in task:
                continue
            merged = sprint_head is not None and (
                sprint_head == head or core.repo().descendant_of(sprint_head, head)
            )
            if not merged:
                keep = f"{ORCHESTRATOR_REFS}/salvage/{sprint}/{task}/abandoned-{head[:12]}"
                if core.head(keep) is None:
                    changes.append(
                        core.set_ref(keep, head, None, "keep an abandoned task's commits", sprint, task)
                    )
            changes.append(
                core.delete_ref(ref, head, "delete the task branch of a deleted sprint", sprint, task)
            )
    salvaged = [c.ref for c in changes if c.new is not None and "salvage" in c.ref]
    return CleanupResult(result.removed, salvaged, tuple(changes))


def _remove_empty_parents(path: Path, stop: Path) -> None:
    for parent in path.parents:
        if parent == stop or not parent.is_relative_to(stop):
            return
        try:
            parent.rmdir()
        except OSError:
            return


def recover(core: Core) -> RecoveryReport:
    """Undo what a killed operator left half-done: stale locks, half-created worktrees and branches."""
    with core.lock.held():
        locks = [str(p) for p in stale_lock_files(core.layout.gitdir)]
        for lock in locks:
            Path(lock).unlink(missing_ok=True)
        changes, removed = _replay_journal(core)
        pruned = _prune_admin_dirs(core)
        removed += _remove_unregistered_dirs(core)
        resynced = _resync_sprint_worktrees(core)
    return RecoveryReport(locks, pruned, removed, resynced, tuple(changes))


def _replay_journal(core: Core) -> tuple[list[RefChange], list[str]]:
    """A journal entry without a finished manifest is a task creation that died: undo it."""
    changes: list[RefChange] = []
    removed: list[str] = []
    for entry in sorted(core.layout.journal.glob("*.json")):
        data = worktrees.read_json(entry)
        if data is not None and not (Path(data["task_dir"]) / "manifest.json").exists():
            task_dir = Path(data["task_dir"])
            worktrees.drop(core, data["worktree"], task_dir / "worktree")
            if task_dir.exists():
                shutil.rmtree(task_dir)
                removed.append(str(task_dir))
            if data["created"] and core.head(data["branch"]) == data["base"]:
                changes.append(core.delete_ref(data["branch"], data["base"], "undo half-created task"))
        entry.unlink()
    return changes, removed


def _prune_admin_dirs(core: Core) -> list[str]:
    pruned = []
    for admin in sorted((core.layout.gitdir / "worktrees").glob("*")):
        gitdir_file = admin / "gitdir"
        ok = all((admin / f).is_file() for f in ("HEAD", "commondir")) and gitdir_file.is_file()
        if not ok or not Path(gitdir_file.read_text().strip()).is_file():
            shutil.rmtree(admin)
            pruned.append(admin.name)
    return pruned


def _remove_unregistered_dirs(core: Core) -> list[str]:
    """Worktree directories of ours whose registration is gone (a worktree add that died early)."""
    root = core.layout.root
    candidates = [*(root / "sprints").glob("*"), *(root / "tasks").glob("*/*/*/worktree")]
    registered = {
        Path((admin / "gitdir").read_text().strip()).parent.resolve()
        for admin in (core.layout.gitdir / "worktrees").glob("*")
        if (admin / "gitdir").is_file()
    }
    removed = []
    for path in candidates:
        if path.resolve() not in registered:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def _resync_sprint_worktrees(core: Core) -> list[str]:
    """A merge killed mid-checkout leaves the sprint worktree half-updated; sprint worktrees are ours."""
    resynced = []
    for path in sorted((core.layout.root / "sprints").glob("*")):
        if worktrees.is_healthy(core, sprint_worktree_name(path.name), path):
            worktrees.resync(path)
            resynced.append(str(path))
    return resynced
