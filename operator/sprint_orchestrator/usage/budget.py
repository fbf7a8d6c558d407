"""Pure accounting decisions on usage records: session baselines, budgets, efficiency, sprint totals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

from .record import (
    Count,
    ModelUsage,
    Money,
    TokenUsage,
    merge_breakdowns,
    sub_money,
    sum_usages,
    with_counts,
)

_C = TypeVar("_C", ModelUsage, TokenUsage)

UNCATEGORIZED = "uncategorized"


def charge(previous_total: TokenUsage | None, current: TokenUsage) -> TokenUsage:
    """What a session spent since `previous_total`, both being the session's cumulative totals.

    Agents that resume a session report totals that include the earlier runs: charge only the
    difference. A total lower than the previous one means the counters were reset (a new process
    that does not carry totals forward): then all of `current` is new spend.
    Example: previous input 100, current input 250 -> charged 150; current input 40 -> charged 40.
    """
    if previous_total is None or _was_reset(previous_total, current):
        return current
    base = TokenUsage(
        by_model=_breakdown_difference(current.by_model, previous_total.by_model),
        by_category=_breakdown_difference(current.by_category, previous_total.by_category),
        partial=current.partial,
    )
    return _difference(current, previous_total, base)


def _difference(a: ModelUsage | TokenUsage, b: ModelUsage | TokenUsage, base: _C) -> _C:
    counts = (_sub(x, y) for x, y in zip(a.values(), b.values(), strict=True))
    return with_counts(base, counts, sub_money(a.cost_usd, b.cost_usd))


def _sub(a: Count, b: Count) -> Count:
    return None if a is None or b is None else a - b


def _breakdown_difference(
    current: Mapping[str, ModelUsage], previous: Mapping[str, ModelUsage]
) -> dict[str, ModelUsage]:
    return {
        name: _difference(usage, previous[name], ModelUsage()) if name in previous else usage
        for name, usage in current.items()
    }


def _decreased(previous: ModelUsage | TokenUsage, current: ModelUsage | TokenUsage) -> bool:
    pairs: list[tuple[Count | Money, Count | Money]] = list(
        zip(previous.values(), current.values(), strict=True)
    )
    pairs.append((previous.cost_usd, current.cost_usd))
    return any(p is not None and c is not None and c < p for p, c in pairs)


def _was_reset(previous: TokenUsage, current: TokenUsage) -> bool:
    if _decreased(previous, current):
        return True
    for kind in ("by_model", "by_category"):
        before, now = getattr(previous, kind), getattr(current, kind)
        if any(name not in now or _decreased(usage, now[name]) for name, usage in before.items()):
            return True
    return False


@dataclass(frozen=True)
class BudgetVerdict:
    exceeded: bool
    reason: str
    remaining_task: int | None  # negative when over; None: no task limit, or usage unknown
    remaining_sprint: int | None  # None: no sprint budget, or usage unknown


def task_limit(task_estimated: int | None, factor: float | Decimal | Fraction | int | None) -> int | None:
    """estimate x factor, rounded down, computed exactly (1000 x 1.1 is 1100, not 1100.0000000000002)."""
    if task_estimated is None or factor is None:
        return None
    exact = Fraction(factor) if isinstance(factor, int | Fraction | Decimal) else Fraction(str(factor))
    return int(task_estimated * exact)


def budget_verdict(
    task_used: int | None,
    task_estimated: int | None,
    factor: float | Decimal | Fraction | int | None,
    sprint_used: int | None,
    sprint_budget: int | None,
) -> BudgetVerdict:
    """Whether a task must stop: over `factor` x its estimate, or the sprint over its budget.

    Unknown usage (None) never exceeds anything; a missing estimate or budget means no limit.
    """
    limit = task_limit(task_estimated, factor)
    remaining_task = _remaining(limit, task_used)
    remaining_sprint = _remaining(sprint_budget, sprint_used)
    if remaining_task is not None and remaining_task < 0:
        reason = (
            f"task used {task_used:,} tokens, over its limit of {limit:,} "
            f"({task_estimated:,} estimated x {factor})"
        )
        return BudgetVerdict(True, reason, remaining_task, remaining_sprint)
    if remaining_sprint is not None and remaining_sprint < 0:
        reason = f"sprint used {sprint_used:,} tokens, over its budget of {sprint_budget:,}"
        return BudgetVerdict(True, reason, remaining_task, remaining_sprint)
    return BudgetVerdict(False, _within_reason(limit, sprint_budget), remaining_task, remaining_sprint)


def _remaining(limit: int | None, used: int | None) -> int | None:
    return None if limit is None or used is None else limit - used


def _within_reason(limit: int | None, sprint_budget: int | None) -> str:
    if limit is None and sprint_budget is None:
        return "no token limit set"
    return "within budget"


def efficiency(actual: int | None, estimated: int | None) -> float | None:
    """The PRD's efficiency ratio actual / estimated; None when either is unknown or the estimate is 0."""
    if actual is None or estimated is None or estimated <= 0:
        return None
    return float(Fraction(actual, estimated))


@dataclass(frozen=True)
class SprintUsage:
    total: TokenUsage
    by_category: dict[str, ModelUsage] = field(default_factory=dict)
    by_model: dict[str, ModelUsage] = field(default_factory=dict)
    cost: Money = None
    by_task: dict[str, TokenUsage] = field(default_factory=dict)


def aggregate(task_usages: Mapping[str, TokenUsage]) -> SprintUsage:
    """Sprint totals from per-task records (task id -> usage).

    A task without a category breakdown counts whole under "uncategorized", so the categories
    always add up to the total.
    """
    total = sum_usages(task_usages.values())
    by_category: dict[str, ModelUsage] = {}
    for usage in task_usages.values():
        parts = usage.by_category or {UNCATEGORIZED: usage.counts()}
        by_category = merge_breakdowns(by_category, parts)
    return SprintUsage(total, by_category, dict(total.by_model), total.cost_usd, dict(task_usages))
