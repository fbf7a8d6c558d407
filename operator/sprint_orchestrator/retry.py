"""What to do after a failed attempt: the PRD's failure-handling policy as one pure function.

    timed-out      -> retry with a longer wall-clock limit (x timeout_factor, capped)
    oom-killed     -> retry with more memory (x memory_factor, capped)
    error          -> retry unchanged (an infrastructure failure: start failed, runtime error, crash)
    anything else  -> no retry (success, a failed quality gate goes to review, a conflict is isolated,
                      a budget stop is final: test failures are never retried into a pass)

Every retry waits base_backoff_s * 2**(attempt-1), capped at max_backoff_s, and no retry happens once
`attempt` (1-based, the attempt that just ended; durable in the Task status) reaches max_attempts.
When a limit is already at its cap, retrying would repeat the same failure, so it is not retried.

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

RETRYABLE = ("timed-out", "oom-killed", "error")
DEFAULT_PIDS = 512
DEFAULT_MEMORY_BYTES = 1 << 30  # "more memory" for a task that had no explicit limit


@dataclass(frozen=True)
class RetryPolicy:
    timeout_factor: float = 2.0
    memory_factor: float = 2.0
    max_timeout_s: float = 4 * 3600
    max_memory_bytes: int = 8 << 30
    max_backoff_s: float = 600.0


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
) -> RetryDecision:
    """Whether and how to run attempt `attempt + 1` after an attempt that ended as `outcome_kind`."""
    if outcome_kind not in RETRYABLE:
        return _stop(limits, timeout_s, f"{outcome_kind}: not retried")
    if attempt >= max_attempts:
        return _stop(
            limits, timeout_s, f"{outcome_kind}: no attempts left ({attempt} of {max_attempts} used)"
        )
    new_limits, new_timeout, change = _raise_limits(outcome_kind, limits, timeout_s, policy)
    if change is None:
        return _stop(
            limits, timeout_s, f"{outcome_kind}: already at the cap, a retry would fail the same way"
        )
    delay = min(base_backoff_s * 2 ** (attempt - 1), policy.max_backoff_s)
    return RetryDecision(
        True, new_limits, new_timeout, delay, f"{outcome_kind}: attempt {attempt + 1} {change}"
    )


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
