"""Each format's transcripts give the record shared/token-usage.md specifies, traps included."""

from __future__ import annotations

from typing import Any

import pytest

from _usage import UNKNOWN, counts, read, record
from sprint_orchestrator.errors import InvalidInput, UsageParseError
from sprint_orchestrator.usage import FORMATS, USAGE_PARSERS, detect_format, parse

SONNET = "claude-sonnet-4-5-20250929"

CASES: list[tuple[str, str, dict[str, Any]]] = [
    # Claude Code json: modelUsage is the authority, total_cost_usd the cost
    ("claude_result.json", "claude-json", record(
        counts(12, 20480, 5210, 830, cost="0.0412375"),
        {SONNET: counts(12, 20480, 5210, 830, cost="0.0412375")})),
    # subagent model included; the main-loop `usage` (smaller) is ignored; "[1m]" kept in the id
    ("claude_multi_model.json", "claude-json", record(
        counts(4030, 150000, 12000, 3000, cost="0.507"),
        {"claude-opus-4-8[1m]": counts(30, 150000, 12000, 2400, cost="0.5"),
         "claude-haiku-4-5-20251001": counts(4000, 0, 0, 600, cost="0.007")})),
    # a budget stop zeroes `usage` but modelUsage is populated: not partial
    ("claude_budget_stop.json", "claude-json", record(
        counts(8, 64000, 9000, 1200, cost="0.1042"), {SONNET: counts(8, 64000, 9000, 1200, cost="0.1042")})),
    # no modelUsage: the main-loop usage is only a lower bound
    ("claude_no_model_usage.json", "claude-json", record(
        counts(10, 200, 100, 50, cost="0.01"), partial=True)),
    # --verbose array: the result wins over the repeated assistant frames
    ("claude_verbose_array.json", "claude-json", record(
        counts(8, 4000, 4200, 420, cost="0.02"), {SONNET: counts(8, 4000, 4200, 420, cost="0.02")})),
    ("claude_stream.jsonl", "claude-stream-json", record(
        counts(4, 22000, 2300, 135, cost="0.0231"), {SONNET: counts(4, 22000, 2300, 135, cost="0.0231")})),
    # killed: frames deduplicated by message id (largest count per id), subagent included, partial
    ("claude_stream_killed.jsonl", "claude-stream-json", record(
        counts(504, 22000, 2300, 195),
        {SONNET: counts(4, 22000, 2300, 135), "claude-haiku-4-5-20251001": counts(500, 0, 0, 60)},
        partial=True)),
    # running totals of one session: the last result, not the sum of both
    ("claude_stream_two_turns.jsonl", "claude-stream-json", record(
        counts(25, 3000, 700, 260, cost="0.025"), {SONNET: counts(25, 3000, 700, 260, cost="0.025")})),
    # a result lower than the running total: counters were reset, both spans count
    ("claude_stream_reset.jsonl", "claude-stream-json", record(
        counts(140, 0, 0, 110, cost="0.12"), {SONNET: counts(140, 0, 0, 110, cost="0.12")})),
    # Codex: cached is inside input, reasoning inside output; no model, no cost
    ("codex.jsonl", "codex-json", record(counts(315, 24448, 0, 122, 64))),
    ("codex_failed.jsonl", "codex-json", record(UNKNOWN, partial=True)),
    ("codex_failed_after_total.jsonl", "codex-json", record(counts(800, 200, 0, 50), partial=True)),
    # cumulative thread totals across `codex exec resume`: charged once
    ("codex_resumed.jsonl", "codex-json", record(counts(1300, 1200, 0, 130, 40))),
    # Gemini json: every model summed, thoughts added to output
    ("gemini.json", "gemini-json", record(
        counts(9500, 16000, 0, 2170, 1230),
        {"gemini-2.5-pro": counts(8000, 16000, 0, 2100, 1200),
         "gemini-2.5-flash-lite": counts(1500, 0, 0, 70, 30)})),
    ("gemini_error.json", "gemini-json", record(UNKNOWN, partial=True)),
    # Gemini stream-json: output = total - input_tokens (thoughts inside), reasoning unknown
    ("gemini_stream.jsonl", "gemini-stream-json", record(
        counts(3000, 9000, 0, 1500), {"gemini-2.5-pro": counts(3000, 9000, 0, 1500)})),
    ("gemini_stream_error.jsonl", "gemini-stream-json", record(
        counts(4200, 0, 0, 800), {"gemini-2.5-flash": counts(4200, 0, 0, 800)})),
    ("gemini_stream_killed.jsonl", "gemini-stream-json", record(UNKNOWN, partial=True)),
    ("gemini_stream_models.jsonl", "gemini-stream-json", record(
        counts(3000, 9000, 0, 1560),
        {"gemini-2.5-pro": counts(2500, 9000, 0, 1500), "gemini-2.5-flash-lite": counts(500, 0, 0, 60)})),
    # Anthropic SSE: message_delta's output is cumulative; message_start's 1 is not added
    ("anthropic.sse", "anthropic-sse", record(
        counts(472, 11000, 0, 15), {SONNET: counts(472, 11000, 0, 15)})),
    ("anthropic_delta_input.sse", "anthropic-sse", record(
        counts(480, 11000, 20, 320), {"claude-opus-4-8": counts(480, 11000, 20, 320)})),
    ("anthropic_cut.sse", "anthropic-sse", record(
        counts(472, 11000, 0, None), {SONNET: counts(472, 11000, 0, None)}, partial=True)),
    ("anthropic.json", "anthropic-json", record(
        counts(2095, 0, 2051, 503), {"claude-haiku-4-5-20251001": counts(2095, 0, 2051, 503)})),
    # OpenAI: cached inside prompt, reasoning inside completion
    ("openai_chat.sse", "openai-chat-sse", record(
        counts(86, 1920, 0, 300, 192), {"gpt-5-mini-2025-08-07": counts(86, 1920, 0, 300, 192)})),
    ("openai_chat_no_usage.sse", "openai-chat-sse", record(UNKNOWN, partial=True)),
    ("openai_chat.json", "openai-chat-json", record(
        counts(19, 0, 0, 10, 0), {"gpt-4.1-2025-04-14": counts(19, 0, 0, 10, 0)})),
    ("openai_responses.sse", "openai-responses-sse", record(
        counts(904, 4096, 0, 900, 640), {"gpt-5-2025-08-07": counts(904, 4096, 0, 900, 640)})),
    ("openai_responses.json", "openai-responses-json", record(
        counts(36, 0, 0, 87, 0), {"gpt-5-2025-08-07": counts(36, 0, 0, 87, 0)})),
    # Gemini API: cached inside prompt, thoughts beside candidates (added to output), the tool-use prompt
    # is input; the chunk with finishReason holds the totals; proto3 JSON leaves zero counts out
    ("gemini_api.sse", "gemini-api-sse", record(
        counts(3808, 8192, 0, 1003, 946), {"gemini-2.5-pro": counts(3808, 8192, 0, 1003, 946)})),
    ("gemini_api_cut.sse", "gemini-api-sse", record(
        counts(3808, 8192, 0, None), {"gemini-2.5-pro": counts(3808, 8192, 0, None)}, partial=True)),
    ("gemini_api.json", "gemini-api-json", record(
        counts(1584, 0, 0, 310, 0), {"gemini-2.5-flash": counts(1584, 0, 0, 310, 0)})),
    ("gemini_api_blocked.json", "gemini-api-json", record(
        counts(9, 0, 0, 0, 0), {"gemini-2.5-flash": counts(9, 0, 0, 0, 0)})),
    ("team.jsonl", "usage-jsonl", record(
        counts(5600, 65000, 7800, 3900, cost="0.1717"),
        {"claude-opus-4-8": counts(1200, 5000, 800, 300, cost="0.0412"),
         "claude-sonnet-4-5": counts(4400, 60000, 7000, 3600, cost="0.1305")},
        by_category={
            "lead_agent": counts(1200, 5000, 800, 300, cost="0.0412"),
            "implementation": counts(3500, 48000, 6000, 2900, cost="0.1044"),
            "testing": counts(900, 12000, 1000, 700, cost="0.0261"),
        })),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fmt", "expected"), CASES, ids=[c[0] for c in CASES])
def test_transcript_gives_the_specified_record(name: str, fmt: str, expected: dict[str, Any]) -> None:
    assert parse(read(name), fmt).to_json() == expected


@pytest.mark.parametrize(("name", "fmt"), [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES])
def test_auto_detects_the_format_from_the_content(name: str, fmt: str) -> None:
    text = read(name)
    assert detect_format(text) == fmt
    assert parse(text) == parse(text, fmt)


def test_every_contract_format_has_a_parser_and_transcripts() -> None:
    contract = {"claude-json", "claude-stream-json", "codex-json", "gemini-json", "gemini-stream-json",
                "anthropic-sse", "openai-chat-sse", "usage-jsonl"}  # fmt: skip
    proxy = {
        "anthropic-json",
        "openai-chat-json",
        "openai-responses-sse",
        "openai-responses-json",
        "gemini-api-sse",
        "gemini-api-json",
    }
    assert set(USAGE_PARSERS) == contract | proxy
    assert FORMATS[0] == "auto"
    assert {fmt for _, fmt, _ in CASES} == contract | proxy


def test_claude_stream_json_and_verbose_json_array_agree() -> None:
    lines = read("claude_stream.jsonl")
    as_array = "[" + ",".join(line for line in lines.splitlines() if line) + "]"
    assert parse(as_array, "claude-json") == parse(lines, "claude-stream-json")


def test_summing_claude_assistant_frames_would_be_wrong() -> None:
    # the trap this parser avoids: msg_A appears twice and its first frame has a non-final count
    usage = parse(read("claude_stream_killed.jsonl"), "claude-stream-json")
    assert usage.output_tokens == 95 + 40 + 60
    assert usage.cost_usd is None


def test_claude_frames_after_the_last_result_make_it_partial() -> None:
    frame = read("claude_stream_killed.jsonl").splitlines()[1]
    usage = parse(read("claude_stream.jsonl") + frame + "\n", "claude-stream-json")
    assert usage.partial
    assert usage.output_tokens == 135 + 8  # the result plus the running estimate of the next turn


def test_claude_thinking_tokens_are_the_reasoning_when_reported() -> None:
    text = read("claude_result.json").replace('"webSearchRequests":0,', '"thinkingTokens":300,', 1)
    assert parse(text, "claude-json").reasoning_tokens == 300


def test_openai_chat_without_cached_details_leaves_input_unknown() -> None:
    text = '{"object":"chat.completion","model":"m","choices":[],'
    text += '"usage":{"prompt_tokens":10,"completion_tokens":2}}'
    usage = parse(text, "openai-chat-json")
    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (None, None, 2)
    assert usage.total_tokens is None
    assert not usage.partial


def test_an_api_error_body_has_no_usage_and_is_partial() -> None:
    for text, fmt in (
        ('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "anthropic-json"),
        ('{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}',
         "openai-chat-json"),
    ):  # fmt: skip
        usage = parse(text, fmt)
        assert usage.partial and usage.total_tokens is None and usage.by_model == {}


def test_a_stream_cut_mid_line_keeps_what_arrived_and_loses_the_cut_record() -> None:
    text = read("codex.jsonl")
    cut = text[: text.index('"reasoning_output_tokens"')]
    usage = parse(cut, "codex-json")
    assert usage.partial and usage.total_tokens is None


def test_counts_beyond_float_precision_stay_exact() -> None:
    big = 2**60 + 1
    line = f'{{"category":"review","input_tokens":{big},"output_tokens":{big},"cache_read_tokens":0,'
    text = line + '"cache_creation_tokens":0,"cost_usd":0.1}\n' + line + '"cache_creation_tokens":0}\n'
    usage = parse(text, "usage-jsonl")
    assert usage.total_tokens == 4 * big
    assert usage.cost_usd is None  # one line has no cost: the sum is unknown, never a guess


def test_integral_exponent_counts_are_accepted_exactly() -> None:
    text = (
        '{"type":"turn.completed","usage":{"input_tokens":1.2e3,"cached_input_tokens":0,"output_tokens":5}}'
    )
    assert parse(text, "codex-json").input_tokens == 1200


@pytest.mark.parametrize(
    ("text", "fmt", "needle"),
    [
        ("", "auto", "empty"),
        ("  \n\n", "usage-jsonl", "empty"),
        ("", "claude-json", "empty"),
        ('{"category":"a"}\nnot json\n{"category":"b"}\n', "usage-jsonl", "line 2"),
        ('{"category":"a"}\n\n{"category": \n', "usage-jsonl", "line 3"),
        ('{"category":"a"}\n{"category": ', "usage-jsonl", "line 2"),
        ('{"type":"system"}\n{oops}\n{"type":"result"}\n', "claude-stream-json", "line 2"),
        ('{"category":"a","input_tokens":-5}', "usage-jsonl", "input_tokens"),
        ('{"category":"a","output_tokens":12.5}', "usage-jsonl", "output_tokens"),
        ('{"category":"a","output_tokens":"12"}', "usage-jsonl", "output_tokens"),
        ('{"category":"a","output_tokens":true}', "usage-jsonl", "output_tokens"),
        ('{"category":"a","cost_usd":"free"}', "usage-jsonl", "cost_usd"),
        ('{"category":"a","cost_usd":NaN}', "usage-jsonl", "line 1"),
        ("[1, 2]\n", "usage-jsonl", "expected a JSON object"),
        ('{"category": 7}', "usage-jsonl", "category"),
        ('{"hello": "world"}', "auto", "--format"),
        ('{"hello": "world"}', "claude-json", "Claude Code"),
        ("not json at all", "gemini-json", "not valid JSON"),
        ('{"type":"completion"}', "anthropic-json", "Anthropic Messages"),
        ('{"type":"result","modelUsage":{"m":{"inputTokens":-1}}}', "claude-json", "modelUsage[m]"),
        (
            '{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":9}}',
            "codex-json",
            "exceeds",
        ),
        ("{}", "no-such-format", "unknown format"),
        ('{"hello": "world"}', "gemini-api-json", "Gemini API"),
        ('{"usageMetadata":{"promptTokenCount":"12"}}', "gemini-api-json", "promptTokenCount"),
        (
            '{"usageMetadata":{"promptTokenCount":5,"cachedContentTokenCount":9}}',
            "gemini-api-json",
            "exceeds",
        ),
        ('data: {"candidates":{"index":0}}\n\n', "gemini-api-sse", "candidates must be an array"),
    ],
)
def test_bad_input_raises_one_line_naming_the_problem(text: str, fmt: str, needle: str) -> None:
    with pytest.raises(UsageParseError) as caught:
        parse(text, fmt)
    message = str(caught.value)
    assert needle in message
    assert "\n" not in message
    assert isinstance(caught.value, InvalidInput)


def test_a_gemini_api_error_answers_with_no_usage_and_a_stream_with_none_is_unknown() -> None:
    error = (
        '{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}'
    )
    assert parse(error, "gemini-api-json") == parse('data: {"candidates": []}\n\n', "gemini-api-sse")
    assert parse(error, "gemini-api-json").to_json() == record(UNKNOWN, partial=True)
    midway = read("gemini_api_cut.sse") + "data: " + error + "\r\n\r\n"  # an error event ends the stream
    assert parse(midway, "gemini-api-sse") == parse(read("gemini_api_cut.sse"), "gemini-api-sse")
