"""A size cap on what a container can write to its workspace and /artifacts: the one adapter for the
host's mount, umount and mkfs.ext4.

Neither the root filesystem (ext4 without project quotas) nor Podman's volume `size` option (XFS only)
can cap a bind mount here, and a size-capped tmpfs would hold the files in the container's memory. So
each container gets its own filesystem, an ext4 image file of the configured size loop-mounted under
the state dir::

    disks/<container name>/disk.img     sparse: only what is written takes host disk
    disks/<container name>/trees.json   which host directories it stands in for
    disks/<container name>/mnt/         the loop mount: NAME/ for each of those directories

`attach` copies each host directory in and bind-mounts its copy over it: the operator and Podman see
the usual paths (live usage, results and the commit read them unchanged) and a disk fill ends with
ENOSPC inside the container. `detach`, once the container has ended, unmounts the binds, copies each
tree back (`cp -a`: symlinks, FIFOs and sockets are copied as what they are, never followed or opened)
and removes the filesystem; a host disk too full for the copy keeps it (DiskFull), for the next try.
Both are idempotent: a restarted operator finishes a half-done one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from ..diskspace import no_space
from ..errors import DiskFull, TaskStartFailed

FULL_MARGIN = 1 << 20  # less free than this (or no free inode) after a failed run: the cap was hit
_TIMEOUT_S = 600  # a copy of a large tree on a loaded machine
_BUSY_S = 15.0  # how long an unmount may find its mount busy before that is an error
_IMAGE, _TREES, _MNT = "disk.img", "trees.json", "mnt"


def attach(root: Path, name: str, size: int, trees: Mapping[str, Path]) -> None:
    """Give the container `name` a filesystem of `size` bytes holding `trees` (key -> host directory)."""
    home, mnt = root / name, root / name / _MNT
    if not _ready(home, trees):
        detach(root, name, copy_back=False)  # a half-made one: start again from the host directories
        home.mkdir(parents=True, mode=0o700)
        (home / _TREES).write_text(json.dumps({key: str(path) for key, path in trees.items()}))
        with (home / _IMAGE).open("wb") as image:
            image.truncate(size)
        _run(
            ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "nodiscard", str(home / _IMAGE)]
        )
        mnt.mkdir(mode=0o700)
        _run(["mount", "-o", "loop,nosuid,nodev", str(home / _IMAGE), str(mnt)])
        (mnt / "lost+found").rmdir()
        for key, source in trees.items():
            (mnt / key).mkdir()
            _run(["cp", "-a", f"{source}/.", str(mnt / key)])
        (home / "ready").touch()
    for key, source in trees.items():
        if not _same_filesystem(source, mnt):
            _run(["mount", "--bind", str(mnt / key), str(source)])


def detach(root: Path, name: str, copy_back: bool = True) -> bool:
    """End the container's filesystem: unbind, copy each tree back over its host directory (unless
    `copy_back` is False), unmount, delete. False when it had none."""
    home, mnt = root / name, root / name / _MNT
    if not home.exists():
        return False
    trees = _trees(home)
    for source in trees.values():
        while _is_mount(mnt) and _same_filesystem(source, mnt):  # our bind (never another mount)
            umount(source)
    if _is_mount(mnt):
        if copy_back and (home / "ready").exists():
            for key, source in trees.items():
                _copy_back(name, source, mnt / key)
        umount(mnt)
    shutil.rmtree(home)
    return True


def is_full(root: Path, name: str) -> bool:
    """Whether the container's filesystem is (nearly) out of space or inodes; False without one."""
    mnt = root / name / _MNT
    if not _is_mount(mnt):
        return False
    stat = os.statvfs(mnt)
    return stat.f_bavail * stat.f_frsize < FULL_MARGIN or stat.f_favail == 0


def size(root: Path, name: str) -> int:
    """The cap of the container's filesystem in bytes; 0 without one."""
    try:
        return (root / name / _IMAGE).stat().st_size
    except OSError:
        return 0


def attached(root: Path) -> list[str]:
    """The containers that have a filesystem under `root`."""
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _ready(home: Path, trees: Mapping[str, Path]) -> bool:
    return (home / "ready").exists() and _is_mount(home / _MNT) and _trees(home) == dict(trees)


def _same_filesystem(path: Path, mnt: Path) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_dev == os.stat(mnt).st_dev
    except OSError:
        return False


def _trees(home: Path) -> dict[str, Path]:
    try:
        data = json.loads((home / _TREES).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): Path(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _copy_back(name: str, target: Path, copy: Path) -> None:
    """`_replace`; the host's disk full is DiskFull: the work stays on the container's filesystem,
    mounted, and the next `detach` copies it back again from the start."""
    try:
        _replace(target, copy)
    except TaskStartFailed as exc:
        if not no_space(exc):
            raise
        raise DiskFull(
            f"no space left on device while copying the work of {name} back from its own disk "
            f"(it stays there until a copy succeeds): {exc}"
        ) from exc


def _replace(target: Path, copy: Path) -> None:
    """Make the host directory `target` hold exactly what `copy` holds (never following a symlink)."""
    if target.is_symlink() or not target.is_dir():
        return
    for entry in os.scandir(target):
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path)
        else:
            path.unlink()
    _run(["cp", "-a", f"{copy}/.", str(target)])


def _is_mount(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.ismount(path)
    return False


def umount(path: Path, busy_for_s: float = _BUSY_S) -> None:
    """Unmount `path`; while it is busy (the processes of a container that was just removed may still
    hold it for a moment), try again for up to `busy_for_s` before giving up."""
    deadline = time.monotonic() + busy_for_s
    while True:
        try:
            _run(["umount", str(path)])
            return
        except TaskStartFailed as exc:
            if "busy" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _run(command: list[str]) -> None:
    try:
        # In a session of its own: a SIGTERM to the operator's process group (a stop) must not kill a
        # copy or an unmount half-way (the operator finishes it before it exits).
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False, start_new_session=True
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TaskStartFailed(
            f"the container's size-capped disk: {' '.join(command)} failed: {exc}"
        ) from None
    if result.returncode != 0:
        raise TaskStartFailed(
            f"the container's size-capped disk: {' '.join(command)} failed: {result.stderr.strip()[-500:]}"
        )
