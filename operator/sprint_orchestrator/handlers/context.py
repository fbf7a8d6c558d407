"""What the handlers share: settings and one instance of each adapter, built once at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import faults, heap, lease, statedir, tempdirs
from ..branchpolicy import main_branch_problems
from ..errors import InvalidInput, OrchestratorError
from ..hostpaths import default_roots, host_path_problems
from ..kube import Kube
from ..model import SprintSpec, validate_sprint_spec
from ..settings import Settings
from .taskcache import TaskCache

log = logging.getLogger("sprint_orchestrator.operator")


@dataclass
class OperatorContext:
    settings: Settings
    kube: Kube
    engines: dict[tuple[str, str], Any] = field(default_factory=dict)
    runtime: Any = None
    proxy: Any = None
    sprint_loops: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    runners: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    merge_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    sprint_phases: dict[str, str] = field(default_factory=dict)  # "ns/name" -> phase, kept by the loops
    usage_listeners: dict[tuple[str, str, int], Callable[[Any], None]] = field(default_factory=dict)
    task_cache: TaskCache = field(default_factory=TaskCache)  # the sprint loops' reads of their Tasks
    runtime_check: asyncio.Task[None] | None = None
    lease_keeper: asyncio.Task[None] | None = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)  # retention runs (housekeeping.py)
    disk_waits: dict[str, int] = field(default_factory=dict)  # "ns/sprint/task" -> tries on a full disk
    _runtime_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _proxy_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def create(cls, settings: Settings) -> OperatorContext:
        kubeconfig = settings.env.get("KUBECONFIG")
        return cls(settings=settings, kube=Kube.from_kubeconfig(kubeconfig or None))

    async def start(self) -> None:
        faults.arm(self.settings.faults)  # tests only; a bad point name stops the start-up here
        statedir.prepare(self.settings.state_dir)
        if not self.settings.trees_dir.is_relative_to(self.settings.state_dir):
            statedir.prepare(self.settings.trees_dir, "working trees directory (git.working_trees_path)")
        for path in (self.settings.artifacts_dir, self.settings.run_dir):
            path.mkdir(mode=0o700, exist_ok=True)
        if self.settings.lease_namespace:  # one active replica: a standby waits here (lease.py)
            settings = self.settings
            keeper = lease.LeaseKeeper(
                self.kube, settings.lease_namespace, settings.lease_seconds, settings.lease_name
            )
            lease.install(keeper)
            await keeper.acquire()
            self.lease_keeper = asyncio.create_task(keeper.keep(), name="lease")
        self.runtime_check = asyncio.create_task(self._check_runtime(), name="runtime check")
        self.background.add(asyncio.create_task(_trim_heap(), name="heap trim"))

    async def _check_runtime(self) -> None:
        """Say at start-up, in one clear line, whether containers can run here (without blocking the
        operator: Sprints are still accepted and shown when Podman is missing)."""
        try:
            runtime = await self.get_runtime()
            pruned = await asyncio.to_thread(runtime.prune_oneshots)
        except OrchestratorError as exc:
            log.error("the container runtime is not usable: %s", exc)
        else:
            await asyncio.to_thread(tempdirs.sweep, self.settings.state_dir)  # their gate disks are gone now
            log.info("the container runtime is ready (removed %d leftovers of earlier runs)", len(pruned))

    async def stop(self) -> None:
        if self.lease_keeper is not None:
            self.lease_keeper.cancel()
        if self.runtime_check is not None:
            await asyncio.gather(self.runtime_check, return_exceptions=True)
        for task in [*self.runners.values(), *self.background]:
            task.cancel()
        await asyncio.gather(*self.runners.values(), *self.background, return_exceptions=True)
        if self.proxy is not None:
            await self.proxy.stop()
            self.proxy = None
        if self.runtime is not None:
            await asyncio.to_thread(self.runtime.close)
        await asyncio.to_thread(self.kube.close)

    # --- adapters, created on first use ---------------------------------------------------------

    @property
    def default_team(self) -> str:
        """orchestrator.default_team of the configuration: the team of a Sprint that names none."""
        orchestrator = getattr(self.settings.config, "orchestrator", None)
        return str(getattr(orchestrator, "default_team", None) or "claude-code")

    def accept_spec(self, spec: Any) -> SprintSpec:
        """The Sprint spec as the operator runs it: validated, host paths inside the allowed roots, an
        unset team resolved to the default. InvalidInput names every problem."""
        valid = validate_sprint_spec(dict(spec or {}))
        orchestrator = getattr(self.settings.config, "orchestrator", None)
        roots = default_roots(list(getattr(orchestrator, "allowed_host_paths", None) or []))
        git = getattr(self.settings.config, "git", None)
        problems = host_path_problems(valid, roots) + main_branch_problems(
            valid, getattr(git, "allowed_main_branches", None) or {}, getattr(git, "main_branch", "main")
        )
        if problems:
            raise InvalidInput("spec: host paths or a main branch this operator does not allow", problems)
        return valid.with_default_team(self.default_team)

    async def get_runtime(self) -> Any:
        async with self._runtime_lock:
            if self.runtime is None:
                from ..runtime import RUNTIMES

                name = getattr(getattr(self.settings.config, "containers", None), "runtime", None) or "podman"
                runtime: Any = await asyncio.to_thread(RUNTIMES[name], self.settings)
                # What an earlier process, or a connect that failed in this one (a create the runtime
                # finished after our client gave up on it), left: pruned whenever a runtime is made.
                try:
                    await asyncio.to_thread(runtime.prune_oneshots)
                except Exception as exc:  # best effort (a Podman API error too): pruned again next time
                    log.warning("could not prune leftover gate containers: %s", exc)
                self.runtime = runtime
            return self.runtime

    async def get_proxy(self) -> Any:
        """The metering LLM proxy (keys from the settings, upstreams from SPRINT_ORCHESTRATOR_*_URL)."""
        async with self._proxy_lock:
            if self.proxy is None:
                from ..proxy import MeteringProxy

                proxy = MeteringProxy.from_settings(
                    self.settings, upstreams=self.settings.llm_upstreams, on_usage=self._metered
                )
                await proxy.start()
                self.proxy = proxy
            return self.proxy

    def _metered(self, sprint_id: str, task_id: str, attempt: int, total: Any) -> None:
        listener = self.usage_listeners.get((sprint_id, task_id, attempt))
        if listener is not None:
            listener(total)

    async def get_engine(self, url: str, main_branch: str) -> Any:
        key = (url, main_branch)
        if key not in self.engines:
            from ..gitops import GitEngine

            root = GitEngine.root_for(self.settings.trees_dir, url)  # one clone per repository
            self.engines[key] = await asyncio.to_thread(GitEngine.open, url, root, main_branch)
        return self.engines[key]

    # --- wake-ups: a Task change wakes its Sprint's loop at once --------------------------------

    def wakeup(self, key: str) -> asyncio.Event:
        return self.wakeups.setdefault(key, asyncio.Event())

    def merge_lock(self, key: str) -> asyncio.Lock:
        """One merge at a time per sprint; asyncio locks wake their waiters in arrival order."""
        return self.merge_locks.setdefault(key, asyncio.Lock())

    def wake(self, key: str) -> None:
        self.wakeup(key).set()

    def artifacts_for(self, namespace: str, sprint: str, task: str, attempt: int) -> Path:
        return self.settings.artifacts_dir / namespace / sprint / task / str(attempt)

    def sessions_for(self, namespace: str, sprint: str, task: str) -> Path:
        """Where the agent CLI's session of a task is kept between attempts (teams/sessions.py)."""
        return self.settings.state_dir / "sessions" / namespace / sprint / task


async def _trim_heap() -> None:
    """Every heap.TRIM_EVERY_S, the C heap's free pages back to the kernel (heap.py says why)."""
    while True:
        await asyncio.sleep(heap.TRIM_EVERY_S)
        heap.trim()
