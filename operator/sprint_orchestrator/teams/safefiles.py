"""Reading what a task team left behind, as an attacker would have left it.

The team controls every byte under its workspace and artifacts: a name may be a symlink to a host file,
a FIFO that blocks a reader forever, a device, or a file of many gigabytes. `read_capped` opens without
following a symlink and without blocking, accepts only a regular file, and reads at most `limit` bytes,
so the operator never follows, hangs on, or loads more than it chose to.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class TooLarge(ValueError):
    """The file is larger than the cap the caller set."""


def read_capped(path: Path, limit: int, truncate: bool = False) -> bytes | None:
    """The bytes of a regular file (not a symlink, FIFO or device); None when there is no such file.

    More than `limit` bytes: the first `limit` when `truncate`, else TooLarge naming the file.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError:  # missing, a symlink (ELOOP), unreadable
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > limit and not truncate:
            raise TooLarge(f"{path.name} is {info.st_size} bytes, over the limit of {limit}")
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def regular_files(root: Path, limit: int) -> Iterator[Path]:
    """Regular files under `root` (symlinks neither listed nor followed), at most `limit` of them."""
    count = 0
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(directory) / name
            if count >= limit:
                return
            if stat.S_ISREG(os.lstat(path).st_mode):
                count += 1
                yield path
