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
    ContainerInfo,
    Health,
    ImageResult,
    Limits,
    Mount,
    OneshotResult,
    RunHandle,
    RunOutcome,
    TaskRunSpec,
    container_name,
    containers,
    exits,
    images,
    logs,
    ownership,
    service,
    task_labels,
)

STOP_GRACE_S = 5
# A one-shot container records which operator state dir (owner) and which runtime instance (one per
# operator process) started it: start-up pruning removes only what an earlier process of the same
# operator left, never a gate this process has just created, nor another operator's.
_LABEL_OWNER = "sprintorchestrator.dev/owner"
_LABEL_INSTANCE = "sprintorchestrator.dev/instance"
_POLL = "20ms"  # the API's default 250 ms polling would triple the cost of a short task
_CHECK_TIMEOUT_S = 30
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
            name = self.client.info()["host"]["ociRuntime"]["name"]  # type: ignore[no-untyped-call]
        except (podman.errors.APIError, OSError) as exc:
            return [
                f"the Podman API at {self.service.url} does not answer ({exc}); run hack/setup-podman.sh."
            ]
        if name != "runc":
            return [
                f"Podman uses the OCI runtime {name!r}; set CONTAINERS_CONF to hack/containers.conf (runc)."
            ]
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
                f"container.baseImage: image {base_image!r} not found; build it (hack/base-image.sh) first"
            ) from None
        tag = images.sprint_image_tag(base_id, dependencies, environment)
        if self.client.images.exists(tag):
            return ImageResult(tag, built=False)
        marks = {**labels, images.LABEL_IMAGE_HASH: tag.rsplit(":", 1)[1]}
        text = images.render_containerfile(base_image, dependencies, environment, marks)
        self._build(tag, text)
        return ImageResult(tag, built=True)

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
        name = container_name(spec.sprint_id, spec.task_id, spec.attempt)
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
        adopted = container.status not in ("created", "configured")
        if not adopted:
            try:
                container.start()
            except podman.errors.APIError as exc:
                raise TaskStartFailed(f"cannot start container {name}: {exc.explanation or exc}") from None
            container.reload()
        started = containers.parse_time(container.attrs.get("State", {}).get("StartedAt"))
        return RunHandle(
            name, container.id, spec.sprint_id, spec.task_id, spec.attempt, self._log(name), started, adopted
        )

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
        facts = exits.ExitFacts(
            exit_code=code,
            oom_flag=bool(state.get("OOMKilled")),
            stopped_for_timeout=handle.name in self._timed_out or (code in (137, 143) and ran_s >= timeout_s),
            memory_limited=bool(container.attrs.get("HostConfig", {}).get("Memory")),
            kernel_oom=exits.kernel_reports_oom(container.id) if code == exits.SIGKILL_EXIT else False,
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

    def find_task_containers(self, sprint_id: str | None = None) -> list[ContainerInfo]:
        # podman-py encodes a list of label filters in a way Podman 4 ignores: filter on one label here
        # and check the rest below.
        wanted = f"{LABEL_SPRINT}={sprint_id}" if sprint_id else f"{LABEL_ROLE}=task"
        found = self.client.containers.list(all=True, filters={"label": wanted}, sparse=False)
        infos = (
            containers.info(c.attrs, c.labels or {}, c.name)
            for c in found
            if (c.labels or {}).get(LABEL_ROLE) == "task"
        )
        return sorted(infos, key=lambda i: i.name)

    def prune_oneshots(self) -> list[str]:
        """Remove finished one-shot (gate) containers an interrupted operator left behind: an earlier
        process of this operator (same owner, other instance), or unlabelled ones of older versions."""
        found = self.client.containers.list(
            all=True, filters={"label": f"{LABEL_ROLE}=oneshot"}, sparse=False
        )
        stale = [c.name for c in found if c.status not in ("running", "paused") and self._left_behind(c)]
        for name in stale:
            self.remove(name)
        return stale

    def _left_behind(self, container: Any) -> bool:
        labels = container.labels or {}
        if _LABEL_OWNER not in labels:
            return True
        return bool(labels[_LABEL_OWNER] == self.owner and labels.get(_LABEL_INSTANCE) != self.instance)

    def remove(self, handle_or_name: RunHandle | str) -> None:
        name = handle_or_name if isinstance(handle_or_name, str) else handle_or_name.name
        container = self._get(name)
        if container is not None:
            self._removed.add(name)
            container.remove(force=True, v=True)
        shutil.rmtree(self.secrets_dir / name, ignore_errors=True)
        self._timed_out.discard(name)

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
        kwargs["labels"] = {LABEL_ROLE: "oneshot", _LABEL_OWNER: self.owner, _LABEL_INSTANCE: self.instance}
        kwargs["mounts"] = (
            [containers.bind(Mount(workdir_mount, "/workspace", read_only=False))] if workdir_mount else []
        )
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
    if labels != {**labels, **task_labels(spec.sprint_id, spec.task_id, spec.attempt)}:
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
