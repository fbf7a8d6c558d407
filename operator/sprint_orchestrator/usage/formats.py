"""The table of formats: name -> parser of a whole transcript."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UsageParseError
from . import anthropic, claude, codex, gemini, gemini_api, jsonl, openai
from .fields import load_json
from .record import TokenUsage
from .stream import StreamFormat, read_whole

# streamed formats: read line by line (or event by event), so LiveUsage can follow them
STREAMS: dict[str, StreamFormat] = {
    "claude-stream-json": claude.STREAM_JSON,
    "codex-json": codex.JSON_EVENTS,
    "gemini-stream-json": gemini.STREAM_JSON,
    "anthropic-sse": anthropic.SSE,
    "openai-chat-sse": openai.CHAT_SSE,
    "openai-responses-sse": openai.RESPONSES_SSE,
    "gemini-api-sse": gemini_api.SSE,
    "usage-jsonl": jsonl.USAGE_JSONL,
}

# one JSON document each
DOCUMENTS: dict[str, Callable[[Any], TokenUsage]] = {
    "claude-json": claude.parse_json,
    "gemini-json": gemini.parse_json,
    "anthropic-json": anthropic.parse_json,
    "openai-chat-json": openai.parse_chat_json,
    "openai-responses-json": openai.parse_responses_json,
    "gemini-api-json": gemini_api.parse_json,
}

_ORDER = (
    "claude-json",
    "claude-stream-json",
    "codex-json",
    "gemini-json",
    "gemini-stream-json",
    "anthropic-sse",
    "openai-chat-sse",
    "usage-jsonl",
    "anthropic-json",
    "openai-chat-json",
    "openai-responses-sse",
    "openai-responses-json",
    "gemini-api-sse",
    "gemini-api-json",
)


def require_text(text: str) -> None:
    if not text.strip():
        raise UsageParseError("empty: there is no usage to read")


def _stream_parser(spec: StreamFormat) -> Callable[[str], TokenUsage]:
    def parse_stream(text: str) -> TokenUsage:
        require_text(text)
        return read_whole(text, spec)

    return parse_stream


def _document_parser(parse_document: Callable[[Any], TokenUsage]) -> Callable[[str], TokenUsage]:
    def parse_text(text: str) -> TokenUsage:
        require_text(text)
        return parse_document(load_json(text, "the document"))

    return parse_text


def _parser(name: str) -> Callable[[str], TokenUsage]:
    return _stream_parser(STREAMS[name]) if name in STREAMS else _document_parser(DOCUMENTS[name])


USAGE_PARSERS: dict[str, Callable[[str], TokenUsage]] = {name: _parser(name) for name in _ORDER}
FORMATS: tuple[str, ...] = ("auto", *USAGE_PARSERS)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageParseError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
