"""The engine's shared plumbing: directory layout, per-thread repositories, CAS ref moves, audit log.

Layout under `working_trees_path`::

    repo.git/                         the operator's bare clone (gc.auto=0)
    repo.lock                         flock serializing shared metadata (worktrees, branches, refs)
    journal/<worktree-name>.json      intent records of task creations in flight (for recovery)
    sprints/<sprint>/                 sprint worktrees
    tasks/<sprint>/<task>/<attempt>/  worktree/ (git checkout), workspace/ (mounted), manifest.json
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import pygit2

from ..diskspace import no_space
from ..errors import DiskFull, GitError, MergeRefused
from ..lease import fence
from .locks import RepoLock, repo_lock
from .results import RefChange

log = logging.getLogger("sprint_orchestrator.git")

ORCHESTRATOR_REFS = "refs/sprint-orchestrator"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def gitdir(self) -> Path:
        return self.root / "repo.git"

    @property
    def lockfile(self) -> Path:
        return self.root / "repo.lock"

    @property
    def journal(self) -> Path:
        return self.root / "journal"

    def sprint_owner(self, sprint: str) -> Path:
        """Who created the sprint branch (a Sprint resource's namespace/name): one owner per sprint id."""
        return self.root / "owners" / sprint

    def sprint_worktree(self, sprint: str) -> Path:
        return self.root / "sprints" / sprint

    def task_dir(self, sprint: str, task: str, attempt: int) -> Path:
        return self.root / "tasks" / sprint / task / str(attempt)


def sprint_branch(sprint: str) -> str:
    return f"sprint/{sprint}"


def task_branch(sprint: str, task: str) -> str:
    return f"task/{sprint}/{task}"


def sprint_worktree_name(sprint: str) -> str:
    return f"sprint-{sprint}"


def task_worktree_name(sprint: str, task: str, attempt: int) -> str:
    # The length prefix keeps the name unambiguous although ids may contain '-'.
    return f"task-{len(sprint)}-{sprint}-{task}-{attempt}"


class Core:
    """What every verb needs: the layout, the lock, a repository per thread, and ref moves."""

    def __init__(self, layout: Layout, main_branch: str, committer: tuple[str, str]) -> None:
        self.layout = layout
        self.main_branch = main_branch
        self.committer_identity = committer
        self.lock: RepoLock = repo_lock(layout.lockfile)
        self._local = threading.local()

    def repo(self) -> pygit2.Repository:
        """libgit2 repositories must not be shared between threads: one per thread."""
        repo = getattr(self._local, "repo", None)
        if repo is None:
            repo = self._local.repo = pygit2.Repository(str(self.layout.gitdir))
        return repo

    def fresh_repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.layout.gitdir))

    def committer(self) -> pygit2.Signature:
        return pygit2.Signature(*self.committer_identity)

    def head(self, ref: str) -> str | None:
        found = self.repo().references.get(ref)
        return None if found is None else str(found.resolve().target)

    def require_head(self, ref: str, what: str) -> str:
        head = self.head(ref)
        if head is None:
            raise GitError(f"{what} {ref} does not exist in {self.layout.gitdir}; create it first")
        return head

    def commit(self, sha: str, what: str) -> pygit2.Commit:
        try:
            obj = self.repo().get(sha)
        except ValueError as exc:
            raise GitError(f"{what} {sha!r} is not a commit id") from exc
        if not isinstance(obj, pygit2.Commit):
            raise GitError(f"{what} {sha!r} is not a commit of {self.layout.gitdir}")
        return obj

    def set_ref(
        self,
        ref: str,
        new: str,
        expected: str | None,
        reason: str,
        sprint: str | None = None,
        task: str | None = None,
    ) -> RefChange:
        """Move `ref` from `expected` (None: must not exist) to `new`, atomically, or raise MergeRefused.

        libgit2 re-reads the ref under its lock file and compares it with the value we loaded.
        """
        fence()  # a replica without a live Lease moves no ref (lease.py)
        repo = self.repo()
        try:
            if expected is None:
                repo.references.create(ref, new, force=False)
            else:
                current = repo.references.get(ref)
                if current is None or str(current.target) != expected:
                    raise MergeRefused(_moved(ref, expected, current))
                current.set_target(new, f"sprint-orchestrator: {reason}")
        except (pygit2.GitError, pygit2.AlreadyExistsError, OSError) as exc:
            if no_space(exc):  # the ref's lock file or its reflog line could not be written: not a race
                raise DiskFull(f"no space left on device to move {ref} ({reason}): {exc}") from exc
            if not isinstance(exc, (pygit2.GitError, pygit2.AlreadyExistsError)):
                raise
            raise MergeRefused(f"{ref} changed while it was being updated ({reason}): {exc}") from exc
        return audit(RefChange(ref, expected, new, reason, sprint, task))

    def delete_ref(
        self, ref: str, expected: str, reason: str, sprint: str | None = None, task: str | None = None
    ) -> RefChange:
        fence()
        current = self.repo().references.get(ref)
        if current is None or str(current.target) != expected:
            raise MergeRefused(_moved(ref, expected, current))
        try:
            current.delete()
        except (pygit2.GitError, OSError) as exc:
            if no_space(exc):
                raise DiskFull(f"no space left on device to delete {ref} ({reason}): {exc}") from exc
            if not isinstance(exc, pygit2.GitError):
                raise
            raise MergeRefused(f"{ref} changed while it was being deleted ({reason}): {exc}") from exc
        return audit(RefChange(ref, expected, None, reason, sprint, task))


def _moved(ref: str, expected: str, current: pygit2.Reference | None) -> str:
    now = "is gone" if current is None else f"now points at {current.target}"
    return f"{ref} moved: expected {expected}, but it {now}; re-read it and decide again"


def audit(change: RefChange) -> RefChange:
    """One structured log line per ref change; the record also goes back to the caller."""
    log.info(
        "ref %s: %s -> %s (%s)",
        change.ref,
        change.old,
        change.new,
        change.reason,
        extra={
            "git_ref": change.ref,
            "old": change.old,
            "new": change.new,
            "reason": change.reason,
            "sprint": change.sprint,
            "task": change.task,
        },
    )
    return change
