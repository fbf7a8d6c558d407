"""Local stand-ins for the model APIs we cannot reach: Anthropic Messages and OpenAI Chat Completions.

They speak the documented wire formats (JSON and streamed SSE) and record, per response, exactly the
usage they served, so tests can compare the proxy's metering token for token.

The Anthropic stand-in scripts a short agent session for any client that offers tools (Claude Code):
1. ask to Read /workspace/TASK.md; 2. Write /workspace/OUTPUT.md with the first line of TASK.md that the
Read returned; 3. finish with a text answer. A request without tools gets a short text answer.
Faults can be injected: the first N requests answered 429/529 with `retry-after`, or a stream cut off
right after `message_start`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_LINE_NUMBER = re.compile(r"^\s*\d+[\t\u2192]")
OUTPUT_FILE = "/workspace/OUTPUT.md"
TASK_FILE = "/workspace/TASK.md"


@dataclass(frozen=True)
class Served:
    """The usage one response carried, in the normalized convention (input excludes cache)."""

    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int | None = None
    complete: bool = True  # False: the stream was cut before its final usage

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_creation_tokens


@dataclass
class Faults:
    busy_first: int = 0  # answer the first N requests with `busy_status`
    busy_status: int = 429
    retry_after: str = "0"
    cut_stream: bool = False  # cut every stream after message_start
    delay_s: float = 0.0  # hold each response this long (to observe concurrency)
    block_delay_s: float = 0.0  # pause before each content block of a stream


@dataclass
class StandIn:
    """Common server plumbing: a real aiohttp server on 127.0.0.1 with an ephemeral port."""

    faults: Faults = field(default_factory=Faults)
    served: list[Served] = field(default_factory=list)  # responses delivered whole (or cut by us)
    started: list[Served] = field(default_factory=list)  # every response begun, with its final usage
    seen_keys: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    busy_answers: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""
    host: str = "127.0.0.1"  # where it listens (a node-bridge address for an operator in a Pod)
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("POST", "/{path:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen_keys.append(self.key_of(request))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.busy_answers < self.faults.busy_first:
                self.busy_answers += 1
                return self.busy(self.faults.busy_status)
            await asyncio.sleep(self.faults.delay_s)
            body = await request.json()
            self.requests.append(body)
            return await self.answer(request, body)
        finally:
            self.in_flight -= 1

    def key_of(self, request: web.Request) -> str:
        """The credential the request carried (the proxy must have put the real key in)."""
        return request.headers.get("x-api-key") or request.headers.get("Authorization", "")

    def next_usage(self, model: str) -> Served:
        n = next(self._ids)
        return Served(model, 100 + 7 * n, 20 + 3 * n, 200 * n, 50 + n)

    def busy(self, status: int) -> web.Response:
        raise NotImplementedError

    async def answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        raise NotImplementedError


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class AnthropicStandIn(StandIn):
    """POST /v1/messages (JSON and `"stream": true`) and /v1/messages/count_tokens."""

    def busy(self, status: int) -> web.Response:
        kind = "rate_limit_error" if status == 429 else "overloaded_error"
        body = {"type": "error", "error": {"type": kind, "message": "busy"}}
        return web.json_response(body, status=status, headers={"retry-after": self.faults.retry_after})

    async def answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if request.path.endswith("/count_tokens"):
            return web.json_response({"input_tokens": 42})
        content, stop = _next_turn(body)
        usage = self.next_usage(str(body.get("model", "claude-test")))
        if body.get("stream"):
            return await self._stream(request, usage, content, stop)
        self.served.append(usage)
        return web.json_response(_message(usage, content, stop))

    async def _stream(
        self, request: web.Request, usage: Served, content: list[dict[str, Any]], stop: str
    ) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await out.prepare(request)
        self.started.append(usage)
        start = _message(usage, [], None)
        start["usage"]["output_tokens"] = 1  # the API's placeholder: must never be added to the final count
        await out.write(_sse("message_start", {"type": "message_start", "message": start}))
        if self.faults.cut_stream:
            self.served.append(Served(usage.model, usage.input_tokens, 0, usage.cache_read_tokens,
                                      usage.cache_creation_tokens, complete=False))  # fmt: skip
            assert request.transport is not None
            request.transport.close()
            return out
        for index, block in enumerate(content):
            await asyncio.sleep(self.faults.block_delay_s)
            await out.write(b"".join(_block_events(index, block)))
        await asyncio.sleep(self.faults.block_delay_s)
        delta = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                 "usage": _wire_usage(usage)}  # fmt: skip
        await out.write(_sse("message_delta", delta) + _sse("message_stop", {"type": "message_stop"}))
        self.served.append(usage)
        await out.write_eof()
        return out


def _wire_usage(usage: Served) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


def _message(usage: Served, content: list[dict[str, Any]], stop: str | None) -> dict[str, Any]:
    return {
        "id": f"msg_standin_{usage.input_tokens}",
        "type": "message",
        "role": "assistant",
        "model": usage.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _wire_usage(usage),
    }


def _block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    if block["type"] == "text":
        start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    return [
        _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
        _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
        _sse("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def _next_turn(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The scripted session: Read TASK.md, Write OUTPUT.md, finish."""
    tool_names = {t.get("name") for t in body.get("tools", [])}
    if not {"Read", "Write"} <= tool_names:
        return [{"type": "text", "text": "OK."}], "end_turn"
    results = [b for m in body.get("messages", []) if m.get("role") == "user"
               for b in (m["content"] if isinstance(m.get("content"), list) else [])
               if b.get("type") == "tool_result"]  # fmt: skip
    if not results:
        return [_tool("Read", {"file_path": TASK_FILE})], "tool_use"
    if len(results) == 1:
        line = _first_task_line(results[0])
        return [_tool("Write", {"file_path": OUTPUT_FILE, "content": f"done: {line}\n"})], "tool_use"
    return [{"type": "text", "text": "Finished: OUTPUT.md written."}], "end_turn"


