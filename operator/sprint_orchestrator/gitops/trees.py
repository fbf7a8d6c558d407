"""Trees <-> plain directories: exporting a commit's files, and snapshotting a directory into a tree.

Bytes go out and come back unchanged (no eol/clean filters), symlinks stay symlinks and are never
followed: the directories are written by untrusted task teams.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

import pygit2

from ..errors import GitError, InvalidInput

LINK = pygit2.enums.FileMode.LINK
BLOB = pygit2.enums.FileMode.BLOB
EXEC = pygit2.enums.FileMode.BLOB_EXECUTABLE
TREE = pygit2.enums.FileMode.TREE
COMMIT = pygit2.enums.FileMode.COMMIT


def entry_at(tree: pygit2.Tree, path: str) -> pygit2.Object | None:
    try:
        return tree[path]
    except KeyError:
        return None


def check_no_symlink_prefix(tree: pygit2.Tree, path: str, field: str) -> None:
    """Reject a path that reaches through a symlink, a file or a submodule of `tree`, or is a directory."""
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        entry = entry_at(tree, "/".join(parts[:depth]))
        if entry is None:
            return
        last = depth == len(parts)
        if entry.filemode == LINK and not last:
            raise InvalidInput(f"{field} {path!r} escapes through the symlink {'/'.join(parts[:depth])!r}")
        if entry.filemode in (BLOB, EXEC, COMMIT) and not last:
            raise InvalidInput(f"{field} {path!r} goes through {'/'.join(parts[:depth])!r}, which is a file")
        if entry.filemode == TREE and last:
            raise InvalidInput(f"{field} {path!r} is a directory; list the files to modify in it")


def count_files(tree: pygit2.Tree, limit: int) -> int:
    """Number of files in `tree`, counting no further than `limit + 1` (cheap on huge trees)."""
    count = 0
    stack = [tree]
    while stack and count <= limit:
        for entry in stack.pop():
            if entry.filemode == TREE:
                stack.append(entry)  # type: ignore[arg-type]
            else:
                count += 1
    return count


def walk(tree: pygit2.Tree, prefix: str = "") -> Iterator[tuple[str, pygit2.Object]]:
    """(path, entry) for every non-tree entry below `tree`."""
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if entry.filemode == TREE:
            yield from walk(entry, f"{path}/")  # type: ignore[arg-type]
        else:
            yield path, entry


def glob_regex(glob: str) -> re.Pattern[str]:
    """'**' spans directories, '*' and '?' stay inside one path component."""
    out = []
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", glob):
        out.append({"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token)))
    return re.compile("".join(out))


def glob_matches(tree: pygit2.Tree, glob: str) -> list[str]:
    """Walks only the subtree below the glob's literal leading directories."""
    parts = glob.split("/")
    literal = []
    for part in parts[:-1]:
        if any(c in part for c in "*?"):
            break
        literal.append(part)
    base = "/".join(literal)
    subtree = entry_at(tree, base) if base else tree
    if not isinstance(subtree, pygit2.Tree):
        return []
    pattern = glob_regex(glob)
    prefix = f"{base}/" if base else ""
    return [path for path, _ in walk(subtree, prefix) if pattern.fullmatch(path)]


def sparse_paths(
    tree: pygit2.Tree, files: Iterable[str], globs: Iterable[str], max_siblings: int
) -> set[str]:
    """The files a sparse workspace holds: the listed files, their siblings, .gitignores, glob matches."""
    chosen: set[str] = {".gitignore"} if entry_at(tree, ".gitignore") is not None else set()
    for path in files:
        chosen.add(path)
        parts = path.split("/")
        for depth in range(len(parts)):
            directory = "/".join(parts[:depth])
            ignore = f"{directory}/.gitignore" if directory else ".gitignore"
            if entry_at(tree, ignore) is not None:
                chosen.add(ignore)
        chosen.update(_siblings(tree, "/".join(parts[:-1]), max_siblings))
    for glob in globs:
        chosen.update(glob_matches(tree, glob))
    return {p for p in chosen if (e := entry_at(tree, p)) is not None and e.filemode != TREE}


def _siblings(tree: pygit2.Tree, directory: str, limit: int) -> list[str]:
    node = entry_at(tree, directory) if directory else tree
    if not isinstance(node, pygit2.Tree):
        return []
    prefix = f"{directory}/" if directory else ""
    return [f"{prefix}{e.name}" for e in node if e.filemode in (BLOB, EXEC, LINK)][:limit]


def export_paths(repo: pygit2.Repository, tree: pygit2.Tree, dest: Path, paths: Iterable[str] | None) -> int:
    """Write `paths` of `tree` (all files when None) below `dest`; returns the number written."""
    items = walk(tree) if paths is None else ((p, entry_at(tree, p)) for p in paths)
    written = 0
    for path, entry in items:
        if entry is not None:
            write_entry(repo, entry, dest, path)
            written += 1
    return written


def write_entry(repo: pygit2.Repository, entry: pygit2.Object, dest: Path, path: str) -> None:
    """Write one tree entry (file, symlink, submodule placeholder or whole subtree) at dest/path."""
    target = prepare_parent(dest, path)
    remove_path(target)
    mode = entry.filemode
    if mode == TREE:
        target.mkdir()
        export_paths(repo, entry, target, None)  # type: ignore[arg-type]
    elif mode == COMMIT:
        target.mkdir()  # a submodule: an empty directory, as `git worktree add` leaves it
    elif mode == LINK:
        os.symlink(blob_data(repo, entry.id), target)
    else:
        target.write_bytes(blob_data(repo, entry.id))
        if mode == EXEC:
            target.chmod(0o755)


def blob_data(repo: pygit2.Repository, oid: pygit2.Oid) -> bytes:
    blob = repo.get(oid)
    if not isinstance(blob, pygit2.Blob):
        raise GitError(f"object {oid} is missing from {repo.path} or is not a file; run git fsck")
    return bytes(blob.data)


def prepare_parent(dest: Path, path: str) -> Path:
    """Make dest/path's parent directories, replacing files or symlinks in the way (never following)."""
    current = dest
    for part in path.split("/")[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            current.unlink()
        if not current.exists():
            current.mkdir()
    return current / path.split("/")[-1]


def remove_path(target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


def changed_paths(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree) -> list[str]:
    diff = old.diff_to_tree(new)
    paths = set()
    for delta in diff.deltas:
        paths.add(delta.old_file.path)
        paths.add(delta.new_file.path)
    return sorted(paths)


def diff_text(old: pygit2.Tree, new: pygit2.Tree, paths: Collection[str], limit: int) -> str:
    """The unified diff of `paths` between two trees, at most `limit` characters (binary files are
    named, not shown); the text is data from a task: show it escaped, never run it."""
    wanted = set(paths)
    parts: list[str] = []
    size = 0
    for patch in old.diff_to_tree(new):
        if patch is None:
            continue
        delta = patch.delta
        if delta.old_file.path not in wanted and delta.new_file.path not in wanted:
            continue
        text = f"Binary file {delta.new_file.path} differs\n" if delta.is_binary else (patch.text or "")
        if size + len(text) > limit:
            parts.append(text[: max(limit - size, 0)] + "\n[diff truncated]\n")
            break
        parts.append(text)
        size += len(text)
    return "".join(parts)


def is_regular_or_link(mode: int) -> bool:
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)
