"""The Podman adapter (podman-py against `podman system service`): with its parts podmanbuild (sprint
images), podmanconnect (the service, the start-up check), podmanoneshot (gates, probes), podmanraces and
podmanrevival (answers that say nothing about a container; a service that died), the only modules that
import podman.

Task containers are hardened (no network, all capabilities dropped, no-new-privileges, read-only root
with tmpfs /tmp and /run, pids/memory/CPU limits, an init process), named so-{sprint}-{task}-{attempt}
and labelled with sprint, task and attempt, so a restarted operator adopts them instead of starting a
twin. conmon streams their output to a size-capped k8s-file log under the state dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import podman.errors
from podman import PodmanClient

from .. import LABEL_SPRINT, quantities
from ..errors import RuntimeUnavailable, TaskStartFailed
from ..settings import Settings
from . import (
    ANYWHERE,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_TENANT,
    ContainerInfo,
    Health,
    ImageResult,
    Limits,
    OneshotResult,
    RunHandle,
    RunOutcome,
    Scheduling,
    TaskRunSpec,
    cgroups,
    container_name,
    containers,
    disks,
    exits,
    images,
    logs,
    ownership,
    podmanbuild,
    podmanconnect,
    podmanoneshot,
    service,
    task_labels,
)
from .podmanraces import cgroup_race, reload_state, start_race
from .podmanrevival import Revival, revived

STOP_GRACE_S = 5
_POLL = "20ms"  # the API's default 250 ms polling would triple the cost of a short task
_CHECK_TIMEOUT_S = 120  # per API call: a loaded 2-core machine kept Podman busy past 30 s
_REMOVE_TRIES = 5
_OOM_SETTLE_S = 2.0  # after a failed exit: how long to let the memory cgroup's removal be seen


class PodmanRuntime:
    def __init__(self, client: PodmanClient, proc: service.ServiceProcess, state_dir: Path) -> None:
        self.client = client
        self.service = proc
        self.revival = Revival(None, podmanconnect.answers)  # connect() lets it start the service again
        self.log_dir = state_dir / "logs"
        self.secrets_dir = state_dir / "secrets"
        self.disk_dir = state_dir / "disks"
        self._disk_locks: dict[str, threading.Lock] = {}
        self._disk_guard = threading.Lock()
        self.base_image = Settings.base_image
        self.package_sources = images.PackageSources()
        self._timed_out: set[str] = set()
        self._removed: set[str] = set()  # removed by us, maybe while a wait() was under way
        self._oom = cgroups.Watches()
        self.owner = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
        self.instance = uuid.uuid4().hex
        # As root, each container gets its own user namespace (a private range of host ids); a rootless
        # Podman already runs in the operator's own.
        self.userns = os.geteuid() == 0

    # -- connecting --------------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings: Settings, verify: bool = True) -> PodmanRuntime:
        """Connect to settings.podman_url, or reuse/start a service on a socket under the run dir."""
        proc = podmanconnect.service_for(settings)
        runtime = cls(PodmanClient(base_url=proc.url, timeout=_CHECK_TIMEOUT_S), proc, settings.state_dir)
        runtime.base_image = settings.base_image
        if not settings.podman_url:  # the socket is ours: a service that died is started again
            runtime.revival = Revival(lambda: podmanconnect.service_for(settings), podmanconnect.answers)
        runtime.package_sources = images.package_sources(settings)
        problems = runtime.check() if verify else []
        if problems and not settings.podman_url and not podmanconnect.answers(runtime.service.url):
            # our own service died between its start and the check (killed, as the chaos run found):
            # started once more, and checked again
            try:
                runtime.service = runtime.revival.revive(runtime.service)
            except RuntimeUnavailable:
                pass  # the first check's problems say why
            else:  # a client whose pooled connections went with the dead service is not reused
                runtime.client.close()  # type: ignore[no-untyped-call]
                runtime.client = PodmanClient(base_url=runtime.service.url, timeout=_CHECK_TIMEOUT_S)
                problems = runtime.check()
        if problems:
            runtime.close()
            raise RuntimeUnavailable("Podman is not usable: " + " ".join(problems))
        return runtime

    def check(self) -> list[str]:
        """Problems with this Podman, each saying how to fix it; [] when a hardened container runs."""
        return podmanconnect.problems(self)

    def release_warm(self, sprint: str) -> None:
        """Nothing is kept warm here: a pre-created container would save a gate its create step, 12 ms of
        its 0.21 s (bench/container_overhead.py's oneshot_parts_median_s: start 65 ms, wait 112 ms); the
        Pods runtime's warm gate Pods save 2 s of 4 (runtime/podpool.py, bench/warm_gates.py)."""

    def close(self) -> None:
        self.revival.closed = True  # a runner still waiting must not start the service again
        self.client.close()  # type: ignore[no-untyped-call]
        self.service.stop()

    # -- images (podmanbuild.py) ---------------------------------------------------------------------

    @revived
    def ensure_sprint_image(
        self,
        base_image: str,
        dependencies: Sequence[str],
        environment: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> ImageResult:
        return podmanbuild.ensure_sprint_image(self, base_image, dependencies, environment, labels)

    def push_image(self, tag: str, target: str) -> None:
        """Push a local image to a registry reference (plain HTTP allowed: the local cluster's registry)."""
        podmanbuild.push_image(self, tag, target)

    # -- task containers -----------------------------------------------------------------------------

    @revived
    def start_task(self, spec: TaskRunSpec) -> RunHandle:
        """Start the container of this task attempt; adopt it if it already exists."""
        name = container_name(spec.sprint_id, spec.task_id, spec.attempt, spec.tenant)
        self._removed.discard(name)
        existing = self._get(name)
        if existing is None:
            user = ownership.effective_user(spec.user)
            if not self.userns:  # else Podman hands them over, to the user's mapped ids (`U`)
                ownership.hand_over([spec.workspace, spec.artifacts], user)
            secrets = self._write_secrets(name, spec.secrets, user)
            trees = {"workspace": spec.workspace, "artifacts": spec.artifacts}
            with self._disk_lock(name):  # held until the container exists: pruning must not take its disk
                self._attach_disk(name, spec.limits, trees)
                try:
                    existing = self.client.containers.create(
                        **containers.task_kwargs(spec, name, user, self._log(name), secrets, self.userns)
                    )
                except podman.errors.APIError as exc:
                    existing = self._get(name)  # lost a race against a twin: adopt it below
                    if existing is None:
                        disks.detach(self.disk_dir, name)
                        raise TaskStartFailed(
                            f"cannot create container {name} from {spec.image}: {exc}"
                        ) from None
        _check_labels(existing, spec, name)
        return self._run(existing, spec, name)

    def _run(self, container: Any, spec: TaskRunSpec, name: str) -> RunHandle:
        adopted = container.status not in ("created", "configured", "initialized")
        if not adopted:
            try:
                if spec.limits.memory_bytes:
                    self._watch_memory(container, name)
                container.start()
            except podman.errors.APIError as exc:
                if not self._ran_anyway(container, exc):
                    self._oom.drop(name)
                    raise TaskStartFailed(
                        f"cannot start container {name}: {exc.explanation or exc}"
                    ) from None
            reload_state(container)
        started = containers.parse_time(container.attrs.get("State", {}).get("StartedAt"))
        return RunHandle(
            name, container.id, spec.sprint_id, spec.task_id, spec.attempt, self._log(name), started, adopted
        )

    @staticmethod
    def _ran_anyway(container: Any, exc: Exception) -> bool:
        """A start that Podman reported as failed only because the process had already exited when it
        read its cgroup (`cgroup_race`): the command ran, and `wait` reads how it ended."""
        if not cgroup_race(str(exc)):
            return False
        with contextlib.suppress(podman.errors.APIError):
            reload_state(container)
            return bool(container.status in ("running", "exited", "stopped"))
        return False

    def _watch_memory(self, container: Any, name: str) -> None:
        """Create the container's process and cgroup (`init`), watch the cgroup's OOM notifications,
        so `start` runs the program under a watch that cannot miss an early OOM."""
        if container.status != "initialized":
            container.init()
        directory = cgroups.container_cgroup(container.id)
        if directory is None:  # another cgroup manager or parent: ask where the init process is
            container.reload()
            pid = int(container.attrs.get("State", {}).get("Pid") or 0)
            directory = cgroups.memory_cgroup(pid) if pid else None
        self._oom.add(name, directory)

    @revived
    def wait(self, handle: RunHandle, timeout_s: float) -> RunOutcome:
        """Wait until the container ends or `timeout_s` after its start has passed (then stop it)."""
        container = self._get(handle.name)
        if container is None:
            return self._gone(handle, [])
        writable = _writable_sources(container.attrs)
        started = containers.parse_time(container.attrs["State"].get("StartedAt")) or datetime.now(UTC)
        while True:
            remaining = timeout_s - (datetime.now(UTC) - started).total_seconds()
            if remaining > 0:
                # A read timeout means the deadline has passed; NotFound, that it was removed meanwhile;
                # a service that stopped answering: brought back and waited on again (@revived).
                try:
                    container.wait(condition=["exited", "stopped"], interval=_POLL, timeout=remaining + 0.5)
                except podman.errors.APIError:
                    if not self.revival.answers(self.service.url):
                        raise
            if handle.name in self._removed:
                return self._gone(handle, writable)  # our own remove won the race against the exit
            try:
                reload_state(container)
                if container.status == "running":
                    if timeout_s > (datetime.now(UTC) - started).total_seconds():
                        continue  # the wait ended before the deadline (its service came back meanwhile)
                    self._timed_out.add(handle.name)
                    _stop(container, STOP_GRACE_S)
                    reload_state(container)
            except podman.errors.APIError:  # 404, or 500 "no such container" while a removal is under way
                if self._get(handle.name) is not None:
                    raise
                return self._gone(handle, writable)  # removed while it ran (a budget stop, a cleanup)
            return self._outcome(container, handle, timeout_s, writable)

    @revived
    def stop(self, handle_or_name: RunHandle | str, grace_s: float = STOP_GRACE_S) -> None:
        """Stop a running container (SIGTERM, then SIGKILL after grace_s); `wait` then returns its outcome."""
        name = handle_or_name if isinstance(handle_or_name, str) else handle_or_name.name
        container = self._get(name)
        if container is not None and container.status == "running":
            with contextlib.suppress(podman.errors.NotFound):
                _stop(container, grace_s)

    def _outcome(
        self, container: Any, handle: RunHandle, timeout_s: float, writable: list[Path]
    ) -> RunOutcome:
        state = container.attrs["State"]
        code = state.get("ExitCode")
        started = containers.parse_time(state.get("StartedAt"))
        finished = containers.parse_time(state.get("FinishedAt"))
        ran_s = (finished - started).total_seconds() if started and finished else 0.0
        cgroup_oom = self._oom.verdict(handle.name, settle_s=_OOM_SETTLE_S if code else 0.0)
        facts = exits.ExitFacts(
            exit_code=code,
            oom_flag=bool(state.get("OOMKilled")),
            stopped_for_timeout=handle.name in self._timed_out or (code in (137, 143) and ran_s >= timeout_s),
            memory_limited=bool(container.attrs.get("HostConfig", {}).get("Memory")),
            kernel_oom=(
                exits.kernel_reports_oom(container.id)
                if code == exits.SIGKILL_EXIT and not cgroup_oom
                else False
            ),
            cgroup_oom=cgroup_oom,
        )
        health, reason = exits.classify(facts)
        ownership.take_back(writable)
        full = self._detach_disk(handle.name, failed=health == Health.EXITED and code not in (0, None))
        if full:
            reason = f"{reason}: its workspace and /artifacts filled their disk cap ({full})"
        text = self._text_logs(handle.name)
        return RunOutcome(code, health, started, finished, text, reason, disk_full=bool(full))

    def _gone(self, handle: RunHandle, writable: list[Path]) -> RunOutcome:
        ownership.take_back(writable)
        self._detach_disk(handle.name)
        now = datetime.now(UTC)
        text = self._text_logs(handle.name)
        return RunOutcome(None, Health.REMOVED, handle.started_at, now, text, "the container was removed")

    def _text_logs(self, name: str) -> Path:
        """Decode the raw log into NAME.txt (stdout and stderr) and NAME.stdout; return NAME.txt."""
        text = self._log(name).with_suffix(".txt")
        logs.write_text_logs(self._log(name), text, text.with_suffix(".stdout"))
        return text

    def read_output(self, handle: RunHandle, streams: tuple[str, ...] = ("stdout",)) -> str:
        """What the container has written so far (for live usage while it runs)."""
        return logs.read_log(handle.log_path, streams)

    @revived
    def status(self, name: str) -> ContainerInfo | None:
        container = self._get(name)
        return None if container is None else containers.info(container.attrs, container.labels or {}, name)

    @revived
    def find_task_containers(self, sprint_id: str | None = None, tenant: str = "") -> list[ContainerInfo]:
        # podman-py encodes a list of label filters in a way Podman 4 ignores: filter on one label here
        # and check the rest below.
        wanted = f"{LABEL_SPRINT}={sprint_id}" if sprint_id else f"{LABEL_ROLE}=task"
        found = self._list({"label": wanted})
        infos = (
            containers.info(c.attrs, c.labels or {}, c.name)
            for c in found
            if (c.labels or {}).get(LABEL_ROLE) == "task"
            and (not tenant or (c.labels or {}).get(LABEL_TENANT) == tenant)
        )
        return sorted(infos, key=lambda i: i.name)

    def _list(self, filters: dict[str, str], tries: int = 5) -> list[Any]:
        """Containers with their inspect data. A full listing inspects each container, so one removed in
        between (a runner finishing) fails the whole call with NotFound: list again."""
        for _ in range(tries - 1):
            with contextlib.suppress(podman.errors.NotFound):
                return list(self.client.containers.list(all=True, filters=filters, sparse=False))
        return list(self.client.containers.list(all=True, filters=filters, sparse=False))

    @revived
    def prune_oneshots(self) -> list[str]:
        """Remove the one-shot (gate) containers an interrupted operator left behind: an earlier process
        of this operator (same owner, other instance), running or not (nobody waits for its verdict: the
        gate runs again for the process that holds the task now); finished unlabelled ones of older
        versions; and the size-capped disks of containers that no longer exist."""
        found = self._list({"label": f"{LABEL_ROLE}=oneshot"})
        stale = [c.name for c in found if self._left_behind(c)]
        for name in stale:
            self.remove(name)
        self._prune_disks()
        return stale

    def _prune_disks(self) -> None:
        """Give back the disks of containers that are gone (an operator that died between removing a
        container and its disk): their trees are copied back, the filesystems removed."""
        for name in disks.attached(self.disk_dir):
            with self._disk_lock(name):
                if self._get(name) is None:
                    disks.detach(self.disk_dir, name)

    def _left_behind(self, container: Any) -> bool:
        labels = container.labels or {}
        if LABEL_OWNER not in labels:  # of an older version, maybe another operator's: only once ended
            return _state(container) not in ("running", "paused")
        return bool(labels[LABEL_OWNER] == self.owner and labels.get(LABEL_INSTANCE) != self.instance)

    @revived
    def remove(self, handle_or_name: RunHandle | str) -> None:
        name = handle_or_name if isinstance(handle_or_name, str) else handle_or_name.name
        container = self._get(name)
        if container is not None:
            self._removed.add(name)
            self._remove(container, name)
        self._detach_disk(name)  # removed while it ran: its work comes back, as after an exit
        shutil.rmtree(self.secrets_dir / name, ignore_errors=True)
        self._timed_out.discard(name)
        self._oom.drop(name)

    def _remove(self, container: Any, name: str) -> None:
        """Remove a container. With a user namespace, Podman's own clean-up after the exit races the
        removal and can fail it with "unlinkat …/userdata/shm: device or resource busy" although the
        container ends up removed: that is success; a container still there is removed once more."""
        for tries_left in range(_REMOVE_TRIES - 1, -1, -1):
            try:
                container.remove(force=True, v=True)
                return
            except podman.errors.NotFound:
                return
            except podman.errors.APIError:
                if self._get(name) is None:
                    return
                if not tries_left:
                    raise
                time.sleep(0.5)

    # -- one-shot containers (quality gates, checks) -----------------------------------------------

    @revived
    def run_oneshot(
        self,
        image: str,
        command: Sequence[str],
        workdir_mount: Path | None,
        timeout_s: float,
        limits: Limits,
        owner: Mapping[str, Any] | None = None,  # containers have no owner: the Task's is for Pods
        scheduling: Scheduling = ANYWHERE,  # no nodes here: ignored (the Sprint's message says so)
    ) -> OneshotResult:
        """Run a one-shot (gate, probe) container to its end; once more in a new container when Podman
        lost the race with a command that exited at once (`start_race`): nothing of it ran to a verdict."""
        result = podmanoneshot.run_once(self, image, command, workdir_mount, timeout_s, limits)
        if result.exit_code is None and start_race(result.log_tail):
            result = podmanoneshot.run_once(self, image, command, workdir_mount, timeout_s, limits)
        return result

    # -- size-capped disks -----------------------------------------------------------------------------

    def _attach_disk(self, name: str, limits: Limits, trees: Mapping[str, Path]) -> None:
        """The container's writable trees on a filesystem of limits.disk_bytes (mounting needs root)."""
        if limits.disk_bytes and self.userns:  # the caller holds the container's disk lock
            disks.attach(self.disk_dir, name, limits.disk_bytes, trees)

    def _detach_disk(self, name: str, failed: bool = False) -> str:
        """Copy the container's trees back and drop its filesystem; the cap ("64Mi") when a `failed`
        container had filled it, else ""."""
        with self._disk_lock(name):
            size = disks.size(self.disk_dir, name)
            full = failed and disks.is_full(self.disk_dir, name)
            disks.detach(self.disk_dir, name)
        return quantities.format_bytes(size) if full and size else ""

    def _disk_lock(self, name: str) -> threading.Lock:
        with self._disk_guard:
            return self._disk_locks.setdefault(name, threading.Lock())

    # -- helpers ---------------------------------------------------------------------------------------

    def _get(self, name: str) -> Any:
        try:
            return self.client.containers.get(name)
        except podman.errors.NotFound:
            return None
        except podman.errors.APIError as exc:  # a container being removed can answer 500
            if "no such container" in str(exc):
                return None
            raise

    def _log(self, name: str) -> Path:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{name}.log"

    def _write_secrets(self, name: str, secrets: Mapping[str, str], user: str | None) -> Path | None:
        """Secrets as 0400 files in a 0700 directory mounted at /run/secrets: never in the config."""
        if not secrets:
            return None
        folder = self.secrets_dir / name
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for key, value in secrets.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise TaskStartFailed(f"secret name {key!r} is not a valid environment variable name")
            path = folder / key
            path.write_text(value)
            path.chmod(0o400)
        if not self.userns:
            ownership.hand_over([folder], user)
        return folder


def _stop(container: Any, grace_s: float) -> None:
    """`podman stop -t grace_s`, waiting as long as Podman needs: podman-py gives up reading the answer
    after 1.5 x grace_s, which a loaded machine exceeds (a 1 s grace failed with a read timeout)."""
    response = container.client.post(
        f"/containers/{container.id}/stop", params={"timeout": int(grace_s)}, timeout=grace_s + 120
    )
    if response.status_code == 304:  # stopped already
        return
    response.raise_for_status()


def _writable_sources(attrs: Mapping[str, Any]) -> list[Path]:
    return [Path(m["Source"]) for m in attrs.get("Mounts", []) if containers.is_writable(m)]


def _check_labels(container: Any, spec: TaskRunSpec, name: str) -> None:
    labels = container.labels or {}
    if labels != {**labels, **task_labels(spec.sprint_id, spec.task_id, spec.attempt, spec.tenant)}:
        raise TaskStartFailed(
            f"container {name} exists but is not sprint {spec.sprint_id!r} task {spec.task_id!r} attempt "
            f"{spec.attempt}; remove it (podman rm -f {name})"
        )


def _state(container: Any) -> str:
    """A listed container's state: the listing gives it as a string (`"State": "exited"`), an inspect
    as an object (`"State": {"Status": "exited"}`); podman-py's `.status` reads only the latter (and
    raised TypeError on a listing, so start-up pruning removed nothing)."""
    state = (container.attrs or {}).get("State")
    return str(state.get("Status") if isinstance(state, dict) else state or "")
