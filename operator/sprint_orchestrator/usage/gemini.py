"""Gemini CLI: `--output-format json` (one object) and `--output-format stream-json` (events).

Gemini counts cached input inside the prompt (uncached = prompt - cached) and reports thoughts
apart from candidates (output = candidates + thoughts). Every model is summed: utility models such
as the router are real spend. In stream-json only `result.stats` has usage; thoughts are there
only as total - input_tokens - output_tokens, so output is total - input_tokens and reasoning is
unknown. A json run that died has no stats at all; an error `result` still carries them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import UsageParseError
from .budget import charge
from .fields import count, obj, sub_obj, text, uncached
from .record import UNKNOWN, ModelUsage, TokenUsage, add_counts, from_parts
from .stream import StreamFormat


def _json_model(tokens: dict[str, Any] | None, where: str) -> ModelUsage:
    cached = count(tokens, "cached", where)
    prompt = count(tokens, "prompt", where)
    plain = uncached(prompt, cached, where, ("prompt", "cached")) if prompt is not None else None
    thoughts = count(tokens, "thoughts", where)
    return ModelUsage(
        input_tokens=plain if plain is not None else count(tokens, "input", where),
        cache_read_tokens=cached,
        cache_creation_tokens=0,
        output_tokens=add_counts(count(tokens, "candidates", where), thoughts),
        reasoning_tokens=thoughts,
    )


def parse_json(document: Any) -> TokenUsage:
    result = obj(document, "the document")
    stats = sub_obj(result, "stats", "the document")
    if stats is None:
        if "response" in result or "error" in result:
            return UNKNOWN  # a fatal error before any stats
        raise UsageParseError('not Gemini CLI json output: expected "stats" or "error"')
    models = sub_obj(stats, "models", "stats") or {}
    parts = []
    for name, entry in models.items():
        where = f"stats.models[{name}]"
        parts.append((name, _json_model(sub_obj(obj(entry, where), "tokens", where), f"{where}.tokens")))
    return from_parts(parts)


def _stream_stats(stats: dict[str, Any], where: str) -> ModelUsage:
    total = count(stats, "total_tokens", where)
    with_cache = count(stats, "input_tokens", where)
    cached = count(stats, "cached", where)
    plain = count(stats, "input", where)
    if plain is None:
        plain = uncached(with_cache, cached, where, ("input_tokens", "cached"))
    output = uncached(total, with_cache, where, ("total_tokens", "input_tokens"))
    return ModelUsage(plain, cached, 0, output, None)


def _stream_model(entry: dict[str, Any], where: str) -> ModelUsage:
    tokens = sub_obj(entry, "tokens", where)
    if tokens is None:
        return _stream_stats(entry, where)
    usage = _json_model(tokens, f"{where}.tokens")
    return ModelUsage(usage.input_tokens, usage.cache_read_tokens, 0, usage.output_tokens, None)


class GeminiEvents:
    def __init__(self) -> None:
        self._model: str | None = None
        self._session: str | None = None
        self._last: dict[str | None, TokenUsage] = {}
        self._charged: TokenUsage | None = None

    def add(self, record: dict[str, Any], where: str) -> None:
        kind = record.get("type")
        if kind == "init":
            self._model = text(record, "model")
            self._session = text(record, "session_id")
        elif kind == "result":
            stats = sub_obj(record, "stats", where)
            if stats is not None:
                self._add_stats(stats, f"{where}: stats")

    def _add_stats(self, stats: dict[str, Any], where: str) -> None:
        current = self._stats_usage(stats, where)
        charged = charge(self._last.get(self._session), current)
        self._last[self._session] = current
        self._charged = charged if self._charged is None else self._charged + charged

    def _stats_usage(self, stats: dict[str, Any], where: str) -> TokenUsage:
        models = sub_obj(stats, "models", where) or {}
        parts = []
        for name, entry in models.items():
            at = f"{where}.models[{name}]"
            parts.append((name, _stream_model(obj(entry, at), at)))
        if "total_tokens" not in stats and parts:
            return from_parts(parts)
        top = _stream_stats(stats, where)
        by_model = from_parts(parts).by_model if parts else ({self._model: top} if self._model else {})
        return replace(from_parts([(None, top)]), by_model=by_model)

    def result(self) -> TokenUsage:
        return UNKNOWN if self._charged is None else self._charged


STREAM_JSON = StreamFormat("jsonl", GeminiEvents)
