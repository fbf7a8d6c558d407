"""Linked worktrees of the operator's clone: create or reuse, re-sync, drop. Call with the lock held."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pygit2

from ..errors import GitError
from .core import Core
from .trees import remove_path

_ADMIN_FILES = ("HEAD", "commondir", "gitdir")


def is_healthy(core: Core, name: str, path: Path) -> bool:
    admin = core.layout.gitdir / "worktrees" / name
    if not all((admin / f).is_file() for f in _ADMIN_FILES) or not (path / ".git").is_file():
        return False
    return os.path.realpath((admin / "gitdir").read_text().strip()) == os.path.realpath(path / ".git")


def ensure(core: Core, name: str, path: Path, branch: str, reuse: bool = True) -> bool:
    """Make `path` a worktree on `branch`; returns True when it was created now."""
    if reuse and is_healthy(core, name, path):
        return False
    drop(core, name, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repo = core.repo()
    try:
        repo.add_worktree(name, str(path), repo.lookup_reference(f"refs/heads/{branch}"))
    except (pygit2.GitError, KeyError) as exc:
        drop(core, name, path)  # inspect-and-clean: never leave a half-created worktree behind
        raise GitError(f"could not create worktree {path} for {branch}: {exc}") from exc
    return True


def drop(core: Core, name: str, path: Path | None) -> bool:
    """Unregister worktree `name` and delete its directory; True if anything was there."""
    admin = core.layout.gitdir / "worktrees" / name
    found = admin.exists() or (path is not None and (path.exists() or path.is_symlink()))
    if admin.exists():
        shutil.rmtree(admin)
    if path is not None:
        remove_path(path)
    return found


def resync(path: Path) -> None:
    """Make an operator-owned worktree's files and index match its HEAD (after its branch moved)."""
    # The index is rebuilt from HEAD first: a checkout killed between writing a file and writing the
    # index leaves a file on disk that the index lacks, and a checkout alone sees nothing to do there.
    strategy = pygit2.enums.CheckoutStrategy.FORCE | pygit2.enums.CheckoutStrategy.REMOVE_UNTRACKED
    try:
        worktree = pygit2.Repository(str(path))
        index = worktree.index
        index.read_tree(worktree.head.peel(pygit2.Commit).tree)
        index.write()
        worktree.checkout_head(strategy=strategy)  # type: ignore[no-untyped-call]
    except pygit2.GitError as exc:
        raise GitError(f"could not update the worktree {path} to its branch head: {exc}") from exc


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic: a reader sees the old file, the new file, or none -- never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        partial.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(partial, path)
    except OSError:  # a full disk: no half-written file is left behind
        partial.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
