"""Following a transcript while it is written: feed chunks, read the usage so far.

A metering proxy feeds the bytes it relays; the operator feeds a task's log as it grows. Chunks
may split anywhere, even inside a UTF-8 character: the result after the last chunk equals
`parse` of the whole text. Until the final usage arrives the record is partial (for Claude Code,
an estimate from its assistant frames).
"""

from __future__ import annotations

import codecs

from ..errors import UsageParseError
from .detect import detect_format
from .formats import STREAMS, USAGE_PARSERS, check_format
from .record import UNKNOWN, TokenUsage
from .stream import StreamReader


class LiveUsage:
    def __init__(self, fmt: str = "auto") -> None:
        check_format(fmt)
        self._fmt: str | None = None if fmt == "auto" else fmt
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""  # documents, and streams until their format is known
        self._reader: StreamReader | None = None
        self._seen_text = False
        self._start_reader()

    @property
    def format(self) -> str | None:
        """The format being followed; None while `auto` has not recognized it yet."""
        return self._fmt

    def feed(self, chunk: str | bytes) -> None:
        """Take the next piece of the transcript (text, or bytes of UTF-8)."""
        text = self._decode(chunk) if isinstance(chunk, bytes) else chunk
        self._seen_text = self._seen_text or bool(text.strip())
        if self._reader is not None:
            self._reader.feed(text)
            return
        self._buffer += text
        if self._fmt is None and "\n" in text:
            self._detect()

    def current(self) -> TokenUsage:
        """The usage so far: never raises on an unfinished transcript, partial until final."""
        if self._reader is not None:
            return self._reader.current()
        try:
            return self._parse_buffer()
        except UsageParseError:
            return UNKNOWN

    def final(self) -> TokenUsage:
        """The transcript is complete: its usage exactly as `parse` reads it (and its errors)."""
        self.feed(self._flush())
        if not self._seen_text:
            raise UsageParseError("empty: there is no usage to read")
        if self._reader is not None:
            return self._reader.final()
        return self._parse_buffer()

    def _parse_buffer(self) -> TokenUsage:
        fmt = self._fmt or detect_format(self._buffer)
        return USAGE_PARSERS[fmt](self._buffer)

    def _decode(self, chunk: bytes) -> str:
        try:
            return self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise UsageParseError(f"the transcript is not UTF-8 text ({exc.reason})") from exc

    def _flush(self) -> str:
        try:
            return self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise UsageParseError("the transcript ends inside a UTF-8 character") from exc

    def _detect(self) -> None:
        try:
            fmt = detect_format(self._buffer)
        except UsageParseError:
            return  # not enough yet
        if fmt not in STREAMS:
            # A single JSON document so far (e.g. one `result` line) may still grow into a stream
            # (claude-stream-json): keep buffering and detect again on the whole text.
            return
        self._fmt = fmt
        self._start_reader()

    def _start_reader(self) -> None:
        if self._fmt in STREAMS:
            self._reader = StreamReader(STREAMS[self._fmt])
            self._reader.feed(self._buffer)
            self._buffer = ""
