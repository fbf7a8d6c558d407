"""Per-repository serialization of shared git metadata, across threads and processes.

A re-entrant thread lock (one per repository path in this process) guards an exclusive `flock` on a
file next to the clone. The kernel drops a `flock` when its process dies, so a restarted operator never
waits on a lock of a dead one. git's own `*.lock` files carry no owner, so `is_held_open` asks /proc
whether any live process still has one open before recovery removes it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_registry_guard = threading.Lock()
_registry: dict[str, RepoLock] = {}


class RepoLock:
    """Re-entrant for the owning thread; takes the file lock on the outermost acquire only."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    os.close(self._fd)  # closing the descriptor releases the flock
                    self._fd = None


def repo_lock(path: Path) -> RepoLock:
    """The one lock object of this process for the lock file `path`."""
    key = os.path.realpath(path)
    with _registry_guard:
        lock = _registry.get(key)
        if lock is None:
            lock = _registry[key] = RepoLock(Path(key))
        return lock


def open_paths() -> set[str]:
    """Every file that some live process we can inspect holds open (Linux /proc)."""
    held: set[str] = set()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                held.add(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                continue
    return held


def stale_lock_files(gitdir: Path) -> list[Path]:
    """git/libgit2 `*.lock` files under `gitdir` that no live process holds open."""
    candidates = [p for p in gitdir.glob("*.lock") if p.is_file()]
    for sub in ("refs", "logs", "worktrees"):
        candidates += [p for p in (gitdir / sub).rglob("*.lock") if p.is_file()]
    if not candidates:
        return []
    held = open_paths()
    return [p for p in candidates if os.path.realpath(p) not in held]
