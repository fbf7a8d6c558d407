"""The Gemini API (`generateContent`, `streamGenerateContent?alt=sse`): each response's `usageMetadata`.

    usageMetadata = {promptTokenCount, cachedContentTokenCount, candidatesTokenCount,
                     thoughtsTokenCount, toolUsePromptTokenCount, totalTokenCount, ...Details}

`promptTokenCount` includes the cached part (uncached = prompt - cached); thoughts are counted apart
from the candidates (output = candidates + thoughts, reasoning = thoughts); the tool-use prompt is
more uncached input. totalTokenCount is then input + cache read + output. The API writes proto3 JSON,
which leaves zero counts out: a count missing from a usageMetadata that is there is 0, not unknown.

A stream is a series of GenerateContentResponse chunks, each of which may carry a usageMetadata;
the chunk that ends the response (a candidate's `finishReason`, or a blocked prompt's
`promptFeedback.blockReason`) carries the totals. A stream cut off before it keeps the input side of
the last usageMetadata seen and is partial (output unknown); one with no usageMetadata at all is
unknown. The model is the response's `modelVersion`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import UsageParseError
from .fields import count, obj, sub_obj, text, uncached
from .record import UNKNOWN, ModelUsage, TokenUsage, from_parts
from .stream import StreamFormat


def usage_metadata(meta: dict[str, Any], where: str) -> ModelUsage:
    """One usageMetadata in the normalized convention (absent counts are proto3 zeros)."""

    def get(name: str) -> int:
        return count(meta, name, where) or 0

    prompt, cached = get("promptTokenCount"), get("cachedContentTokenCount")
    plain = uncached(prompt, cached, where, ("promptTokenCount", "cachedContentTokenCount"))
    thoughts = get("thoughtsTokenCount")
    return ModelUsage(
        input_tokens=(plain or 0) + get("toolUsePromptTokenCount"),
        cache_read_tokens=cached,
        cache_creation_tokens=0,
        output_tokens=get("candidatesTokenCount") + thoughts,
        reasoning_tokens=thoughts,
    )


def _ends_response(record: dict[str, Any], where: str) -> bool:
    feedback = sub_obj(record, "promptFeedback", where)
    if feedback is not None and feedback.get("blockReason"):
        return True
    candidates = record.get("candidates")
    if candidates is None:
        return False
    if not isinstance(candidates, list):
        raise UsageParseError(f"{where}: candidates must be an array")
    return any(obj(c, f"{where}: candidates[{i}]").get("finishReason") for i, c in enumerate(candidates))


def _is_error_body(record: dict[str, Any]) -> bool:
    return "error" in record and "candidates" not in record and "usageMetadata" not in record


class GeminiApiStream:
    """Follows the chunks of one streamed response."""

    def __init__(self) -> None:
        self._model: str | None = None
        self._usage: ModelUsage | None = None
        self._ended = False
        self._final = False  # the usage was read at or after the chunk that ended the response

    def add(self, record: dict[str, Any], where: str) -> None:
        if _is_error_body(record):
            return  # an error event in the stream carries no usage
        self._model = text(record, "modelVersion") or self._model
        self._ended = self._ended or _ends_response(record, where)
        meta = sub_obj(record, "usageMetadata", where)
        if meta is not None:
            self._usage = usage_metadata(meta, f"{where}: usageMetadata")
            self._final = self._ended

    def result(self) -> TokenUsage:
        if self._usage is None:
            return UNKNOWN
        if self._final:
            return from_parts([(self._model, self._usage)])
        cut = replace(self._usage, output_tokens=None, reasoning_tokens=None)
        return from_parts([(self._model, cut)], partial=True)


SSE = StreamFormat("sse", GeminiApiStream)


def parse_json(document: Any) -> TokenUsage:
    """A non-streamed response: its usageMetadata, or an `error` body (no usage)."""
    response = obj(document, "the document")
    if _is_error_body(response):
        return UNKNOWN
    if "candidates" not in response and "usageMetadata" not in response and "promptFeedback" not in response:
        raise UsageParseError('not a Gemini API response: expected "candidates" and "usageMetadata"')
    meta = sub_obj(response, "usageMetadata", "the document")
    if meta is None:
        return UNKNOWN
    return from_parts([(text(response, "modelVersion"), usage_metadata(meta, "usageMetadata"))])
