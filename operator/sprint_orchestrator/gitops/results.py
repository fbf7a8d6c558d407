"""Results of git operations: frozen records the lifecycle stores in status and shows on the board."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Credentials:
    """Remote credentials, held in memory only: never written to git config, status or logs."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a token for HTTPS remotes
    ssh_private_key: str | None = None  # a path
    ssh_public_key: str | None = None  # a path
    ssh_passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RefChange:
    """One ref move, for the audit trail (old or new is None when the ref was created or deleted)."""

    ref: str
    old: str | None
    new: str | None
    reason: str
    sprint: str | None = None
    task: str | None = None


@dataclass(frozen=True)
class SprintRefs:
    branch: str
    worktree: Path
    base_commit: str
    changes: tuple[RefChange, ...] = ()


@dataclass(frozen=True)
class TaskWorkspace:
    """A task attempt's branch, worktree and the prepared workspace directory the container mounts.

    `worktree` is None for sparse (large-repository) tasks: the commit is built from the workspace.
    """

    sprint_id: str
    task_id: str
    attempt: int
    branch: str
    worktree: Path | None
    workspace: Path
    base_commit: str
    sparse: bool
    changes: tuple[RefChange, ...] = ()


@dataclass(frozen=True)
class CommitResult:
    commit: str | None
    changed_files: list[str]
    out_of_scope: list[str]
    no_changes: bool
    changes: tuple[RefChange, ...] = ()
    refused: tuple[str, ...] = ()  # "path: why" for files the commit left out (symlinks out, too large)


@dataclass(frozen=True)
class MergeResult:
    merged: bool
    merge_commit: str | None
    conflicts: list[str]
    reason: str
    changes: tuple[RefChange, ...] = ()


@dataclass(frozen=True)
class MainResult:
    main_commit: str
    fast_forward: bool
    main_moved: bool
    reason: str
    moved: bool = False
    pushed: bool = False
    changes: tuple[RefChange, ...] = ()
    push_refused: str | None = None  # main moved in the clone, the remote refused it: retry the push


@dataclass(frozen=True)
class CleanupResult:
    removed: list[str]
    salvage_refs: list[str]
    changes: tuple[RefChange, ...] = ()


@dataclass(frozen=True)
class RecoveryReport:
    removed_locks: list[str]
    pruned_worktrees: list[str]
    removed_dirs: list[str]
    resynced_worktrees: list[str]
    changes: tuple[RefChange, ...] = ()
