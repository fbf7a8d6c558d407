"""Snapshot a plain directory (a task workspace) into a git tree, in memory, without a checkout.

Like `git add -A` in a worktree: .gitignore is honoured for untracked files, tracked files are always
taken, and a missing tracked file is a deletion -- but only inside `scope` (the files a sparse workspace
was given), so files a sparse workspace never held are not deleted. Symlinks are stored as links and
never followed; `.git` entries, sockets and devices are skipped.

What a hostile team could plant is refused (left out, the tree keeps what it had there) and named in
`refused`: a symlink whose target is absolute or leaves the repository, and a file over `max_bytes`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pygit2

from .trees import BLOB, COMMIT, EXEC, LINK

MAX_FILE_BYTES = 64 << 20


def snapshot(
    repo: pygit2.Repository,
    base_tree: pygit2.Tree,
    directory: Path,
    scope: Collection[str] | None,
    refused: list[str] | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> pygit2.Oid:
    """Return the id of the tree `base_tree` becomes with `directory`'s content; paths it would not
    take are appended to `refused` as "path: why"."""
    index = pygit2.Index()
    index.read_tree(base_tree)
    tracked = {entry.path: entry for entry in index}
    ignored = _ignore_checker(repo, directory)
    keep_dir = _dir_filter(tracked, ignored)
    seen: set[str] = set()
    additions: list[pygit2.IndexEntry] = []
    for rel, st in _files(directory, keep_dir):
        if rel not in tracked and ignored(rel):
            continue
        seen.add(rel)
        problem = refusal(directory, rel, st, max_bytes)
        if problem:
            if refused is not None:
                refused.append(f"{rel}: {problem}")
            continue
        entry = _entry(repo, directory, rel, st)
        old = tracked.get(rel)
        if old is None or old.id != entry.id or old.mode != entry.mode:
            additions.append(entry)
    for path in tracked if scope is None else scope:
        old = tracked.get(path)
        if old is not None and old.mode != COMMIT and path not in seen:
            index.remove(path)
    for entry in additions:
        index.add(entry)
    return index.write_tree(repo)


def refusal(directory: Path, rel: str, st: os.stat_result, max_bytes: int) -> str | None:
    """Why the file at `rel` must not be committed, or None."""
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(directory / rel)
        if os.path.isabs(target):
            return f"a symlink to the absolute path {target[:200]!r}"
        resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target))
        if resolved == ".." or resolved.startswith("../"):
            return f"a symlink that leaves the repository ({target[:200]!r})"
        return None
    if st.st_size > max_bytes:
        return f"{st.st_size} bytes, over the limit of {max_bytes}"
    return None


def _ignore_checker(repo: pygit2.Repository, directory: Path) -> Callable[[str], bool]:
    # A separate repository object whose work directory is the snapshot directory, so libgit2 reads
    # that directory's .gitignore files; the shared per-thread repository is left untouched.
    checker = pygit2.Repository(repo.path)
    checker.workdir = str(directory)
    return checker.path_is_ignored


def _dir_filter(
    tracked: dict[str, pygit2.IndexEntry], ignored: Callable[[str], bool]
) -> Callable[[str], bool]:
    tracked_dirs: set[str] = set()
    gitlinks = {path for path, entry in tracked.items() if entry.mode == COMMIT}
    for path in tracked:
        parts = path.split("/")
        tracked_dirs.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    return lambda rel: rel not in gitlinks and (rel in tracked_dirs or not ignored(f"{rel}/"))


def _files(directory: Path, keep_dir: Callable[[str], bool]) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every regular file and symlink, never descending through a symlink."""
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(directory / rel_dir if rel_dir else directory) as entries:
            for item in entries:
                if item.name.lower() == ".git":
                    continue
                rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
                st = item.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if keep_dir(rel):
                        pending.append(rel)
                elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    yield rel, st


def _entry(repo: pygit2.Repository, directory: Path, rel: str, st: os.stat_result) -> pygit2.IndexEntry:
    path = directory / rel
    if stat.S_ISLNK(st.st_mode):
        return pygit2.IndexEntry(rel, repo.create_blob(os.readlink(os.fsencode(path))), LINK)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    mode = EXEC if st.st_mode & stat.S_IXUSR else BLOB
    return pygit2.IndexEntry(rel, repo.create_blob(data), mode)
