"""Cost of token accounting, against the floor of merely decoding the same JSON, in the same run.

Three transcripts are generated from the documented shapes: a long Claude Code stream-json run
(repeated assistant frames), a long Anthropic SSE response, and a team's usage-jsonl. For each:
the baseline `json.loads` of every line/event payload, `parse(text, fmt)`, and `LiveUsage` fed in
1 KiB chunks with `current()` read after every chunk (what the metering proxy does). The last line
is one JSON object of figures (MB/s, and the ratio to the baseline).

    .venv/bin/python bench/usage.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from sprint_orchestrator.usage import LiveUsage, parse  # noqa: E402


def claude_stream(messages: int) -> str:
    lines = [json.dumps({"type": "system", "subtype": "init", "session_id": "s", "model": "claude-x"})]
    for n in range(messages):
        for block in range(3):  # one frame per content block, sharing the message id
            usage = {
                "input_tokens": 3,
                "cache_creation_input_tokens": 200,
                "cache_read_input_tokens": 9000,
                "output_tokens": 10 * (block + 1),
            }
            content = [{"type": "text", "text": "x" * 200}]
            message = {"id": f"msg_{n}", "model": "claude-x", "content": content, "usage": usage}
            lines.append(json.dumps({"type": "assistant", "message": message, "session_id": "s"}))
    result = {"type": "result", "session_id": "s", "total_cost_usd": 1.5, "modelUsage": {"claude-x": {
        "inputTokens": 3, "outputTokens": 30, "cacheReadInputTokens": 9000, "cacheCreationInputTokens": 200,
        "costUSD": 1.5}}}  # fmt: skip
    return "\n".join([*lines, json.dumps(result)]) + "\n"


def anthropic_sse(deltas: int) -> str:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "model": "claude-x",
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
                "output_tokens": 1,
            },
        },
    }
    events = [("message_start", start)]
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "tok " * 4}}
    events += [("content_block_delta", delta)] * deltas
    events.append(
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": deltas}})
    )
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


def team_jsonl(lines: int) -> str:
    line = {"category": "implementation", "model": "m", "input_tokens": 1200, "output_tokens": 300,
            "cache_read_tokens": 5000, "cache_creation_tokens": 0, "cost_usd": 0.0081}  # fmt: skip
    return "\n".join(json.dumps(line) for _ in range(lines)) + "\n"


def baseline(text: str) -> None:
    for line in text.splitlines():
        payload = line.removeprefix("data: ")
        if payload.startswith("{"):
            json.loads(payload)


def live(fmt: str) -> Callable[[str], None]:
    def run(text: str) -> None:
        reader = LiveUsage(fmt)
        for start in range(0, len(text), 1024):
            reader.feed(text[start : start + 1024])
            reader.current()
        reader.final()

    return run


def best_seconds(fn: Callable[[str], object], text: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    figures: dict[str, float] = {}
    cases = [
        ("claude_stream", "claude-stream-json", claude_stream(3000)),
        ("anthropic_sse", "anthropic-sse", anthropic_sse(20000)),
        ("usage_jsonl", "usage-jsonl", team_jsonl(20000)),
    ]
    for name, fmt, text in cases:
        megabytes = len(text.encode()) / 1e6
        base = best_seconds(baseline, text, args.repeat)
        whole = best_seconds(lambda t, f=fmt: parse(t, f), text, args.repeat)  # type: ignore[misc]
        chunked = best_seconds(live(fmt), text, args.repeat)
        figures[f"{name}_mb"] = round(megabytes, 2)
        figures[f"{name}_baseline_mb_s"] = round(megabytes / base, 1)
        figures[f"{name}_parse_mb_s"] = round(megabytes / whole, 1)
        figures[f"{name}_live_1k_mb_s"] = round(megabytes / chunked, 1)
        figures[f"{name}_parse_vs_baseline"] = round(whole / base, 2)
        figures[f"{name}_live_vs_baseline"] = round(chunked / base, 2)
        rates = (
            f"baseline {megabytes / base:.1f}, parse {megabytes / whole:.1f}, live {megabytes / chunked:.1f}"
        )
        print(f"{name}: {megabytes:.2f} MB; MB/s: {rates}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
