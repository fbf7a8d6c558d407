"""Merges, always in memory first: task -> sprint, main -> sprint, sprint -> main, and bisect rebuilds."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

import pygit2

from ..errors import MergeRefused
from ..faults import checkpoint
from . import worktrees
from .core import ORCHESTRATOR_REFS, Core, sprint_branch, sprint_worktree_name, task_branch
from .remote import Origin, fetch_main, push_blocker, push_main, remote_main
from .results import MainResult, MergeResult, RefChange
from .validate import check_ref_component


def merge_in_memory(
    repo: pygit2.Repository, ours: str, theirs: str, message: str, sig: pygit2.Signature
) -> tuple[str | None, list[str]]:
    """(merge commit, []) when clean, (None, conflicting paths) otherwise; no worktree is touched."""
    index = repo.merge_commits(ours, theirs)
    if index.conflicts is not None:
        paths = {entry.path for triple in index.conflicts for entry in triple if entry is not None}
        return None, sorted(paths)
    tree = index.write_tree(repo)
    parents = [pygit2.Oid(hex=ours), pygit2.Oid(hex=theirs)]
    return str(repo.create_commit(None, sig, sig, message, tree, parents)), []


def contains(repo: pygit2.Repository, head: str, commit: str) -> bool:
    return head == commit or bool(repo.descendant_of(head, commit))


def merge_task(core: Core, sprint: str, task: str, expected: str) -> MergeResult:
    check_ref_component(sprint, "sprint_id")
    check_ref_component(task, "task_id")
    repo = core.repo()
    with core.lock.held():
        head = core.require_head(f"refs/heads/{task_branch(sprint, task)}", "task branch")
        if head != expected:
            raise MergeRefused(
                f"task branch {task_branch(sprint, task)} moved from the gated commit "
                f"{expected} to {head}; run the gates on the new commit before merging"
            )
        sref = f"refs/heads/{sprint_branch(sprint)}"
        sprint_head = core.require_head(sref, "sprint branch")
        if contains(repo, sprint_head, expected):
            return MergeResult(
                True, sprint_head, [], f"task {task} is already merged into {sprint_branch(sprint)}"
            )
        message = f"Merge task {task} into sprint {sprint}\n\nSprint: {sprint}\nTask: {task}\n"
        commit, conflicts = merge_in_memory(repo, sprint_head, expected, message, core.committer())
        if commit is None:
            return MergeResult(
                False,
                None,
                conflicts,
                f"task {task} conflicts with {sprint_branch(sprint)} "
                f"in {len(conflicts)} path(s): {', '.join(conflicts[:10])}",
            )
        change = core.set_ref(sref, commit, sprint_head, f"merge task {task}", sprint, task)
        _resync_sprint(core, sprint)
    return MergeResult(True, commit, [], f"task {task} merged into {sprint_branch(sprint)}", (change,))


MERGE_ORDER_WALK = 100_000  # first-parent commits read at most, past the sprint's own merges


def merge_order(core: Core, sprint: str, commits: Collection[str]) -> list[str]:
    """The commits of `commits` in the order they were merged into the sprint branch, oldest first:
    the second parents along its first-parent history (a task's merge, or a bisect rebuild's). The
    branch is the record, so no second copy of the order has to be written per merge. The walk stops
    when every commit is found (the sprint's merges are its newest commits); one never merged is left
    out."""
    check_ref_component(sprint, "sprint_id")
    head = core.head(f"refs/heads/{sprint_branch(sprint)}")
    wanted, found = set(commits), []
    commit = core.commit(head, "sprint head") if head else None
    for _ in range(len(wanted) + MERGE_ORDER_WALK):
        if commit is None or not wanted:
            break
        parents = commit.parent_ids
        if len(parents) > 1 and str(parents[1]) in wanted:
            found.append(str(parents[1]))
            wanted.discard(str(parents[1]))
        commit = core.commit(str(parents[0]), "first parent") if parents else None
    return found[::-1]


def merge_main_into_sprint(core: Core, origin: Origin, sprint: str) -> MergeResult:
    check_ref_component(sprint, "sprint_id")
    repo = core.repo()
    with core.lock.held():
        changes = fetch_main(core, origin)
        main_head = core.require_head(f"refs/heads/{core.main_branch}", "the main branch")
        sref = f"refs/heads/{sprint_branch(sprint)}"
        sprint_head = core.require_head(sref, "sprint branch")
        if contains(repo, sprint_head, main_head):
            return MergeResult(
                True,
                sprint_head,
                [],
                f"{sprint_branch(sprint)} already contains {core.main_branch}",
                tuple(changes),
            )
        message = f"Merge {core.main_branch} into sprint {sprint}\n\nSprint: {sprint}\n"
        commit, conflicts = merge_in_memory(repo, sprint_head, main_head, message, core.committer())
        if commit is None:
            return MergeResult(
                False,
                None,
                conflicts,
                f"{core.main_branch} conflicts with {sprint_branch(sprint)} in: {', '.join(conflicts[:10])}",
                tuple(changes),
            )
        changes.append(core.set_ref(sref, commit, sprint_head, f"merge {core.main_branch}", sprint))
        _resync_sprint(core, sprint)
    return MergeResult(
        True, commit, [], f"{core.main_branch} merged into {sprint_branch(sprint)}", tuple(changes)
    )


def merge_sprint_to_main(
    core: Core, origin: Origin, sprint: str, tested: str, expected_main: str
) -> MainResult:
    """Move main to the tested sprint head by CAS on `expected_main` (fast-forward when possible)."""
    check_ref_component(sprint, "sprint_id")
    repo = core.repo()
    with core.lock.held():
        changes = fetch_main(core, origin)
        sprint_head = core.require_head(f"refs/heads/{sprint_branch(sprint)}", "sprint branch")
        if sprint_head != tested:
            raise MergeRefused(
                f"{sprint_branch(sprint)} moved from the tested commit {tested} to "
                f"{sprint_head}; test the new head before merging it into main"
            )
        mref = f"refs/heads/{core.main_branch}"
        main_head = core.require_head(mref, "the main branch")
        if main_head != expected_main:
            return MainResult(
                main_head,
                False,
                True,
                f"{core.main_branch} moved from {expected_main} to "
                f"{main_head}; merge it into the sprint and test again",
                changes=tuple(changes),
            )
        if contains(repo, main_head, tested):
            return MainResult(
                main_head,
                False,
                False,
                f"{core.main_branch} already contains the sprint",
                changes=tuple(changes),
            )
        return _move_main(core, origin, sprint, tested, main_head, changes)


def _move_main(
    core: Core, origin: Origin, sprint: str, tested: str, main_head: str, changes: list[RefChange]
) -> MainResult:
    repo = core.repo()
    fast_forward = contains(repo, tested, main_head)
    new = tested
    if not fast_forward:
        message = f"Merge sprint {sprint} into {core.main_branch}\n\nSprint: {sprint}\n"
        commit, conflicts = merge_in_memory(repo, main_head, tested, message, core.committer())
        if commit is None:
            return MainResult(
                main_head,
                False,
                False,
                f"sprint {sprint} conflicts with {core.main_branch} in: {', '.join(conflicts[:10])}",
                changes=tuple(changes),
            )
        new = commit
    mref = f"refs/heads/{core.main_branch}"
    changes.append(core.set_ref(mref, new, main_head, f"merge sprint {sprint}", sprint))
    checkpoint("main-moved-before-push")
    how = "fast-forward" if fast_forward else "merge commit"
    blocker = push_blocker(core, origin)
    if blocker is not None:
        return MainResult(
            new,
            fast_forward,
            False,
            f"{core.main_branch} moved in the operator's clone ({how}); {blocker}",
            True,
            False,
            tuple(changes),
        )
    refused = push_main(core, origin)
    if refused is None:
        return MainResult(
            new,
            fast_forward,
            False,
            f"{core.main_branch} moved to {new} ({how}) and pushed",
            True,
            True,
            tuple(changes),
        )
    if remote_main(core, origin) in (main_head, None):
        # The remote did not move (or cannot be read): it refused for a reason of its own (a hook,
        # permissions, the network). Main stays moved in the clone, a push pending that
        # `publish_main` retries until the remote takes it.
        return MainResult(
            new,
            fast_forward,
            False,
            f"{core.main_branch} moved to {new} ({how}) in the operator's clone; {refused}",
            True,
            False,
            tuple(changes),
            refused,
        )
    changes.append(core.set_ref(mref, main_head, new, "push refused: restore main", sprint))
    return MainResult(
        main_head,
        False,
        True,
        f"{refused}; fetch, merge main into the sprint and test again",
        changes=tuple(changes),
    )


def publish_main(core: Core, origin: Origin) -> MainResult | None:
    """Push main if the clone's main is ahead of the remote's (an operator killed between moving main
    and pushing it, or a push the remote refused); None when nothing is pending (or main is never
    pushed to this origin, see push_blocker). Never forced: a remote that moved meanwhile wins."""
    with core.lock.held():
        changes = fetch_main(core, origin)  # keeps a local main that is ahead; follows a remote that moved
        local = core.require_head(f"refs/heads/{core.main_branch}", "the main branch")
        upstream = core.require_head(f"refs/remotes/origin/{core.main_branch}", "the remote's main branch")
        if local == upstream or push_blocker(core, origin) is not None:
            return None
        refused = push_main(core, origin)
        if refused is None:
            reason = f"{core.main_branch} {local} was not on the remote yet: pushed"
            return MainResult(local, False, False, reason, False, True, tuple(changes))
        return MainResult(local, False, False, refused, False, False, tuple(changes), refused)


def rebuild_without(core: Core, base: str, task_commits: Sequence[str], exclude: set[str]) -> str | None:
    """Re-merge `task_commits` in order onto `base`, skipping `exclude`; None on a conflict.

    Deterministic: each merge commit takes its time from the task commit it merges, so the same
    inputs give the same commit id. The result is kept under refs/sprint-orchestrator/bisect/.
    """
    repo = core.repo()
    current = str(core.commit(base, "base commit").id)
    for sha in task_commits:
        task_commit = core.commit(sha, "task commit")
        if sha in exclude or str(task_commit.id) in exclude:
            continue
        sig = pygit2.Signature(*core.committer_identity, task_commit.commit_time, 0)
        commit, _ = merge_in_memory(repo, current, str(task_commit.id), f"Bisect: merge {sha}", sig)
        if commit is None:
            return None
        current = commit
    key = hashlib.sha1("\n".join([base, *task_commits, "--", *sorted(exclude)]).encode()).hexdigest()
    ref = f"{ORCHESTRATOR_REFS}/bisect/{key}"
    with core.lock.held():
        old = core.head(ref)
        if old != current:
            core.set_ref(ref, current, old, "keep a bisect rebuild")
    return current


def move_sprint_branch(core: Core, sprint: str, new: str, expected: str, reason: str) -> RefChange:
    """CAS-move the sprint branch to `new` (a bisect rebuild that ejects a task); refuses if it moved."""
    check_ref_component(sprint, "sprint_id")
    commit = str(core.commit(new, "new sprint head").id)
    with core.lock.held():
        change = core.set_ref(f"refs/heads/{sprint_branch(sprint)}", commit, expected, reason, sprint)
        _resync_sprint(core, sprint)
    return change


def _resync_sprint(core: Core, sprint: str) -> None:
    path = core.layout.sprint_worktree(sprint)
    if worktrees.is_healthy(core, sprint_worktree_name(sprint), path):
        worktrees.resync(path)
