"""How a task container ended: exit classification and out-of-memory evidence.

Podman's `State.OOMKilled` is always false on hosts like ours (conmon drops an `oom` file in its own
working directory instead, and no `oom` event is emitted), so a kill by the memory cgroup is detected
first from the container's memory cgroup itself (cgroups.OomWatch: its OOM notifications, counted
while it lives), and then from the kernel log: the OOM killer writes a line naming the cgroup,

    oom-kill:constraint=CONSTRAINT_MEMCG,…,oom_memcg=/libpod_parent/libpod-<container id>,…

which is exact (it names the container) and still there after the container and its cgroup are gone.
Where the kernel log cannot be read, an exit by SIGKILL (137) that we did not cause, in a container
with a memory limit, is taken as an OOM kill and the reason says it was inferred.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from ..status import ContainerHealth

SIGKILL_EXIT = 137
KMSG = "/dev/kmsg"
_KMSG_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class ExitFacts:
    exit_code: int | None
    oom_flag: bool  # what the runtime reports (usually false here)
    stopped_for_timeout: bool
    memory_limited: bool
    kernel_oom: bool | None  # None: the kernel log could not be read
    cgroup_oom: bool | None = None  # the memory cgroup's OOM count; None: not watched (adopted, no limit)


def classify(facts: ExitFacts) -> tuple[ContainerHealth, str]:
    """The health of an ended container and a reason a user can read."""
    if facts.stopped_for_timeout:
        return ContainerHealth.TIMED_OUT, "stopped after exceeding its wall-clock timeout"
    if facts.cgroup_oom and facts.exit_code != 0:  # the agent or one of its processes was OOM-killed
        return ContainerHealth.OOM_KILLED, "out of memory: the container's memory cgroup counted an OOM kill"
    if facts.oom_flag or facts.kernel_oom:
        return ContainerHealth.OOM_KILLED, "killed by the kernel for exceeding its memory limit"
    unknown = facts.kernel_oom is None and facts.cgroup_oom is None
    if unknown and facts.exit_code == SIGKILL_EXIT and facts.memory_limited:
        return (
            ContainerHealth.OOM_KILLED,
            "killed by SIGKILL with a memory limit set (inferred: kernel log unreadable)",
        )
    if facts.exit_code == 0:
        return ContainerHealth.EXITED, "exited normally"
    return ContainerHealth.EXITED, f"exited with code {facts.exit_code}"


def kernel_reports_oom(container_id: str, kmsg: str = KMSG) -> bool | None:
    """True when the kernel log holds an OOM kill in this container's cgroup; None if unreadable."""
    try:
        fd = os.open(kmsg, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return any(_is_oom_line(line, container_id) for line in _read_records(fd))
    finally:
        os.close(fd)


def _is_oom_line(line: str, container_id: str) -> bool:
    return "oom-kill:" in line and f"libpod-{container_id}" in line


def _read_records(fd: int) -> list[str]:
    """Every record /dev/kmsg holds now (one record per read; EPIPE means some were overwritten)."""
    records: list[str] = []
    total = 0
    while total < _KMSG_LIMIT:
        try:
            chunk = os.read(fd, 8192)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                continue
            break
        if not chunk:
            break
        total += len(chunk)
        records.append(chunk.decode("utf-8", "replace"))
    return records
