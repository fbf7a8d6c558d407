"""Where each task attempt's socket lives, and the checks that make it safe to create.

Layout: `{run_dir}/llm/{sprint}.{task}.{attempt}/llm.sock`. Each attempt has a directory of its own so
the runtime can bind-mount exactly that directory (and nothing else) into the container at
`CONTAINER_SOCKET_DIR`. A Unix socket path holds at most 107 bytes, so when long ids would overflow it
the directory is named by a digest of the key instead (`h-<20 hex>`), still one per attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from typing import NamedTuple

from ..errors import InvalidInput

SOCKET_NAME = "llm.sock"
CONTAINER_SOCKET_DIR = "/run/sprint-llm"  # where the runtime mounts the attempt's socket directory
CONTAINER_PORT = 4180  # where the forwarder listens inside the container
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


class TaskKey(NamedTuple):
    sprint_id: str
    task_id: str
    attempt: int

    def __str__(self) -> str:
        return f"{self.sprint_id}/{self.task_id}#{self.attempt}"


def socket_path(run_dir: Path, key: TaskKey) -> Path:
    readable = run_dir / "llm" / f"{key.sprint_id}.{key.task_id}.{key.attempt}" / SOCKET_NAME
    if len(str(readable).encode()) <= _MAX_SOCKET_PATH:
        return readable
    digest = hashlib.sha256(f"{key.sprint_id}\0{key.task_id}\0{key.attempt}".encode()).hexdigest()[:12]
    return run_dir / "llm" / f"h-{digest}" / SOCKET_NAME  # 48 bits: unique among one run dir's attempts


def check_key(key: TaskKey) -> None:
    """Refuse ids that could not name a socket (or a log line) safely, and negative attempts."""
    for field, value in (("sprint_id", key.sprint_id), ("task_id", key.task_id)):
        if not _SAFE_ID.fullmatch(value):
            raise InvalidInput(
                f"{field} {value!r} cannot name a proxy socket: use letters, digits, '-' or '_'"
            )
    if key.attempt < 0:
        raise InvalidInput(f"attempt must be 0 or more, not {key.attempt}")


def prepare(run_dir: Path, key: TaskKey) -> Path:
    """Validate the key, create the attempt's directory and clear a stale socket; return the path."""
    check_key(key)
    path = socket_path(run_dir, key)
    if len(str(path).encode()) > _MAX_SOCKET_PATH:
        raise InvalidInput(
            f"the proxy socket path {str(path)!r} is longer than {_MAX_SOCKET_PATH} bytes, the limit of Unix "
            "sockets: choose a shorter state directory (settings.state_dir / SPRINT_ORCHESTRATOR_STATE_DIR)"
        )
    path.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    path.parent.mkdir(exist_ok=True, mode=0o755)
    path.unlink(missing_ok=True)
    return path


def open_up(path: Path) -> None:
    """Let any container user connect: the agent may run as an unprivileged uid."""
    path.chmod(0o666)


def remove(path: Path, keep_directory: bool = False) -> None:
    """Remove the socket and its directory; `keep_directory` keeps the directory for a running container
    whose bind mount holds it, so a restarted operator's new socket appears inside that same mount."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
        if not keep_directory:
            path.parent.rmdir()
