"""Podman's answers that say nothing about a container: pure tests of its messages, and a state read that
meets them tried again."""

from __future__ import annotations

import time
from typing import Any

import podman.errors


def reload_state(container: Any, tries: int = 10) -> None:
    """Read the container's state again; a read that met the same race as `start_race` (the process
    gone while Podman read its cgroup) is tried again: it says nothing about the container."""
    for left in range(tries - 1, -1, -1):
        try:
            container.reload()
            return
        except podman.errors.APIError as exc:
            if not left or not cgroup_race(str(exc)):
                raise
            time.sleep(0.1)


def cgroup_race(text: str) -> bool:
    """PURE: Podman answered 500 only because a container's process had exited while it read its cgroup
    (`read /proc/<pid>/cgroup: no such process`, seen under load with runc on hybrid cgroups)."""
    return "/cgroup: no such process" in text


def start_race(text: str) -> bool:
    """PURE: whether a container start failed only because its process had already exited when Podman
    read its cgroup (`500 … read /proc/<pid>/cgroup: no such process`, seen under load with runc on
    hybrid cgroups): a start to try again, not a verdict on the command."""
    return "container failed to run" in text and cgroup_race(text)
