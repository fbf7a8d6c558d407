"""Helpers for the metering-proxy tests: expected usage from what a stand-in served, socket clients."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp

from _standin_anthropic import Served
from sprint_orchestrator.usage.record import ModelUsage, TokenUsage, from_parts, sum_usages

REAL_KEY = "sk-ant-REAL-secret-0123456789abcdef"  # what the proxy holds; must never reach a container
PLACEHOLDER = "sk-placeholder"
COUNT_FIELDS = ("input_tokens", "cache_read_tokens", "cache_creation_tokens", "output_tokens", "total_tokens")


def expected_usage(served: Iterable[Served]) -> TokenUsage:
    """The sum of what the stand-in served, as normalized records (the parser's convention)."""
    records = []
    for s in served:
        output = s.output_tokens if s.complete else None
        part = ModelUsage(
            s.input_tokens, s.cache_read_tokens, s.cache_creation_tokens, output, s.reasoning_tokens
        )
        records.append(from_parts([(s.model, part)], partial=not s.complete))
    return sum_usages(records)


def counts(usage: TokenUsage) -> dict[str, Any]:
    """The token counts that must agree exactly, top level and per model."""
    return {
        **{name: getattr(usage, name) for name in COUNT_FIELDS},
        "by_model": {m: {n: getattr(u, n) for n in COUNT_FIELDS} for m, u in sorted(usage.by_model.items())},
        "partial": usage.partial,
    }


def anthropic_body(stream: bool, model: str = "claude-test-1", tools: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": 64, "stream": stream,
                            "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip
    if tools:
        body["tools"] = [{"name": n, "input_schema": {"type": "object"}} for n in ("Read", "Write")]
    return body


async def post(socket: Path, path: str, body: dict[str, Any], *, key: str = PLACEHOLDER) -> tuple[int, bytes]:
    """POST as the agent would, straight to the task socket (the forwarder relays exactly this)."""
    headers = {"x-api-key": key, "Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket))) as session,
        session.post(f"http://proxy{path}", data=json.dumps(body), headers=headers) as response,
    ):
        return response.status, await response.read()


def sse_events(body: bytes) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in body.decode().splitlines() if line.startswith("event:")]
