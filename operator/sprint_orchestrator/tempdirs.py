"""The operator's temporary files live in a directory of its own process, and a dead process's go.

Libraries write temporary files the operator never names: the Kubernetes client and kopf write the
kubeconfig's certificates and private key to temporary files (removed at exit: never after a SIGKILL),
the quality gates export trees to temporary directories. Left in /tmp by a killed operator they would
have no owner, and a private key would stay on disk. So each operator process points `tempfile` at
`{state_dir}/run/tmp/{pid}-{start time}/`, removes it at a normal exit, and at start-up removes the
directory of every such process that is no longer running (the start time tells a dead process from a
new one that got the same pid, as in a container where the operator is always pid 1).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("sprint_orchestrator.operator")


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


def _owner_alive(name: str) -> bool:
    pid, _, started = name.partition("-")
    return pid.isdigit() and bool(started) and _start_time(int(pid)) == started


def claim(state_dir: Path) -> Path:
    """Make this process's temporary directory the default of `tempfile`; remove dead processes' ones."""
    root = sweep(state_dir)
    mine = root / f"{os.getpid()}-{_start_time(os.getpid())}"
    mine.mkdir(mode=0o700, exist_ok=True)
    tempfile.tempdir = str(mine)
    atexit.register(shutil.rmtree, mine, True)
    return mine


def sweep(state_dir: Path) -> Path:
    """Remove the temporary directories of processes that are no longer running; the root they are in.
    Again once the container runtime has pruned what a killed process left: the size-capped disk of a
    gate it was running is bound inside its directory, which no rmtree can take before that."""
    root = state_dir / "run" / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if not _owner_alive(entry.name):
            _remove(entry)
    return root


def _remove(entry: Path) -> None:
    """Remove a stopped process's entry; never fail the start-up over it. A directory can outlive one
    rmtree when something the killed process started still writes into it: it is left for the next
    start, and said."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            entry.unlink()
    if entry.exists() or entry.is_symlink():
        log.warning("could not remove all temporary files of a stopped operator process yet: %s", entry)
    else:
        log.info("removed the temporary files of a stopped operator process: %s", entry)
