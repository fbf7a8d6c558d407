"""One task attempt, from prepared workspace to a gated commit waiting in the merge queue.

Running: workspace + TASK.md + container (adopted if it already exists) -> wait with live usage ->
commit on the task's behalf. Gating: the sprint's trusted tests in a fresh container on the committed
tree. Every step is idempotent, so a restarted operator re-enters at the phase the status records.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import retry, usage
from ..errors import OrchestratorError
from ..kube import now_iso
from ..model import SprintSpec
from ..runtime import TaskRunSpec
from ..teams import TEAMS, TeamContext, collect_results, render_task_md
from . import tokens

LIVE_USAGE_SECONDS = 2.0
TEAM_NAME = "Sprint Orchestrator task team"
TEAM_EMAIL = "task-team@sprintorchestrator.dev"
ORCHESTRATOR_DIRS = ("TASK.md", "RESULTS.md", ".sprint/")


class TaskRunner:
    def __init__(self, rec: Any, body: dict[str, Any], spec: SprintSpec, task: dict[str, Any]) -> None:
        self.rec, self.body, self.spec, self.task = rec, body, spec, task
        self.ctx = rec.ctx
        self.task_id: str = task["spec"]["taskId"]
        self.sprint_id = spec.resolved_id(rec.name)
        self.definition = spec.task(self.task_id)

    @property
    def status(self) -> dict[str, Any]:
        return self.task.get("status") or {}

    async def patch(self, status: dict[str, Any]) -> None:
        await self.rec.patch_task(self.task, status)

    async def run(self) -> None:
        try:
            if self.status.get("phase") == "Running":
                await self._execute()
            if self.status.get("phase") == "Gating":
                await self._gate()
        except asyncio.CancelledError:
            raise
        except OrchestratorError as exc:
            await self._infrastructure_failure(str(exc))
        except Exception as exc:  # a bug must not kill the sprint: record it, retry with backoff
            self.rec.log.exception("task %s failed unexpectedly", self.task_id)
            await self._infrastructure_failure(f"{type(exc).__name__}: {exc}")
        finally:
            self.ctx.wake(self.rec.key)

    # --- Running -------------------------------------------------------------------------------

    async def _execute(self) -> None:
        attempt = int(self.status.get("attempt") or 1)
        engine = await self.rec.engine(self.spec)
        ws = await asyncio.to_thread(
            engine.create_task, self.sprint_id, self.task_id, attempt, list(self.definition.files_to_modify)
        )
        runtime = await self.ctx.get_runtime()
        artifacts = self.ctx.artifacts_for(self.rec.namespace, self.rec.name, self.task_id, attempt)
        artifacts.mkdir(parents=True, exist_ok=True)
        invocation = self._invocation(ws.workspace, artifacts)
        limits = self._limits()
        run_spec = TaskRunSpec(
            sprint_id=self.sprint_id,
            task_id=self.task_id,
            attempt=attempt,
            image=str((self.body.get("status") or {}).get("image") or self.rec.default_base_image()),
            command=list(invocation.command),
            workspace=Path(ws.workspace),
            artifacts=artifacts,
            extra_mounts=dict(invocation.mounts),
            environment=dict(invocation.environment),
            cpus=limits.get("cpus"),
            memory=limits.get("memory"),
            pids=limits.get("pids"),
            timeout_s=float(limits["timeoutSeconds"]),
        )
        handle = await asyncio.to_thread(runtime.start_task, run_spec)
        await self.patch(
            {
                "branch": ws.branch,
                "workspace": str(ws.workspace),
                "baseCommit": ws.base_commit,
                "containerId": handle.container_id,
                "containerName": handle.name,
                "containerHealth": "running",
                "artifactsPath": str(artifacts),
            }
        )
        self.ctx.wake(self.rec.key)
        waiter = asyncio.ensure_future(asyncio.to_thread(runtime.wait, handle, run_spec.timeout_s))
        await self._live_usage(waiter, artifacts, invocation.usage_format, run_spec)
        outcome = await waiter
        await self._finish_container(engine, ws, runtime, handle, outcome, artifacts, invocation.usage_format)

    def _invocation(self, workspace: Path, artifacts: Path) -> Any:
        deps = self._dependency_results()
        (workspace / "TASK.md").write_text(render_task_md(self.task["spec"], deps))
        team = TEAMS[self.spec.team.type]
        return team.invocation(
            TeamContext(
                task=self.task["spec"],
                team=self.spec.team.dump(),
                workspace=workspace,
                artifacts=artifacts,
                base_dir=Path.cwd(),
            )
        )

    def _dependency_results(self) -> dict[str, str]:
        results: dict[str, str] = {}
        for task in self.rec_tasks():
            if task["spec"]["taskId"] in self.definition.dependencies:
                summary = ((task.get("status") or {}).get("results") or {}).get("summary") or ""
                results[task["spec"]["taskId"]] = summary
        return results

    def rec_tasks(self) -> list[dict[str, Any]]:
        return list(self.ctx.kube.tasks_of(self.rec.namespace, self.rec.name))

    def _limits(self) -> dict[str, Any]:
        configured = self.spec.container.resource_limits if self.spec.container else None
        orchestrator = getattr(self.ctx.settings.config, "orchestrator", None)
        default_timeout = getattr(orchestrator, "default_task_timeout", 3600)
        limits: dict[str, Any] = {
            "cpus": configured.cpus if configured else None,
            "memory": configured.memory if configured else None,
            "pids": configured.pids if configured else 512,
            "timeoutSeconds": (configured.timeout_seconds if configured else None) or int(default_timeout),
        }
        limits.update({k: v for k, v in (self.status.get("limits") or {}).items() if v is not None})
        return limits

    async def _live_usage(self, waiter: asyncio.Future[Any], artifacts: Path, fmt: str, run_spec: Any) -> None:
        """While the container runs, push its growing token usage into the Task status."""
        last: int | None = None
        while not waiter.done():
            await asyncio.wait([waiter], timeout=LIVE_USAGE_SECONDS)
            if waiter.done():
                return
            current = tokens.read_live(artifacts, fmt)
            if current is not None and current.total_tokens != last:
                last = current.total_tokens
                await self.patch({"tokens": tokens.task_tokens(current, self.definition.estimated_tokens,
                                                               partial=True)})
                verdict = tokens.budget_verdict(self.rec, self.spec, self.definition, current)
                if verdict is not None:
                    runtime = await self.ctx.get_runtime()
                    await asyncio.to_thread(runtime.stop, run_spec)
                    self.status["budgetExceeded"] = verdict

    async def _finish_container(
        self, engine: Any, ws: Any, runtime: Any, handle: Any, outcome: Any, artifacts: Path, fmt: str
    ) -> None:
        results = await asyncio.to_thread(collect_results, Path(ws.workspace), artifacts)
        used = tokens.final_usage(results)
        token_status = tokens.task_tokens(used, self.definition.estimated_tokens, partial=None)
        common: dict[str, Any] = {
            "containerHealth": outcome.health,
            "exitCode": outcome.exit_code,
            "tokens": token_status,
            "results": {"summary": results.summary[:2048], "present": results.present,
                        "artifacts": list(results.artifacts)[:100]},
            "logPath": str(outcome.log_path or ""),
        }
        budget = self.status.pop("budgetExceeded", None)
        if budget:
            await self._fail(common, "BudgetExceeded", budget, retryable=False)
        elif outcome.health in ("timed-out", "oom-killed") or (outcome.exit_code or 0) != 0:
            await self._container_failed(common, outcome)
        else:
            commit = await asyncio.to_thread(
                engine.commit_task, ws, self.sprint_id, self.task_id,
                list(self.definition.files_to_modify), TEAM_NAME, TEAM_EMAIL,
            )
            commit_sha = commit.commit or (await asyncio.to_thread(engine.branch_head, ws.branch))
            if commit_sha == ws.base_commit:
                commit_sha = None
            await self.patch(
                {
                    **common,
                    "phase": "Gating",
                    "commit": commit_sha or ws.base_commit,
                    "changedFiles": list(commit.changed_files)[:500],
                    "outOfScope": list(commit.out_of_scope)[:500],
                    "noChanges": commit_sha is None,
                }
            )
        await asyncio.to_thread(runtime.remove, handle.name)
        await self.patch({"containerHealth": "removed"} if self.status.get("phase") != "Running" else {})

    async def _container_failed(self, common: dict[str, Any], outcome: Any) -> None:
        kind = {"timed-out": "timeout", "oom-killed": "oom"}.get(outcome.health, "crash")
        attempt = int(self.status.get("attempt") or 1)
        decision = retry.decide_retry(kind, attempt, self.spec.policy.max_attempts, self._limits(), 5.0)
        message = {
            "timeout": f"the container ran past its {self._limits()['timeoutSeconds']}s limit",
            "oom": f"the container ran out of memory (limit {self._limits().get('memory')})",
            "crash": f"the task team exited with code {outcome.exit_code}",
        }[kind]
        if decision.retry:
            retry_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=decision.delay_s)
            await self.patch(
                {
                    **common,
                    "phase": "Ready",
                    "column": "ready",
                    "error": message,
                    "reason": kind,
                    "recoveryAction": decision.reason,
                    "limits": decision.new_limits,
                    "nextRetryAt": retry_at.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
                }
            )
            self.rec.event(self.rec_body(), "TaskRetry", f"task {self.task_id}: {message}; {decision.reason}",
                           warn=True)
        else:
            await self._fail(common, kind, f"{message}; {decision.reason}", retryable=False)

    def rec_body(self) -> dict[str, Any]:
        return self.body

    async def _fail(self, common: dict[str, Any], reason: str, message: str, retryable: bool) -> None:
        await self.patch({**common, "phase": "Failed", "column": "failed", "reason": reason,
                          "error": message, "completionTime": now_iso(),
                          "recoveryAction": "retry" if retryable else "sprintctl retry"})
        self.rec.event(self.body, "TaskFailed", f"task {self.task_id}: {message}", warn=True)

    async def _infrastructure_failure(self, message: str) -> None:
        attempt = int(self.status.get("attempt") or 1)
        decision = retry.decide_retry("infrastructure", attempt, self.spec.policy.max_attempts,
                                      self._limits(), 5.0)
        if decision.retry:
            retry_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=decision.delay_s)
            await self.patch({"phase": "Ready", "column": "ready", "error": message[:4000],
                              "reason": "infrastructure", "recoveryAction": decision.reason,
                              "nextRetryAt": retry_at.replace(microsecond=0).isoformat().replace("+00:00", "Z")})
        else:
            await self._fail({}, "infrastructure", message[:4000], retryable=True)

    # --- Gating --------------------------------------------------------------------------------

    async def _gate(self) -> None:
        engine = await self.rec.engine(self.spec)
        runtime = await self.ctx.get_runtime()
        commit = str(self.status["commit"])
        image = str((self.body.get("status") or {}).get("image") or self.rec.default_base_image())
        sprint_head = await asyncio.to_thread(engine.branch_head, f"sprint/{self.sprint_id}")
        results = await asyncio.to_thread(
            run_gates, engine, runtime, image, commit, sprint_head,
            list(self.definition.test_requirements), list(self.definition.files_to_modify),
            self._limits(),
        )
        out_of_scope = list(self.status.get("outOfScope") or [])
        passed = all(r["passed"] for r in results)
        scope_review = bool(out_of_scope) and self.spec.policy.out_of_scope_changes == "review"
        if passed and not scope_review:
            await self.patch({"phase": "Merging", "gates": results, "gatedAt": now_iso(),
                              "reason": "", "error": ""})
            return
        why = (
            f"gate failed: {next(r['command'] for r in results if not r['passed'])}"
            if not passed else f"changes outside filesToModify: {', '.join(out_of_scope[:10])}"
        )
        await self.patch({"phase": "Review", "column": "review", "gates": results, "reason": "GateFailed",
                          "error": why, "recoveryAction": "sprintctl approve or sprintctl retry"})
        self.rec.event(self.body, "TaskNeedsReview", f"task {self.task_id}: {why}", warn=True)


def run_gates(
    engine: Any, runtime: Any, image: str, commit: str, sprint_head: str,
    commands: list[str], files_to_modify: list[str], limits: dict[str, Any],
) -> list[dict[str, Any]]:
    """Run each gate command in a fresh container on the task's committed tree.

    Test files come from the sprint branch (trusted) unless the task was asked to modify them:
    every path that differs between the task commit and the sprint head, is not in filesToModify,
    and looks like a test is taken from the sprint head.
    """
    results: list[dict[str, Any]] = []
    if not commands:
        return results
    with tempfile.TemporaryDirectory(prefix="sprint-gate-") as tmp:
        tree = Path(tmp) / "tree"
        overlay = trusted_overlay(engine, commit, sprint_head, files_to_modify)
        engine.export_tree(commit, tree, overlay)
        for index, command in enumerate(commands):
            started = time.monotonic()
            outcome = runtime.run_oneshot(image, ["/bin/sh", "-c", command], tree,
                                          float(limits.get("timeoutSeconds") or 600), limits)
            results.append(
                {
                    "name": f"test-{index + 1}",
                    "command": command,
                    "exitCode": int(outcome.exit_code),
                    "durationSeconds": round(time.monotonic() - started, 3),
                    "passed": outcome.exit_code == 0,
                    "logTail": outcome.log_tail[-2000:],
                }
            )
        shutil.rmtree(tree, ignore_errors=True)
    return results


def trusted_overlay(engine: Any, commit: str, sprint_head: str, files_to_modify: list[str]) -> dict[str, str]:
    allowed = set(files_to_modify)
    overlay: dict[str, str] = {}
    for path in engine.changed_paths(sprint_head, commit):
        name = path.rsplit("/", 1)[-1]
        is_test = path.startswith("tests/") or name.startswith("test_") or name.endswith("_test.py")
        if is_test and path not in allowed:
            overlay[path] = sprint_head
    return overlay
