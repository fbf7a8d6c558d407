"""One-shot containers (quality gates, start-up probes) on Podman: a function of a `PodmanRuntime`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import podman.errors

from . import (
    AGENT_USER,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_ROLE,
    Health,
    Limits,
    Mount,
    OneshotResult,
    RunHandle,
    containers,
    logs,
    ownership,
)

if TYPE_CHECKING:
    from .podman import PodmanRuntime


def run_once(
    rt: PodmanRuntime,
    image: str,
    command: Sequence[str],
    workdir_mount: Path | None,
    timeout_s: float,
    limits: Limits,
) -> OneshotResult:
    """One run of a one-shot (gate, probe) container to its end, removed after; an API error only while
    the service answers is the container's failure to run (else it is raised: `@revived` runs it again)."""
    name = f"so-oneshot-{uuid.uuid4().hex[:12]}"
    user = ownership.effective_user(AGENT_USER if workdir_mount else None)
    mounts = [workdir_mount] if workdir_mount else []
    if not rt.userns:
        ownership.hand_over(mounts, user)
    kwargs = containers.hardened(image, command, name, limits, rt._log(name), user, rt.userns)
    kwargs["labels"] = {LABEL_ROLE: "oneshot", LABEL_OWNER: rt.owner, LABEL_INSTANCE: rt.instance}
    work = [containers.bind(Mount(workdir_mount, "/workspace", False), rt.userns)] if workdir_mount else []
    kwargs["mounts"] = [*work, containers.TMP]  # a test runner writes caches to /tmp: size-capped
    begin = time.perf_counter()
    try:
        with rt._disk_lock(name):  # held until the container exists: pruning must not take its disk
            if workdir_mount:
                rt._attach_disk(name, limits, {"workspace": workdir_mount})
            container = rt.client.containers.create(**kwargs)
        container.start()
        handle = RunHandle(name, container.id, "", "", 0, rt._log(name), None)
        outcome = rt.wait(handle, timeout_s)
    except podman.errors.APIError as exc:
        if not rt.revival.answers(rt.service.url):
            raise  # the service was lost, not the command: run once more when it is back (@revived)
        return OneshotResult(None, time.perf_counter() - begin, f"container failed to run: {exc}")
    finally:
        ownership.take_back(mounts)
        rt.remove(name)  # the disk too
    text = outcome.log_path.read_text(errors="replace")
    for path in (rt._log(name), outcome.log_path, outcome.log_path.with_suffix(".stdout")):
        path.unlink(missing_ok=True)
    timed_out = outcome.health == Health.TIMED_OUT
    return OneshotResult(outcome.exit_code, time.perf_counter() - begin, logs.tail(text), timed_out)
