"""Where the operator keeps its state, and the check that nobody else can reach into it.

The state directory holds the clones, the task workspaces, the logs, the Podman service's socket, the
metering proxy's sockets and journals, and the secrets given to containers. Another local user who can
write there can plant a symlink where we will write, swap a workspace under a running commit, or read a
key. So the default is never the world-writable `/tmp`:

- root: `/var/lib/sprint-orchestrator` (in a Pod, the manifests and the chart mount a volume there
  and name its `state/` subdirectory: the volume's root belongs to root, the subdirectory to the operator);
- anyone else: `$XDG_STATE_HOME/sprint-orchestrator`, else `~/.local/state/sprint-orchestrator`.

`prepare` creates it 0700 and refuses to use one that is a symlink, not a directory, or owned by
another user; a directory of ours that others could enter is tightened to 0700 (and logged).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from .errors import InvalidInput

log = logging.getLogger("sprint_orchestrator.statedir")

ROOT_STATE_DIR = Path("/var/lib/sprint-orchestrator")


def default_state_dir(env: Mapping[str, str], euid: int) -> Path:
    if euid == 0:
        return ROOT_STATE_DIR
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "sprint-orchestrator"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / "sprint-orchestrator"


def prepare(path: Path, what: str = "state directory") -> Path:
    """Create `path` (0700) or check the existing one is ours and private; returns it."""
    if not path.is_absolute():
        raise InvalidInput(f"the {what} {str(path)!r} must be an absolute path")
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(
            f"the {what} {path} is {'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory'}: "
            "the operator keeps clones, sockets and keys there and follows no link to them; "
            "set SPRINT_ORCHESTRATOR_STATE_DIR to a directory of the operator's own"
        )
    euid = os.geteuid()
    if st.st_uid != euid:
        raise InvalidInput(
            f"the {what} {path} belongs to uid {st.st_uid}, not to the operator's uid {euid}: another "
            "user could have planted files in it; set SPRINT_ORCHESTRATOR_STATE_DIR to a directory of "
            "the operator's own (the default is private: /var/lib/sprint-orchestrator for root)"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        log.warning(
            "the %s %s was open to others (mode %o): made private (0700)",
            what, path, stat.S_IMODE(st.st_mode),
        )  # fmt: skip
        os.chmod(path, 0o700)
    return path
