"""The git engine: the only code that touches git (pygit2/libgit2). Import from here.

Branches `sprint/{sprint}` and `task/{sprint}/{task}`, linked worktrees, prepared workspaces the task
containers mount (no .git inside), commits on behalf of task teams, in-memory merges with conflict
detection, compare-and-swap ref moves, salvage, cleanup and crash recovery. See engine.py.
"""

from __future__ import annotations

from .engine import DEFAULT_COMMITTER, GitEngine
from .results import (
    CleanupResult,
    CommitResult,
    Credentials,
    MainResult,
    MergeResult,
    RecoveryReport,
    RefChange,
    SprintRefs,
    TaskWorkspace,
)
from .tasks import WorkspacePolicy
from .validate import check_branch_name, check_ref_component, check_repo_path, check_repo_paths

__all__ = [
    "DEFAULT_COMMITTER",
    "CleanupResult",
    "CommitResult",
    "Credentials",
    "GitEngine",
    "MainResult",
    "MergeResult",
    "RecoveryReport",
    "RefChange",
    "SprintRefs",
    "TaskWorkspace",
    "WorkspacePolicy",
    "check_branch_name",
    "check_ref_component",
    "check_repo_path",
    "check_repo_paths",
]
