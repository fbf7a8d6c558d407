"""Container runtimes behind one small Protocol.

A runtime turns a prepared task workspace into a finished, measured container run. Everything it
returns is a frozen record: outcomes are data (an OOM kill or a timeout is a `RunOutcome`, not an
exception); exceptions are for a runtime that is unusable (`RuntimeUnavailable`) or an image that
cannot be built (`ImageBuildFailed`).

`RUNTIMES` maps a runtime name to a factory taking the process `Settings`; the Podman adapter is
imported only when it is used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import LABEL_ATTEMPT, LABEL_SPRINT, LABEL_TASK
from ..status import ContainerHealth

if TYPE_CHECKING:
    from ..settings import Settings

Health = ContainerHealth
LABEL_ROLE = "sprintorchestrator.dev/role"
LABEL_TENANT = "sprintorchestrator.dev/tenant"
# A one-shot container or Pod, and a Pod's NetworkPolicy and Secret, record which operator (owner: its
# state dir) and which runtime instance (one per operator process) made them: start-up pruning removes
# only what an earlier process of the same operator left, never what this process has just created, nor
# another operator's.
LABEL_OWNER = "sprintorchestrator.dev/owner"
LABEL_INSTANCE = "sprintorchestrator.dev/instance"
AGENT_USER = "1000:1000"  # the `agent` user of the base image
_NAME_MAX = 63


@dataclass(frozen=True)
class Limits:
    """Resource limits of one container; None means the runtime's default (unlimited)."""

    cpus: float | None = None
    memory_bytes: int | None = None
    pids: int | None = 512
    disk_bytes: int | None = None  # what the workspace and /artifacts may hold together (runtime/disks.py)


@dataclass(frozen=True)
class Scheduling:
    """Where a sprint's Pods may run (spec.container; validated in model.py). The pods runtime puts it on
    every task, gate and integration Pod; the podman runtime has no nodes and ignores it (the Sprint's
    status message says so)."""

    runtime_class_name: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    priority_class_name: str | None = None

    def __bool__(self) -> bool:
        chosen = (self.runtime_class_name, self.node_selector, self.tolerations, self.priority_class_name)
        return any(chosen)


ANYWHERE = Scheduling()  # no scheduling choice: the default of every runtime call that takes one


