"""The metering proxy's TCP listener for task Pods: each attempt is known by its own credential, the real
key goes upstream in its place, usage is metered as on the sockets, and a revoked credential is refused."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from _proxy import REAL_KEY, anthropic_body, counts, expected_usage
from _standin_anthropic import AnthropicStandIn, OpenAIStandIn
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.model import TaskDefinition, TeamConfig
from sprint_orchestrator.proxy import MeteringProxy, ProxyLimits, TaskBudget
from sprint_orchestrator.proxy.tcp import CREDENTIAL_PREFIX, direct_launch, presented
from sprint_orchestrator.teams.adapters import codex

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
    upstreams = {"anthropic": anthropic.url, "openai": openai.url, "gemini": anthropic.url}
    keys = {"anthropic": REAL_KEY, "openai": REAL_KEY, "gemini": REAL_KEY}
    async with MeteringProxy(upstreams, keys, ProxyLimits(backoff_base_s=0.01), run_dir=tmp_path) as metering:
        yield metering


async def _post(base: str, path: str, body: dict[str, object], headers: dict[str, str]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + path, data=json.dumps(body), headers=headers) as response,
    ):
        return response.status, await response.read()


def _anthropic(credential: str) -> dict[str, str]:
    return {"x-api-key": credential, "anthropic-version": "2023-06-01"}


async def test_a_pod_request_with_its_attempts_credential_goes_upstream_with_the_real_key_and_is_metered(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    base = await proxy.listen_tcp(socket.create_server(("127.0.0.1", 0)))
    first = proxy.open_task_credential("s1", "t1", 1, TaskBudget())
    other = proxy.open_task_credential("s1", "t2", 1, TaskBudget())
    assert first.startswith(CREDENTIAL_PREFIX) and first != other and REAL_KEY not in first
    for stream in (True, False):
        status, _ = await _post(base, MESSAGES, anthropic_body(stream=stream), _anthropic(first))
        assert status == 200
    status, _ = await _post(base, MESSAGES, anthropic_body(stream=False), _anthropic(other))
    assert status == 200
    assert anthropic.seen_keys == [REAL_KEY] * 3
    assert all(first not in json.dumps(r) for r in anthropic.requests)
    assert counts(proxy.usage_for("s1", "t1", 1)) == counts(expected_usage(anthropic.served[:2]))
    assert counts(proxy.usage_for("s1", "t2", 1)) == counts(expected_usage(anthropic.served[2:]))


async def test_a_revoked_unknown_or_missing_credential_is_refused_in_the_providers_format_before_upstream(
    proxy: MeteringProxy, anthropic: AnthropicStandIn, openai: OpenAIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    base = await proxy.listen_tcp(socket.create_server(("127.0.0.1", 0)))
    credential = proxy.open_task_credential("s1", "t1", 1, TaskBudget())
    assert (await _post(base, MESSAGES, anthropic_body(stream=False), _anthropic(credential)))[0] == 200
    proxy.close_task_credential("s1", "t1", 1)
    caplog.set_level(logging.INFO, "sprint_orchestrator.proxy")
    status, body = await _post(base, MESSAGES, anthropic_body(stream=False), _anthropic(credential))
    assert status == 401
    assert json.loads(body)["error"]["type"] == "authentication_error"
    for forged in ("", REAL_KEY, CREDENTIAL_PREFIX + "guessed", credential + "x"):
        status, _ = await _post(base, MESSAGES, anthropic_body(stream=False), _anthropic(forged))
        assert status == 401, forged
    chat = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    status, body = await _post(base, CHAT, chat, {"Authorization": f"Bearer {credential}"})
    assert (status, json.loads(body)["error"]["code"]) == (401, "invalid_api_key")
    status, body = await _post(base, "/gemini/v1beta/models/g:generateContent", {}, {"x-goog-api-key": "no"})
    error = json.loads(body)["error"]
    assert (status, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert len(anthropic.served) == 1 and not openai.served  # nothing refused went upstream
    assert counts(proxy.usage_for("s1", "t1", 1)) == counts(expected_usage(anthropic.served))
    assert credential not in caplog.text and REAL_KEY not in caplog.text


async def test_a_new_credential_for_the_same_attempt_revokes_the_old_one_and_keeps_its_usage(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    base = await proxy.listen_tcp(socket.create_server(("127.0.0.1", 0)))
    old = proxy.open_task_credential("s1", "t1", 1, TaskBudget())
    assert (await _post(base, MESSAGES, anthropic_body(stream=True), _anthropic(old)))[0] == 200
    new = proxy.open_task_credential("s1", "t1", 1, TaskBudget())
    assert (await _post(base, MESSAGES, anthropic_body(stream=True), _anthropic(old)))[0] == 401
    assert (await _post(base, MESSAGES, anthropic_body(stream=True), _anthropic(new)))[0] == 200
    assert counts(proxy.usage_for("s1", "t1", 1)) == counts(expected_usage(anthropic.served))


async def test_a_spent_budget_is_refused_over_tcp_as_on_a_socket(
    proxy: MeteringProxy, anthropic: AnthropicStandIn
) -> None:
    base = await proxy.listen_tcp(socket.create_server(("127.0.0.1", 0)))
    credential = proxy.open_task_credential("s1", "t1", 1, TaskBudget(tokens=10))
    assert (await _post(base, MESSAGES, anthropic_body(stream=False), _anthropic(credential)))[0] == 200
    status, body = await _post(base, MESSAGES, anthropic_body(stream=False), _anthropic(credential))
    assert status == 400 and "token budget of task t1 is spent" in json.loads(body)["error"]["message"]
    assert proxy.budget_exceeded("s1", "t1", 1) and len(anthropic.served) == 1


def test_an_attempt_with_an_unsafe_id_gets_no_credential(tmp_path: Path) -> None:
    proxy = MeteringProxy({}, {}, run_dir=tmp_path)
    with pytest.raises(InvalidInput, match="task_id"):
        proxy.open_task_credential("s1", "../t", 1, TaskBudget())


def test_the_credential_is_read_where_each_cli_sends_its_key() -> None:
    assert presented({"X-Api-Key": "a"}, "") == "a"
    assert presented({"authorization": "Bearer b"}, "") == "b"
    assert presented({"x-goog-api-key": "c"}, "alt=sse") == "c"
    assert presented({}, "alt=sse&key=d") == "d"
    assert presented({"Authorization": "Basic e"}, "") is None


def test_a_pod_launch_runs_the_cli_itself_against_the_proxys_tcp_address_without_placeholder_keys() -> None:
    task = TaskDefinition.model_validate({"id": "t1", "title": "T", "description": "d", "priority": "low"})
    launch = codex(task, TeamConfig.model_validate({"type": "codex"}))
    argv, env = direct_launch(launch.command, launch.environment, "http://10.0.0.1:4444")
    assert argv[0] == "codex" and not any("forwarder" in a for a in argv)
    assert any('base_url="http://10.0.0.1:4444/openai/v1"' in a for a in argv)
    assert env["OPENAI_BASE_URL"] == "http://10.0.0.1:4444/openai/v1"
    assert env["ANTHROPIC_BASE_URL"] == "http://10.0.0.1:4444/anthropic"
    assert not {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "SPRINT_LLM_SOCKET"} & set(env)
    assert "127.0.0.1" not in json.dumps([argv, env])


async def test_a_restarted_proxy_resumes_a_running_attempts_credential_until_the_attempt_closes(
    tmp_path: Path, anthropic: AnthropicStandIn
) -> None:
    """A task Pod outlives its operator: the operator that adopts it holds the same credential again
    (derived from what the private state keeps, never the credential itself); once the attempt closes
    for good, no later operator can."""
    upstreams, keys = {"anthropic": anthropic.url}, {"anthropic": REAL_KEY}
    async with MeteringProxy(upstreams, keys, run_dir=tmp_path) as first:
        base = await first.listen_tcp(socket.create_server(("127.0.0.1", 0)))
        credential = first.open_task_credential("s1", "t1", 1, TaskBudget())
        other = first.open_task_credential("s1", "t2", 1, TaskBudget())
        assert first.resume_task_credential("s1", "t3", 1, TaskBudget()) is None
        first.close_task_credential("s1", "t1", 1, keep=True)  # stopping: the Pod runs on
        first.close_task_credential("s1", "t2", 1)  # the attempt ended
    stored = b"".join(p.read_bytes() for p in (tmp_path / "credentials").rglob("*") if p.is_file())
    assert credential.encode() not in stored and credential.split("-")[-1].encode() not in stored
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "credentials").rglob("*")} <= {
        "0o600",
        "0o700",
    }

    async with MeteringProxy(upstreams, keys, run_dir=tmp_path) as second:
        base = await second.listen_tcp(socket.create_server(("127.0.0.1", 0)))
        assert (await _post(base, MESSAGES, anthropic_body(stream=True), _anthropic(credential)))[0] == 401
        assert second.resume_task_credential("s1", "t1", 1, TaskBudget()) == credential
        assert second.resume_task_credential("s1", "t2", 1, TaskBudget()) is None
        assert (await _post(base, MESSAGES, anthropic_body(stream=True), _anthropic(credential)))[0] == 200
        assert (await _post(base, MESSAGES, anthropic_body(stream=True), _anthropic(other)))[0] == 401
        assert counts(second.usage_for("s1", "t1", 1)) == counts(expected_usage(anthropic.served))
        second.close_task_credential("s1", "t1", 1)
        assert (await _post(base, MESSAGES, anthropic_body(stream=True), _anthropic(credential)))[0] == 401
        assert second.resume_task_credential("s1", "t1", 1, TaskBudget()) is None
    assert len(anthropic.served) == 1


def test_a_planted_symlink_in_the_credential_store_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"k" * 32)
    store = tmp_path / "run" / "credentials"
    store.mkdir(parents=True)
    (store / "key").symlink_to(outside)
    proxy = MeteringProxy({}, {}, run_dir=tmp_path / "run")
    with pytest.raises(OSError, match="credential key"):
        proxy.open_task_credential("s1", "t1", 1, TaskBudget())
    assert outside.read_bytes() == b"k" * 32
