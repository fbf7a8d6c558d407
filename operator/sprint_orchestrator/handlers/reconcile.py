"""One round of a Sprint's level-based loop: read, decide (plan.py), act, write status.

Phases: Pending -> Initializing -> Running -> Integrating -> Completed | Partial | Failed | RolledBack.
Each step is idempotent, so an operator killed at any moment resumes where the status says it was.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any, cast

from .. import ANNOTATION_CANCEL, GROUP, LABEL_SPRINT, LABEL_TASK, VERSION, lifecycle, plan
from ..errors import InvalidInput, OrchestratorError
from ..kube import SPRINTS, TASKS
from ..model import SprintSpec, task_resource_name
from ..runtime import container_name, tenant_of
from ..stamps import now_iso
from ..teams.keys import PROVIDER_OF_TEAM
from . import actions, admission, counts, initialize, spec_changes, tokens
from .conditions import merge_conditions, set_condition
from .context import OperatorContext
from .merging import merge_next

TERMINAL = frozenset({"Completed", "Partial", "Failed", "RolledBack"})
# While tasks run, the Sprint's board counts and token totals are written at most once a second: every
# task moves its column two or three times, and a write per move was most of the Sprint's status writes.
COUNTS_EVERY_S = 1.0
PHASE_EVENT = "PhaseChanged"  # the reason of the Event every phase change gets (tests/chaos/invariants.py)


class SprintReconciler:
    def __init__(self, ctx: OperatorContext, namespace: str, name: str, logger: Any) -> None:
        self.ctx, self.namespace, self.name, self.log = ctx, namespace, name, logger
        self.key = f"{namespace}/{name}"
        self.phase = "Pending"  # as last read from (or written to) the Sprint's status
        self.removed: list[dict[str, Any]] = []  # Tasks whose id spec.tasks no longer lists, unfinished
        self._spec: tuple[Any, SprintSpec] | None = None  # (metadata.generation, its accepted spec)
        self.latest: tuple[dict[str, Any], SprintSpec] | None = None  # the last Running round's view
        self.admitting = asyncio.Lock()  # one admission decision at a time (admission.py)
        self.closed = False  # no runner is started after close()
        self.finishing = 0  # tasks writing their final status and handing off their slot (merging.py)
        self.counts_written = -COUNTS_EVERY_S  # time.monotonic() of the last counts write

    async def close(self) -> None:
        self.closed, self.latest = True, None
        if self.ctx.runtime is not None:  # the Sprint is gone: what the runtime kept warm for it goes too
            await self._call(self.ctx.runtime.release_warm, self.key)
        self.ctx.sprint_phases.pop(self.key, None)
        self.ctx.task_cache.drop(self.key)
        for key in [k for k in self.ctx.runners if k.startswith(self.key + "/")]:
            self.ctx.runners.pop(key).cancel()

    # --- I/O helpers ---------------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def patch(self, status: dict[str, Any]) -> None:
        """Patch the Sprint's status; a phase change is checked against the lifecycle table and gets
        its PhaseChanged Event first."""
        new = status.get("phase")
        if new is not None and new != self.phase:
            event = lifecycle.event_for_move(lifecycle.SPRINT_TRANSITIONS, self.phase, new)
            ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Sprint", "metadata": {"name": self.name}}
            await self._phase_event(ref, self.phase, new, event, status.get("message"))
            self.phase = self.ctx.sprint_phases[self.key] = new
        updates = status.get("conditions")
        if updates is None:
            await self._call(self.ctx.kube.patch_status, SPRINTS, self.namespace, self.name, status)
            return
        # The conditions this write sets, merged by type into the Sprint's current ones (kube.py).
        rest = {key: value for key, value in status.items() if key != "conditions"}
        now = now_iso()
        await self._call(
            self.ctx.kube.patch_status_merged,
            SPRINTS,
            self.namespace,
            self.name,
            rest,
            lambda current: merge_conditions(current, updates, now),
        )

    async def patch_task(self, task: dict[str, Any], status: dict[str, Any], why: str | None = None) -> None:
        """Patch a Task's status; a phase change is checked against the lifecycle table, gets its
        PhaseChanged Event first (saying `why`, else the status' reason) and sets the board column of
        the new phase (one table decides both)."""
        new = status.get("phase")
        if new is not None:
            old = (task.get("status") or {}).get("phase") or "Pending"
            if new != old:
                status = lifecycle.without_disk_wait(task.get("status") or {}, status)
                event = lifecycle.event_for_move(lifecycle.TASK_TRANSITIONS, old, new)
                await self._phase_event(task, old, new, event, why or _why(status))
            status = {**status, "column": lifecycle.COLUMN_OF_PHASE[new]}
        updated = await self._call(
            self.ctx.kube.patch_status, TASKS, self.namespace, task["metadata"]["name"], status
        )
        if updated is not None:
            task["status"] = updated.get("status", {})
            self.ctx.task_cache.remember(updated)

    async def _phase_event(self, obj: dict[str, Any], old: str, new: str, event: str, why: Any) -> None:
        """The Event of a phase change, posted (synchronously) before the status says it: an operator
        killed between the two leaves an Event and the old phase, and the move is made (and posted)
        again after the restart; never a phase change without its Event."""
        ref = {**obj, "metadata": {**obj["metadata"], "namespace": self.namespace}}
        message = f"{old} -> {new} ({event}){f': {why}' if why else ''}"
        await self._call(self.ctx.kube.event, ref, PHASE_EVENT, message, "Normal", "sprint-orchestrator")

    def ref_events(self, body: dict[str, Any], changes: Any) -> None:
        """One Kubernetes Event per ref the git engine moved (the audit trail, next to its log line; a
        task's merge into the sprint branch is told by the Task's Event of its move to Completed,
        merging.py)."""
        for change in changes or ():
            old = (change.old or "none")[:12]
            new = (change.new or "deleted")[:12]
            self.event(body, "RefChanged", f"{change.ref}: {old} -> {new} ({change.reason})")

    def event(self, body: dict[str, Any], reason: str, message: str, warn: bool = False) -> None:
        import kopf

        (kopf.warn if warn else kopf.info)(cast(Any, body), reason=reason, message=message[:1000])

    # --- the round -----------------------------------------------------------------------------

    async def step(self) -> float | None:
        body = await self._call(self.ctx.kube.get, SPRINTS, self.namespace, self.name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            await self.close()
            return None
        status = body.get("status") or {}
        phase = self.phase = status.get("phase") or "Pending"
        if self.ctx.sprint_phases.get(self.key) != "Initializing" or phase != "Pending":
            self.ctx.sprint_phases[self.key] = phase
        try:
            spec = self._accepted(body)
        except InvalidInput:
            return 30.0  # check_spec has set Ready=False/InvalidSpec; wait for a spec change
        tasks = await self._ensure_tasks(body, spec)
        if self.removed:  # the spec no longer lists them: stop them (spec_changes.py)
            await spec_changes.stop_removed(self, body, spec, self.removed)
        self.latest = None
        if phase in TERMINAL:
            await self._write_counts(body, spec, tasks)
            await actions.handle_task_actions(self, body, spec, tasks, terminal=True)
            return 10.0
        if self._cancel_requested(body):
            await self._cancel(body, spec, tasks)
            return 1.0
        if phase == "Running":
            self.latest = (body, spec)  # what a runner's hand-off admits from (admission.py)
        step = {
            "Pending": lambda *args: initialize.pending(self, *args),
            "Initializing": lambda *args: initialize.initializing(self, *args),
            "Running": self._running,
            "Integrating": self._integrating,
        }[phase]
        delay: float = await step(body, spec, tasks)
        return delay

    def _accepted(self, body: dict[str, Any]) -> SprintSpec:
        """The accepted spec, validated once per generation (a 1,000-task spec takes ~30 ms; a busy
        sprint runs several rounds a second). A spec change bumps metadata.generation."""
        generation = body["metadata"].get("generation")
        if self._spec is None or generation is None or self._spec[0] != generation:
            self._spec = (generation, self.ctx.accept_spec(body.get("spec")))
        return self._spec[1]

    # --- children ------------------------------------------------------------------------------

    async def _ensure_tasks(self, body: dict[str, Any], spec: SprintSpec) -> list[dict[str, Any]]:
        cache = self.ctx.task_cache
        if not cache.fresh(self.key):  # first round, or the periodic resync: LIST once
            cache.prime(self.key, await self._call(self.ctx.kube.tasks_of, self.namespace, self.name))
        existing = cache.tasks(self.key)
        by_id = {t["spec"]["taskId"]: t for t in existing}
        sprint_id = spec.resolved_id(self.name)
        out: list[dict[str, Any]] = []
        for definition in spec.tasks:
            task = by_id.get(definition.id)
            if task is None:
                manifest = self._task_manifest(body, sprint_id, definition)
                task, _ = await self._call(self.ctx.kube.create, TASKS, self.namespace, manifest)
                cache.remember(task)
            out.append(task)  # Pending from its creation: the CRD's defaults (status.TaskStatus.CREATED)
        self.removed = spec_changes.removed_tasks(spec, existing)
        return out

    def _task_manifest(self, body: dict[str, Any], sprint_id: str, definition: Any) -> dict[str, Any]:
        meta = body["metadata"]
        fields = definition.dump()
        task_id = fields.pop("id")
        return {
            "apiVersion": body["apiVersion"],
            "kind": "Task",
            "metadata": {
                "name": task_resource_name(self.name, task_id),
                "namespace": self.namespace,
                "labels": {LABEL_SPRINT: self.name, LABEL_TASK: task_id},
                "ownerReferences": [
                    {
                        "apiVersion": body["apiVersion"],
                        "kind": "Sprint",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"sprintRef": self.name, "sprintId": sprint_id, "taskId": task_id, **fields},
        }

    async def _write_counts(
        self, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]], throttled: bool = False
    ) -> float:
        """Write the counts that differ from the Sprint's status. Throttled, a write comes at most
        COUNTS_EVERY_S after the last one: 0.0 when nothing is left to write, else the seconds until
        the round that writes it."""
        status = body.get("status") or {}
        patch = counts.sprint_counts(spec, tasks, self.budget(spec), status)
        if not patch:
            return 0.0
        wait = self.counts_written + COUNTS_EVERY_S - time.monotonic() if throttled else 0.0
        if wait > 0:
            return wait
        await self.patch(patch)
        self.counts_written = time.monotonic()
        return 0.0

    def budget(self, spec: SprintSpec) -> int:
        if spec.token_budget is not None:
            return spec.token_budget
        orchestrator = getattr(self.ctx.settings.config, "orchestrator", None)
        return int(getattr(orchestrator, "default_token_budget", 1_000_000))

    # --- Pending -------------------------------------------------------------------------------

    def default_base_image(self, team_type: str | None = None) -> str:
        """containers.base_image of a configuration file; else the agent image (the CLIs and the proxy's
        forwarder, hack/agent-image.sh) for an agent team, the base image for the rest."""
        if self.ctx.settings.config_path is not None:
            containers = getattr(self.ctx.settings.config, "containers", None)
            image = getattr(containers, "base_image", None)
            if image:
                return str(image)
        if team_type in PROVIDER_OF_TEAM:
            return self.ctx.settings.agent_image
        return self.ctx.settings.base_image

    async def engine(self, spec: SprintSpec) -> Any:
        repo = spec.repository
        git_config = getattr(self.ctx.settings.config, "git", None)
        url = repo.url if repo else getattr(git_config, "repository_url", None)
        main = repo.main_branch if repo else getattr(git_config, "main_branch", "main") or "main"
        if not url:
            raise OrchestratorError(
                "no repository: set spec.repository.url on the Sprint or git.repository_url in the config"
            )
        return await self.ctx.get_engine(str(url), str(main))

    # --- Running -------------------------------------------------------------------------------

    async def _running(self, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]) -> float:
        await actions.handle_task_actions(self, body, spec, tasks, terminal=False)
        # Merge first (one at a time, in gate order), so the slots they free are refilled this round:
        # the tasks no runner merges (a restarted operator finds them waiting). A runner merges its own
        # task right after its gates; the round does not wait for those merges to admit the next task.
        orphans = [t for t in tasks if not self._has_runner(t)]
        while await merge_next(self, body, spec, orphans):
            pass
        now = dt.datetime.now(dt.UTC)
        views = counts.task_views(spec, tasks, now)
        for task_id, reason in plan.blocked(views).items():
            task = _by_id(tasks, task_id)
            if (task.get("status") or {}).get("phase") != "Blocked":
                await self.patch_task(
                    task, {"phase": "Blocked", "column": "ready", "reason": reason, "blockedBy": [reason]}
                )
        for task_id in plan.unblocked(views):
            await self.patch_task(_by_id(tasks, task_id), {"phase": "Ready", "reason": "", "blockedBy": []})
        await admission.admit_ready(self, body, spec, tasks)  # on the Tasks as they are now
        self._ensure_runners(body, spec, tasks)
        if counts.settled(tasks):  # the final counts and the merge order go with the phase change
            final = counts.sprint_counts(spec, tasks, self.budget(spec), body.get("status") or {})
            merged = await self._merge_order(spec, tasks)
            await self.patch(
                {
                    **final,
                    "merged": merged,
                    "phase": "Integrating",
                    "message": "running the integration tests",
                }
            )
            self.event(body, "Integrating", "all tasks settled; running the integration tests")
            return 0.0
        due = 0.0
        if not self.finishing:  # else they change again in a moment: the round its finish wakes counts
            due = await self._write_counts(body, spec, tasks, throttled=True)
        return due or 1.0

    async def _merge_order(self, spec: SprintSpec, tasks: list[dict[str, Any]]) -> list[str]:
        """The ids of the merged tasks in the order the sprint branch merged them (bisection's order)."""
        by_commit = {
            str(st["commit"]): t["spec"]["taskId"]
            for t in tasks
            if (st := t.get("status") or {}).get("phase") == "Completed"
            and not st.get("noChanges")
            and st.get("commit")
        }
        engine = await self.engine(spec)
        order = await self._call(engine.merge_order, spec.resolved_id(self.name), list(by_commit))
        if len(order) < len(by_commit):  # never seen: a merged task is always on the branch
            missing = sorted(by_commit[c] for c in set(by_commit) - set(order))
            self.log.warning("merged tasks missing from the sprint branch's history: %s", missing)
        return [by_commit[commit] for commit in order]

    def operator_slots(self) -> int:
        orchestrator = getattr(self.ctx.settings.config, "orchestrator", None)
        return int(getattr(orchestrator, "max_parallel_tasks_per_sprint", 5))

    async def admit(self, body: dict[str, Any], spec: SprintSpec, task: dict[str, Any]) -> None:
        status = task.get("status") or {}
        attempt = int(status.get("attempt") or 0) + 1
        await self.patch_task(
            task,
            {
                "tokensByAttempt": tokens.by_attempt_after(status),
                "tokens": None,  # the new attempt's; the last one's total moved to tokensByAttempt
                "phase": "Running",
                "column": "in-progress",
                "attempt": attempt,
                "maxAttempts": int(status.get("maxAttempts") or spec.policy.max_attempts),
                "containerHealth": "starting",
                "startTime": now_iso(),
                "completionTime": None,
                "error": "",
                "reason": "",
                "nextRetryAt": None,
                "exitCode": None,
            },
        )
        self._spawn(body, spec, task)

    def _ensure_runners(self, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]) -> None:
        for task in tasks:
            if (task.get("status") or {}).get("phase") in ("Running", "Gating"):
                self._spawn(body, spec, task)

    def _has_runner(self, task: dict[str, Any]) -> bool:
        current = self.ctx.runners.get(f"{self.key}/{task['spec']['taskId']}")
        return current is not None and not current.done()

    def _spawn(self, body: dict[str, Any], spec: SprintSpec, task: dict[str, Any]) -> None:
        if self.closed or self._has_runner(task):
            return
        key = f"{self.key}/{task['spec']['taskId']}"
        from .runner import TaskRunner  # imports the runtime adapters only when tasks run

        runner = TaskRunner(self, body, spec, task)
        self.ctx.runners[key] = asyncio.create_task(runner.run(), name=f"task {key}")

    # --- Integrating ---------------------------------------------------------------------------

    async def _integrating(
        self, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]
    ) -> float:
        await self._write_counts(body, spec, tasks)
        from .integrate import Integrator

        return await Integrator(self, body, spec, tasks).run()

    # --- cancel --------------------------------------------------------------------------------

    def _cancel_requested(self, body: dict[str, Any]) -> bool:
        annotations = body["metadata"].get("annotations") or {}
        return bool(annotations.get(ANNOTATION_CANCEL))

    async def _cancel(self, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]) -> None:
        async with self.admitting:  # an admission under way ends (its runner started) before close()
            admission.refresh(self, tasks)  # a task a hand-off admitted meanwhile is stopped too
            await self.close()  # (it drops the cache)
        runtime = self.ctx.runtime
        for task in tasks:
            phase = (task.get("status") or {}).get("phase")
            if phase in ("Completed", "Failed"):
                continue
            name = self._container_of(spec, task)
            if runtime is not None and name:
                await self._call(runtime.remove, name)
            await self.patch_task(
                task,
                {
                    "phase": "Failed",
                    "column": "failed",
                    "reason": "Cancelled",
                    "error": "the sprint was cancelled",
                    "containerHealth": "removed",
                },
            )
        await self.patch(
            {
                "phase": "Failed",
                "message": "cancelled by a user",
                "completedAt": now_iso(),
                "conditions": set_condition(
                    None,
                    "Completed",
                    False,
                    "Cancelled",
                    "cancelled by a user",
                    now_iso(),
                ),
            }
        )
        self.event(body, "Cancelled", "the sprint was cancelled; main was not changed", warn=True)

    def _container_of(self, spec: SprintSpec, task: dict[str, Any]) -> str | None:
        """The container of the task's current attempt, by its name (the runner writes it into the
        status only with the Task's next write, runner.py): None before its first admission."""
        attempt = int((task.get("status") or {}).get("attempt") or 0)
        if not attempt:
            return None
        tenant = tenant_of(self.namespace, self.name)
        return container_name(spec.resolved_id(self.name), task["spec"]["taskId"], attempt, tenant)


def _why(status: dict[str, Any]) -> str | None:
    """What a Task's phase Event says besides the move: its reason, else its message, else the attempt
    an admission starts ("attempt 2"; the Event of the step, no second one on the Sprint)."""
    attempt = f"attempt {status['attempt']}" if status.get("attempt") else None
    return str(status.get("reason") or status.get("error") or "") or attempt


def _by_id(tasks: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    for task in tasks:
        if task["spec"]["taskId"] == task_id:
            return task
    raise KeyError(task_id)
