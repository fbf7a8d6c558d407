"""Small filesystems for the full-disk tests: a tmpfs mounted (needs root) and filled, by its blocks or
by its inodes, both of which the kernel reports as ENOSPC, "No space left on device"."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs at `path` (created) with mount `options` (e.g. "size=16m"), unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Fill the filesystem of `directory` to the last byte (a file of 1 MiB, then 4 KiB writes)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: nothing left to fail at close()
        for chunk in (1 << 20, 4096, 512):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def fill_inodes(directory: Path) -> Path:
    """Use up every free inode of the filesystem of `directory` (empty files in one directory, which
    the caller removes to free them): no file can be created there, existing files can still grow."""
    filler = directory / "inode-filler"
    filler.mkdir()
    for n in range(10_000_000):
        try:
            (filler / str(n)).touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return filler
    raise AssertionError(f"{directory} did not run out of inodes")
