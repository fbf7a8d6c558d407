"""What to do after a failed attempt: the PRD's failure-handling policy as one pure function.

    timed-out       -> retry with a longer wall-clock limit (x timeout_factor, capped)
    oom-killed      -> retry with more memory (x memory_factor, capped)
    error           -> retry unchanged (the team crashed, the runtime failed to start it)
    infrastructure  -> retry unchanged, on a budget of its own: Kubernetes says the node or the cluster
                       ended the run, not its work (evicted, node lost, preempted, an image that could
                       not be pulled: runtime/podstatus.py)
    anything else   -> no retry (success, a failed quality gate goes to review, a conflict is isolated,
                       a budget stop is final: test failures are never retried into a pass)

One backoff rule for every retry: the n-th waits base_backoff_s * 2**(n-1), capped at max_backoff_s
(BACKOFF_BASE_S: 10 s, 20 s, 40 s ... 5 min). For work retries n counts the attempts that ended for the
work's own reasons; for infrastructure retries, the infrastructure retries so far.

Why infrastructure has its own budget (`max_infra_retries`, containers.infrastructure_retries), not
maxAttempts: maxAttempts says how many times the author lets the work try; a drained node or a lost
one says nothing about the work (Kubernetes' Jobs ignore DisruptionTarget failures in backoffLimit for
the same reason), and two evictions must not fail a task that never failed. The budget still ends an
image that can never be pulled. So no work retry happens once `attempt` (1-based, the attempt that just
ended; durable in the Task status) minus the infrastructure retries reaches max_attempts. When a limit
is already at its cap, retrying would repeat the same failure, so it is not retried.

Example: decide_retry("oom-killed", 1, 3, Limits(memory_bytes=512 MiB), 10)
         -> RetryDecision(retry=True, new_limits=Limits(memory_bytes=1 GiB), delay_s=10,
                          reason="oom-killed: attempt 2 with memory 1Gi")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import quantities
from .model import ResourceLimits
from .runtime import Limits

RETRYABLE = ("timed-out", "oom-killed", "error", "infrastructure")
DEFAULT_PIDS = 512
DEFAULT_MEMORY_BYTES = 1 << 30  # "more memory" for a task that had no explicit limit
BACKOFF_BASE_S = 10.0  # the first retry's wait (backoff_s): 10 s, 20 s, 40 s ... up to max_backoff_s


@dataclass(frozen=True)
class RetryPolicy:
    timeout_factor: float = 2.0
    memory_factor: float = 2.0
    max_timeout_s: float = 4 * 3600
    max_memory_bytes: int = 8 << 30
    max_backoff_s: float = 300.0
    max_infra_retries: int = 5


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    new_limits: Limits
    new_timeout_s: float
    delay_s: float
    reason: str


def decide_retry(
    outcome_kind: str,
    attempt: int,
    max_attempts: int,
    limits: Limits,
    base_backoff_s: float,
    timeout_s: float = 3600.0,
    policy: RetryPolicy = RetryPolicy(),
    infra_retries: int = 0,
) -> RetryDecision:
    """Whether and how to run attempt `attempt + 1` after an attempt that ended as `outcome_kind`;
    `infra_retries`: the earlier attempts that ended as infrastructure failures (and were retried)."""
    if outcome_kind not in RETRYABLE:
        return _stop(limits, timeout_s, f"{outcome_kind}: not retried")
    if outcome_kind == "infrastructure":
        again, delay, budget = decide_infra_retry(infra_retries, base_backoff_s, policy)
        if not again:
            return _stop(limits, timeout_s, f"infrastructure: {budget}")
        why = f"infrastructure: attempt {attempt + 1} unchanged ({budget})"
        return RetryDecision(True, limits, timeout_s, delay, why)
    counted = attempt - infra_retries
    if counted >= max_attempts:
        return _stop(
            limits, timeout_s, f"{outcome_kind}: no attempts left ({counted} of {max_attempts} used)"
        )
    new_limits, new_timeout, change = _raise_limits(outcome_kind, limits, timeout_s, policy)
    if change is None:
        return _stop(
            limits, timeout_s, f"{outcome_kind}: already at the cap, a retry would fail the same way"
        )
    delay = backoff_s(counted, base_backoff_s, policy.max_backoff_s)
    return RetryDecision(
        True, new_limits, new_timeout, delay, f"{outcome_kind}: attempt {attempt + 1} {change}"
    )


def decide_infra_retry(
    used: int, base_backoff_s: float, policy: RetryPolicy = RetryPolicy()
) -> tuple[bool, float, str]:
    """After `used` infrastructure retries, whether to run again, after how long, and the budget in
    words: (True, 20.0, "infrastructure retry 2 of 5") or (False, 0.0, "no infrastructure retries left
    (5 of 5 used)"). Tasks (decide_retry) and the integration tests (handlers/integrate.py) share it."""
    if used >= policy.max_infra_retries:
        return False, 0.0, f"no infrastructure retries left ({used} of {policy.max_infra_retries} used)"
    delay = backoff_s(used + 1, base_backoff_s, policy.max_backoff_s)
    return True, delay, f"infrastructure retry {used + 1} of {policy.max_infra_retries}"


def policy_of(config: Any) -> RetryPolicy:
    """The operator configuration's part of the policy (containers.infrastructure_retries)."""
    containers = getattr(config, "containers", None)
    return RetryPolicy(max_infra_retries=int(getattr(containers, "infrastructure_retries", 5)))


def backoff_s(n: int, base_s: float, cap_s: float) -> float:
    """The wait before the n-th retry (n >= 1): base, doubled each time, capped."""
    return float(min(base_s * 2 ** (n - 1), cap_s))


def _raise_limits(
    kind: str, limits: Limits, timeout_s: float, policy: RetryPolicy
) -> tuple[Limits, float, str | None]:
    if kind == "timed-out":
        longer = min(timeout_s * policy.timeout_factor, policy.max_timeout_s)
        return limits, longer, (f"with timeout {longer:g}s" if longer > timeout_s else None)
    if kind == "oom-killed":
        current = limits.memory_bytes or 0
        more = min(
            int(current * policy.memory_factor) if current else DEFAULT_MEMORY_BYTES, policy.max_memory_bytes
        )
        change = f"with memory {quantities.format_bytes(more)}" if more > current else None
        return replace(limits, memory_bytes=more), timeout_s, change
    return limits, timeout_s, "unchanged"


def _stop(limits: Limits, timeout_s: float, reason: str) -> RetryDecision:
    return RetryDecision(False, limits, timeout_s, 0.0, reason)


def effective_limits(
    configured: ResourceLimits | None,
    raised: Mapping[str, Any],
    default_timeout_s: float,
    defaults: Limits | None = None,
) -> tuple[Limits, float]:
    """The limits and timeout of the next attempt: the spec's (normalized when it was validated; what
    it leaves unset comes from the operator's `defaults`, then DEFAULT_PIDS and the default timeout),
    raised to the last attempt's status.limits where a retry raised them (never lowered below the
    spec, which may have been raised since)."""
    spec = configured or ResourceLimits()
    defaults = defaults or Limits()
    nano = spec.nano_cpus
    limits = Limits(
        cpus=nano / quantities.NANO if nano else defaults.cpus,
        memory_bytes=spec.memory_bytes or defaults.memory_bytes,
        pids=spec.pids or defaults.pids or DEFAULT_PIDS,
        disk_bytes=spec.disk_bytes or defaults.disk_bytes,
    )
    memory = int(raised.get("memoryBytes") or 0)
    if memory > (limits.memory_bytes or 0):
        limits = replace(limits, memory_bytes=memory)
    timeout = float(spec.timeout_seconds or default_timeout_s)
    return limits, max(float(raised.get("timeoutSeconds") or 0), timeout)


def operator_defaults(config: Any) -> Limits:
    """The configuration's containers.default_* limits (none when there is no configuration)."""
    containers = getattr(config, "containers", None)
    nano = getattr(containers, "default_cpus", None)
    return Limits(
        cpus=nano / quantities.NANO if nano else None,
        memory_bytes=getattr(containers, "default_memory", None),
        pids=getattr(containers, "default_pids", None),
        disk_bytes=getattr(containers, "default_disk", None) or None,
    )


def limits_status(limits: Limits, timeout_s: float) -> dict[str, Any]:
    """status.limits of an attempt: normalized numbers, and the canonical spellings shown on boards."""
    memory = limits.memory_bytes
    return {
        "cpus": limits.cpus,
        "nanoCpus": round(limits.cpus * quantities.NANO) if limits.cpus else None,
        "memory": quantities.format_bytes(memory) if memory else None,
        "memoryBytes": memory,
        "pids": limits.pids,
        "timeoutSeconds": timeout_s,
    }
