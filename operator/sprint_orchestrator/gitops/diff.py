"""A task's change against its base, as a reviewer reads it: files, counts, hunks, the unified text.

Everything in a diff was written by a task team: paths and lines are data, shown escaped and never
run. Binary files and files over `max_file_bytes` are summarized (name, sizes), not shown; the whole
text stops at `max_total_chars`. Protected paths (protected.py) and paths outside the task's
`filesToModify` are flagged on their file.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pygit2

from .. import protected
from ..errors import GitError, InvalidInput
from .core import Layout

if TYPE_CHECKING:
    from ..review import DiffTarget

MAX_FILE_BYTES = 512 * 1024
MAX_TOTAL_CHARS = 2_000_000
MAX_FILES = 1000
_ZERO = pygit2.Oid(hex="0" * 40)
_STATUS = {
    pygit2.enums.DeltaStatus.ADDED: "added",
    pygit2.enums.DeltaStatus.DELETED: "deleted",
    pygit2.enums.DeltaStatus.MODIFIED: "modified",
    pygit2.enums.DeltaStatus.RENAMED: "renamed",
    pygit2.enums.DeltaStatus.COPIED: "copied",
    pygit2.enums.DeltaStatus.TYPECHANGE: "typechange",
}


@dataclass(frozen=True)
class DiffLine:
    origin: str  # "+", "-" or " "
    old: int | None
    new: int | None
    text: str


@dataclass(frozen=True)
class Hunk:
    header: str
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: tuple[DiffLine, ...]


@dataclass(frozen=True)
class FileDiff:
    path: str
    old_path: str
    status: str
    additions: int
    deletions: int
    binary: bool
    oversized: bool
    old_size: int
    new_size: int
    protected: bool
    out_of_scope: bool
    patch: str  # the unified text of this file ("" when binary or oversized)
    hunks: tuple[Hunk, ...] = ()


@dataclass(frozen=True)
class TaskDiff:
    base: str
    head: str
    files: tuple[FileDiff, ...]
    truncated: bool = False  # the text budget ran out: later files are listed without their hunks
    omitted_files: int = 0  # beyond MAX_FILES
    refused: tuple[str, ...] = field(default_factory=tuple)

    @property
    def additions(self) -> int:
        return sum(f.additions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)

    def text(self) -> str:
        """The unified diff (git's format); summarized files appear as one line each."""
        out = []
        for f in self.files:
            if f.patch:
                out.append(f.patch if f.patch.endswith("\n") else f.patch + "\n")
            elif f.binary:
                out.append(f"diff --git a/{f.old_path} b/{f.path}\nBinary files differ\n")
            else:
                why = "too large to show" if f.oversized else "not shown (the diff is too long)"
                out.append(f"diff --git a/{f.old_path} b/{f.path}\n# {f.path}: {why}\n")
        return "".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "additions": self.additions,
            "deletions": self.deletions,
            "truncated": self.truncated,
            "omittedFiles": self.omitted_files,
            "refused": list(self.refused),
            "files": [_file_json(f) for f in self.files],
        }


def _file_json(f: FileDiff) -> dict[str, Any]:
    return {
        "path": f.path,
        "oldPath": f.old_path,
        "status": f.status,
        "additions": f.additions,
        "deletions": f.deletions,
        "binary": f.binary,
        "oversized": f.oversized,
        "oldSize": f.old_size,
        "newSize": f.new_size,
        "protected": f.protected,
        "outOfScope": f.out_of_scope,
        "hunks": [
            {
                "header": h.header,
                "oldStart": h.old_start,
                "oldLines": h.old_lines,
                "newStart": h.new_start,
                "newLines": h.new_lines,
                "lines": [
                    {"origin": ln.origin, "old": ln.old, "new": ln.new, "text": ln.text} for ln in h.lines
                ],
            }
            for h in f.hunks
        ],
    }


def open_clone(trees_dir: Path, url: str) -> pygit2.Repository:
    """The operator's bare clone of `url` under its trees directory, opened for reading only (the
    dashboard and `sprintctl diff` run beside the operator and never write to it)."""
    from .engine import GitEngine

    gitdir = Layout(GitEngine.root_for(trees_dir, url)).gitdir
    if not gitdir.is_dir():
        raise GitError(
            f"no clone of {url} under {trees_dir}: run this beside the operator, with its "
            "SPRINT_ORCHESTRATOR_STATE_DIR (or git.working_trees_path) and configuration"
        )
    return pygit2.Repository(str(gitdir), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)


def _commit(repo: pygit2.Repository, sha: str, what: str) -> pygit2.Commit:
    if not isinstance(sha, str) or len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        raise InvalidInput(f"{what}: {sha!r} is not a full commit id (40 lowercase hex digits)")
    obj = repo.get(sha)
    if not isinstance(obj, pygit2.Commit):
        raise GitError(f"{what} {sha} is not a commit of {repo.path}")
    return obj


def merge_base(repo: pygit2.Repository, a: str, b: str) -> str | None:
    found = repo.merge_base(_commit(repo, a, "commit").id, _commit(repo, b, "commit").id)
    return None if found is None else str(found)