def _tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_standin_{name.lower()}", "name": name, "input": arguments}


def _first_task_line(result: dict[str, Any]) -> str:
    content = result.get("content")
    text = content if isinstance(content, str) else " ".join(c.get("text", "") for c in content or [])
    for line in text.splitlines():
        line = _LINE_NUMBER.sub("", line, count=1).strip()  # Read numbers lines: "     1→text", "1\ttext"
        if line:
            return line
    return "(empty)"


@dataclass
class OpenAIStandIn(StandIn):
    """POST /v1/chat/completions, JSON and streamed (usage only with stream_options.include_usage), and
    POST /v1/responses streamed (Codex): one assistant message, usage in `response.completed`."""

    def busy(self, status: int) -> web.Response:
        body = {
            "error": {"message": "busy", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
        }
        return web.json_response(body, status=status, headers={"retry-after": self.faults.retry_after})

    def next_usage(self, model: str) -> Served:
        n = next(self._ids)
        return Served(model, 300 + 11 * n, 40 + 5 * n, 64 * n, 0, reasoning_tokens=8 + n)

    async def answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        usage = self.next_usage(str(body.get("model", "gpt-test")))
        if request.path.endswith("/responses"):
            return await self._responses(request, usage)
        wire = {
            "prompt_tokens": usage.input_tokens + usage.cache_read_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        }
        base = {"id": "chatcmpl-standin", "created": 1, "model": usage.model}
        if not body.get("stream"):
            self.served.append(usage)
            choice = {"index": 0, "message": {"role": "assistant", "content": "OK."}, "finish_reason": "stop"}
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": wire}
            )
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        chunk = {**base, "object": "chat.completion.chunk"}
        delta = {"index": 0, "delta": {"role": "assistant", "content": "OK."}, "finish_reason": "stop"}
        await out.write(f"data: {json.dumps({**chunk, 'choices': [delta]})}\n\n".encode())
        if body.get("stream_options", {}).get("include_usage"):
            await out.write(f"data: {json.dumps({**chunk, 'choices': [], 'usage': wire})}\n\n".encode())
            self.served.append(usage)
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    async def _responses(self, request: web.Request, usage: Served) -> web.StreamResponse:
        message = {
            "type": "message",
            "id": "msg_standin",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello from the stand-in.", "annotations": []}],
        }
        wire = {
            "input_tokens": usage.input_tokens + usage.cache_read_tokens,
            "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.total_tokens,
        }
        response = {"id": "resp_standin", "object": "response", "model": usage.model, "output": []}
        events = [
            ("response.created", {"response": {**response, "status": "in_progress"}}),
            ("response.output_item.added", {"output_index": 0, "item": {**message, "content": []}}),
            ("response.output_text.delta", {"item_id": "msg_standin", "output_index": 0, "content_index": 0,
                                            "delta": "Hello from the stand-in."}),
            ("response.output_item.done", {"output_index": 0, "item": message}),
            ("response.completed", {"response": {**response, "status": "completed", "output": [message],
                                                 "usage": wire}}),
        ]  # fmt: skip
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        await out.write(b"".join(_sse(name, {"type": name, **data}) for name, data in events))
        self.served.append(usage)
        await out.write_eof()
        return out
