"""Pure parts of the metering proxy: routing, header rewriting, retry delays, error replies, sockets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.proxy import agent_environment, forwarder_command
from sprint_orchestrator.proxy.replies import Refusal, error_reply
from sprint_orchestrator.proxy.routing import downstream_headers, resolve, retry_delay, upstream_headers
from sprint_orchestrator.proxy.sockets import TaskKey, prepare, socket_path

UPSTREAMS = {"anthropic": "https://anthropic.example/", "openai": "https://openai.example"}


@pytest.mark.parametrize(
    ("path", "query", "url", "json_format", "sse_format"),
    [
        ("/anthropic/v1/messages", "beta=true", "https://anthropic.example/v1/messages?beta=true",
         "anthropic-json", "anthropic-sse"),
        ("/anthropic/v1/messages/count_tokens", "", "https://anthropic.example/v1/messages/count_tokens",
         None, None),
        ("/openai/v1/chat/completions", "", "https://openai.example/v1/chat/completions",
         "openai-chat-json", "openai-chat-sse"),
        ("/openai/v1/responses", "", "https://openai.example/v1/responses",
         "openai-responses-json", "openai-responses-sse"),
        ("/openai/v1/responses/input_tokens", "", "https://openai.example/v1/responses/input_tokens",
         None, None),
    ],
)  # fmt: skip
def test_a_provider_prefixed_path_maps_to_its_upstream_and_usage_format(
    path: str, query: str, url: str, json_format: str | None, sse_format: str | None
) -> None:
    route = resolve(path, query, UPSTREAMS)
    assert route is not None
    assert (route.url, route.json_format, route.sse_format) == (url, json_format, sse_format)
    assert route.usage_format("text/event-stream; charset=utf-8") == sse_format
    assert route.usage_format("application/json") == json_format


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/openai/v1/models"), ("GET", "/anthropic/v1/models"), ("GET", "/anthropic/v1/models/claude-x")],
)
def test_the_model_list_is_relayed_unmetered(method: str, path: str) -> None:
    route = resolve(path, "", UPSTREAMS, method)
    assert route is not None and not route.metered


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/openai/v1/batches"),
        ("POST", "/openai/v1/files"),
        ("POST", "/openai/v1/fine_tuning/jobs"),
        ("GET", "/openai/v1/organization/users"),
        ("POST", "/anthropic/v1/messages/batches"),
        ("POST", "/anthropic/v1/files"),
        ("GET", "/anthropic/v1/organizations/me"),
        ("DELETE", "/openai/v1/models/ft-x"),
        ("GET", "/anthropic/v1/messages"),
        ("POST", "/anthropic//v1/messages"),
        ("POST", "/anthropic/v1/./messages"),
        ("POST", "/anthropic/v1/x/../messages"),
        ("POST", "/anthropic/v1/%6Dessages"),
        ("POST", "/openai/v1/chat%2Fcompletions"),
        ("POST", "/anthropic/v1/messages/"),
    ],
)
def test_everything_else_is_refused_batches_files_admin_and_path_tricks(method: str, path: str) -> None:
    assert resolve(path, "", UPSTREAMS, method) is None


@pytest.mark.parametrize("path", ["/v1/messages", "/gemini/v1/models", "/", "/x/anthropic/v1/messages"])
def test_a_path_that_names_no_provider_has_no_route(path: str) -> None:
    assert resolve(path, "", UPSTREAMS) is None


def test_an_unconfigured_provider_has_no_route() -> None:
    assert resolve("/anthropic/v1/messages", "", {"openai": "https://openai.example"}) is None


def test_the_agents_placeholder_credentials_are_replaced_by_the_real_key() -> None:
    incoming = [("x-api-key", "placeholder"), ("Authorization", "Bearer placeholder"),
                ("Host", "127.0.0.1"), ("anthropic-version", "2023-06-01"), ("Content-Length", "12"),
                ("Accept-Encoding", "gzip")]  # fmt: skip
    anthropic = upstream_headers(incoming, "anthropic", "sk-real")
    assert anthropic == {
        "anthropic-version": "2023-06-01",
        "Accept-Encoding": "identity",
        "x-api-key": "sk-real",
    }
    openai = upstream_headers(incoming, "openai", "sk-real")
    assert openai["Authorization"] == "Bearer sk-real" and "x-api-key" not in openai


def test_credential_and_framing_headers_of_the_upstream_are_not_relayed() -> None:
    relayed = downstream_headers([("Content-Type", "text/event-stream"), ("Set-Cookie", "a=b"),
                                  ("Transfer-Encoding", "chunked"), ("request-id", "req_1")])  # fmt: skip
    assert relayed == {"Content-Type": "text/event-stream", "request-id": "req_1"}


@pytest.mark.parametrize(
    ("headers", "attempt", "expected"),
    [({"retry-after": "3"}, 0, 3.0), ({"Retry-After": "7"}, 4, 7.0), ({"retry-after-ms": "250"}, 0, 0.25),
     ({"retry-after": "9999"}, 0, 60.0), ({"retry-after": "-5"}, 0, 0.0)],
)  # fmt: skip
def test_the_providers_retry_after_decides_the_delay(
    headers: dict[str, str], attempt: int, expected: float
) -> None:
    assert retry_delay(429, headers, attempt) == expected


@pytest.mark.parametrize("attempt", [0, 1, 2, 3])
def test_without_retry_after_the_delay_backs_off_exponentially(attempt: int) -> None:
    delay = retry_delay(529, {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, attempt, base=0.5)
    assert 0.5 * 2**attempt <= delay <= 0.75 * 2**attempt


def test_a_spent_budget_is_refused_in_anthropics_error_format() -> None:
    reply = error_reply("anthropic", Refusal.BUDGET, "the token budget of task t1 is spent")
    assert reply.status == 400
    assert json.loads(reply.body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "the token budget of task t1 is spent"},
    }


def test_a_spent_budget_is_refused_in_openais_error_format() -> None:
    reply = error_reply("openai", Refusal.BUDGET, "spent")
    assert reply.status == 429
    assert json.loads(reply.body) == {
        "error": {
            "message": "spent",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }


def test_each_attempt_gets_a_socket_in_a_directory_of_its_own(tmp_path: Path) -> None:
    path = prepare(tmp_path, TaskKey("s1", "t-1", 2))
    assert (
        path == socket_path(tmp_path, TaskKey("s1", "t-1", 2)) == tmp_path / "llm" / "s1.t-1.2" / "llm.sock"
    )
    assert path.parent.is_dir() and not path.exists()


@pytest.mark.parametrize(
    ("sprint", "task"), [("../x", "t"), ("s", "a/b"), ("s", ""), ("s.1", "t"), ("s", "-t")]
)
def test_ids_that_could_escape_the_run_dir_are_rejected(tmp_path: Path, sprint: str, task: str) -> None:
    with pytest.raises(InvalidInput, match="cannot name a proxy socket"):
        prepare(tmp_path, TaskKey(sprint, task, 0))


def test_long_ids_get_a_short_digest_directory_still_one_per_attempt(tmp_path: Path) -> None:
    first = prepare(tmp_path, TaskKey("s" * 63, "t" * 63, 0))
    second = prepare(tmp_path, TaskKey("s" * 63, "t" * 63, 1))
    assert first.parent.name.startswith("h-") and first != second
    assert len(str(first).encode()) <= 107


def test_a_run_dir_too_long_for_any_socket_names_the_setting_to_change(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="shorter state directory"):
        prepare(tmp_path / ("d" * 80), TaskKey("sprint", "task", 0))


def test_the_agent_is_pointed_at_the_forwarder_with_a_placeholder_key() -> None:
    env = agent_environment(4180)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4180/anthropic"
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:4180/openai/v1"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    command = forwarder_command(["claude", "-p", "hi"])
    assert command[-4:] == ["--", "claude", "-p", "hi"]
