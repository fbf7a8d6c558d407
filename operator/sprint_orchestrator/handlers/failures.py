"""How a task attempt that failed ends: retried (retry.py decides how and when) or Failed, with its
reason, message and Event. Kubernetes' infrastructure verdicts (runtime/podstatus.py) are retried on
their own budget; a Pod never scheduled by its deadline fails ("no node fits"), as does one whose
RuntimeClass's handler the node does not have. The operator's own disk full (diskspace.py) is no
failure of the attempt at all: the step waits and is done again, its work kept (`disk_full`)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from .. import quantities, retry
from ..errors import DiskFull
from ..lifecycle import DISK_FULL
from ..stamps import now_iso
from .publish import backoff

log = logging.getLogger("sprint_orchestrator.tasks")

# status.reason of a container that failed, by retry kind (Failed when the attempts are used up)
REASONS = {
    "timed-out": "Timeout",
    "oom-killed": "OOMKilled",
    "error": "Error",
    "infrastructure": "Infrastructure",
}
# infrastructure verdicts a retry would meet again: the task fails with the kind as its reason
FINAL_KINDS = frozenset({"Unschedulable", "RuntimeHandlerMissing"})


async def container_failed(runner: Any, common: dict[str, Any], outcome: Any) -> None:
    health = str(outcome.health)
    kind = health if health in ("timed-out", "oom-killed") else "error"
    limits, timeout_s = runner.limits()
    memory = quantities.format_bytes(limits.memory_bytes) if limits.memory_bytes else "no limit"
    message = {
        "timed-out": f"the container ran past its time limit ({timeout_s:g}s)",
        "oom-killed": f"the container ran out of memory ({memory}; {outcome.reason})",
        "error": (
            f"the task team exited with code {outcome.exit_code} ({outcome.reason or health})"
            if outcome.exit_code is not None
            else f"the task's run failed: {outcome.reason or health}"
        ),
    }[kind]
    await retry_or_fail(runner, common, kind, message)


async def infrastructure_outcome(runner: Any, common: dict[str, Any], outcome: Any) -> None:
    """The node or the cluster ended the Pod (runtime/podstatus.py). Never scheduled by its deadline, or
    its RuntimeClass's handler missing on its node (runtime/podevents.py): failed, not retried (the
    sprint's nodeSelector, tolerations or resources fit no node, the class names a handler the node
    does not have; a human fixes that and retries). Anything else: an infrastructure retry."""
    kind = str(outcome.infrastructure)
    if kind in FINAL_KINDS:
        await fail(runner, common, kind, str(outcome.reason)[:4000], retryable=True)
        return
    await retry_or_fail(runner, common, "infrastructure", f"{kind}: {outcome.reason}"[:4000], kind)


async def retry_or_fail(
    runner: Any, common: dict[str, Any], kind: str, message: str, reason: str = ""
) -> None:
    attempt = int(runner.status.get("attempt") or 1)
    limits, timeout_s = runner.limits()
    infra = int(runner.status.get("infraRetries") or 0)
    policy = retry.policy_of(runner.ctx.settings.config)
    decision = retry.decide_retry(
        kind, attempt, runner.spec.policy.max_attempts, limits, retry.BACKOFF_BASE_S, timeout_s, policy, infra
    )
    reason = reason or REASONS[kind]
    if not decision.retry:
        await fail(runner, common, reason, f"{message}; {decision.reason}", retryable=True)
        return
    retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=decision.delay_s)
    extra: dict[str, Any] = {}
    if kind == "infrastructure":  # one more attempt that the work's maxAttempts does not count
        allowed = int(runner.status.get("maxAttempts") or attempt) + 1
        extra = {"infraRetries": infra + 1, "maxAttempts": allowed}
    await runner.patch(
        {
            **common,
            **extra,
            "phase": "Ready",
            "column": "ready",
            "error": message,
            "reason": reason,
            "recoveryAction": decision.reason,
            "limits": retry.limits_status(decision.new_limits, decision.new_timeout_s),
            "nextRetryAt": retry_at.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        }
    )
    runner.rec.event(
        runner.body, "TaskRetry", f"task {runner.task_id}: {message}; {decision.reason}", warn=True
    )
    # in the operator's log too (the Event expires, the Task's error goes at the next admission)
    log.warning(
        "task %s/%s attempt %d: %s; %s", runner.rec.key, runner.task_id, attempt, message, decision.reason,
        extra={"sprint": runner.sprint_id, "task": runner.task_id, "attempt": attempt, "reason": reason},
    )  # fmt: skip


async def fail(runner: Any, common: dict[str, Any], reason: str, message: str, retryable: bool) -> None:
    await runner.patch(
        {
            **common,
            "phase": "Failed",
            "column": "failed",
            "reason": reason,
            "error": message,
            "completionTime": now_iso(),
            "recoveryAction": "retry" if retryable else "sprintctl retry",
        }
    )
    runner.rec.event(runner.body, "TaskFailed", f"task {runner.task_id}: {message}", warn=True)


async def infrastructure_failure(runner: Any, message: str, kind: str = "error") -> None:
    """An exception ended the step: "error" (a start that failed, a bug) counts against maxAttempts;
    "infrastructure" (InfrastructureFailure: the cluster ended a gate Pod) has its own budget."""
    await retry_or_fail(runner, {}, kind, message[:4000])


DISK_FULL_ACTION = (
    "free space on the operator's disk (its state directory, git.working_trees_path); the step is retried"
)


async def disk_full(runner: Any, exc: BaseException) -> float:
    """A write to the operator's own disk (the task's commit, its workspace, artifacts) found no space:
    not the team's fault and not a failed attempt. The task keeps its phase and its work (the workspace,
    the container, any commit made), says why (reason DiskFull, the message, an Event), and the step is
    done again after a backoff (2 s doubling to 5 min, with no limit: the work is never thrown away for
    want of space; a human frees space, or cancels). Returns the seconds to wait."""
    key = f"{runner.rec.key}/{runner.task_id}"
    tries = runner.ctx.disk_waits[key] = runner.ctx.disk_waits.get(key, 0) + 1
    delay = backoff(tries)
    attempt = int(runner.status.get("attempt") or 1)
    why = str(exc) if isinstance(exc, DiskFull) else f"no space left on device on the operator's disk: {exc}"
    message = f"{why}; the work of attempt {attempt} is kept, retrying in {delay:.0f}s (try {tries})"[:4000]
    await runner.patch({"reason": DISK_FULL, "error": message, "recoveryAction": DISK_FULL_ACTION})
    runner.rec.log.warning("task %s: %s", runner.task_id, message)
    runner.rec.event(runner.body, "DiskFull", f"task {runner.task_id}: {message}", warn=True)
    return delay


def disk_wait_over(runner: Any) -> None:
    """The step went through: the next wait for space starts its backoff afresh. (The reason goes with
    the task's next phase: reconcile.patch_task, `lifecycle.without_disk_wait`.)"""
    runner.ctx.disk_waits.pop(f"{runner.rec.key}/{runner.task_id}", None)
