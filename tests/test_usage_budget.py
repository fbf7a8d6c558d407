"""Record arithmetic, session baselines, budget verdicts, efficiency and sprint aggregation."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _usage import read
from sprint_orchestrator.usage import (
    UNKNOWN,
    ZERO,
    ModelUsage,
    TokenUsage,
    aggregate,
    budget_verdict,
    charge,
    efficiency,
    parse,
    sum_usages,
    task_limit,
)


def usage(i: int, o: int, cost: str | None = None, model: str = "m", partial: bool = False) -> TokenUsage:
    per_model = ModelUsage(i, 0, 0, o, None, None if cost is None else Decimal(cost))
    return TokenUsage(i, 0, 0, o, None, per_model.cost_usd, by_model={model: per_model}, partial=partial)


def test_adding_records_adds_fields_models_and_ors_partial() -> None:
    total = usage(10, 5, "0.1", "a") + usage(1, 2, "0.2", "b", partial=True)
    assert (total.input_tokens, total.output_tokens, total.cost_usd) == (11, 7, Decimal("0.3"))
    assert set(total.by_model) == {"a", "b"} and total.partial


def test_an_unknown_part_makes_the_sum_unknown_never_zero() -> None:
    total = usage(10, 5, "0.1") + usage(1, 2, None)
    assert total.cost_usd is None
    assert (total + UNKNOWN).total_tokens is None
    assert sum_usages([]) == ZERO and sum_usages([usage(1, 1)]).total_tokens == 2


def test_decimal_costs_add_without_float_error() -> None:
    total = sum_usages(usage(0, 0, "0.1") for _ in range(3))
    assert total.cost_usd == Decimal("0.3")


def test_charge_is_the_difference_of_cumulative_totals() -> None:
    charged = charge(usage(100, 10, "0.5"), usage(250, 30, "1.25"))
    assert (charged.input_tokens, charged.output_tokens, charged.cost_usd) == (150, 20, Decimal("0.75"))
    assert charged.by_model["m"].input_tokens == 150


def test_charge_rebaselines_when_the_counters_reset() -> None:
    assert charge(usage(100, 10), usage(40, 50)) == usage(40, 50)
    assert charge(usage(100, 10, model="a"), usage(200, 20, model="b")) == usage(200, 20, model="b")
    assert charge(None, usage(3, 4)) == usage(3, 4)


amounts = st.integers(min_value=0, max_value=2**80)


@given(i=amounts, o=amounts, di=amounts, do=amounts)
@settings(max_examples=200)
def test_charge_recovers_any_increment_exactly(i: int, o: int, di: int, do: int) -> None:
    before = usage(i, o)
    charged = charge(before, before + usage(di, do))
    assert (charged.input_tokens, charged.output_tokens) == (di, do)
    assert before + charged == before + usage(di, do)


@given(parts=st.lists(st.tuples(amounts, amounts), max_size=8))
@settings(max_examples=100)
def test_total_tokens_is_the_sum_of_its_parts(parts: list[tuple[int, int]]) -> None:
    total = sum_usages(usage(i, o) for i, o in parts)
    assert total.total_tokens == sum(i + o for i, o in parts)


def test_task_over_its_factor_of_the_estimate_is_exceeded() -> None:
    verdict = budget_verdict(1201, 1000, 1.2, 5000, 100000)
    assert verdict.exceeded and "task used 1,201 tokens" in verdict.reason and "1,200" in verdict.reason
    assert verdict.remaining_task == -1 and verdict.remaining_sprint == 95000


def test_task_exactly_at_its_limit_is_within_budget() -> None:
    verdict = budget_verdict(1100, 1000, 1.1, 1100, 2000)  # 1000 x 1.1 in floats is 1100.0000000000002
    assert not verdict.exceeded and verdict.remaining_task == 0 and verdict.reason == "within budget"


def test_sprint_over_its_budget_is_exceeded_even_when_the_task_is_within() -> None:
    verdict = budget_verdict(10, 1000, 2, 1_000_001, 1_000_000)
    assert verdict.exceeded and "sprint used 1,000,001 tokens" in verdict.reason


def test_unknown_usage_or_missing_limits_never_exceed() -> None:
    assert not budget_verdict(None, 1000, 1.5, None, 10).exceeded
    verdict = budget_verdict(10**12, None, None, 10**12, None)
    assert not verdict.exceeded and verdict.reason == "no token limit set"
    assert (verdict.remaining_task, verdict.remaining_sprint) == (None, None)


def test_task_limit_is_exact_for_every_kind_of_factor() -> None:
    assert task_limit(2**60, Fraction(3, 2)) == 3 * 2**59
    assert task_limit(10, Decimal("1.25")) == 12 and task_limit(3, 1) == 3 and task_limit(None, 2) is None


def test_efficiency_is_actual_over_estimated() -> None:
    assert efficiency(1500, 1000) == 1.5
    assert efficiency(None, 1000) is None and efficiency(10, 0) is None and efficiency(10, None) is None


def test_sprint_aggregate_sums_tasks_and_breaks_down_by_category_and_model() -> None:
    team = parse(read("team.jsonl"), "usage-jsonl")
    solo = parse(read("claude_result.json"), "claude-json")
    sprint = aggregate({"t1": team, "t2": solo})
    assert sprint.total.total_tokens == 82300 + 26532
    assert sprint.cost == Decimal("0.1717") + Decimal("0.0412375")
    assert sprint.by_category["uncategorized"].total_tokens == 26532
    assert sum(c.total_tokens or 0 for c in sprint.by_category.values()) == sprint.total.total_tokens
    assert set(sprint.by_model) == {"claude-opus-4-8", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"}
    assert sprint.by_task["t2"] is solo


def test_an_empty_sprint_spent_nothing() -> None:
    sprint = aggregate({})
    assert sprint.total.total_tokens == 0 and sprint.by_category == {} and not sprint.total.partial


@pytest.mark.parametrize("record", [ZERO, UNKNOWN, usage(1, 2, "0.5")])
def test_to_json_has_the_contract_keys_in_order(record: TokenUsage) -> None:
    assert list(record.to_json()) == [
        "input_tokens", "cache_read_tokens", "cache_creation_tokens", "output_tokens", "reasoning_tokens",
        "total_tokens", "cost_usd", "by_model", "partial",
    ]  # fmt: skip
