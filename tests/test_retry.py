"""The failure-handling policy: which outcomes are retried, with what limits, after how long."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sprint_orchestrator.retry import (
    DEFAULT_MEMORY_BYTES,
    RetryPolicy,
    backoff_s,
    decide_infra_retry,
    decide_retry,
)
from sprint_orchestrator.runtime import Limits

MiB = 1 << 20
LIMITS = Limits(cpus=1.0, memory_bytes=512 * MiB, pids=256)


def test_a_timeout_is_retried_with_a_longer_limit() -> None:
    decision = decide_retry("timed-out", 1, 3, LIMITS, 10, timeout_s=600)
    assert (decision.retry, decision.new_timeout_s, decision.new_limits, decision.delay_s) == (
        True,
        1200,
        LIMITS,
        10,
    )


def test_an_oom_kill_is_retried_with_more_memory() -> None:
    decision = decide_retry("oom-killed", 2, 3, LIMITS, 10, timeout_s=600)
    assert decision.retry and decision.new_limits.memory_bytes == 1024 * MiB
    assert decision.reason == "oom-killed: attempt 3 with memory 1Gi"
    assert (decision.new_timeout_s, decision.delay_s, decision.new_limits.cpus) == (600, 20, 1.0)


def test_an_oom_kill_without_a_memory_limit_gets_the_default() -> None:
    decision = decide_retry("oom-killed", 1, 3, Limits(), 1)
    assert decision.new_limits.memory_bytes == DEFAULT_MEMORY_BYTES


def test_an_infrastructure_error_is_retried_unchanged() -> None:
    decision = decide_retry("error", 1, 2, LIMITS, 5, timeout_s=60)
    assert (decision.retry, decision.new_limits, decision.new_timeout_s) == (True, LIMITS, 60)


@pytest.mark.parametrize("kind", ["exited", "gate-failed", "conflict", "budget-exceeded", "unknown"])
def test_other_outcomes_are_never_retried(kind: str) -> None:
    decision = decide_retry(kind, 1, 5, LIMITS, 10)
    assert not decision.retry and kind in decision.reason


def test_no_retry_once_the_attempts_are_used_up() -> None:
    decision = decide_retry("timed-out", 3, 3, LIMITS, 10)
    assert not decision.retry and "3 of 3" in decision.reason


def test_no_retry_when_the_limit_is_already_at_its_cap() -> None:
    policy = RetryPolicy(max_memory_bytes=512 * MiB, max_timeout_s=600)
    assert not decide_retry("oom-killed", 1, 3, LIMITS, 10, policy=policy).retry
    assert not decide_retry("timed-out", 1, 3, LIMITS, 10, timeout_s=600, policy=policy).retry


def test_limits_grow_up_to_the_cap_but_not_past_it() -> None:
    policy = RetryPolicy(max_memory_bytes=700 * MiB, max_timeout_s=1000)
    assert decide_retry("oom-killed", 1, 3, LIMITS, 1, policy=policy).new_limits.memory_bytes == 700 * MiB
    assert decide_retry("timed-out", 1, 3, LIMITS, 1, timeout_s=600, policy=policy).new_timeout_s == 1000


@given(
    kind=st.sampled_from(["timed-out", "oom-killed", "error"]),
    attempt=st.integers(1, 20),
    base=st.floats(0, 1000, allow_nan=False),
    memory=st.integers(1, 64 << 30),
    timeout=st.floats(1, 100_000, allow_nan=False),
)
def test_backoff_doubles_and_every_value_respects_its_cap(
    kind: str, attempt: int, base: float, memory: int, timeout: float
) -> None:
    policy = RetryPolicy()
    limits = Limits(memory_bytes=memory)
    decision = decide_retry(kind, attempt, 21, limits, base, timeout_s=timeout, policy=policy)
    if decision.retry:
        assert decision.delay_s == min(base * 2 ** (attempt - 1), policy.max_backoff_s)
        assert decision.new_limits.memory_bytes is not None
        assert decision.new_limits.memory_bytes <= max(memory, policy.max_memory_bytes)
        assert decision.new_timeout_s <= max(timeout, policy.max_timeout_s)
        assert decision.new_limits.memory_bytes >= memory and decision.new_timeout_s >= timeout
    else:
        assert kind != "error"  # infrastructure errors are retried while attempts remain


def test_the_operators_default_limits_fill_what_the_spec_leaves_unset() -> None:
    from sprint_orchestrator.config import config_from_mapping
    from sprint_orchestrator.model import ResourceLimits
    from sprint_orchestrator.retry import effective_limits, operator_defaults

    config = config_from_mapping({"containers": {"default_memory": "1g", "default_cpus": "500m"}}, {})
    defaults = operator_defaults(config)
    limits, timeout = effective_limits(ResourceLimits(pids=64), {}, 60.0, defaults)
    assert (limits.memory_bytes, limits.cpus, limits.pids, timeout) == (1 << 30, 0.5, 64, 60.0)
    unset, _ = effective_limits(None, {}, 60.0, operator_defaults(config_from_mapping({}, {})))
    assert (unset.memory_bytes, unset.cpus, unset.pids) == (4 << 30, 2.0, 512)  # always limited


def test_an_infrastructure_failure_is_retried_unchanged_without_using_up_the_works_attempts() -> None:
    decision = decide_retry("infrastructure", 1, 1, LIMITS, 10, timeout_s=60)
    assert (decision.retry, decision.new_limits, decision.new_timeout_s, decision.delay_s) == (
        True,
        LIMITS,
        60,
        10,
    )
    assert decision.reason == "infrastructure: attempt 2 unchanged (infrastructure retry 1 of 5)"


def test_infrastructure_retries_back_off_on_their_own_count_and_stop_at_their_budget() -> None:
    delays = [decide_retry("infrastructure", n + 1, 3, LIMITS, 10, infra_retries=n).delay_s for n in range(5)]
    assert delays == [10, 20, 40, 80, 160]
    spent = decide_retry("infrastructure", 6, 3, LIMITS, 10, infra_retries=5)
    assert not spent.retry and "no infrastructure retries left (5 of 5 used)" in spent.reason
    assert not decide_retry("infrastructure", 1, 3, LIMITS, 10, policy=RetryPolicy(max_infra_retries=0)).retry


def test_the_integration_tests_infrastructure_budget_backs_off_and_ends_by_the_same_rule() -> None:
    policy = RetryPolicy(max_infra_retries=2, max_backoff_s=15)
    assert decide_infra_retry(0, 10, policy) == (True, 10.0, "infrastructure retry 1 of 2")
    assert decide_infra_retry(1, 10, policy) == (True, 15.0, "infrastructure retry 2 of 2")  # capped
    assert decide_infra_retry(2, 10, policy) == (False, 0.0, "no infrastructure retries left (2 of 2 used)")


def test_attempts_the_infrastructure_ended_do_not_count_against_max_attempts() -> None:
    """Attempt 3 failed for its work after two evictions: it was the work's first try of three."""
    decision = decide_retry("error", 3, 3, LIMITS, 10, infra_retries=2)
    assert decision.retry and decision.delay_s == 10
    assert not decide_retry("error", 5, 3, LIMITS, 10, infra_retries=2).retry


def test_every_backoff_is_capped_at_five_minutes() -> None:
    assert backoff_s(1, 10, 300) == 10
    assert backoff_s(5, 10, 300) == 160
    assert backoff_s(6, 10, 300) == 300
    assert decide_retry("infrastructure", 20, 3, LIMITS, 10, infra_retries=4).delay_s == 160
    assert decide_retry("timed-out", 9, 10, LIMITS, 10).delay_s == RetryPolicy().max_backoff_s == 300
