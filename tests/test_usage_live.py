"""LiveUsage follows a transcript chunk by chunk and ends exactly where `parse` does."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _usage import read
from sprint_orchestrator.errors import UsageParseError
from sprint_orchestrator.usage import LiveUsage, parse

STREAMS = [
    ("claude_stream.jsonl", "claude-stream-json"),
    ("claude_stream_killed.jsonl", "claude-stream-json"),
    ("claude_stream_two_turns.jsonl", "claude-stream-json"),
    ("codex.jsonl", "codex-json"),
    ("codex_resumed.jsonl", "codex-json"),
    ("gemini_stream.jsonl", "gemini-stream-json"),
    ("gemini_stream_models.jsonl", "gemini-stream-json"),
    ("anthropic.sse", "anthropic-sse"),
    ("anthropic_delta_input.sse", "anthropic-sse"),
    ("anthropic_cut.sse", "anthropic-sse"),
    ("openai_chat.sse", "openai-chat-sse"),
    ("openai_responses.sse", "openai-responses-sse"),
    ("gemini_api.sse", "gemini-api-sse"),
    ("gemini_api_cut.sse", "gemini-api-sse"),
    ("team.jsonl", "usage-jsonl"),
    ("claude_result.json", "claude-json"),
    ("gemini.json", "gemini-json"),
    ("gemini_api.json", "gemini-api-json"),
]


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@pytest.mark.parametrize(("name", "fmt"), STREAMS, ids=[s[0] for s in STREAMS])
@given(cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=25))
@settings(max_examples=40, deadline=None)
def test_bytes_split_anywhere_give_the_same_record_as_parse(name: str, fmt: str, cuts: list[int]) -> None:
    text = read(name)
    for mode in (fmt, "auto"):
        live = LiveUsage(mode)
        for chunk in _split(text.encode("utf-8"), cuts):
            live.feed(chunk)
        assert live.current() == parse(text, fmt)
        assert live.final() == parse(text, fmt)


def test_auto_recognizes_a_stream_from_its_first_line() -> None:
    live = LiveUsage()
    first, *_rest = read("codex.jsonl").splitlines(keepends=True)
    live.feed(first)
    assert live.format == "codex-json"
    assert live.current().partial


def test_claude_live_estimate_grows_then_the_result_replaces_it() -> None:
    lines = read("claude_stream.jsonl").splitlines(keepends=True)
    live = LiveUsage("claude-stream-json")
    seen = []
    for line in lines:
        live.feed(line)
        seen.append(live.current())
    assert seen[0].partial and seen[0].total_tokens is None  # only the init message so far
    assert seen[1].output_tokens == 8 and seen[2].output_tokens == 95  # same message id: not 103
    assert seen[4].partial and seen[4].output_tokens == 95 + 40
    assert not seen[-1].partial and seen[-1].cost_usd == Decimal("0.0231")


def test_current_never_raises_on_an_unfinished_line_but_final_does() -> None:
    live = LiveUsage("usage-jsonl")
    live.feed('{"category":"a","input_tokens":1,"output_tokens":1,"cache_read_tokens":0,')
    assert live.current().partial
    with pytest.raises(UsageParseError, match="line 1"):
        live.final()


def test_a_cut_utf8_character_is_reassembled() -> None:
    text = read("anthropic.sse")
    data = text.encode("utf-8")
    cut = data.index("✓".encode()) + 1
    live = LiveUsage("anthropic-sse")
    live.feed(data[:cut])
    live.feed(data[cut:])
    assert live.final() == parse(text, "anthropic-sse")


def test_invalid_utf8_is_bad_input() -> None:
    live = LiveUsage("usage-jsonl")
    with pytest.raises(UsageParseError, match="UTF-8"):
        live.feed(b'{"category":"\xff"}\n')


def test_an_empty_stream_has_no_usage_yet_and_is_empty_when_final() -> None:
    live = LiveUsage("anthropic-sse")
    assert live.current().partial and live.current().total_tokens is None
    with pytest.raises(UsageParseError, match="empty"):
        live.final()


def test_unknown_format_is_refused_up_front() -> None:
    with pytest.raises(UsageParseError, match="unknown format"):
        LiveUsage("claude-yaml")


counts = st.integers(min_value=0, max_value=2**70)


@st.composite
def anthropic_streams(draw: st.DrawFn) -> tuple[str, int, int, int, int]:
    start_in, cache_read, cache_write, out = draw(counts), draw(counts), draw(counts), draw(counts)
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {
        "input_tokens": start_in, "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write, "output_tokens": 1}}}  # fmt: skip
    deltas = [*draw(st.lists(st.integers(min_value=0, max_value=out), max_size=3)), out]
    events = [("message_start", start)] + [
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": d}})
        for d in deltas
    ]
    text = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    return text, start_in, cache_read, cache_write, out


@given(stream=anthropic_streams(), cuts=st.lists(st.integers(min_value=0, max_value=10**5), max_size=10))
@settings(max_examples=100, deadline=None)
def test_anthropic_stream_totals_are_exact_and_chunking_does_not_matter(
    stream: tuple[str, int, int, int, int], cuts: list[int]
) -> None:
    text, start_in, cache_read, cache_write, out = stream
    usage = parse(text, "anthropic-sse")
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_creation_tokens) == (
        start_in, cache_read, cache_write)  # fmt: skip
    assert usage.output_tokens == out  # the last cumulative delta, nothing added
    assert usage.total_tokens == start_in + cache_read + cache_write + out
    live = LiveUsage("anthropic-sse")
    for chunk in _split(text.encode(), cuts):
        live.feed(chunk)
    assert live.final() == usage


line_counts = st.one_of(st.none(), counts)
costs = st.one_of(st.none(), st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False))


@st.composite
def team_lines(draw: st.DrawFn) -> list[dict[str, object]]:
    fields = ("input_tokens", "cache_read_tokens", "cache_creation_tokens", "output_tokens")
    lines = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        line: dict[str, object] = {"category": draw(st.sampled_from(["lead_agent", "testing", "review"]))}
        line["model"] = draw(st.sampled_from(["m1", "m2"]))
        line.update({f: draw(line_counts) for f in fields})
        line["cost_usd"] = draw(costs)
        lines.append(line)
    return lines


def _dump(line: dict[str, object]) -> str:
    body = ", ".join(f'"{k}": {"null" if v is None else v}' if k != "category" and k != "model"
                     else f'"{k}": "{v}"' for k, v in line.items())  # fmt: skip
    return "{" + body + "}"


def _exact_sum(values: list[object]) -> object:
    if any(v is None for v in values):
        return None
    return sum(values[1:], start=values[0])  # type: ignore[call-overload]


@given(lines=team_lines())
@settings(max_examples=150, deadline=None)
def test_usage_jsonl_totals_are_exact_sums_of_lines_and_of_categories(lines: list[dict[str, object]]) -> None:
    usage = parse("\n".join(_dump(line) for line in lines), "usage-jsonl")
    for field in ("input_tokens", "cache_read_tokens", "cache_creation_tokens", "output_tokens", "cost_usd"):
        assert getattr(usage, field) == _exact_sum([line[field] for line in lines])
        per_category = [getattr(u, field) for u in usage.by_category.values()]
        assert getattr(usage, field) == _exact_sum(per_category)
    parts = [usage.input_tokens, usage.cache_read_tokens, usage.cache_creation_tokens, usage.output_tokens]
    assert usage.total_tokens == _exact_sum(parts)  # type: ignore[arg-type]