@dataclass(frozen=True)
class Mount:
    """A host directory bind-mounted into the container (read-only unless said otherwise)."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class TaskRunSpec:
    """Everything needed to run one attempt of one task. `environment` must hold no secret:
    secrets go in `secrets` (name -> value) and never reach `podman inspect`."""

    sprint_id: str
    task_id: str
    attempt: int
    image: str
    command: Sequence[str]
    workspace: Path
    artifacts: Path
    extra_mounts: Sequence[Mount] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = Limits()
    timeout_s: float = 3600.0
    network: str = "none"
    user: str | None = AGENT_USER
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    tenant: str = ""  # tenant_of(namespace, Sprint name): two Sprints with one sprintId never share
    owner: Mapping[str, Any] | None = field(default=None, repr=False)  # the Task (the pods runtime's owner)
    scheduling: Scheduling = ANYWHERE
    gated: bool = False  # gates run on its result (a runtime with warm gate Pods starts one meanwhile)


@dataclass(frozen=True)
class RunHandle:
    """A started (or adopted) task container."""

    name: str
    container_id: str
    sprint_id: str
    task_id: str
    attempt: int
    log_path: Path
    started_at: datetime | None
    adopted: bool = False


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int | None
    health: ContainerHealth
    started_at: datetime | None
    finished_at: datetime | None
    log_path: Path
    reason: str = ""
    disk_full: bool = False  # failed with its workspace and /artifacts at their disk cap
    infrastructure: str = ""  # the node or cluster ended the run, not its work (podstatus.py), e.g. Evicted

    @property
    def succeeded(self) -> bool:
        return self.health == ContainerHealth.EXITED and self.exit_code == 0


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    container_id: str
    sprint_id: str
    task_id: str
    attempt: int
    health: ContainerHealth
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class ImageResult:
    tag: str
    built: bool


@dataclass(frozen=True)
class OneshotResult:
    exit_code: int | None
    duration_s: float
    log_tail: str
    timed_out: bool = False
    infrastructure: str = ""  # as RunOutcome.infrastructure: the run says nothing about the command


class Runtime(Protocol):
    """What the sprint lifecycle needs from a container runtime."""

    def check(self) -> list[str]:
        """Problems that keep the runtime from working, each a sentence saying how to fix it."""
        ...

    def ensure_sprint_image(
        self,
        base_image: str,
        dependencies: Sequence[str],
        environment: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> ImageResult: ...

    def start_task(self, spec: TaskRunSpec) -> RunHandle:
        """Start the task's container, or adopt the one of the same sprint, task and attempt."""
        ...

    def wait(self, handle: RunHandle, timeout_s: float) -> RunOutcome:
        """Wait for the container to end, stopping it once `timeout_s` after its start has passed."""
        ...

    def stop(self, handle_or_name: RunHandle | str, grace_s: float = 5) -> None:
        """Stop a running container; a concurrent `wait` then returns its outcome."""
        ...

    def status(self, name: str) -> ContainerInfo | None: ...

    def find_task_containers(self, sprint_id: str | None = None, tenant: str = "") -> list[ContainerInfo]: ...

    def remove(self, handle_or_name: RunHandle | str) -> None: ...

    def run_oneshot(
        self,
        image: str,
        command: Sequence[str],
        workdir_mount: Path,
        timeout_s: float,
        limits: Limits,
        owner: Mapping[str, Any] | None = None,
        scheduling: Scheduling = ANYWHERE,
    ) -> OneshotResult:
        """Run `command` once on `workdir_mount`; `owner`: the Task the run belongs to (if any)."""
        ...

    def release_warm(self, sprint: str) -> None:
        """The Sprint `namespace/name` has ended: drop what the runtime kept warm for it (if anything)."""
        ...

    def close(self) -> None: ...


def tenant_of(namespace: str, sprint_name: str) -> str:
    """The tenant key of a Sprint resource: 10 hex digits of sha256("namespace/name")."""
    return hashlib.sha256(f"{namespace}/{sprint_name}".encode()).hexdigest()[:10]


def container_name(sprint_id: str, task_id: str, attempt: int, tenant: str = "") -> str:
    """Deterministic container name: so-{sprint}-{task}-{attempt}[-{tenant}], [a-z0-9-], <= 63 chars.

    ("textstats-1", "words", 2) -> "so-textstats-1-words-2"; with a tenant key the same sprint id in two
    namespaces gets two names. Ids are already validated as safe; the sanitizing only keeps the name
    valid if that ever changes (collisions are resolved by labels).
    """
    body = re.sub(r"[^a-z0-9-]+", "-", f"{sprint_id}-{task_id}".lower()).strip("-")
    suffix = f"-{attempt}" + (f"-{tenant[:10]}" if tenant else "")
    return "so-" + body[: _NAME_MAX - 3 - len(suffix)].rstrip("-") + suffix


def task_labels(sprint_id: str, task_id: str, attempt: int, tenant: str = "") -> dict[str, str]:
    labels = {LABEL_SPRINT: sprint_id, LABEL_TASK: task_id, LABEL_ATTEMPT: str(attempt), LABEL_ROLE: "task"}
    return {**labels, LABEL_TENANT: tenant} if tenant else labels


def _podman(settings: Settings) -> Runtime:
    from .podman import PodmanRuntime

    return PodmanRuntime.connect(settings)


def _pods(settings: Settings) -> Runtime:
    from .pods import PodsRuntime

    return PodsRuntime.connect(settings)


RUNTIMES: dict[str, Callable[[Settings], Runtime]] = {"podman": _podman, "pods": _pods}
