"""Deleting the operator's own files for retention, without following a link out of its directories.

An agent writes its artifacts and logs, and a hostile one leaves symlinks there (to /etc, to another
tenant's data). So a path is removed only when it lies under its root once the root and the path's
parent are resolved, the path itself is never resolved (a symlink is unlinked, not followed), and a
directory goes with `shutil.rmtree`, which works through directory descriptors and never follows a link
it meets. Sizes are the disk blocks in use, counted the same way (lstat, no link followed).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from .errors import InvalidInput


def inside(root: Path, path: Path) -> bool:
    """`path` names an entry strictly under `root` with no link on the way (the entry may be one)."""
    if not path.is_absolute() or ".." in path.parts:
        return False
    real_root = Path(os.path.realpath(root))
    parent = Path(os.path.realpath(path.parent))
    return parent == real_root or parent.is_relative_to(real_root)


def size(path: Path) -> int:
    """Disk bytes of a file or a tree (the blocks du counts, links not followed); 0 if gone."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_blocks * 512
    total = st.st_blocks * 512
    for top, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def remove(root: Path, path: Path) -> int:
    """Remove `path` (a file, a link or a tree) under `root`; the bytes it held. InvalidInput for a
    path outside `root` (through a symlinked parent, too): nothing is removed then."""
    if not inside(root, path):
        raise InvalidInput(f"retention: {path} is not inside {root}; not removed")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    freed = size(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    return freed


def mtime(path: Path) -> float | None:
    """The entry's own modification time (a link's, not its target's); None if gone."""
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return None


def entries(directory: Path) -> list[Path]:
    """The entries of a directory of ours (none if it is missing or is a link)."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        return []
    return sorted(directory.iterdir())
