"""`GitEngine`: the domain verbs the sprint lifecycle calls. Thread-safe; one instance per repository.

Every verb validates its ids and paths, serializes shared git metadata through the repository lock,
and returns a frozen result whose `changes` list the ref moves it made (also logged, one line each).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pygit2

from ..errors import InvalidInput
from . import diff, leftovers, merges, recovery, tasks
from .core import Core, Layout
from .remote import Origin, clone_or_check, fetch_main, parse_origin
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
from .trees import (
    changed_paths,
    diff_text,
    entry_at,
    export_paths,
    prepare_parent,
    remove_path,
    write_entry,
)
from .validate import check_branch_name, check_repo_path

DEFAULT_COMMITTER = ("Sprint Orchestrator", "sprint-orchestrator@localhost")


class GitEngine:
    def __init__(self, core: Core, origin: Origin, policy: WorkspacePolicy) -> None:
        self._core = core
        self._origin = origin
        self.policy = policy
        self.last_recovery: RecoveryReport | None = None

    @classmethod
    def open(
        cls,
        url_or_path: str,
        working_trees_path: str | Path,
        main_branch: str = "main",
        credentials: Credentials | None = None,
        *,
        policy: WorkspacePolicy | None = None,
        committer: tuple[str, str] = DEFAULT_COMMITTER,
    ) -> GitEngine:
        """Clone (bare) or reuse the operator's clone, fetch main, and recover from a previous crash."""
        check_branch_name(main_branch, "git.main_branch")
        origin = parse_origin(url_or_path, credentials)
        root = Path(working_trees_path).resolve()
        root.mkdir(parents=True, exist_ok=True)
        core = Core(Layout(root), main_branch, committer)
        with core.lock.held():
            clone_or_check(origin, core.layout.gitdir)
            engine = cls(core, origin, policy or WorkspacePolicy())
            engine.last_recovery = engine.recover()
            fetch_main(core, origin)
        return engine

    @staticmethod
    def root_for(trees_dir: str | Path, url_or_path: str) -> Path:
        """Where the clone and trees of one repository live under the operator's trees directory: a
        directory per repository, so one operator serves any number of them without mixing clones.

        ("/var/trees", "https://git.example/team/app.git") -> /var/trees/app-<8 hex of sha256(url)>
        """
        name = re.sub(r"[^a-z0-9-]+", "-", url_or_path.rstrip("/").rsplit("/", 1)[-1].lower())
        name = name.removesuffix("-git").strip("-")[:40] or "repo"
        return Path(trees_dir) / f"{name}-{hashlib.sha256(url_or_path.encode()).hexdigest()[:8]}"

    @property
    def gitdir(self) -> Path:
        return self._core.layout.gitdir

    @property
    def main_branch(self) -> str:
        return self._core.main_branch

    def head(self, branch: str) -> str | None:
        """The commit a branch points at, or None."""
        return self._core.head(f"refs/heads/{check_branch_name(branch, 'branch')}")

    def refresh_main(self) -> str:
        """Fetch main from the remote; returns its head."""
        with self._core.lock.held():
            fetch_main(self._core, self._origin)
        return self._core.require_head(f"refs/heads/{self.main_branch}", "the main branch")

    def create_sprint(self, sprint_id: str, owner: str = "") -> SprintRefs:
        """The sprint branch and worktree (idempotent); `owner` (namespace/name) claims the sprint id in
        this repository, so another Sprint with the same sprintId is refused instead of sharing it."""
        with self._core.lock.held():
            fetch_main(self._core, self._origin)
            return tasks.create_sprint(self._core, sprint_id, owner)

    def create_task(
        self,
        sprint_id: str,
        task_id: str,
        attempt: int,
        files_to_modify: Sequence[str],
        context_globs: Sequence[str] = (),
        start_from: str | None = None,
        base: str | None = None,
    ) -> TaskWorkspace:
        return tasks.create_task(
            self._core,
            self.policy,
            sprint_id,
            task_id,
            attempt,
            files_to_modify,
            context_globs,
            start_from,
            base,
        )

    def commit_task(
        self,
        ws: TaskWorkspace,
        sprint_id: str,
        task_id: str,
        files_to_modify: Sequence[str],
        author_name: str,
        author_email: str,
    ) -> CommitResult:
        return tasks.commit_task(
            self._core, ws, sprint_id, task_id, files_to_modify, author_name, author_email
        )

    def commit_file(self, branch: str, path: str, content: bytes, message: str) -> str:
        return tasks.commit_file(self._core, branch, path, content, message)

    def merge_task(self, sprint_id: str, task_id: str, expected_commit: str) -> MergeResult:
        return merges.merge_task(self._core, sprint_id, task_id, expected_commit)

    def merge_order(self, sprint_id: str, commits: Collection[str]) -> list[str]:
        """`commits` in the order they were merged into the sprint branch (its first-parent history)."""
        return merges.merge_order(self._core, sprint_id, commits)

    def merge_main_into_sprint(self, sprint_id: str) -> MergeResult:
        return merges.merge_main_into_sprint(self._core, self._origin, sprint_id)

    def merge_sprint_to_main(self, sprint_id: str, tested_commit: str, expected_main: str) -> MainResult:
        return merges.merge_sprint_to_main(self._core, self._origin, sprint_id, tested_commit, expected_main)

    def publish_main(self) -> MainResult | None:
        """Retry a pending push of main (main ahead of the remote's in the clone); None if none."""
        return merges.publish_main(self._core, self._origin)

    def move_sprint_branch(self, sprint_id: str, new: str, expected: str, reason: str) -> RefChange:
        """Compare-and-swap the sprint branch to `new` (ejecting a task after a failed integration run)."""
        return merges.move_sprint_branch(self._core, sprint_id, new, expected, reason)

    def rebuild_without(self, base_commit: str, task_commits: Sequence[str], exclude: set[str]) -> str | None:
        return merges.rebuild_without(self._core, base_commit, task_commits, exclude)

    def salvage(self, sprint_id: str, task_id: str, attempt: int) -> list[str]:
        """Save a task attempt's uncommitted work; returns the salvage refs written."""
        return [c.ref for c in recovery.salvage(self._core, sprint_id, task_id, attempt)]

    def cleanup_task(
        self, sprint_id: str, task_id: str, attempt: int, delete_branch: bool = False
    ) -> CleanupResult:
        return recovery.cleanup_task(self._core, sprint_id, task_id, attempt, delete_branch)

    def cleanup_sprint(self, sprint_id: str) -> CleanupResult:
        return recovery.cleanup_sprint(self._core, sprint_id)

    def abandon_sprint(self, sprint_id: str) -> CleanupResult:
        """A deleted Sprint: worktrees gone, uncommitted and unmerged task work kept in salvage refs."""
        return recovery.abandon_sprint(self._core, sprint_id)

    def sprint_leftovers(self) -> list[leftovers.Leftover]:
        """What sprints left in the clone: worktrees, task branches, salvage refs (gitops/leftovers.py)."""
        return leftovers.leftovers(self._core)

    def drop_leftover(self, item: leftovers.Leftover) -> int:
        """Remove one leftover the retention policy dropped; the bytes of the directories removed."""
        return leftovers.drop(self._core, item)

    def maintain(
        self, prune_after_s: int, loose_limit: int = 250, pack_limit: int = 10
    ) -> tuple[int, int] | None:
        """git gc between sprints, when due; the clone's bytes before and after (None: not due)."""
        return leftovers.maintain(self._core, prune_after_s, loose_limit, pack_limit)

    def recover(self) -> RecoveryReport:
        return recovery.recover(self._core)

    def export_tree(
        self, commit: str, dest_dir: str | Path, overlay: Mapping[str, str] | None = None
    ) -> None:
        """Write a commit's files to a plain directory (no .git); `overlay` paths come from other commits.

        An overlay path replaces whatever the first commit has there (a file or a whole directory) and
        is removed when the overlay commit does not have it.
        """
        dest = Path(dest_dir)
        if dest.exists() and any(dest.iterdir()):
            raise InvalidInput(f"export directory {dest} must be empty or not exist")
        dest.mkdir(parents=True, exist_ok=True)
        repo = self._core.repo()
        export_paths(repo, self._core.commit(commit, "commit").tree, dest, None)
        for path, source in (overlay or {}).items():
            check_repo_path(path, "overlay path")
            entry = entry_at(self._core.commit(source, f"overlay commit for {path}").tree, path)
            if entry is None:
                _remove(dest, path)
            else:
                write_entry(repo, entry, dest, path)

    def file_at(self, commit: str, path: str) -> bytes | None:
        """A file's bytes at a commit; None when absent (or a directory)."""
        check_repo_path(path, "path")
        entry = entry_at(self._core.commit(commit, "commit").tree, path)
        if entry is None or not isinstance(entry, pygit2.Blob):
            return None
        return bytes(entry.data)

    def changed_paths(self, a: str, b: str) -> list[str]:
        """Paths that differ between two commits (both sides of a rename)."""
        return changed_paths(
            self._core.repo(), self._core.commit(a, "commit").tree, self._core.commit(b, "commit").tree
        )

    def diff_text(self, a: str, b: str, paths: Sequence[str], limit: int = 16_000) -> str:
        """The unified diff of `paths` from commit a to commit b, cut at `limit` characters."""
        tree_a, tree_b = self._core.commit(a, "commit").tree, self._core.commit(b, "commit").tree
        return diff_text(tree_a, tree_b, [check_repo_path(p, "path") for p in paths], limit)

    def task_diff(
        self,
        base: str,
        head: str,
        files_to_modify: Sequence[str] | None = None,
        extra_protected: Sequence[str] = (),
        refused: Sequence[str] = (),
    ) -> diff.TaskDiff:
        """A task's change from `base` to `head` for review (gitops/diff.py)."""
        return diff.task_diff(self._core.repo(), base, head, files_to_modify, extra_protected, refused)

    def existing_paths(self, commit: str, paths: Sequence[str]) -> list[str]:
        """Those of `paths` that exist (as a file or symlink) at `commit`."""
        tree = self._core.commit(commit, "commit").tree
        return [p for p in paths if entry_at(tree, check_repo_path(p, "path")) is not None]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        repo = self._core.repo()
        a, d = self._core.commit(ancestor, "commit").id, self._core.commit(descendant, "commit").id
        return a == d or bool(repo.descendant_of(d, a))


def _remove(dest: Path, path: str) -> None:
    target = prepare_parent(dest, path)
    if target.exists() or target.is_symlink():
        remove_path(target)