def task_diff(
    repo: pygit2.Repository,
    base: str,
    head: str,
    files_to_modify: Collection[str] | None = None,
    extra_protected: Sequence[str] = (),
    refused: Sequence[str] = (),
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_chars: int = MAX_TOTAL_CHARS,
) -> TaskDiff:
    """The change from commit `base` to commit `head` (renames found). `files_to_modify` None: no
    file is out of scope. Protected: protected.py's rules plus `extra_protected` (existing tests only
    when they existed at `base`)."""
    old_tree = _commit(repo, base, "base").tree
    new_tree = _commit(repo, head, "head").tree
    diff = old_tree.diff_to_tree(new_tree, context_lines=3)
    diff.find_similar()
    deltas = list(diff.deltas)
    changed = sorted({p for d in deltas for p in (d.old_file.path, d.new_file.path)})
    existed = {p for p in changed if _exists(old_tree, p)}
    guarded = set(protected.protected_changes(changed, existed, list(extra_protected)))
    declared = None if files_to_modify is None else set(files_to_modify)
    files: list[FileDiff] = []
    budget = max_total_chars
    truncated = False
    for index, delta in enumerate(deltas[:MAX_FILES]):
        paths = {delta.old_file.path, delta.new_file.path}
        sizes = (_size(repo, delta.old_file), _size(repo, delta.new_file))
        binary = bool(delta.is_binary) or _is_binary(repo, delta, max_file_bytes)
        oversized = not binary and max(sizes) > max_file_bytes
        patch = None if (binary or oversized or truncated) else diff[index]
        if patch is not None and patch.delta.is_binary:
            binary, patch = True, None
        text = (patch.text or "") if patch is not None else ""
        if text and len(text) > budget:
            truncated, text, patch = True, "", None
        budget -= len(text)
        adds, dels = _counts(patch)
        files.append(
            FileDiff(
                path=delta.new_file.path,
                old_path=delta.old_file.path,
                status=_STATUS.get(delta.status, str(delta.status_char())),
                additions=adds,
                deletions=dels,
                binary=binary,
                oversized=oversized,
                old_size=int(sizes[0]),
                new_size=int(sizes[1]),
                protected=bool(paths & guarded),
                out_of_scope=declared is not None and not paths <= declared,
                patch=text,
                hunks=_hunks(patch) if patch is not None else (),
            )
        )
    return TaskDiff(base, head, tuple(files), truncated, max(len(deltas) - MAX_FILES, 0), tuple(refused))


def _exists(tree: pygit2.Tree, path: str) -> bool:
    try:
        tree[path]
    except KeyError:
        return False
    return True


def _blob(repo: pygit2.Repository, side: pygit2.DiffFile) -> pygit2.Blob | None:
    if side.id is None or side.id == _ZERO:
        return None
    blob = repo.get(side.id)
    return blob if isinstance(blob, pygit2.Blob) else None


def _size(repo: pygit2.Repository, side: pygit2.DiffFile) -> int:
    blob = _blob(repo, side)
    return 0 if blob is None else int(blob.size)


def _is_binary(repo: pygit2.Repository, delta: pygit2.DiffDelta, max_bytes: int) -> bool:
    """libgit2 decides binary lazily; a NUL in the first 8 KiB of either side is binary, as git says."""
    for side in (delta.old_file, delta.new_file):
        blob = _blob(repo, side)
        if blob is not None and blob.size <= max_bytes and b"\x00" in bytes(blob.data[:8000]):
            return True
    return False


def _counts(patch: pygit2.Patch | None) -> tuple[int, int]:
    """Added and deleted lines; 0, 0 for a file that is summarized rather than shown."""
    if patch is None:
        return 0, 0
    _, adds, dels = patch.line_stats
    return int(adds), int(dels)


def _hunks(patch: pygit2.Patch) -> tuple[Hunk, ...]:
    out = []
    for hunk in patch.hunks:
        lines = tuple(
            DiffLine(
                line.origin,
                line.old_lineno if line.old_lineno >= 0 else None,
                line.new_lineno if line.new_lineno >= 0 else None,
                line.content.rstrip("\n"),
            )
            for line in hunk.lines
            if line.origin in "+- "
        )
        header = hunk.header.rstrip("\n")
        out.append(Hunk(header, hunk.old_start, hunk.old_lines, hunk.new_start, hunk.new_lines, lines))
    return tuple(out)


def for_task(
    trees_dir: Path,
    url: str,
    sprint_id: str,
    base: str | None,
    head: str,
    files_to_modify: Collection[str] | None = None,
    extra_protected: Sequence[str] = (),
    refused: Sequence[str] = (),
) -> TaskDiff:
    """A task's change in the operator's clone: from `base` (the sprint commit its attempt started
    from), or else from the merge base of `head` and the sprint branch."""
    repo = open_clone(trees_dir, url)
    if not base:
        sprint_head = repo.references.get(f"refs/heads/sprint/{sprint_id}")
        if sprint_head is None:
            raise GitError(f"the sprint branch sprint/{sprint_id} is not in the clone of {url}")
        base = merge_base(repo, head, str(sprint_head.target)) or head
    return task_diff(repo, base, head, files_to_modify, extra_protected, refused)


def for_target(trees_dir: Path, target: DiffTarget) -> TaskDiff:
    """`for_task` of a Task and Sprint as `review.diff_target` resolved them."""
    return for_task(
        trees_dir,
        target.url,
        target.sprint_id,
        target.base,
        target.head,
        target.files_to_modify,
        target.extra_protected,
        target.refused,
    )
