"""`usage-jsonl`: our own format for task teams that run several agents.

One object per line: `{"category": "implementation", "model": "...", "input_tokens": 1200,
"output_tokens": 300, "cache_read_tokens": 0, "cache_creation_tokens": 0, "cost_usd": 0.0081}`.
Totals are sums over lines; `by_category` feeds the PRD's `token_breakdown`. The fields use our
normalized (disjoint) convention. A line without a category counts as "uncategorized"; a line may
say `"partial": true` when its agent ended without final usage.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageParseError
from .budget import UNCATEGORIZED
from .fields import count, money, text
from .record import UNKNOWN, ModelUsage, TokenUsage, from_parts
from .stream import StreamFormat


def _line_usage(record: dict[str, Any], where: str) -> ModelUsage:
    return ModelUsage(
        input_tokens=count(record, "input_tokens", where),
        cache_read_tokens=count(record, "cache_read_tokens", where),
        cache_creation_tokens=count(record, "cache_creation_tokens", where),
        output_tokens=count(record, "output_tokens", where),
        reasoning_tokens=None,  # not part of the format
        cost_usd=money(record, "cost_usd", where),
    )


def _category(record: dict[str, Any], where: str) -> str:
    value = record.get("category", UNCATEGORIZED)
    if not isinstance(value, str) or not value:
        raise UsageParseError(f"{where}: category must be a non-empty string, got {value!r}")
    return value


class UsageLines:
    def __init__(self) -> None:
        self._total: TokenUsage | None = None  # kept as a running sum: reading it is O(models)

    def add(self, record: dict[str, Any], where: str) -> None:
        partial = record.get("partial", False)
        if not isinstance(partial, bool):
            raise UsageParseError(f"{where}: partial must be true or false, got {partial!r}")
        line = _line_usage(record, where)
        category = _category(record, where)
        added = from_parts([(text(record, "model"), line)], categories=[(category, line)], partial=partial)
        self._total = added if self._total is None else self._total + added

    def result(self) -> TokenUsage:
        return UNKNOWN if self._total is None else self._total


USAGE_JSONL = StreamFormat("jsonl", UsageLines, strict_tail=True)
