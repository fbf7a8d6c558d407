"""A local stand-in for the Gemini API (generativelanguage, v1beta), which tests cannot reach.

It speaks the documented wire format: `POST /v1beta/models/{model}:generateContent` (one JSON
GenerateContentResponse), `:streamGenerateContent?alt=sse` (`data: {chunk}` events, CRLF-framed like
the real API) and `:countTokens`; errors are google.rpc.Status JSON. Usage is `usageMetadata` in
proto3 JSON (zero counts left out); in a stream the first chunk carries an interim usageMetadata
(prompt only) and the chunk with `finishReason` the totals. Every response's usage is recorded.

It scripts a short agent session for any client that declares the Gemini CLI's file tools:
1. call read_file on TASK.md; 2. call write_file for OUTPUT.md with the first line read; 3. finish
with a text answer. Any other request (the CLI's utility calls) gets a short answer: text, or, when a
JSON response is asked for, the smallest instance of the requested schema.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from _standin_anthropic import Served, StandIn

PATH = re.compile(r"/(v1|v1beta|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)")
OUTPUT_FILE = "/workspace/OUTPUT.md"
TASK_FILE = "/workspace/TASK.md"


@dataclass
class GeminiStandIn(StandIn):
    """Serves the Gemini API; `paths` records each request's method, path and query."""

    cut_after_first_chunk: bool = False
    paths: list[str] = field(default_factory=list)

    def key_of(self, request: web.Request) -> str:
        return request.headers.get("x-goog-api-key", "")

    def busy(self, status: int) -> web.Response:
        kind = "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE"
        body = {"error": {"code": status, "message": "busy", "status": kind}}
        return web.json_response(body, status=status, headers={"retry-after": self.faults.retry_after})

    def next_usage(self, model: str) -> Served:
        n = next(self._ids)
        thoughts = 0 if n % 2 else 16 + 2 * n  # odd turns think nothing: the count is left out
        return Served(model, 500 + 13 * n, 30 + 4 * n + thoughts, 128 * n, 0, reasoning_tokens=thoughts)

    async def answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        self.paths.append(f"{request.method} {request.path_qs}")
        match = PATH.fullmatch(request.path)
        if match is None:
            return _error(404, "NOT_FOUND", f"no such method: {request.path}")
        model, method = match.group(2), match.group(3)
        if method == "countTokens":
            return web.json_response({"totalTokens": 42})
        parts = _next_turn(body)
        usage = self.next_usage(model)
        if method == "generateContent":
            self.served.append(usage)
            return web.json_response(_response(usage, parts, "STOP", _wire_usage(usage)))
        if request.query.get("alt") != "sse":
            return _error(400, "INVALID_ARGUMENT", "this stand-in streams only with alt=sse")
        return await self._stream(request, usage, parts)

    async def _stream(
        self, request: web.Request, usage: Served, parts: list[dict[str, Any]]
    ) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        self.started.append(usage)
        prompt = usage.input_tokens + usage.cache_read_tokens
        interim = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        if usage.cache_read_tokens:
            interim["cachedContentTokenCount"] = usage.cache_read_tokens
        first, rest = _split(parts)
        await out.write(_event(_response(usage, first, None, interim)))
        if self.cut_after_first_chunk:
            self.served.append(Served(usage.model, usage.input_tokens, 0, usage.cache_read_tokens, 0,
                                      complete=False))  # fmt: skip
            assert request.transport is not None
            request.transport.close()
            return out
        await asyncio.sleep(self.faults.block_delay_s)
        await out.write(_event(_response(usage, rest, "STOP", _wire_usage(usage))))
        self.served.append(usage)
        await out.write_eof()
        return out


def _event(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk)}\r\n\r\n".encode()


def _error(code: int, status: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "status": status}}, status=code)


def _wire_usage(usage: Served) -> dict[str, Any]:
    """usageMetadata as proto3 JSON: counts that are zero are left out."""
    prompt = usage.input_tokens + usage.cache_read_tokens
    thoughts = usage.reasoning_tokens or 0
    candidates = usage.output_tokens - thoughts
    wire = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "cachedContentTokenCount": usage.cache_read_tokens,
        "thoughtsTokenCount": thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    return {k: v for k, v in wire.items() if v}


def _response(
    usage: Served, parts: list[dict[str, Any]], finish: str | None, meta: dict[str, Any]
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": meta, "modelVersion": usage.model,
            "responseId": f"standin-{usage.input_tokens}"}  # fmt: skip


def _split(parts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A stream's two chunks: text is cut in half; a function call follows a short text."""
    if len(parts) == 1 and "text" in parts[0]:
        text = parts[0]["text"]
        half = len(text) // 2
        return [{"text": text[:half]}], [{"text": text[half:]}]
    return [{"text": "Working on it."}], parts


def _next_turn(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The scripted session: read_file TASK.md, write_file OUTPUT.md, finish."""
    declared = {
        f.get("name") for tool in body.get("tools") or [] for f in tool.get("functionDeclarations") or []
    }
    if not {"read_file", "write_file"} <= declared:
        return [{"text": _utility_answer(body)}]
    responses = [p["functionResponse"] for c in body.get("contents") or [] for p in c.get("parts") or []
                 if isinstance(p, dict) and "functionResponse" in p]  # fmt: skip
    if not responses:
        return [{"functionCall": {"name": "read_file", "args": {"file_path": TASK_FILE}}}]
    if len(responses) == 1:
        args = {"file_path": OUTPUT_FILE, "content": f"done: {_first_line(responses[0])}\n"}
        return [{"functionCall": {"name": "write_file", "args": args}}]
    return [{"text": "Finished: OUTPUT.md written."}]


def _first_line(response: dict[str, Any]) -> str:
    payload = response.get("response")
    text = json.dumps(payload) if not isinstance(payload, dict) else str(payload.get("output", payload))
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "(empty)"


def _utility_answer(body: dict[str, Any]) -> str:
    config = body.get("generationConfig") or {}
    if config.get("responseMimeType") != "application/json":
        return "OK."
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
    return json.dumps(_instance(schema))


def _instance(schema: dict[str, Any]) -> Any:
    """The smallest value of a JSON schema (Gemini's OpenAPI subset): what a utility call parses."""
    kind = str(schema.get("type", "object")).lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _instance(props[name]) for name in schema.get("required", props)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return "ok"
