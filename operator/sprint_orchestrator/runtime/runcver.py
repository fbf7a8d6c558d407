"""PURE: is this runc fixed for CVE-2024-21626 (a container breakout through a leaked working-directory
file descriptor)? Upstream fixed it in 1.1.12; Debian backported the fix to bookworm's 1.1.5 as
1.1.5+ds1-1+deb12u1. A task container is untrusted code: the operator refuses an older runc.
"""

from __future__ import annotations

import re

FIXED_UPSTREAM = (1, 1, 12)
# Distribution builds of older upstream versions that carry the fix: upstream version -> the first
# fixed package revision (compared as (deb-release, update) numbers).
FIXED_BACKPORTS = {(1, 1, 5): ("+deb12u", 1)}


def _triple(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def runc_problem(version_text: str) -> str | None:
    """None when the runc that printed `version_text` (`runc --version`) is fixed, else why not."""
    first = version_text.splitlines()[0] if version_text else ""
    version = _triple(first)
    if version is None:
        return f"cannot tell the runc version from {first[:80]!r}"
    if version >= FIXED_UPSTREAM:
        return None
    commit = next((line for line in version_text.splitlines() if line.startswith("commit:")), "")
    backport = FIXED_BACKPORTS.get(version)
    if backport is not None:
        marker, first_fixed = backport
        update = re.search(re.escape(marker) + r"(\d+)", commit)
        if update and int(update[1]) >= first_fixed:
            return None
    shown = ".".join(map(str, version))
    return (
        f"runc {shown} ({commit.removeprefix('commit:').strip() or 'no build id'}) is vulnerable to "
        "CVE-2024-21626 (container breakout): install runc 1.1.12 or newer, or your distribution's "
        "fixed build"
    )
