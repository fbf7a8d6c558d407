"""Claude Code: `-p --output-format json` (one result, or with --verbose an array of all messages)
and `--output-format stream-json --verbose` (one message per line).

The authority is the `result` message: tokens are summed over `modelUsage` (which includes
subagents and compaction), cost is `total_cost_usd`. The top-level `usage` covers the main loop
only: it is a fallback when `modelUsage` is missing, and the record is then partial. `assistant`
frames repeat one per content block with non-final counts, so they are deduplicated by message id
and give only a live, partial estimate until the result arrives. Results are cumulative per
session (several prompts in one process, `--resume`), so each is charged as a difference.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageParseError
from .budget import charge
from .fields import count, money, obj, sub_obj, text
from .record import UNKNOWN, ModelUsage, TokenUsage, from_parts, with_counts
from .stream import StreamFormat


def _model_usage(entry: dict[str, Any], where: str) -> ModelUsage:
    return ModelUsage(
        input_tokens=count(entry, "inputTokens", where),
        cache_read_tokens=count(entry, "cacheReadInputTokens", where),
        cache_creation_tokens=count(entry, "cacheCreationInputTokens", where),
        output_tokens=count(entry, "outputTokens", where),
        reasoning_tokens=count(entry, "thinkingTokens", where),
        cost_usd=money(entry, "costUSD", where),
    )


def api_usage(usage: dict[str, Any] | None, where: str) -> ModelUsage:
    """An Anthropic Messages API `usage` object (disjoint fields: input excludes the cache)."""
    return ModelUsage(
        input_tokens=count(usage, "input_tokens", where),
        cache_read_tokens=count(usage, "cache_read_input_tokens", where),
        cache_creation_tokens=count(usage, "cache_creation_input_tokens", where),
        output_tokens=count(usage, "output_tokens", where),
    )


_FRAME_FIELDS = ("input_tokens", "cache_read_tokens", "cache_creation_tokens", "output_tokens")


def _frame_usage(values: list[int | None]) -> ModelUsage:
    return with_counts(ModelUsage(), [*values, None], None)  # frames never report reasoning or cost


def _frame_max(a: ModelUsage, b: ModelUsage) -> ModelUsage:
    """Frames of one message repeat its counts, growing: keep the largest seen of each."""
    values = [
        max((v for v in (getattr(a, f), getattr(b, f)) if v is not None), default=None) for f in _FRAME_FIELDS
    ]
    return _frame_usage(values)


class _FrameEstimate:
    """The running sum of assistant frames, one per message id, per model.

    Kept as sums and counts of unknown values so that replacing a message's frame and reading the
    estimate cost O(models), not O(messages): a live reader may ask after every chunk.
    """

    def __init__(self) -> None:
        self._frames: dict[str, tuple[str | None, ModelUsage]] = {}
        self._sums: dict[str | None, list[int]] = {}
        self._unknown: dict[str | None, list[int]] = {}

    def __bool__(self) -> bool:
        return bool(self._frames)

    def put(self, key: str, model: str | None, frame: ModelUsage) -> None:
        old = self._frames.get(key)
        if old is not None:
            self._apply(*old, sign=-1)
            frame = _frame_max(old[1], frame)
        self._frames[key] = (model, frame)
        self._apply(model, frame, sign=1)

    def _apply(self, model: str | None, frame: ModelUsage, sign: int) -> None:
        sums = self._sums.setdefault(model, [0, 0, 0, 0])
        unknown = self._unknown.setdefault(model, [0, 0, 0, 0])
        for index, name in enumerate(_FRAME_FIELDS):
            value = getattr(frame, name)
            if value is None:
                unknown[index] += sign
            else:
                sums[index] += sign * value

    def result(self) -> TokenUsage:
        if not self._frames:
            return UNKNOWN
        parts = []
        for model, sums in self._sums.items():
            values = [None if u else v for v, u in zip(sums, self._unknown[model], strict=True)]
            parts.append((model, _frame_usage(values)))
        return from_parts(parts, partial=True)

    def clear(self) -> None:
        self._frames.clear()
        self._sums.clear()
        self._unknown.clear()


class ClaudeMessages:
    """Accumulates Claude Code messages, from either output format."""

    def __init__(self) -> None:
        self._charged: TokenUsage | None = None  # the sum of what each result added
        self._last: dict[str | None, TokenUsage] = {}  # last cumulative result per session id
        self._frames = _FrameEstimate()  # assistant frames since the last result
        self._init_model: str | None = None

    def add(self, record: dict[str, Any], where: str) -> None:
        kind = record.get("type")
        if kind == "system" and record.get("subtype") == "init":
            self._init_model = text(record, "model")
        elif kind == "assistant":
            self._add_frame(record, where)
        elif kind == "result":
            self._add_result(record, where)

    def result(self) -> TokenUsage:
        estimate = self._frames.result()
        if self._charged is None:
            return estimate
        if not self._frames:
            return self._charged
        return self._charged + estimate  # a later turn is still running (or was killed)

    def _add_frame(self, record: dict[str, Any], where: str) -> None:
        message = sub_obj(record, "message", where)
        usage = sub_obj(message, "usage", where) if message else None
        if message is None or usage is None:
            return
        frame = api_usage(usage, f"{where}: message.usage")
        self._frames.put(text(message, "id") or where, text(message, "model"), frame)

    def _add_result(self, record: dict[str, Any], where: str) -> None:
        current = self._result_usage(record, where)
        session = text(record, "session_id")
        charged = charge(self._last.get(session), current)
        self._last[session] = current
        self._charged = charged if self._charged is None else self._charged + charged
        self._frames.clear()

    def _result_usage(self, record: dict[str, Any], where: str) -> TokenUsage:
        cost = money(record, "total_cost_usd", where)
        models = sub_obj(record, "modelUsage", where)
        usage = sub_obj(record, "usage", where)
        fallback = api_usage(usage, f"{where}: usage")
        if models or (models is not None and not _any_tokens(fallback)):
            parts = [
                (name, _model_usage(obj(e, f"{where}: modelUsage"), f"{where}: modelUsage[{name}]"))
                for name, e in models.items()
            ]
            return from_parts(parts, cost_usd=cost)
        if usage is None:
            return TokenUsage(cost_usd=cost, partial=True)
        # main loop only (no subagents, no compaction): a lower bound
        return from_parts([(self._init_model, fallback)], cost_usd=cost, partial=True)


def _any_tokens(usage: ModelUsage) -> bool:
    return any(
        v
        for v in (
            usage.input_tokens,
            usage.cache_read_tokens,
            usage.cache_creation_tokens,
            usage.output_tokens,
        )
    )


STREAM_JSON = StreamFormat("jsonl", ClaudeMessages)


def parse_json(document: Any) -> TokenUsage:
    """`--output-format json`: one result object, or (with --verbose) an array of messages."""
    messages = document if isinstance(document, list) else [document]
    acc = ClaudeMessages()
    for index, message in enumerate(messages):
        where = f"message {index + 1}" if isinstance(document, list) else "the document"
        acc.add(obj(message, where), where)
    if isinstance(document, dict) and document.get("type") not in ("result", "assistant", "system", "user"):
        raise UsageParseError('not Claude Code output: expected a message with "type": "result"')
    return acc.result()
