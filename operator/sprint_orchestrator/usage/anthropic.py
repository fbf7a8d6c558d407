"""The Anthropic Messages API: streamed (SSE) and plain JSON responses.

In a stream, `message_start.message.usage` gives the input side and a placeholder output count;
each `message_delta.usage` is cumulative, so the last one's output count is the message's output
(never add message_start's). Newer APIs repeat the input side in `message_delta`: the last delta
that carries a field wins over message_start. A stream cut off before any `message_delta` has the
input side only and is partial.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import UsageParseError
from .claude import api_usage
from .fields import obj, sub_obj, text
from .record import UNKNOWN, ModelUsage, TokenUsage, from_parts
from .stream import StreamFormat

_INPUT_SIDE = ("input_tokens", "cache_read_tokens", "cache_creation_tokens")


@dataclass
class _Message:
    model: str | None
    usage: ModelUsage
    finished: bool = False  # a message_delta arrived


class AnthropicStream:
    def __init__(self) -> None:
        self._messages: list[_Message] = []

    def add(self, record: dict[str, Any], where: str) -> None:
        kind = record.get("type")
        if kind == "message_start":
            message = obj(record.get("message"), f"{where}: message")
            start = api_usage(sub_obj(message, "usage", f"{where}: message"), f"{where}: message.usage")
            self._messages.append(_Message(text(message, "model"), replace(start, output_tokens=None)))
        elif kind == "message_delta" and self._messages:
            usage = sub_obj(record, "usage", where)
            if usage is not None:
                self._add_delta(self._messages[-1], api_usage(usage, f"{where}: usage"))

    @staticmethod
    def _add_delta(message: _Message, delta: ModelUsage) -> None:
        changes = {name: getattr(delta, name) for name in _INPUT_SIDE if getattr(delta, name) is not None}
        changes["output_tokens"] = delta.output_tokens
        message.usage = replace(message.usage, **changes)
        message.finished = True

    def result(self) -> TokenUsage:
        if not self._messages:
            return UNKNOWN
        partial = not all(m.finished for m in self._messages)
        return from_parts(((m.model, m.usage) for m in self._messages), partial=partial)


SSE = StreamFormat("sse", AnthropicStream)


def parse_json(document: Any) -> TokenUsage:
    """A non-streamed response: a `message` with its final usage, or an `error` (no usage)."""
    response = obj(document, "the document")
    if response.get("type") == "error":
        return UNKNOWN
    if response.get("type") != "message":
        raise UsageParseError('not an Anthropic Messages response: expected "type": "message"')
    usage = sub_obj(response, "usage", "the document")
    if usage is None:
        return UNKNOWN
    return from_parts([(text(response, "model"), api_usage(usage, "usage"))])
