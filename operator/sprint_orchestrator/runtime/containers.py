"""Task containers as data: a TaskRunSpec -> podman-py create() arguments, inspect() data -> records.

Pure translation, no I/O (only runtime/podman.py talks to Podman). The hardening lives here, in one
place: no network unless asked, all capabilities dropped, no-new-privileges, read-only root with tmpfs
/tmp and /run, pids/memory/CPU limits (no swap: over the memory limit means an OOM kill, not
thrashing), an init process, HOME on the tmpfs, and conmon writing a size-capped k8s-file log.

User namespace (`userns=True`, an operator running as root): every container gets its own range of
65536 host ids from the `containers` entries of /etc/subuid and /etc/subgid (Podman's `userns=auto`),
so root in the container is an unprivileged id on the host. Its writable bind mounts carry Podman's
`U` option: Podman gives the tree to the container's user, mapped, at each start (runc 1.1 ignores
`idmap` mounts); the operator takes it back when the container has ended (runtime/ownership.py).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import LABEL_ATTEMPT, LABEL_SPRINT, LABEL_TASK
from . import ContainerInfo, Health, Limits, Mount, TaskRunSpec, task_labels

LOG_MAX_BYTES = 16 * 1024 * 1024
# The API ignores read_write_tmpfs: a writable /tmp (HOME) must be mounted explicitly (agent CLIs write there)
# The API takes `auto` only with the id mappings spelled out (a "size=" value alone is ignored and the
# container shares the host's ids); 65536 ids leave room for the image's, up to nobody (65534).
USERNS = {
    "userns_mode": {"nsmode": "auto"},
    "idmappings": {"AutoUserNs": True, "AutoUserNsOpts": {"Size": 65536}},
}
TMP_SIZE = "512m"  # a cap on what a team can write to /tmp (its pages count against its memory too)
TMP = {
    "type": "tmpfs",
    "source": "tmpfs",
    "target": "/tmp",
    "read_only": False,
    "mode": "1777",
    "size": TMP_SIZE,
}


def hardened(
    image: str,
    command: Sequence[str],
    name: str,
    limits: Limits,
    log: Path,
    user: str | None,
    userns: bool = False,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "image": image,
        "command": list(command),
        "name": name,
        "init": True,
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "no_new_privileges": True,
        "read_only": True,
        "read_write_tmpfs": True,
        "environment": {"HOME": "/tmp"},
        "working_dir": "/workspace",
        "pids_limit": limits.pids or -1,
        "log_config": {"Type": "k8s-file", "Config": {"path": str(log), "size": LOG_MAX_BYTES}},
    }
    if user is not None:
        kwargs["user"] = user
    if userns:
        kwargs.update(copy.deepcopy(USERNS))
    if limits.memory_bytes:
        kwargs["mem_limit"] = limits.memory_bytes
        kwargs["memswap_limit"] = limits.memory_bytes  # no swap: over the limit means OOM, not thrashing
    if limits.cpus:
        kwargs["cpu_period"], kwargs["cpu_quota"] = 100_000, int(limits.cpus * 100_000)
    return kwargs


def task_kwargs(
    spec: TaskRunSpec, name: str, user: str | None, log: Path, secrets: Path | None, userns: bool = False
) -> dict[str, Any]:
    kwargs = hardened(spec.image, spec.command, name, spec.limits, log, user, userns)
    kwargs["labels"] = task_labels(spec.sprint_id, spec.task_id, spec.attempt, spec.tenant)
    kwargs["environment"] = {**spec.environment, "HOME": "/tmp"}
    kwargs["network_mode"] = spec.network
    mounts = [Mount(spec.workspace, "/workspace", False), Mount(spec.artifacts, "/artifacts", False)]
    binds = [bind(m, userns) for m in mounts]  # the task's own trees: handed to its user
    binds += [bind(Mount(m.source, m.target, True)) for m in spec.extra_mounts]  # read as "other"
    if secrets is not None:
        binds.append(bind(Mount(secrets, "/run/secrets", True), userns))
    kwargs["mounts"] = [*binds, TMP]
    return kwargs


def bind(mount: Mount, chown: bool = False) -> dict[str, Any]:
    """A bind mount; `chown`: Podman hands the tree to the container's (mapped) user at each start."""
    spec = {"type": "bind", "source": str(mount.source), "target": mount.target, "read_only": mount.read_only}
    return {**spec, "chown": True} if chown else spec  # podman-py's name of the `U` option


def is_writable(mount: Mapping[str, Any]) -> bool:
    return (
        mount.get("Type") == "bind" and bool(mount.get("RW")) and mount.get("Destination") != "/run/secrets"
    )


def info(attrs: Mapping[str, Any], labels: Mapping[str, str], name: str) -> ContainerInfo:
    state = attrs.get("State", {})
    status = state.get("Status", "") if isinstance(state, dict) else str(state)
    health = (
        Health.RUNNING if status in ("running", "created", "configured", "initialized") else Health.EXITED
    )
    return ContainerInfo(
        name=name.lstrip("/"),
        container_id=attrs.get("Id", ""),
        sprint_id=labels.get(LABEL_SPRINT, ""),
        task_id=labels.get(LABEL_TASK, ""),
        attempt=int(labels.get(LABEL_ATTEMPT, "0") or 0),
        health=health,
        exit_code=state.get("ExitCode") if health == Health.EXITED else None,
        started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")),
    )


def parse_time(value: str | None) -> datetime | None:
    """Podman's RFC 3339 times (nanoseconds) -> aware datetimes; the zero time -> None."""
    if not value or value.startswith("0001-01-01"):
        return None
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed)
