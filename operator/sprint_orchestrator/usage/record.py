"""The normalized token-usage record: one shape for every agent CLI and model API.

Counts are Python ints (exact at any size) and costs are Decimals (exact as the source wrote them);
neither ever goes through a float. A count the source did not report is None, never 0, and None
propagates through sums: a total is only known when all its parts are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from typing import Any, TypeVar

TOKEN_FIELDS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "output_tokens",
    "reasoning_tokens",
)
_TOTAL_PARTS = TOKEN_FIELDS[:4]

Count = int | None
Money = Decimal | None


def add_counts(a: Count, b: Count) -> Count:
    return None if a is None or b is None else a + b


def add_money(a: Money, b: Money) -> Money:
    if a is None or b is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 1000  # wide enough that adding exact decimals never rounds
        return a + b


def sub_money(a: Money, b: Money) -> Money:
    return None if b is None else add_money(a, -b)


@dataclass(frozen=True)
class _Counts:
    input_tokens: Count = None
    cache_read_tokens: Count = None
    cache_creation_tokens: Count = None
    output_tokens: Count = None
    reasoning_tokens: Count = None
    cost_usd: Money = None

    @property
    def total_tokens(self) -> Count:
        """input + cache_read + cache_creation + output; None when any part is None."""
        total: Count = 0
        for name in _TOTAL_PARTS:
            total = add_counts(total, getattr(self, name))
        return total

    def values(self) -> tuple[Count, ...]:
        """The five token counts, in TOKEN_FIELDS order."""
        return tuple(getattr(self, name) for name in TOKEN_FIELDS)

    def counts(self) -> ModelUsage:
        """The counts and cost without the breakdowns."""
        return with_counts(ModelUsage(), self.values(), self.cost_usd)

    def _counts_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in TOKEN_FIELDS}
        out["total_tokens"] = self.total_tokens
        out["cost_usd"] = self.cost_usd
        return out


@dataclass(frozen=True)
class ModelUsage(_Counts):
    """Usage of one model (or one category of agent): the six token fields and the cost."""

    def __add__(self, other: ModelUsage) -> ModelUsage:
        return _combine(self, other, ModelUsage())

    def to_json(self) -> dict[str, Any]:
        return self._counts_json()


@dataclass(frozen=True)
class TokenUsage(_Counts):
    """The normalized record of one run (or of a sum of runs).

    `partial` is true when the final usage is missing (killed run, cut-off stream, failed turn):
    the counts are then a lower bound or None.
    """

    by_model: dict[str, ModelUsage] = field(default_factory=dict)
    by_category: dict[str, ModelUsage] = field(default_factory=dict)
    partial: bool = False

    def __add__(self, other: TokenUsage) -> TokenUsage:
        merged = TokenUsage(
            by_model=merge_breakdowns(self.by_model, other.by_model),
            by_category=merge_breakdowns(self.by_category, other.by_category),
            partial=self.partial or other.partial,
        )
        return _combine(self, other, merged)

    def to_json(self) -> dict[str, Any]:
        """The `sprintctl usage` shape; costs stay Decimals (use `dumps` for exact JSON text)."""
        out = self._counts_json()
        out["by_model"] = {name: usage.to_json() for name, usage in self.by_model.items()}
        if self.by_category:
            out["by_category"] = {name: usage.to_json() for name, usage in self.by_category.items()}
        out["partial"] = self.partial
        return out


_C = TypeVar("_C", bound=_Counts)


def with_counts(base: _C, counts: Iterable[Count], cost_usd: Money) -> _C:
    """`base` with its five counts (in TOKEN_FIELDS order) and its cost replaced."""
    changes: dict[str, Any] = dict(zip(TOKEN_FIELDS, counts, strict=True))
    return replace(base, cost_usd=cost_usd, **changes)


def _combine(a: _Counts, b: _Counts, base: _C) -> _C:
    counts = (add_counts(x, y) for x, y in zip(a.values(), b.values(), strict=True))
    return with_counts(base, counts, add_money(a.cost_usd, b.cost_usd))


def merge_breakdowns(a: Mapping[str, ModelUsage], b: Mapping[str, ModelUsage]) -> dict[str, ModelUsage]:
    """Add two per-model (or per-category) maps; a key on one side only is kept as it is."""
    merged = dict(a)
    for name, usage in b.items():
        merged[name] = merged[name] + usage if name in merged else usage
    return merged


ZERO = TokenUsage(0, 0, 0, 0, 0, cost_usd=Decimal(0))
UNKNOWN = TokenUsage(partial=True)


def sum_usages(usages: Iterable[TokenUsage]) -> TokenUsage:
    """The sum of several records (ZERO for none); unknown parts make the sum unknown."""
    total = ZERO
    for usage in usages:
        total = total + usage
    return total


def from_parts(
    parts: Iterable[tuple[str | None, ModelUsage]],
    *,
    cost_usd: Money | None = None,
    partial: bool = False,
    categories: Iterable[tuple[str, ModelUsage]] = (),
) -> TokenUsage:
    """Build a record from (model or None, usage) parts; the top level is their sum.

    With `cost_usd` given it replaces the summed cost (a source's own total is the authority).
    """
    top: ModelUsage | None = None
    by_model: dict[str, ModelUsage] = {}
    for model, usage in parts:
        top = usage if top is None else top + usage
        if model is not None:
            by_model = merge_breakdowns(by_model, {model: usage})
    if top is None:  # the source reported usage for no model at all: nothing was spent
        top = ModelUsage(0, 0, 0, 0)
    by_category: dict[str, ModelUsage] = {}
    for category, usage in categories:
        by_category = merge_breakdowns(by_category, {category: usage})
    base = TokenUsage(by_model=by_model, by_category=by_category, partial=partial)
    return with_counts(base, top.values(), top.cost_usd if cost_usd is None else cost_usd)


def dumps(value: Any) -> str:
    """JSON text in which Decimals are written exactly (json.dumps would need floats)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)
