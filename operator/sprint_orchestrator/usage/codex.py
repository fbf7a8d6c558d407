"""Codex CLI: `codex exec --json`, one event per line.

`turn.completed.usage` is the thread's cumulative total, with cached input inside input and
reasoning inside output; no model and no cost are named. Each total is charged as the difference
from the last one of its thread (`codex exec resume` continues a thread). A `turn.failed`, or a
turn that never completes, leaves the record partial (with the last total seen, if any).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .budget import charge
from .fields import count, sub_obj, text, uncached
from .record import UNKNOWN, TokenUsage
from .stream import StreamFormat


def _turn_usage(usage: dict[str, Any], where: str) -> TokenUsage:
    total_input = count(usage, "input_tokens", where)
    cached = count(usage, "cached_input_tokens", where)
    return TokenUsage(
        input_tokens=uncached(total_input, cached, where, ("input_tokens", "cached_input_tokens")),
        cache_read_tokens=cached,
        cache_creation_tokens=0,
        output_tokens=count(usage, "output_tokens", where),
        reasoning_tokens=count(usage, "reasoning_output_tokens", where),
    )


class CodexEvents:
    def __init__(self) -> None:
        self._thread: str | None = None
        self._last: dict[str | None, TokenUsage] = {}
        self._charged: TokenUsage | None = None
        self._open = False  # a turn started or failed after the last completed one

    def add(self, record: dict[str, Any], where: str) -> None:
        kind = record.get("type")
        if kind == "thread.started":
            self._thread = text(record, "thread_id")
        elif kind in ("turn.started", "turn.failed"):
            self._open = True
        elif kind == "turn.completed":
            self._complete(sub_obj(record, "usage", where), where)

    def _complete(self, usage: dict[str, Any] | None, where: str) -> None:
        if usage is None:
            self._open = True
            return
        current = _turn_usage(usage, f"{where}: usage")
        charged = charge(self._last.get(self._thread), current)
        self._last[self._thread] = current
        self._charged = charged if self._charged is None else self._charged + charged
        self._open = False

    def result(self) -> TokenUsage:
        if self._charged is None:
            return UNKNOWN
        if self._open:
            return replace(self._charged, partial=True)
        return self._charged


JSON_EVENTS = StreamFormat("jsonl", CodexEvents)
