"""`auto`: tell a transcript's format from its content.

Server-sent events are told by their first JSON payload, a single JSON document by its keys, and
JSON lines by the first line whose `type` (or, for usage-jsonl, whose fields) only one format uses.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageParseError
from .fields import try_json
from .framing import LineFramer, SseFramer

_CLAUDE_TYPES = ("system", "assistant", "user", "stream_event")
_GEMINI_TYPES = ("init", "tool_use", "tool_result")
_ANTHROPIC_EVENTS = (
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "ping",
)


def _classify_line(record: dict[str, Any]) -> str | None:
    """The format a JSON-lines record belongs to, None when it could be several."""
    kind = record.get("type")
    if not isinstance(kind, str):
        has_counts = "category" in record or "input_tokens" in record or "output_tokens" in record
        return "usage-jsonl" if has_counts else None
    if kind.startswith(("thread.", "turn.", "item.")):
        return "codex-json"
    if kind in _CLAUDE_TYPES:
        return "claude-stream-json"
    if kind in _GEMINI_TYPES or (kind in ("result", "message") and ("stats" in record or "role" in record)):
        return "gemini-stream-json"
    if kind == "result":
        return "claude-stream-json"
    return None


def _classify_document(document: Any) -> str | None:
    if isinstance(document, list):
        claude = any(isinstance(m, dict) and m.get("type") in (*_CLAUDE_TYPES, "result") for m in document)
        return "claude-json" if claude else None
    if not isinstance(document, dict):
        return None
    kind, shape = document.get("type"), document.get("object")
    if shape in ("chat.completion", "response"):
        return "openai-chat-json" if shape == "chat.completion" else "openai-responses-json"
    if kind == "error" or (kind == "message" and isinstance(document.get("content"), list)):
        return "anthropic-json"
    if kind is None and ("candidates" in document or "usageMetadata" in document):
        return "gemini-api-json"
    if kind is None and ("stats" in document or "response" in document or "error" in document):
        return "gemini-json"
    if kind == "result" and "stats" not in document:
        return "claude-json"
    return _classify_line(document)


def _classify_event(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind in _ANTHROPIC_EVENTS:
        return "anthropic-sse"
    if isinstance(kind, str) and kind.startswith("response."):
        return "openai-responses-sse"
    if data.get("object") == "chat.completion.chunk" or "choices" in data:
        return "openai-chat-sse"
    if kind is None and ("candidates" in data or "usageMetadata" in data):
        return "gemini-api-sse"
    return None


def _is_sse(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0]
    return first.startswith(("event:", "data:", ":"))


def _detect_sse(text: str) -> str | None:
    framer = SseFramer()
    events = framer.push(text)
    tail = framer.tail()
    for event in [*events, *([tail] if tail else [])]:
        found = _classify_event(try_json(event.data))
        if found:
            return found
    return None


def _detect_lines(text: str) -> str | None:
    framer = LineFramer()
    lines = framer.push(text)
    tail = framer.tail()
    for line in [*lines, *([tail] if tail else [])]:
        record = try_json(line.text) if line.text.strip() else None
        found = _classify_line(record) if isinstance(record, dict) else None
        if found:
            return found
    return None


def detect_format(text: str) -> str:
    """The format name of a transcript; UsageParseError when it is empty or not recognized."""
    if not text.strip():
        raise UsageParseError("empty: there is no usage to read")
    if _is_sse(text):
        found = _detect_sse(text)
    else:
        document = try_json(text)
        found = _classify_document(document) if document is not None else _detect_lines(text)
    if found is None:
        raise UsageParseError("cannot tell the format of this transcript: pass --format explicitly")
    return found
