"""Streamed formats: a framer (JSON lines or SSE) feeding a per-format accumulator.

`parse` and `LiveUsage` share this driver, so a transcript read whole and the same bytes fed in
any chunking give the same record.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..errors import UsageParseError
from .fields import load_json, obj
from .framing import Line, LineFramer, SseEvent, SseFramer
from .record import TokenUsage


class Accumulator(Protocol):
    """Folds the decoded records of one transcript into a usage record."""

    def add(self, record: dict[str, Any], where: str) -> None:
        """Take one decoded line or event; `where` names it for error messages."""

    def result(self) -> TokenUsage:
        """The usage so far (partial while the final usage has not arrived)."""


@dataclass(frozen=True)
class StreamFormat:
    framing: Literal["jsonl", "sse"]
    accumulator: Callable[[], Accumulator]
    strict_tail: bool = False  # a written file (usage-jsonl): a broken last line is an error, not a cut


class StreamReader:
    """Feeds chunks of one transcript through its framer into its accumulator."""

    def __init__(self, spec: StreamFormat) -> None:
        self._spec = spec
        self._acc = spec.accumulator()
        self._lines = LineFramer()
        self._events = SseFramer()

    def feed(self, chunk: str) -> None:
        if self._spec.framing == "jsonl":
            for line in self._lines.push(chunk):
                self._add_line(self._acc, line)
        else:
            for event in self._events.push(chunk):
                self._add_event(self._acc, event)

    def current(self) -> TokenUsage:
        """The usage so far; an unfinished last line or event counts only if it already decodes."""
        return self._finish(strict=False)

    def final(self) -> TokenUsage:
        """The usage of the whole transcript, read as a file (what `parse` returns)."""
        return self._finish(strict=self._spec.strict_tail)

    def _finish(self, strict: bool) -> TokenUsage:
        tail = self._tail()
        if tail is None:
            return self._acc.result()
        where, text = tail
        try:
            record = obj(load_json(text, where), where)
        except UsageParseError:
            if strict:
                raise
            return self._acc.result()  # a stream cut off mid-record: the cut record is lost
        acc = copy.deepcopy(self._acc)
        acc.add(record, where)
        return acc.result()

    def _tail(self) -> tuple[str, str] | None:
        """(where, JSON text) of the unfinished last line or event, if it holds anything."""
        if self._spec.framing == "jsonl":
            line = self._lines.tail()
            return None if line is None or not line.text.strip() else (f"line {line.number}", line.text)
        event = self._events.tail()
        if event is None or event.data.strip() == "[DONE]":
            return None
        return f"event at line {event.line}", event.data

    @staticmethod
    def _add_line(acc: Accumulator, line: Line) -> None:
        if line.text.strip():
            where = f"line {line.number}"
            acc.add(obj(load_json(line.text, where), where), where)

    @staticmethod
    def _add_event(acc: Accumulator, event: SseEvent) -> None:
        if event.data.strip() == "[DONE]":
            return
        where = f"event at line {event.line}"
        acc.add(obj(load_json(event.data, where), where), where)


def read_whole(text: str, spec: StreamFormat) -> TokenUsage:
    reader = StreamReader(spec)
    reader.feed(text)
    return reader.final()
