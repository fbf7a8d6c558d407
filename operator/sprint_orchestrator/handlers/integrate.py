"""Sprint end: the report, integration tests on the sprint head, main by compare-and-swap.

On failure main never moves. Policy `bisect` finds the merged task that broke the tests by re-testing
prefixes of the merge order (rebuilt in memory from the sprint base), ejects it and re-tests;
`rollback` ends the sprint as RolledBack.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any

from .. import lifecycle, report, retry
from ..errors import InfrastructureFailure, PodRejected
from ..faults import checkpoint
from ..model import SprintSpec
from ..runtime import Limits, tenant_of
from ..stamps import now_iso
from . import housekeeping, publish
from .conditions import set_condition
from .gating import run_gates, scheduling_of

log = logging.getLogger("sprint_orchestrator.operator")


class Integrator:
    def __init__(self, rec: Any, body: dict[str, Any], spec: SprintSpec, tasks: list[dict[str, Any]]) -> None:
        self.rec, self.body, self.spec, self.tasks = rec, body, spec, tasks
        self.status = body.get("status") or {}
        self.sprint_id = spec.resolved_id(rec.name)
        self.branch = f"sprint/{self.sprint_id}"

    async def run(self) -> float:
        if self._outcome() == "Failed":
            why = "no task changed anything" if self._completed() else "no task completed"
            return await self._end("Failed", f"{why}; main was not changed", [])
        engine = await self.rec.engine(self.spec)
        pending = await publish.retry_pending_push(self, engine)  # main moved before, not on the remote
        if pending is not None:
            return pending
        runtime = await self.rec.ctx.get_runtime()
        main_head = str(await asyncio.to_thread(engine.refresh_main))
        if main_head != self.status.get("baseCommit"):
            conflict = await self._merge_main(engine, main_head)
            if conflict:
                return await self._end("Failed", conflict, [])
        head = await self._commit_report(engine)
        try:
            results = await self._test(engine, runtime, head)
        except InfrastructureFailure as exc:  # the cluster ended a test Pod: not a verdict on the sprint
            return await self._infrastructure_failed(str(exc))
        except PodRejected as exc:  # a test Pod that can never start here (a RuntimeClass's handler)
            message = f"the integration tests cannot run: {exc}; main was not changed"
            return await self._end("Failed", message[:4000], [])
        if all(r["passed"] for r in results):
            return await self._to_main(engine, head, results)
        return await self._failed(engine, runtime, head, results)

    async def _infrastructure_failed(self, why: str) -> float:
        """Run the tests again after the one backoff rule, on the infrastructure budget (retry.py); once
        it is spent the sprint fails saying so, main unchanged (a cluster that keeps ending the test Pods
        needs a human, not a retry every few seconds forever)."""
        used = int(self.status.get("integrationInfraRetries") or 0)
        policy = retry.policy_of(self.rec.ctx.settings.config)
        again, delay_s, budget = retry.decide_infra_retry(used, retry.BACKOFF_BASE_S, policy)
        if not again:
            message = f"the integration tests could not run: {why}; {budget}; main was not changed"
            return await self._end("Failed", message[:4000], [])
        await self.rec.patch({"integrationInfraRetries": used + 1})
        self.status["integrationInfraRetries"] = used + 1
        message = f"{why} (the integration tests run again in {delay_s:.0f} s: {budget})"
        self.rec.event(self.body, "IntegrationRetry", message[:1000], warn=True)
        return delay_s

    async def _commit_report(self, engine: Any) -> str:
        data = report.build(self.body, self.tasks, dt.datetime.now(dt.UTC))
        text = report.markdown(data)
        path = f".sprint/reports/{self.sprint_id}.md"
        head = str(await asyncio.to_thread(engine.head, self.branch))
        current = await asyncio.to_thread(engine.file_at, head, path)
        if current is not None and _strip_times(current.decode()) == _strip_times(text):
            text = current.decode()  # committed before (an operator killed after it): kept, not redone
        else:
            head = str(
                await asyncio.to_thread(
                    engine.commit_file, self.branch, path, text.encode(), f"sprint {self.sprint_id}: report"
                )
            )
        checkpoint("report-committed-before-status")
        self.report = data
        await self.rec.patch(
            {
                "report": {
                    "path": path,
                    "summary": _summary(data),
                    "markdown": report.status_markdown(text, path),
                    "slotUtilization": data["slotUtilization"],
                }
            }
        )
        artifacts = self.rec.ctx.settings.artifacts_dir / self.rec.namespace / self.rec.name
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "report.json").write_text(json.dumps(data, indent=2))
        (artifacts / "report.md").write_text(text)
        return head

    async def _test(self, engine: Any, runtime: Any, commit: str) -> list[dict[str, Any]]:
        image = str(self.status.get("image") or self.rec.default_base_image())
        return await asyncio.to_thread(
            run_gates,
            engine,
            runtime,
            image,
            commit,
            {},
            list(self.spec.integration_tests),
            self._limits(),
            1800.0,
            None,
            scheduling_of(self.spec),
        )

    def _limits(self) -> Limits:
        """The integration tests' container: the sprint's limits, else the operator's defaults."""
        configured = self.spec.container.resource_limits if self.spec.container else None
        defaults = retry.operator_defaults(self.rec.ctx.settings.config)
        return retry.effective_limits(configured, {}, 1800.0, defaults)[0]

    async def _to_main(self, engine: Any, head: str, results: list[dict[str, Any]]) -> float:
        # Kept before main moves: a restart that finds main moved but not pushed reports them as well.
        await self.rec.patch({"integration": results, "integratedCommit": head})
        self.status.update(integration=results, integratedCommit=head)
        main = await asyncio.to_thread(
            engine.merge_sprint_to_main, self.sprint_id, head, str(self.status.get("baseCommit"))
        )
        if main.pushed:
            checkpoint("main-pushed-before-status")
        self.rec.ref_events(self.body, main.changes)
        if main.main_moved and not main.moved:  # moved between our test run and the swap: again
            conflict = await self._merge_main(engine, main.main_commit)
            return await self._end("Failed", conflict, results) if conflict else 0.0
        if main.push_refused:
            return await publish.record_refusal(self, main.main_commit, main.push_refused)
        self.rec.event(
            self.body,
            "MainUpdated",
            f"main moved to {main.main_commit[:12]} ({'fast-forward' if main.fast_forward else 'merge'})",
        )
        if main.moved and not main.pushed:  # an origin main is never pushed to (push_blocker)
            message = f"main updated to {main.main_commit[:12]} in the operator's clone: {main.reason}"
            return await self.finish(main.main_commit, head, message, pushed=False)
        return await self.finish(main.main_commit, head, f"main updated to {main.main_commit[:12]}")

    async def finish(self, main_commit: str, head: str, message: str, pushed: bool = True) -> float:
        """Main is where it belongs (pushed, or in a clone that is not pushed by design): end the sprint
        as its tasks say."""
        conditions = None
        attempts = int((self.status.get("push") or {}).get("attempts") or 0)
        if pushed:
            conditions = publish.pushed_condition(None, main_commit)
        return await self._end(
            self._outcome(),
            message,
            list(self.status.get("integration") or []),
            mainCommit=main_commit,
            integratedCommit=head,
            push={"attempts": attempts, "nextAttemptAt": None},
            conditions_extra=conditions,
        )

    def _completed(self) -> list[dict[str, Any]]:
        return [t["status"] for t in self.tasks if (t.get("status") or {}).get("phase") == "Completed"]

    def _outcome(self) -> str:
        """Completed, Partial or Failed, as the lifecycle's pure rule says for the tasks' phases."""
        phases = ((t.get("status") or {}).get("phase") or "Pending" for t in self.tasks)
        return lifecycle.sprint_outcome(phases, any(not s.get("noChanges") for s in self._completed()))

    async def _merge_main(self, engine: Any, main_head: str) -> str | None:
        """Main moved since the sprint started: merge it into the sprint branch (the tests then run on
        the result). Returns why the sprint must fail (a conflict), or None."""
        merge = await asyncio.to_thread(engine.merge_main_into_sprint, self.sprint_id)
        self.rec.ref_events(self.body, merge.changes)
        if not merge.merged:
            return f"main moved and conflicts with the sprint in {', '.join(merge.conflicts[:10])}"
        await self.rec.patch(
            {"baseCommit": main_head, "message": "main moved during the sprint: merged it in"}
        )
        self.status["baseCommit"] = main_head
        self.rec.event(
            self.body, "MainMoved", f"main moved to {main_head[:12]} during the sprint; merged it in"
        )
        return None

    async def _failed(self, engine: Any, runtime: Any, head: str, results: list[dict[str, Any]]) -> float:
        merged = self._merged_in_order()
        if self.spec.policy.on_integration_failure == "rollback" or not merged:
            return await self._end("RolledBack", "integration tests failed; main was not changed", results)
        culprit = await self._bisect(engine, runtime, merged)
        if culprit is None:
            return await self._end(
                "RolledBack",
                "integration tests failed and no single task explains it; main was not changed",
                results,
            )
        task_id, _ = culprit
        base = str(self.status.get("baseCommit"))
        rebuilt = await asyncio.to_thread(engine.rebuild_without, base, [c for _, c in merged], {culprit[1]})
        if rebuilt is None:
            return await self._end("RolledBack", f"could not rebuild the sprint without {task_id}", results)
        change = await asyncio.to_thread(
            engine.move_sprint_branch, self.sprint_id, rebuilt, head, f"eject task {task_id}"
        )
        self.rec.ref_events(self.body, [change])
        task = next(t for t in self.tasks if t["spec"]["taskId"] == task_id)
        await self.rec.patch_task(
            task,
            {
                "phase": "Failed",
                "column": "failed",
                "reason": "IntegrationFailure",
                "error": "ejected: the integration tests fail with this task merged",
                "recoveryAction": "fix the task and retry it in a later sprint",
            },
        )
        merged_ids = [t for t in (self.status.get("merged") or []) if t != task_id]
        await self.rec.patch({"merged": merged_ids, "message": f"ejected {task_id}; re-testing"})
        self.rec.event(
            self.body, "TaskEjected", f"task {task_id} broke the integration tests; ejected", warn=True
        )
        return 0.0

    def _merged_in_order(self) -> list[tuple[str, str]]:
        by_id = {t["spec"]["taskId"]: t for t in self.tasks}
        out = []
        for task_id in self.status.get("merged") or []:
            task = by_id.get(task_id)
            commit = ((task or {}).get("status") or {}).get("commit")
            if commit and ((task or {}).get("status") or {}).get("phase") == "Completed":
                out.append((task_id, str(commit)))
        return out

    async def _bisect(
        self, engine: Any, runtime: Any, merged: list[tuple[str, str]]
    ) -> tuple[str, str] | None:
        """The first merged task whose prefix of the merge order fails the tests (binary search)."""
        base = str(self.status.get("baseCommit"))
        lo, hi = 0, len(merged)  # invariant: prefix lo passes (empty prefix = base), prefix hi fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            exclude = {c for _, c in merged[mid:]}
            candidate = await asyncio.to_thread(engine.rebuild_without, base, [c for _, c in merged], exclude)
            if candidate is None:
                return None
            passed = all(r["passed"] for r in await self._test(engine, runtime, candidate))
            lo, hi = (mid, hi) if passed else (lo, mid)
        return merged[hi - 1]

    async def _end(
        self,
        phase: str,
        message: str,
        results: list[dict[str, Any]],
        conditions_extra: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> float:
        ok = phase in ("Completed", "Partial")
        await asyncio.to_thread(
            self._cleanup, await self.rec.engine(self.spec), await self.rec.ctx.get_runtime()
        )
        await self.rec.patch(
            {
                "phase": phase,
                "message": message,
                "completedAt": now_iso(),
                "integration": results,
                **extra,
                "conditions": set_condition(
                    set_condition(
                        conditions_extra,
                        "Integrated",
                        ok,
                        "TestsPassed" if ok else "TestsFailed",
                        message,
                        now_iso(),
                    ),
                    "Completed",
                    ok,
                    phase,
                    message,
                    now_iso(),
                ),
            }
        )
        self.rec.event(self.body, phase, message, warn=not ok)
        housekeeping.schedule(self.rec.ctx, (self.rec.namespace, self.rec.name))  # retention, git gc
        return 0.0

    def _cleanup(self, engine: Any, runtime: Any) -> None:
        """Level-based cleanup at the end: every task worktree and container of the sprint, whatever
        an interrupted merge step left (salvaging first, in the git engine)."""
        for task in self.tasks:
            attempt = int((task.get("status") or {}).get("attempt") or 0)
            if attempt:
                try:
                    engine.cleanup_task(self.sprint_id, task["spec"]["taskId"], attempt)
                except Exception:
                    log.warning("cleanup of task %s failed", task["spec"]["taskId"], exc_info=True)
                checkpoint("cleanup")
        for container in runtime.find_task_containers(
            self.sprint_id, tenant_of(self.rec.namespace, self.rec.name)
        ):
            runtime.remove(container.name)
        runtime.release_warm(self.rec.key)  # warm gate Pods (podpool.py)


def _strip_times(text: str) -> str:
    """The report without the lines that change with the time it is written (wall time, utilization)."""
    volatile = ("- Started:", "- Resource utilization:")
    return "\n".join(line for line in text.splitlines() if not line.startswith(volatile))


def _summary(data: dict[str, Any]) -> str:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(data["outcomes"].items()))
    tokens = data["tokens"]
    return (
        f"{outcomes}; tokens {tokens['actual']}/{tokens['estimated']} estimated; "
        f"utilization {data['slotUtilization']:.0%}"
    )
