"""The metering proxy on real Unix sockets against local stand-ins of the Anthropic and OpenAI APIs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from _proxy import PLACEHOLDER, REAL_KEY, anthropic_body, counts, expected_usage, post, sse_events
from _standin_anthropic import AnthropicStandIn, Faults, OpenAIStandIn
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.proxy import FORWARDER_SOURCE, MeteringProxy, ProxyLimits, TaskBudget, TaskKey
from sprint_orchestrator.settings import Settings
from sprint_orchestrator.usage.record import TokenUsage

MESSAGES = "/anthropic/v1/messages?beta=true"
CHAT = "/openai/v1/chat/completions"


@pytest.fixture
async def anthropic() -> AsyncIterator[AnthropicStandIn]:
    standin = AnthropicStandIn()
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def openai() -> AsyncIterator[OpenAIStandIn]:
    standin = OpenAIStandIn()
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def proxy(
    tmp_path: Path, anthropic: AnthropicStandIn, openai: OpenAIStandIn
) -> AsyncIterator[MeteringProxy]:
    upstreams = {"anthropic": anthropic.url, "openai": openai.url}
    keys = {"anthropic": REAL_KEY, "openai": REAL_KEY}
    limits = ProxyLimits(backoff_base_s=0.01)
    async with MeteringProxy(upstreams, keys, limits, run_dir=tmp_path / "run") as metering:
        yield metering


async def test_a_streamed_response_is_relayed_whole_and_metered_token_for_token(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    status, body = await post(sock, MESSAGES, anthropic_body(stream=True))
    assert status == 200
    assert sse_events(body)[0] == "message_start" and sse_events(body)[-1] == "message_stop"
    assert counts(proxy.usage_for("s1", "t1", 0)) == counts(expected_usage(anthropic.served))


async def test_json_responses_of_several_models_are_summed_per_model(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    for model in ("claude-a", "claude-b", "claude-a"):
        status, body = await post(sock, MESSAGES, anthropic_body(stream=False, model=model))
        assert status == 200 and json.loads(body)["usage"]["input_tokens"] > 0
    usage = proxy.usage_for("s1", "t1", 0)
    assert counts(usage) == counts(expected_usage(anthropic.served))
    assert set(usage.by_model) == {"claude-a", "claude-b"} and not usage.partial


async def test_each_attempt_is_metered_on_its_own_socket(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    first = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    second = await proxy.open_task_socket("s1", "t1", 1, TaskBudget())
    await post(first, MESSAGES, anthropic_body(stream=True))
    await post(second, MESSAGES, anthropic_body(stream=True))
    await post(second, MESSAGES, anthropic_body(stream=False))
    assert counts(proxy.usage_for("s1", "t1", 0)) == counts(expected_usage(anthropic.served[:1]))
    assert counts(proxy.usage_for("s1", "t1", 1)) == counts(expected_usage(anthropic.served[1:]))


async def test_a_stream_cut_off_upstream_keeps_its_input_and_is_partial(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    anthropic.faults = Faults(cut_stream=True)
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    with pytest.raises(Exception, match=r"(?i)payload|disconnect|closed|transfer"):
        await post(sock, MESSAGES, anthropic_body(stream=True))
    usage = proxy.usage_for("s1", "t1", 0)
    assert usage.partial and usage.output_tokens is None
    assert usage.input_tokens == anthropic.served[0].input_tokens
    assert usage.cache_read_tokens == anthropic.served[0].cache_read_tokens


async def test_an_agent_that_hangs_up_mid_stream_leaves_a_partial_record_of_the_input(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    anthropic.faults = Faults(block_delay_s=0.3)
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    connector = aiohttp.UnixConnector(path=str(sock))
    async with aiohttp.ClientSession(connector=connector) as session:
        response = await session.post(f"http://proxy{MESSAGES}", json=anthropic_body(stream=True))
        assert b"message_start" in await response.content.readany()
        response.close()  # the agent is killed while the model is still answering
    deadline = asyncio.get_running_loop().time() + 60  # a bound, not a speed goal
    while not proxy.ledger.requests(TaskKey("s1", "t1", 0)):
        assert asyncio.get_running_loop().time() < deadline, "the hung-up request was never recorded"
        await asyncio.sleep(0.02)
    usage = proxy.usage_for("s1", "t1", 0)
    assert usage.partial and usage.input_tokens == anthropic.started[0].input_tokens
    assert usage.cache_creation_tokens == anthropic.started[0].cache_creation_tokens


async def test_openai_chat_usage_is_metered_from_json_and_from_the_include_usage_chunk(
    proxy: MeteringProxy, openai: OpenAIStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    chat = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    assert (await post(sock, CHAT, chat))[0] == 200
    streamed = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    status, body = await post(sock, CHAT, streamed)
    assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
    usage = proxy.usage_for("s1", "t1", 0)
    assert counts(usage) == counts(expected_usage(openai.served))
    assert usage.reasoning_tokens == sum(s.reasoning_tokens or 0 for s in openai.served)


async def test_a_streamed_responses_api_answer_is_metered_from_response_completed(
    proxy: MeteringProxy, openai: OpenAIStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    status, body = await post(
        sock, "/openai/v1/responses", {"model": "gpt-test", "stream": True, "input": []}
    )
    assert status == 200 and sse_events(body)[-1] == "response.completed"
    assert counts(proxy.usage_for("s1", "t1", 0)) == counts(expected_usage(openai.served))


async def test_a_chat_stream_without_usage_is_recorded_as_partial(
    proxy: MeteringProxy, openai: OpenAIStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    await post(sock, CHAT, {"model": "gpt-test", "messages": [], "stream": True})
    usage = proxy.usage_for("s1", "t1", 0)
    assert usage.partial and not usage.by_model


async def test_the_real_key_replaces_the_placeholder_and_appears_in_no_log(
    proxy: MeteringProxy, anthropic: AnthropicStandIn, openai: OpenAIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    await post(sock, MESSAGES, anthropic_body(stream=True))
    await post(sock, CHAT, {"model": "gpt-test", "messages": []})
    assert anthropic.seen_keys == [REAL_KEY] and openai.seen_keys == [f"Bearer {REAL_KEY}"]
    assert "s1/t1#0" in caplog.text
    assert REAL_KEY not in caplog.text and REAL_KEY not in repr(proxy)
    assert PLACEHOLDER not in json.dumps(anthropic.requests)


async def test_a_spent_task_budget_refuses_the_next_request_in_anthropics_format(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget(tokens=150))
    assert (await post(sock, MESSAGES, anthropic_body(stream=True)))[0] == 200
    assert not proxy.budget_exceeded("s1", "t1", 0)
    status, body = await post(sock, MESSAGES, anthropic_body(stream=True))
    error = json.loads(body)
    assert status == 400 and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error" and "task t1" in error["error"]["message"]
    assert proxy.budget_exceeded("s1", "t1", 0) and len(anthropic.served) == 1


async def test_earlier_attempts_count_against_the_task_budget(proxy: MeteringProxy) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 2, TaskBudget(tokens=1000, used_before=1000))
    status, _ = await post(sock, MESSAGES, anthropic_body(stream=False))
    assert status == 400 and proxy.budget_exceeded("s1", "t1", 2)


async def test_a_spent_sprint_budget_refuses_every_task_of_the_sprint_in_openais_format(
    proxy: MeteringProxy, openai: OpenAIStandIn
) -> None:
    proxy.set_sprint_budget("s1", tokens=100)
    first = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    other = await proxy.open_task_socket("s1", "t2", 0, TaskBudget())
    elsewhere = await proxy.open_task_socket("s2", "t1", 0, TaskBudget())
    assert (await post(first, CHAT, {"model": "gpt-test", "messages": []}))[0] == 200
    status, body = await post(other, CHAT, {"model": "gpt-test", "messages": []})
    assert status == 429 and json.loads(body)["error"]["code"] == "insufficient_quota"
    assert "sprint s1" in json.loads(body)["error"]["message"]
    assert (await post(elsewhere, CHAT, {"model": "gpt-test", "messages": []}))[0] == 200


@pytest.mark.parametrize("busy_status", [429, 529])
async def test_busy_answers_are_retried_after_retry_after_without_counting_twice(
    proxy: MeteringProxy, anthropic: AnthropicStandIn, busy_status: int
) -> None:
    anthropic.faults = Faults(busy_first=2, busy_status=busy_status, retry_after="0")
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    status, _ = await post(sock, MESSAGES, anthropic_body(stream=True))
    assert status == 200 and anthropic.busy_answers == 2 and len(anthropic.served) == 1
    assert counts(proxy.usage_for("s1", "t1", 0)) == counts(expected_usage(anthropic.served))


async def test_after_the_last_retry_the_providers_own_busy_answer_is_relayed(
    tmp_path: Path, anthropic: AnthropicStandIn
) -> None:
    anthropic.faults = Faults(busy_first=10, busy_status=529, retry_after="0")
    limits = ProxyLimits(max_retries=2)
    async with MeteringProxy(
        {"anthropic": anthropic.url}, {"anthropic": REAL_KEY}, limits, run_dir=tmp_path
    ) as px:
        sock = await px.open_task_socket("s1", "t1", 0, TaskBudget())
        status, body = await post(sock, MESSAGES, anthropic_body(stream=True))
        assert status == 529 and json.loads(body)["error"]["type"] == "overloaded_error"
        assert anthropic.busy_answers == 3
        assert px.usage_for("s1", "t1", 0).total_tokens == 0


async def test_requests_in_flight_per_provider_are_limited(
    tmp_path: Path, anthropic: AnthropicStandIn
) -> None:
    anthropic.faults = Faults(delay_s=0.05)
    limits = ProxyLimits(concurrency=2)
    async with MeteringProxy(
        {"anthropic": anthropic.url}, {"anthropic": REAL_KEY}, limits, run_dir=tmp_path
    ) as px:
        socks = [await px.open_task_socket("s1", f"t{i}", 0, TaskBudget()) for i in range(6)]
        results = await asyncio.gather(*(post(s, MESSAGES, anthropic_body(stream=True)) for s in socks))
    assert [status for status, _ in results] == [200] * 6
    assert anthropic.max_in_flight == 2


async def test_on_usage_reports_the_attempts_running_total(
    tmp_path: Path, anthropic: AnthropicStandIn
) -> None:
    seen: list[tuple[str, str, int, TokenUsage]] = []

    async def on_usage(sprint: str, task: str, attempt: int, usage: TokenUsage) -> None:
        seen.append((sprint, task, attempt, usage))

    async with MeteringProxy(
        {"anthropic": anthropic.url}, {"anthropic": REAL_KEY}, run_dir=tmp_path, on_usage=on_usage
    ) as px:
        sock = await px.open_task_socket("s1", "t1", 3, TaskBudget())
        for _ in range(2):
            await post(sock, MESSAGES, anthropic_body(stream=True))
    assert [(s, t, a) for s, t, a, _ in seen] == [("s1", "t1", 3)] * 2
    assert counts(seen[-1][3]) == counts(expected_usage(anthropic.served))


async def test_unknown_paths_and_closed_sockets_answer_in_the_providers_format(proxy: MeteringProxy) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    status, body = await post(sock, "/v1/messages", anthropic_body(stream=False))
    assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error"
    await proxy.close_task_socket("s1", "t1", 0)
    assert not sock.exists() and not sock.parent.exists()
    assert proxy.usage_for("s1", "t1", 0).total_tokens == 0


async def test_from_settings_takes_the_keys_and_run_dir_of_the_settings(
    tmp_path: Path, anthropic: AnthropicStandIn
) -> None:
    settings = Settings(state_dir=tmp_path, api_keys={"anthropic": REAL_KEY})
    async with MeteringProxy.from_settings(settings, upstreams={"anthropic": anthropic.url}) as px:
        sock = await px.open_task_socket("s1", "t1", 0, TaskBudget())
        assert sock.is_relative_to(settings.run_dir)
        assert (await post(sock, MESSAGES, anthropic_body(stream=False)))[0] == 200
    assert anthropic.seen_keys == [REAL_KEY]


async def test_usage_of_an_attempt_never_opened_is_an_error_naming_it(proxy: MeteringProxy) -> None:
    with pytest.raises(InvalidInput, match="s9/t9#0"):
        proxy.usage_for("s9", "t9", 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_forwarder_relays_tcp_on_loopback_to_the_task_socket(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    port = _free_port()
    agent = (
        "import json, os, urllib.request\n"
        "base = os.environ['ANTHROPIC_BASE_URL']\n"
        "body = json.dumps({'model': 'm', 'stream': True, 'messages': []}).encode()\n"
        "headers = {'x-api-key': 'placeholder', 'content-type': 'application/json'}\n"
        "req = urllib.request.Request(base + '/v1/messages', data=body, headers=headers)\n"
        "print(urllib.request.urlopen(req).read().decode())\n"
    )
    argv = [sys.executable, str(FORWARDER_SOURCE), "--port", str(port), "--socket", str(sock), "--",
            sys.executable, "-c", agent]  # fmt: skip
    env = {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}/anthropic"}
    process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.PIPE)
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert sse_events(stdout)[-1] == "message_stop"
    assert counts(proxy.usage_for("s1", "t1", 0)) == counts(expected_usage(anthropic.served))


async def test_a_task_firing_many_requests_cannot_starve_another_of_upstream_slots(
    tmp_path: Path, anthropic: AnthropicStandIn
) -> None:
    anthropic.faults = Faults(delay_s=0.1)
    async with MeteringProxy(
        {"anthropic": anthropic.url}, {"anthropic": REAL_KEY}, ProxyLimits(concurrency=1), run_dir=tmp_path
    ) as px:
        hog = await px.open_task_socket("s1", "hog", 1, TaskBudget())
        other = await px.open_task_socket("s1", "other", 1, TaskBudget())
        finished: list[str] = []

        async def ask(sock: Path, who: str) -> None:
            status, _ = await post(sock, MESSAGES, anthropic_body(stream=False))
            assert status == 200
            finished.append(who)

        hogs = [asyncio.create_task(ask(hog, "hog")) for _ in range(6)]
        while px._slots["anthropic"].busy == 0 or len(px._slots["anthropic"]._waiting) < 5:
            await asyncio.sleep(0.01)  # the hog holds the slot and has five more waiting
        await ask(other, "other")
        await asyncio.gather(*hogs)
    assert finished.index("other") == 1  # next after the hog's request in flight, not after all six


async def test_the_budget_is_checked_again_when_a_request_gets_its_upstream_slot(
    tmp_path: Path, openai: OpenAIStandIn
) -> None:
    openai.faults = Faults(delay_s=0.3)
    async with MeteringProxy(
        {"openai": openai.url}, {"openai": REAL_KEY}, ProxyLimits(concurrency=1), run_dir=tmp_path
    ) as px:
        px.set_sprint_budget("s1", tokens=1)
        first = await px.open_task_socket("s1", "t1", 1, TaskBudget())
        second = await px.open_task_socket("s1", "t2", 1, TaskBudget())
        running = asyncio.create_task(post(first, CHAT, {"model": "gpt-test", "messages": []}))
        while px._slots["openai"].busy == 0:
            await asyncio.sleep(0.01)
        waiting = await post(second, CHAT, {"model": "gpt-test", "messages": []})  # admitted, then queued
        assert (await running)[0] == 200
    assert waiting[0] == 429 and "sprint s1" in json.loads(waiting[1])["error"]["message"]
    assert len(openai.served) == 1
