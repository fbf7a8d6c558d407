"""The Podman adapter: the only module that imports podman (podman-py against `podman system service`).

Task containers are hardened (no network, all capabilities dropped, no-new-privileges, read-only root
with tmpfs /tmp and /run, pids/memory/CPU limits, an init process), named so-{sprint}-{task}-{attempt}
and labelled with sprint, task and attempt, so a restarted operator adopts them instead of starting a
twin. conmon streams their output to a size-capped k8s-file log under the state dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import podman.errors
from podman import PodmanClient

from .. import LABEL_SPRINT
from ..errors import ImageBuildFailed, RuntimeUnavailable, TaskStartFailed
from ..settings import Settings
from . import (
    AGENT_USER,
    LABEL_ROLE,
    LABEL_TENANT,
    ContainerInfo,
    Health,
    ImageResult,
    Limits,
    Mount,
    OneshotResult,
    RunHandle,
    RunOutcome,
    TaskRunSpec,
    cgroups,
    container_name,
    containers,
    exits,
    images,
    logs,
    ownership,
    service,
    task_labels,
)
from .runcver import runc_problem

STOP_GRACE_S = 5
# A one-shot container records which operator state dir (owner) and which runtime instance (one per
# operator process) started it: start-up pruning removes only what an earlier process of the same
# operator left, never a gate this process has just created, nor another operator's.
LABEL_OWNER = "sprintorchestrator.dev/owner"
LABEL_INSTANCE = "sprintorchestrator.dev/instance"
_POLL = "20ms"  # the API's default 250 ms polling would triple the cost of a short task
_CHECK_TIMEOUT_S = 30
_OOM_SETTLE_S = 2.0  # after a failed exit: how long to let the memory cgroup's removal be seen
_REPO_CONF = Path(__file__).resolve().parents[3] / "hack" / "containers.conf"


class PodmanRuntime:
    def __init__(self, client: PodmanClient, proc: service.ServiceProcess, state_dir: Path) -> None:
        self.client = client
        self.service = proc
        self.log_dir = state_dir / "logs"
        self.secrets_dir = state_dir / "secrets"
        self.base_image = Settings.base_image
        self._timed_out: set[str] = set()
        self._removed: set[str] = set()  # removed by us, maybe while a wait() was under way
        self._oom = cgroups.Watches()
        self.owner = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
        self.instance = uuid.uuid4().hex

    # -- connecting --------------------------------------------------------------------------------

    @classmethod
    def connect(cls, settings: Settings, verify: bool = True) -> PodmanRuntime:
        """Connect to settings.podman_url, or reuse/start a service on a socket under the run dir."""
        proc = _service_for(settings)
        runtime = cls(PodmanClient(base_url=proc.url, timeout=_CHECK_TIMEOUT_S), proc, settings.state_dir)
        runtime.base_image = settings.base_image
        problems = runtime.check() if verify else []
        if problems:
            runtime.close()
            raise RuntimeUnavailable("Podman is not usable: " + " ".join(problems))
        return runtime

    def check(self) -> list[str]:
        """Problems with this Podman, each saying how to fix it; [] when a hardened container runs."""
        try:
            oci = self.client.info()["host"]["ociRuntime"]  # type: ignore[no-untyped-call]
            name = oci["name"]
        except (podman.errors.APIError, OSError) as exc:
            return [
                f"the Podman API at {self.service.url} does not answer ({exc}); run hack/setup-podman.sh."
            ]
        if name != "runc":
            return [
                f"Podman uses the OCI runtime {name!r}; set CONTAINERS_CONF to hack/containers.conf (runc)."
            ]
        vulnerable = runc_problem(str(oci.get("version") or ""))
        if vulnerable:
            return [vulnerable]
        if not self.client.images.exists(self.base_image):
            return [f"the base image {self.base_image} is missing; build it with hack/base-image.sh."]
        result = self.run_oneshot(self.base_image, ["true"], None, 60, Limits(memory_bytes=64 << 20, pids=64))
        if result.exit_code != 0:
            return [
                f"a trivial hardened container failed ({result.log_tail.strip()[-300:]}); if it mentions "
                "setrlimit, set CONTAINERS_CONF to hack/containers.conf (default_ulimits)."
            ]
        return []

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]
        self.service.stop()

    # -- images --------------------------------------------------------------------------------------

    def ensure_sprint_image(
        self,
        base_image: str,
        dependencies: Sequence[str],
        environment: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> ImageResult:
        try:
            base_id = self.client.images.get(base_image).id
        except podman.errors.ImageNotFound:
            raise ImageBuildFailed(
                f"container.baseImage: image {base_image!r} not found; build it first (hack/base-image.sh; "
                "hack/agent-image.sh for the agent CLIs)"
            ) from None
        tag = images.sprint_image_tag(base_id, dependencies, environment)
        if self.client.images.exists(tag):
            return ImageResult(tag, built=False)
        marks = {**labels, images.LABEL_IMAGE_HASH: tag.rsplit(":", 1)[1]}
        text = images.render_containerfile(base_image, dependencies, environment, marks)
        self._build(tag, text)
        return ImageResult(tag, built=True)

    def push_image(self, tag: str, target: str) -> None:
        """Push a local image to a registry reference (plain HTTP allowed: the local cluster's registry)."""
        # Podman answers a push only when it is done: the API client's usual 30 s would cut a large one.
        with PodmanClient(base_url=self.service.url, timeout=1800) as client:
            try:
                out = client.images.push(tag, destination=target, tlsVerify=False, stream=True, decode=True)
                for chunk in out:
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise ImageBuildFailed(f"pushing {tag} to {target} failed: {chunk['error']}", "")
            except (podman.errors.APIError, OSError) as exc:
                raise ImageBuildFailed(f"pushing {tag} to {target} failed: {exc}", "") from None

    def _build(self, tag: str, containerfile: str) -> None:
        with tempfile.TemporaryDirectory(prefix="sprint-image-") as ctx:
            (Path(ctx) / "Containerfile").write_text(containerfile)
            try:
                self.client.images.build(
                    path=ctx,
                    dockerfile="Containerfile",
                    tag=tag,
                    network_mode="host",
                    layers=False,
                    rm=True,
                    forcerm=True,
                    timeout=1800,
                )
            except podman.errors.BuildError as exc:
                text = "".join(_chunk_text(chunk) for chunk in exc.build_log)
                raise ImageBuildFailed(
                    f"building the sprint image {tag} failed: {exc.msg}", logs.tail(text)
                ) from None
            except podman.errors.APIError as exc:
                raise ImageBuildFailed(f"building the sprint image {tag} failed: {exc}", "") from None

    # -- task containers -----------------------------------------------------------------------------

    def start_task(self, spec: TaskRunSpec) -> RunHandle:
        """Start the container of this task attempt; adopt it if it already exists."""
        name = container_name(spec.sprint_id, spec.task_id, spec.attempt, spec.tenant)
        self._removed.discard(name)
        existing = self._get(name)
        if existing is None:
            user = ownership.effective_user(spec.user)
            ownership.hand_over([spec.workspace, spec.artifacts], user)
            secrets = self._write_secrets(name, spec.secrets, user)
            try:
                existing = self.client.containers.create(
                    **containers.task_kwargs(spec, name, user, self._log(name), secrets)
                )
            except podman.errors.APIError as exc:
                existing = self._get(name)  # lost a race against a twin: adopt it below
                if existing is None:
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
                self._oom.drop(name)
                raise TaskStartFailed(f"cannot start container {name}: {exc.explanation or exc}") from None
            container.reload()
        started = containers.parse_time(container.attrs.get("State", {}).get("StartedAt"))
        return RunHandle(
            name, container.id, spec.sprint_id, spec.task_id, spec.attempt, self._log(name), started, adopted
        )

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

    def wait(self, handle: RunHandle, timeout_s: float) -> RunOutcome:
        """Wait until the container ends or `timeout_s` after its start has passed (then stop it)."""
        container = self._get(handle.name)
        if container is None:
            return self._gone(handle, [])
        writable = _writable_sources(container.attrs)
        started = containers.parse_time(container.attrs["State"].get("StartedAt")) or datetime.now(UTC)
        remaining = timeout_s - (datetime.now(UTC) - started).total_seconds()
        if remaining > 0:
            # A read timeout means the deadline has passed; NotFound, that it was removed meanwhile.
            with contextlib.suppress(podman.errors.APIError, podman.errors.NotFound):
                container.wait(condition=["exited", "stopped"], interval=_POLL, timeout=remaining + 0.5)
        if handle.name in self._removed:
            return self._gone(handle, writable)  # our own remove won the race against the exit
        try:
            container.reload()
            if container.status == "running":
                self._timed_out.add(handle.name)
                container.stop(timeout=STOP_GRACE_S)
                container.reload()
        except podman.errors.APIError:  # 404, or 500 "no such container" while a removal is under way
            if self._get(handle.name) is not None:
                raise
            return self._gone(handle, writable)  # removed while it ran (a budget stop, a cleanup)
        return self._outcome(container, handle, timeout_s, writable)

    def stop(self, handle_or_name: RunHandle | str, grace_s: float = STOP_GRACE_S) -> None:
        """Stop a running container (SIGTERM, then SIGKILL after grace_s); `wait` then returns its outcome."""
        name = handle_or_name if isinstance(handle_or_name, str) else handle_or_name.name
        container = self._get(name)
        if container is not None and container.status == "running":
            with contextlib.suppress(podman.errors.NotFound):
                container.stop(timeout=grace_s)

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
        return RunOutcome(code, health, started, finished, self._text_logs(handle.name), reason)

    def _gone(self, handle: RunHandle, writable: list[Path]) -> RunOutcome:
        ownership.take_back(writable)
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

    def status(self, name: str) -> ContainerInfo | None:
        container = self._get(name)
        return None if container is None else containers.info(container.attrs, container.labels or {}, name)

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

    def prune_oneshots(self) -> list[str]:
        """Remove finished one-shot (gate) containers an interrupted operator left behind: an earlier
        process of this operator (same owner, other instance), or unlabelled ones of older versions."""
        found = self._list({"label": f"{LABEL_ROLE}=oneshot"})
        stale = [c.name for c in found if _state(c) not in ("running", "paused") and self._left_behind(c)]
        for name in stale:
            self.remove(name)
        return stale

    def _left_behind(self, container: Any) -> bool:
        labels = container.labels or {}
        if LABEL_OWNER not in labels:
            return True
        return bool(labels[LABEL_OWNER] == self.owner and labels.get(LABEL_INSTANCE) != self.instance)

    def remove(self, handle_or_name: RunHandle | str) -> None:
        name = handle_or_name if isinstance(handle_or_name, str) else handle_or_name.name
        container = self._get(name)
        if container is not None:
            self._removed.add(name)
            container.remove(force=True, v=True)
        shutil.rmtree(self.secrets_dir / name, ignore_errors=True)
        self._timed_out.discard(name)
        self._oom.drop(name)

    # -- one-shot containers (quality gates, checks) -----------------------------------------------

    def run_oneshot(
        self,
        image: str,
        command: Sequence[str],
        workdir_mount: Path | None,
        timeout_s: float,
        limits: Limits,
    ) -> OneshotResult:
        name = f"so-oneshot-{uuid.uuid4().hex[:12]}"
        user = ownership.effective_user(AGENT_USER if workdir_mount else None)
        mounts = [workdir_mount] if workdir_mount else []
        ownership.hand_over(mounts, user)
        kwargs = containers.hardened(image, command, name, limits, self._log(name), user)
        kwargs["labels"] = {LABEL_ROLE: "oneshot", LABEL_OWNER: self.owner, LABEL_INSTANCE: self.instance}
        work = [containers.bind(Mount(workdir_mount, "/workspace", read_only=False))] if workdir_mount else []
        kwargs["mounts"] = [*work, containers.TMP]  # a test runner writes caches to /tmp: size-capped
        begin = time.perf_counter()
        try:
            container = self.client.containers.create(**kwargs)
            container.start()
            handle = RunHandle(name, container.id, "", "", 0, self._log(name), None)
            outcome = self.wait(handle, timeout_s)
        except podman.errors.APIError as exc:
            return OneshotResult(None, time.perf_counter() - begin, f"container failed to run: {exc}")
        finally:
            ownership.take_back(mounts)
            self.remove(name)
        text = outcome.log_path.read_text(errors="replace")
        for path in (self._log(name), outcome.log_path, outcome.log_path.with_suffix(".stdout")):
            path.unlink(missing_ok=True)
        timed_out = outcome.health == Health.TIMED_OUT
        return OneshotResult(outcome.exit_code, time.perf_counter() - begin, logs.tail(text), timed_out)

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
        ownership.hand_over([folder], user)
        return folder


def _service_for(settings: Settings) -> service.ServiceProcess:
    if settings.podman_url:
        return service.ServiceProcess(settings.podman_url, None)
    conf = settings.env.get("CONTAINERS_CONF") or (str(_REPO_CONF) if _REPO_CONF.exists() else None)
    env = service.podman_environment(settings.env, Path(conf) if conf else None)
    run_dir = settings.run_dir
    if (run_dir / service.SOCKET_NAME).exists() and _answers(service.socket_url(run_dir)):
        return service.ServiceProcess(service.socket_url(run_dir), None)
    return service.start_service(run_dir, env)


def _answers(url: str) -> bool:
    try:
        with PodmanClient(base_url=url, timeout=5) as client:
            return bool(client.ping())
    except (podman.errors.APIError, OSError):
        return False


def _writable_sources(attrs: Mapping[str, Any]) -> list[Path]:
    return [Path(m["Source"]) for m in attrs.get("Mounts", []) if containers.is_writable(m)]


def _check_labels(container: Any, spec: TaskRunSpec, name: str) -> None:
    labels = container.labels or {}
    if labels != {**labels, **task_labels(spec.sprint_id, spec.task_id, spec.attempt, spec.tenant)}:
        raise TaskStartFailed(
            f"container {name} exists but is not sprint {spec.sprint_id!r} task {spec.task_id!r} attempt "
            f"{spec.attempt}; remove it (podman rm -f {name})"
        )


def _chunk_text(chunk: Any) -> str:
    if isinstance(chunk, bytes):
        return chunk.decode(errors="replace")
    if isinstance(chunk, dict):
        return str(chunk.get("stream") or chunk.get("error") or "")
    return str(chunk)


def _state(container: Any) -> str:
    """A listed container's state: the listing gives it as a string (`"State": "exited"`), an inspect
    as an object (`"State": {"Status": "exited"}`); podman-py's `.status` reads only the latter (and
    raised TypeError on a listing, so start-up pruning removed nothing)."""
    state = (container.attrs or {}).get("State")
    return str(state.get("Status") if isinstance(state, dict) else state or "")
