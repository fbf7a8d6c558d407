"""OpenAI Chat Completions and Responses: streamed (SSE) and plain JSON responses.

OpenAI counts cached input inside the input count and reasoning inside the output count, so the
uncached input is input - cached; there are no separate cache writes (cache_creation is 0).
A chat stream reports usage only with `stream_options.include_usage`, in one final chunk; without
it, or cut off before it, the record is partial. A stream may hold several responses (keyed by id).
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageParseError
from .fields import count, obj, sub_obj, text, uncached
from .record import UNKNOWN, ModelUsage, TokenUsage, from_parts
from .stream import StreamFormat


def chat_usage(usage: dict[str, Any], where: str) -> ModelUsage:
    prompt = count(usage, "prompt_tokens", where)
    cached = count(sub_obj(usage, "prompt_tokens_details", where), "cached_tokens", where)
    details = sub_obj(usage, "completion_tokens_details", where)
    return ModelUsage(
        input_tokens=uncached(prompt, cached, where, ("prompt_tokens", "cached_tokens")),
        cache_read_tokens=cached,
        cache_creation_tokens=0,
        output_tokens=count(usage, "completion_tokens", where),
        reasoning_tokens=count(details, "reasoning_tokens", where),
    )


def responses_usage(usage: dict[str, Any], where: str) -> ModelUsage:
    total_input = count(usage, "input_tokens", where)
    cached = count(sub_obj(usage, "input_tokens_details", where), "cached_tokens", where)
    details = sub_obj(usage, "output_tokens_details", where)
    return ModelUsage(
        input_tokens=uncached(total_input, cached, where, ("input_tokens", "cached_tokens")),
        cache_read_tokens=cached,
        cache_creation_tokens=0,
        output_tokens=count(usage, "output_tokens", where),
        reasoning_tokens=count(details, "reasoning_tokens", where),
    )


class _Responses:
    """Responses seen in a stream, by id: each has a model and, once final, its usage."""

    def __init__(self) -> None:
        self._models: dict[str | None, str | None] = {}
        self._usages: dict[str | None, ModelUsage] = {}

    def see(self, key: str | None, model: str | None) -> None:
        if model is not None or key not in self._models:
            self._models[key] = model

    def finish(self, key: str | None, usage: ModelUsage) -> None:
        self._usages[key] = usage

    def result(self) -> TokenUsage:
        if not self._usages:
            return UNKNOWN  # no usage at all (chat stream without include_usage, or cut off)
        partial = any(key not in self._usages for key in self._models)
        return from_parts(((self._models[k], u) for k, u in self._usages.items()), partial=partial)


class ChatStream(_Responses):
    def add(self, record: dict[str, Any], where: str) -> None:
        key = text(record, "id")
        self.see(key, text(record, "model"))
        usage = sub_obj(record, "usage", where)
        if usage is not None:
            self.finish(key, chat_usage(usage, f"{where}: usage"))


class ResponsesStream(_Responses):
    def add(self, record: dict[str, Any], where: str) -> None:
        response = sub_obj(record, "response", where)
        if response is None:
            return  # deltas and item events carry no usage
        key = text(response, "id")
        self.see(key, text(response, "model"))
        usage = sub_obj(response, "usage", f"{where}: response")
        if usage is not None:
            self.finish(key, responses_usage(usage, f"{where}: response.usage"))


CHAT_SSE = StreamFormat("sse", ChatStream)
RESPONSES_SSE = StreamFormat("sse", ResponsesStream)


def parse_chat_json(document: Any) -> TokenUsage:
    response = obj(document, "the document")
    if _is_error_body(response):
        return UNKNOWN
    if "choices" not in response and "usage" not in response:
        raise UsageParseError('not a Chat Completions response: expected "choices" and "usage"')
    usage = sub_obj(response, "usage", "the document")
    if usage is None:
        return UNKNOWN
    return from_parts([(text(response, "model"), chat_usage(usage, "usage"))])


def parse_responses_json(document: Any) -> TokenUsage:
    response = obj(document, "the document")
    if _is_error_body(response):
        return UNKNOWN
    if response.get("object") != "response":
        raise UsageParseError('not a Responses API response: expected "object": "response"')
    usage = sub_obj(response, "usage", "the document")
    if usage is None:
        return UNKNOWN
    return from_parts([(text(response, "model"), responses_usage(usage, "usage"))])


def _is_error_body(response: dict[str, Any]) -> bool:
    """An HTTP error body (`{"error": {...}}`): a request that was refused has no usage."""
    return "error" in response and "object" not in response and "usage" not in response
