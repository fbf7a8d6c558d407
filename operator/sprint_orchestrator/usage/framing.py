"""Incremental framing of streamed transcripts: JSON lines and server-sent events.

Both framers accept text in arbitrary chunks and hand back only complete records, each with the
line number it started on. `tail()` reads what is left after the last complete record without
consuming it, so a live reader can peek at a stream that may still grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    text: str


class LineFramer:
    """Splits text into lines on "\\n" (a trailing "\\r" is dropped), whatever the chunking."""

    def __init__(self) -> None:
        self._buffer = ""
        self._number = 0

    def push(self, chunk: str) -> list[Line]:
        self._buffer += chunk
        if "\n" not in chunk:  # keeps byte-by-byte feeding linear
            return []
        *complete, self._buffer = self._buffer.split("\n")
        lines = []
        for raw in complete:
            self._number += 1
            lines.append(Line(self._number, raw.removesuffix("\r")))
        return lines

    def tail(self) -> Line | None:
        """The unterminated last line, if any text is waiting."""
        if not self._buffer:
            return None
        return Line(self._number + 1, self._buffer.removesuffix("\r"))


@dataclass(frozen=True)
class SseEvent:
    line: int  # where the event started
    event: str
    data: str


@dataclass
class _Pending:
    line: int = 0
    event: str = ""
    data: list[str] = field(default_factory=list)

    def take(self, line: Line) -> None:
        if line.text.startswith(":"):
            return  # a comment
        name, _, value = line.text.partition(":")
        value = value.removeprefix(" ")
        if name not in ("event", "data"):
            return  # id, retry and unknown fields carry no usage
        if not self.line:
            self.line = line.number
        if name == "event":
            self.event = value
        else:
            self.data.append(value)

    def event_or_none(self) -> SseEvent | None:
        if not self.data:
            return None
        return SseEvent(self.line, self.event, "\n".join(self.data))


class SseFramer:
    """Server-sent events as the HTML standard frames them: fields until a blank line."""

    def __init__(self) -> None:
        self._lines = LineFramer()
        self._pending = _Pending()

    def push(self, chunk: str) -> list[SseEvent]:
        events = []
        for line in self._lines.push(chunk):
            if line.text:
                self._pending.take(line)
                continue
            event = self._pending.event_or_none()
            self._pending = _Pending()
            if event is not None:
                events.append(event)
        return events

    def tail(self) -> SseEvent | None:
        """The last event when the stream ended without its closing blank line."""
        pending = _Pending(self._pending.line, self._pending.event, list(self._pending.data))
        last = self._lines.tail()
        if last is not None and last.text:
            pending.take(last)
        return pending.event_or_none()
