"""Who owns the workspace: the container's user during a run, the operator before and after.

Tasks run as an unprivileged user (uid 1000 by default) on a bind-mounted workspace. The operator hands
the workspace to that user before the start and takes it back when the container has ended, so the git
engine (running as the operator) always finds files it owns — libgit2 refuses repositories owned by
another user. Without root the operator cannot chown: the container then runs as the operator's ids.
With a user namespace per container (root), Podman hands the trees to the container's mapped ids and
the operator takes them back the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInput


def parse_user(user: str) -> tuple[int, int]:
    """ "1000:1000" -> (1000, 1000); "1000" -> (1000, 1000). Names are refused: ids must be numeric."""
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise InvalidInput(f'user: {user!r} must be numeric "UID" or "UID:GID"')
    return int(uid), int(gid or uid)


def effective_user(requested: str | None) -> str | None:
    """The user a container can really run as: the requested one when we can hand files to it."""
    if requested is None or os.geteuid() == 0:
        return requested
    return f"{os.getuid()}:{os.getgid()}"


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Recursively give `root` to uid:gid, never following symlinks (the tree is untrusted)."""
    if os.geteuid() != 0 or not root.exists():
        return
    os.chown(root, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def hand_over(paths: list[Path], user: str | None) -> None:
    if user is not None:
        uid, gid = parse_user(user)
        for path in paths:
            chown_tree(path, uid, gid)


def take_back(paths: list[Path]) -> None:
    for path in paths:
        chown_tree(path, os.getuid(), os.getgid())


SUBID_OWNER = "containers"  # whose /etc/subuid and /etc/subgid ranges Podman's userns=auto takes
SUBID_MIN = 65536  # one container's range


def subid_problem(subuid: str, subgid: str) -> str | None:
    """Why Podman cannot give containers their own user namespaces, or None: /etc/subuid and /etc/subgid
    (their texts) must give the `containers` user a range of at least 65536 ids above 65535."""
    for name, text in (("/etc/subuid", subuid), ("/etc/subgid", subgid)):
        if not any(_usable(line) for line in text.splitlines()):
            return (
                f"{name} has no range of host ids for the {SUBID_OWNER!r} user, which Podman needs to give "
                f"each container its own user namespace; add '{SUBID_OWNER}:2147483647:2147483648' "
                "(hack/setup-podman.sh does)."
            )
    return None


def _usable(line: str) -> bool:
    parts = line.strip().split(":")
    if len(parts) != 3 or parts[0] != SUBID_OWNER or not (parts[1].isdigit() and parts[2].isdigit()):
        return False
    return int(parts[1]) > 65535 and int(parts[2]) >= SUBID_MIN
