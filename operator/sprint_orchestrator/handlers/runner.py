"""One task attempt, from prepared workspace to a gated commit waiting in the merge queue.

Running: workspace + TASK.md + container (adopted if it already exists) -> wait with live usage ->
commit on the task's behalf. Gating: the sprint's trusted tests in a fresh container on the committed
tree. Every step is idempotent, so a restarted operator re-enters at the phase the status records.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from .. import retry
from ..diskspace import no_space
from ..errors import (
    DiskFull,
    InfrastructureFailure,
    InvalidInput,
    MissingApiKey,
    OrchestratorError,
    PodRejected,
    RuntimeUnavailable,
)
from ..faults import checkpoint
from ..kube import unreachable
from ..model import SprintSpec
from ..runtime import Limits, TaskRunSpec, container_name, tenant_of
from ..stamps import now_iso, rfc3339
from ..teams import TEAMS, collect_results, sessions, write_task_files
from ..teams.results import keep_orchestrator_files
from . import agentsessions, failures, metering, tokens, whilerunning
from .gating import gate_task, protected_changes, scheduling_of
from .merging import clean_up, merge_now, merge_one

TEAM_NAME = "Sprint Orchestrator task team"
TEAM_EMAIL = "task-team@sprintorchestrator.dev"


class TaskRunner:
    def __init__(self, rec: Any, body: dict[str, Any], spec: SprintSpec, task: dict[str, Any]) -> None:
        self.rec, self.body, self.spec, self.task = rec, body, spec, task
        self.ctx = rec.ctx
        self.task_id: str = task["spec"]["taskId"]
        self.sprint_id = spec.resolved_id(rec.name)
        self.tenant = tenant_of(rec.namespace, rec.name)  # this Sprint resource, whatever its sprintId
        self.definition = spec.task(self.task_id)
        self.budget_stop: str | None = None
        self.resume: sessions.Resume | None = None
        self.unwritten: dict[str, Any] = {}  # the started container's facts, for the Task's next write

    @property
    def team_type(self) -> str:
        """The sprint's team (the loop resolved an unset one to the operator's default already)."""
        return str(self.spec.team.type or self.ctx.default_team)

    @property
    def status(self) -> dict[str, Any]:
        return self.task.get("status") or {}

    async def patch(self, status: dict[str, Any]) -> None:
        """Patch the Task's status, with the facts of its container not yet written (`unwritten`)."""
        facts = self.unwritten
        await self.rec.patch_task(self.task, {**facts, **status})
        if self.unwritten is facts:
            self.unwritten = {}

    async def merge(self, mergeable: dict[str, Any], cleanup: bool = True) -> None:
        """Merge the task in its turn, `mergeable` and the container's unwritten facts in the write that
        ends it (merging.merge_now)."""
        facts = self.unwritten
        await merge_now(self.rec, self.body, self.spec, self.task, {**facts, **mergeable}, cleanup)
        if self.unwritten is facts:
            self.unwritten = {}

    async def flush(self) -> None:
        """Write the container's facts now, if no write has taken them yet (whilerunning.shown_running)."""
        if self.unwritten:
            await self.patch({})

    async def run(self) -> None:
        try:
            if self.status.get("phase") == "Running":
                await self._execute()
            if self.status.get("phase") == "Gating":
                await self._gate()
            if self.status.get("phase") == "Merging":
                await merge_one(self.rec, self.body, self.spec, self.task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            try:
                await self._ended_by(exc)  # the loop respawns this runner after it
            except Exception as again:  # the API server went away while the failure was written
                if not unreachable(again):
                    raise
                self._unreachable(again)
        finally:
            self.ctx.wake(self.rec.key)

    async def _ended_by(self, exc: Exception) -> None:
        """Record the exception that ended a step. The API server away (a status write that did not get
        through): nothing is recorded, the next reconcile after it is back re-enters the phase the
        status records (every step is idempotent: the container adopted, the commit found) with no
        attempt lost. The operator's disk full (every DiskFull says "no space left on device"): the
        same re-entry, after a backoff, with the reason on the Task."""
        if unreachable(exc):
            self._unreachable(exc)
        elif no_space(exc):
            await self._wait_for_space(exc)
        elif isinstance(exc, PodRejected):  # the API server will refuse the same Pod again: a human fixes it
            await failures.fail(self, {}, "PodRejected", str(exc)[:4000], retryable=True)
        elif isinstance(exc, (InfrastructureFailure, RuntimeUnavailable)):  # an evicted gate Pod, no Podman
            await failures.infrastructure_failure(self, str(exc), "infrastructure")
        elif isinstance(exc, OrchestratorError):
            await failures.infrastructure_failure(self, str(exc))
        else:  # a bug must not kill the sprint: record it, retry with backoff
            self.rec.log.error("task %s failed unexpectedly", self.task_id, exc_info=exc)
            await failures.infrastructure_failure(self, f"{type(exc).__name__}: {exc}")

    async def _wait_for_space(self, exc: BaseException) -> None:
        """The operator's disk was full: the reason on the Task (failures.disk_full), then its backoff."""
        await asyncio.sleep(await failures.disk_full(self, exc))

    def _remove_earlier_attempts(self, runtime: Any, attempt: int) -> None:
        for earlier in range(1, attempt):
            runtime.remove(container_name(self.sprint_id, self.task_id, earlier, self.tenant))

    def _unreachable(self, exc: Exception) -> None:
        self.rec.log.warning(
            "task %s: the API server is unreachable (%s); it resumes at its recorded phase when it answers",
            self.task_id,
            f"{type(exc).__name__}: {exc}"[:300],
        )

    # --- Running -------------------------------------------------------------------------------

    async def _execute(self) -> None:
        attempt = int(self.status.get("attempt") or 1)
        engine = await self.rec.engine(self.spec)
        # The runtime first: made, it has pruned what an earlier process left (disks of containers gone).
        runtime = await self.ctx.get_runtime()
        if attempt > 1:  # an operator killed before it removed them: the earlier attempts' containers go,
            # and with them the disks bound over their trees (else retiring those trees fails EBUSY)
            await asyncio.to_thread(self._remove_earlier_attempts, runtime, attempt)
        # Changes requested: continue from the reviewed commit, the change still counted from the base.
        start_from = self.status.get("continueFrom") or None
        base = self.status.get("baseCommit") if start_from else None
        files = list(self.definition.files_to_modify)
        ws = await asyncio.to_thread(
            engine.create_task, self.sprint_id, self.task_id, attempt, files, (), start_from, base
        )
        artifacts = self.ctx.artifacts_for(self.rec.namespace, self.rec.name, self.task_id, attempt)
        artifacts.mkdir(parents=True, exist_ok=True)
        launch = TEAMS[self.team_type](self.definition, self.spec.team)
        siblings: list[dict[str, Any]] = []
        if self.definition.dependencies or launch.proxy:  # their results and token usage
            siblings = await self._siblings()
        deps = self._dependency_results(siblings)
        reviews = list(self.status.get("reviews") or []) if start_from else []
        previous = str((self.status.get("results") or {}).get("summary") or "") if reviews else ""
        await asyncio.to_thread(
            write_task_files, Path(ws.workspace), self.definition, deps, reviews, previous
        )
        if launch.session:
            launch = await agentsessions.prepare(self, launch, Path(ws.workspace), reviews, attempt)
        try:
            metered = await self._open_metering(launch.proxy, attempt, siblings) if launch.proxy else None
        except MissingApiKey as exc:
            await failures.fail(self, {}, "MissingApiKey", str(exc), retryable=False)
            return
        except InvalidInput as exc:  # e.g. a proxy socket path the state directory makes too long
            await failures.fail(self, {}, "ProxyUnavailable", str(exc), retryable=False)
            return
        keep = False  # the operator stopping: the container runs on and is re-attached after a restart
        try:
            await self._run_container(engine, ws, runtime, artifacts, launch, attempt, metered)
        except asyncio.CancelledError:
            keep = True
            raise
        finally:
            if metered is not None:
                await metering.close_attempt(self.ctx, metered, keep)

    async def _open_metering(
        self, provider: str, attempt: int, siblings: list[dict[str, Any]]
    ) -> metering.MeteredAttempt:
        orchestrator = getattr(self.ctx.settings.config, "orchestrator", None)
        sprint_tokens = self.spec.token_budget
        if sprint_tokens is None:
            sprint_tokens = int(getattr(orchestrator, "default_token_budget", 1_000_000))
        sprint_key = f"{self.sprint_id}-{self.tenant}"  # budgets are per Sprint resource
        budgets = (
            tokens.task_budget(
                self.definition.estimated_tokens,
                self.spec.policy.token_budget_factor,
                tokens.earlier_attempts(self.status),
            ),
            sprint_tokens,
            tokens.known_usage(siblings, sprint_key),
        )
        key = (sprint_key, self.task_id, attempt)
        return await metering.open_attempt(self.ctx, provider, self.team_type, key, budgets)

    async def _run_container(
        self, engine: Any, ws: Any, runtime: Any, artifacts: Path, launch: Any, attempt: int, metered: Any
    ) -> None:
        limits, timeout_s = self.limits()
        command, environment, mounts, secrets = (
            metered.wire(launch) if metered else (list(launch.command), launch.environment, launch.mounts, {})
        )
        run_spec = TaskRunSpec(
            sprint_id=self.sprint_id,
            tenant=self.tenant,
            task_id=self.task_id,
            attempt=attempt,
            image=str((self.body.get("status") or {}).get("image") or self.rec.default_base_image()),
            command=command,
            workspace=Path(ws.workspace),
            artifacts=artifacts,
            extra_mounts=tuple(mounts),
            environment={**environment, "SPRINT_TASK_ATTEMPT": str(attempt)},
            limits=limits,
            timeout_s=timeout_s,
            secrets=secrets,
            owner=self.task,
            scheduling=scheduling_of(self.spec),
            gated=bool(self.definition.test_requirements),
        )
        handle = await asyncio.to_thread(runtime.start_task, run_spec)
        checkpoint("task-started-before-status")
        # No write of its own: they go with the Task's next one, its end's phase write for a short run
        # (whilerunning.shown_running). A restart before loses nothing: the container is adopted by its
        # name, the workspace found by its manifest.
        self.unwritten = {
            "branch": ws.branch,
            "workspace": str(ws.workspace),
            "baseCommit": ws.base_commit,
            "containerId": handle.container_id,
            "containerName": handle.name,
            "containerHealth": "running",
            "artifactsPath": str(artifacts),
            "limits": retry.limits_status(limits, timeout_s),
        }
        waiter = asyncio.ensure_future(asyncio.to_thread(runtime.wait, handle, run_spec.timeout_s))
        beside = [
            asyncio.ensure_future(whilerunning.notices(self, waiter, runtime, handle.name)),
            asyncio.ensure_future(whilerunning.shown_running(self, waiter)),
        ]
        try:
            await whilerunning.live_usage(self, waiter, artifacts, runtime, handle, metered)
            while (outcome := await self._settled(waiter)) is None:  # its work could not come back yet
                waiter = asyncio.ensure_future(asyncio.to_thread(runtime.wait, handle, run_spec.timeout_s))
        finally:
            for watcher in beside:
                watcher.cancel()
        await self._finish_container(engine, ws, runtime, handle, outcome, artifacts, launch, metered)

    async def _settled(self, waiter: asyncio.Future[Any]) -> Any:
        """The container's outcome; None after a wait (the reason on the Task) when the host's disk was
        too full to take its work back from the container's own disk, which keeps it (runtime/disks.py),
        or to write its logs: the caller waits on the ended container again, which does both again."""
        try:
            return await waiter
        except Exception as exc:
            if not no_space(exc):
                raise
            await self._wait_for_space(exc)
            return None

    async def _siblings(self) -> list[dict[str, Any]]:
        """The sprint's Tasks from the watch-fed cache, which every write of the operator updates first
        (a dependency's results, the usage the sprint's budget counts); a LIST only while it is not
        primed or is due for its periodic resync."""
        cache = self.ctx.task_cache
        if cache.fresh(self.rec.key):
            cached: list[dict[str, Any]] = cache.tasks(self.rec.key)
            return cached
        listed: list[dict[str, Any]] = await asyncio.to_thread(
            self.ctx.kube.tasks_of, self.rec.namespace, self.rec.name
        )
        return listed

    def _dependency_results(self, siblings: list[dict[str, Any]]) -> dict[str, str]:
        results: dict[str, str] = {}
        for task in siblings:
            if task["spec"]["taskId"] in self.definition.dependencies:
                summary = ((task.get("status") or {}).get("results") or {}).get("summary") or ""
                results[task["spec"]["taskId"]] = summary
        return results

    def budget_verdict(self, used: Any) -> str | None:
        """Whether `used` (this attempt's tokens so far) breaks the task's or the sprint's budget."""
        return tokens.budget_verdict(
            self.spec,
            self.definition,
            used,
            self.sprint_used_by_others(),
            self.rec.budget(self.spec),
            tokens.earlier_attempts(self.status),
        )

    def sprint_used_by_others(self) -> int:
        """Tokens the sprint had used when this attempt started, without this task's own."""
        sprint_tokens = (self.body.get("status") or {}).get("tokens") or {}
        own = (self.status.get("tokens") or {}).get("actual") or 0
        return max(int(sprint_tokens.get("used") or 0) - int(own), 0)

    def limits(self) -> tuple[Limits, float]:
        """The configured limits, raised by earlier retries (status.limits) where they were."""
        configured = self.spec.container.resource_limits if self.spec.container else None
        orchestrator = getattr(self.ctx.settings.config, "orchestrator", None)
        default: float = getattr(orchestrator, "default_task_timeout", None) or 3600
        defaults = retry.operator_defaults(self.ctx.settings.config)
        return retry.effective_limits(configured, self.status.get("limits") or {}, float(default), defaults)

    async def _finish_container(
        self,
        engine: Any,
        ws: Any,
        runtime: Any,
        handle: Any,
        outcome: Any,
        artifacts: Path,
        launch: Any,
        metered: Any = None,
    ) -> None:
        workspace = Path(ws.workspace)
        stdout = outcome.log_path.with_suffix(".stdout") if outcome.log_path else None
        results = await asyncio.to_thread(collect_results, workspace, artifacts, stdout, launch.usage_format)
        session = await agentsessions.keep(self, launch, results, workspace)
        await asyncio.to_thread(keep_orchestrator_files, workspace, artifacts)
        used = tokens.final_usage(results)
        if session is not None:
            session = tokens.session_report(session, used)
        common: dict[str, Any] = {
            "containerHealth": str(outcome.health),
            "exitCode": outcome.exit_code,
            "tokens": tokens.status_tokens(
                metered.usage() if metered else None,
                used,
                self.definition.estimated_tokens,
                None,
                agentsessions.resumed_report(self, launch),
            ),
            "results": {
                "summary": results.summary[:2048],
                "present": results.present,
                "artifacts": list(results.artifacts)[:100],
                "problems": list(results.problems),
            },
            "logPath": str(outcome.log_path or ""),
            **({"session": session} if launch.session else {}),
            **_container_times(outcome),
        }
        budget = self.budget_stop or (metered.refusal() if metered is not None else None)
        if not budget and metered is None and used is not None:  # a team that ended before a live check
            budget = self.budget_verdict(used)
        if budget:
            await failures.fail(self, common, "BudgetExceeded", budget, retryable=False)
        elif getattr(outcome, "disk_full", False):  # a retry would fill the same cap: not retried
            await failures.fail(
                self, common, "DiskQuotaExceeded", f"the task team {outcome.reason}", retryable=False
            )
        elif getattr(outcome, "infrastructure", ""):
            await failures.infrastructure_outcome(self, common, outcome)
        elif str(outcome.health) in ("timed-out", "oom-killed", "removed") or outcome.exit_code != 0:
            # no exit code: the run did not end as the team's (its workspace never arrived or never came
            # back, its result was refused): a failed attempt, never "the team changed nothing"
            await failures.container_failed(self, common, outcome)
        else:
            commit = await self._commit(engine, ws)
            failures.disk_wait_over(self)
            checkpoint("task-committed-before-status")
            head = commit.commit or await asyncio.to_thread(engine.head, ws.branch)
            changed = head is not None and head != ws.base_commit
            scrutiny = await self._scrutinize(engine, ws.base_commit, head, commit)
            if not changed and not self.definition.allow_no_changes:
                await self._no_changes({**common, **scrutiny}, head or ws.base_commit)
                await asyncio.to_thread(runtime.remove, handle.name)
                return
            review_scope = bool(commit.out_of_scope) and self.spec.policy.out_of_scope_changes == "review"
            ended = {
                **common,
                **scrutiny,
                "commit": head or ws.base_commit,
                "changedFiles": list(commit.changed_files)[:500],
                "outOfScope": list(commit.out_of_scope)[:500],
                "noChanges": not changed,
            }
            if not self.definition.test_requirements and not review_scope and not scrutiny:
                # No gate to run and nothing to review: merged in the write that ends it. Its worktree
                # goes after its container, whose disk still covers it.
                await self.merge({**ended, "gates": [], "gatedAt": now_iso()}, False)
                checkpoint("task-ended-before-remove")
                await asyncio.to_thread(runtime.remove, handle.name)
                await clean_up(self.rec, self.spec, self.task)
                return
            await self.patch({**ended, "phase": "Gating"})
        checkpoint("task-ended-before-remove")
        await asyncio.to_thread(runtime.remove, handle.name)

    async def _commit(self, engine: Any, ws: Any) -> Any:
        """Commit the workspace; on a full disk wait (the reason on the Task) and commit again, here,
        with the container kept until it went through: nothing of the attempt is redone."""
        while True:
            try:
                return await asyncio.to_thread(
                    engine.commit_task,
                    ws,
                    self.sprint_id,
                    self.task_id,
                    list(self.definition.files_to_modify),
                    TEAM_NAME,
                    TEAM_EMAIL,
                )
            except DiskFull as exc:
                await self._wait_for_space(exc)

    async def _scrutinize(self, engine: Any, base: str, head: str | None, commit: Any) -> dict[str, Any]:
        """Protected paths the task changed, with their diff, and audit lines (and Events) for them and
        for out-of-scope changes: {} when there is nothing a reviewer must see."""
        changed = list(commit.changed_files)
        extra = list(self.spec.protected_paths)
        guarded = await asyncio.to_thread(protected_changes, engine, base, changed, extra)
        audit: list[dict[str, str]] = list(self.status.get("audit") or [])[-40:]
        findings = (
            ("ProtectedPathsChanged", guarded),
            ("OutOfScopeChanges", commit.out_of_scope),
            ("FilesRefused", commit.refused),
        )
        for event, paths in findings:
            if paths:
                detail = f"attempt {self.status.get('attempt') or 1}: {', '.join(list(paths)[:20])}"[:2000]
                audit.append({"time": now_iso(), "event": event, "detail": detail})
                self.rec.event(self.body, event, f"task {self.task_id}: {detail}", warn=True)
        if not guarded and not commit.out_of_scope and not commit.refused:
            return {}
        diff = await asyncio.to_thread(engine.diff_text, base, head, guarded) if guarded and head else ""
        return {
            "protectedPaths": guarded[:500],
            "protectedDiff": diff[:20_000],
            "refusedFiles": list(commit.refused)[:100],
            "audit": audit,
        }

    async def _no_changes(self, common: dict[str, Any], commit: str) -> None:
        """The team exited cleanly but changed nothing: never a silent success. A human decides
        (approve: completed with nothing merged; retry: another attempt); allowNoChanges skips this."""
        why = "the task team changed no file (set allowNoChanges: true if that is a valid outcome)"
        await self.patch(
            {
                **common,
                "phase": "Review",
                "column": "review",
                "commit": commit,
                "changedFiles": [],
                "outOfScope": [],
                "noChanges": True,
                "reason": "NoChanges",
                "error": why,
                "recoveryAction": "sprintctl approve or sprintctl retry",
            }
        )
        self.rec.event(self.body, "TaskNeedsReview", f"task {self.task_id}: {why}", warn=True)

    def rec_body(self) -> dict[str, Any]:
        return self.body

    # --- Gating --------------------------------------------------------------------------------

    async def _gate(self) -> None:
        await gate_task(self)


def _container_times(outcome: Any) -> dict[str, str]:
    """When the container's command started and ended, as the runtime (Podman, the kubelet) saw it."""
    stamps = {"containerStartedAt": outcome.started_at, "containerFinishedAt": outcome.finished_at}
    return {key: rfc3339(value) for key, value in stamps.items() if isinstance(value, dt.datetime)}
