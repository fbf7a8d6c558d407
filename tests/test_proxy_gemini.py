"""The metering proxy's Gemini API route: pure routing and replies, then real sockets against a stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from _proxy import PLACEHOLDER, REAL_KEY, counts, expected_usage
from _standin_anthropic import Faults
from _standin_gemini import GeminiStandIn
from sprint_orchestrator.proxy import MeteringProxy, ProxyLimits, TaskBudget, agent_environment
from sprint_orchestrator.proxy.replies import Refusal, error_reply
from sprint_orchestrator.proxy.routing import is_retryable, resolve, upstream_headers

UPSTREAMS = {"gemini": "https://gemini.example/"}
STREAM = "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
GENERATE = "/gemini/v1beta/models/{model}:generateContent"
COUNT = "/gemini/v1beta/models/gemini-2.5-pro:countTokens"


@pytest.mark.parametrize(
    ("path", "query", "url", "json_format", "sse_format"),
    [
        ("/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent", "alt=sse",
         "https://gemini.example/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
         "gemini-api-json", "gemini-api-sse"),
        ("/gemini/v1beta/models/gemini-2.5-flash:generateContent", "",
         "https://gemini.example/v1beta/models/gemini-2.5-flash:generateContent",
         "gemini-api-json", "gemini-api-sse"),
        ("/gemini/v1/models/gemini-2.0-flash-001:generateContent", "key=placeholder",
         "https://gemini.example/v1/models/gemini-2.0-flash-001:generateContent",
         "gemini-api-json", "gemini-api-sse"),
        ("/gemini/v1alpha/models/gemini-2.5-pro:countTokens", "",
         "https://gemini.example/v1alpha/models/gemini-2.5-pro:countTokens", None, None),
    ],
)  # fmt: skip
def test_the_three_gemini_model_calls_map_to_the_api_and_their_usage_formats(
    path: str, query: str, url: str, json_format: str | None, sse_format: str | None
) -> None:
    route = resolve(path, query, UPSTREAMS, "POST")
    assert route is not None and route.provider == "gemini"
    assert (route.url, route.json_format, route.sse_format) == (url, json_format, sse_format)
    assert route.usage_format("text/event-stream") == sse_format
    assert route.usage_format("application/json; charset=UTF-8") == json_format


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/gemini/v1beta/models/gemini-2.5-pro:generateContent", ""),
        ("GET", "/gemini/v1beta/models", ""),
        ("POST", "/gemini/v1beta/models/gemini-2.5-pro:embedContent", ""),
        ("POST", "/gemini/v1beta/models/gemini-2.5-pro:batchGenerateContent", ""),
        ("POST", "/gemini/v1beta/cachedContents", ""),
        ("POST", "/gemini/upload/v1beta/files", ""),
        ("DELETE", "/gemini/v1beta/files/abc", ""),
        ("POST", "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent", ""),  # not SSE: unmetered
        ("POST", "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent", "alt=json"),
        ("POST", "/gemini/v1beta/models/gemini-2.5-pro:generateContent", "alt=sse&x=1"),
        ("POST", "/gemini/v1beta/models/../../v1beta/files:generateContent", ""),
        ("POST", "/gemini/v1beta/models/a/b:generateContent", ""),
        ("POST", "/gemini/v2/models/gemini-2.5-pro:generateContent", ""),
        ("POST", "/gemini/v1beta/tunedModels/mine:generateContent", ""),
    ],
)  # fmt: skip
def test_every_other_gemini_request_has_no_route(method: str, path: str, query: str) -> None:
    assert resolve(path, query, UPSTREAMS, method) is None


def test_the_gemini_key_goes_in_x_goog_api_key_and_the_placeholders_are_dropped() -> None:
    incoming = [("x-goog-api-key", PLACEHOLDER), ("Authorization", f"Bearer {PLACEHOLDER}"),
                ("x-goog-api-client", "google-genai-sdk/1.30.0"),
                ("Content-Type", "application/json")]  # fmt: skip
    assert upstream_headers(incoming, "gemini", "real") == {
        "x-goog-api-client": "google-genai-sdk/1.30.0",
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
        "x-goog-api-key": "real",
    }


@pytest.mark.parametrize(
    ("refusal", "status", "name"),
    [(Refusal.BUDGET, 429, "RESOURCE_EXHAUSTED"), (Refusal.UNKNOWN_ROUTE, 404, "NOT_FOUND"),
     (Refusal.UPSTREAM_UNREACHABLE, 503, "UNAVAILABLE"), (Refusal.SOCKET_CLOSED, 403, "PERMISSION_DENIED")],
)  # fmt: skip
def test_refusals_on_the_gemini_route_are_google_rpc_statuses(
    refusal: Refusal, status: int, name: str
) -> None:
    reply = error_reply("gemini", refusal, "the token budget of task t1 is spent")
    error = json.loads(reply.body)["error"]
    assert reply.status == status and (error["code"], error["status"]) == (status, name)
    assert error["message"].startswith("the token budget of task t1 is spent")
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"


def test_a_spent_budget_tells_the_gemini_cli_not_to_retry() -> None:
    """Gemini CLI 0.61 retries a 429 for minutes unless its message says the capacity is exhausted."""
    error = json.loads(error_reply("gemini", Refusal.BUDGET, "spent").body)["error"]
    assert "exhausted your capacity" in error["message"]
    assert error["details"][0]["reason"] == "TOKEN_BUDGET_SPENT"


def test_googles_overloaded_503_is_retried_and_anthropics_529_only_on_its_own_route() -> None:
    assert is_retryable("gemini", 503) and is_retryable("gemini", 429) and not is_retryable("gemini", 529)
    assert is_retryable("anthropic", 529) and not is_retryable("anthropic", 503)


def test_the_agent_environment_points_the_gemini_cli_at_the_forwarder() -> None:
    env = agent_environment(4180)
    assert env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:4180/gemini"
    assert env["GEMINI_API_KEY"] != REAL_KEY


# -- real sockets ---------------------------------------------------------------------------------


@pytest.fixture
async def gemini() -> AsyncIterator[GeminiStandIn]:
    standin = GeminiStandIn()
    await standin.start()
    yield standin
    await standin.stop()


@pytest.fixture
async def proxy(tmp_path: Path, gemini: GeminiStandIn) -> AsyncIterator[MeteringProxy]:
    limits = ProxyLimits(backoff_base_s=0.01)
    async with MeteringProxy(
        {"gemini": gemini.url}, {"gemini": REAL_KEY}, limits, run_dir=tmp_path / "run"
    ) as metering:
        yield metering


def body(text: str = "hello") -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


async def call(
    socket: Path, method: str, path: str, payload: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    """A request as the Gemini CLI sends it (its SDK puts the key in x-goog-api-key), to the task socket."""
    headers = {"x-goog-api-key": PLACEHOLDER, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket))) as session,
        session.request(
            method, f"http://proxy{path}", data=json.dumps(payload or {}), headers=headers
        ) as resp,
    ):
        return resp.status, await resp.read()


async def test_a_gemini_stream_is_relayed_chunk_for_chunk_and_metered_from_its_last_usage_metadata(
    proxy: MeteringProxy, gemini: GeminiStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    for _ in range(3):  # the stand-in varies cache and thoughts per turn; a zero count is left out
        status, raw = await call(sock, "POST", STREAM, body())
        chunks = [json.loads(line[6:]) for line in raw.decode().split("\r\n") if line.startswith("data: ")]
        assert status == 200 and len(chunks) == 2 and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    usage = proxy.usage_for("s1", "t1", 0)
    assert counts(usage) == counts(expected_usage(gemini.served)) and not usage.partial
    assert usage.reasoning_tokens == sum(s.reasoning_tokens or 0 for s in gemini.served) > 0
    assert gemini.seen_keys == [REAL_KEY] * 3 and PLACEHOLDER not in json.dumps(gemini.requests)


async def test_json_answers_of_several_models_are_summed_per_model_and_the_key_parameter_is_dropped(
    proxy: MeteringProxy, gemini: GeminiStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    for model in ("gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-2.5-pro"):
        status, raw = await call(sock, "POST", GENERATE.format(model=model) + f"?key={PLACEHOLDER}", body())
        assert status == 200 and json.loads(raw)["usageMetadata"]["promptTokenCount"] > 0
    usage = proxy.usage_for("s1", "t1", 0)
    assert counts(usage) == counts(expected_usage(gemini.served))
    assert set(usage.by_model) == {"gemini-2.5-pro", "gemini-2.5-flash-lite"}
    assert all("key=" not in path for path in gemini.paths)


async def test_count_tokens_is_relayed_unmetered_even_with_the_budget_spent(
    proxy: MeteringProxy, gemini: GeminiStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget(tokens=1, used_before=1))
    status, raw = await call(sock, "POST", COUNT, body())
    assert (status, json.loads(raw)) == (200, {"totalTokens": 42})
    assert proxy.usage_for("s1", "t1", 0).total_tokens == 0 and not proxy.budget_exceeded("s1", "t1", 0)


async def test_a_gemini_stream_cut_off_keeps_its_input_side_and_is_partial(
    proxy: MeteringProxy, gemini: GeminiStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    await call(sock, "POST", STREAM, body())  # a whole one first: its cache read makes the cut one's > 0
    gemini.cut_after_first_chunk = True
    with pytest.raises(Exception, match=r"(?i)payload|disconnect|closed|transfer"):
        await call(sock, "POST", STREAM, body())
    usage = proxy.usage_for("s1", "t1", 0)
    cut = gemini.served[-1]
    assert usage.partial and usage.output_tokens is None and not cut.complete
    assert usage.input_tokens == gemini.served[0].input_tokens + cut.input_tokens
    assert usage.cache_read_tokens == cut.cache_read_tokens > 0
    assert counts(usage) == counts(expected_usage(gemini.served))


async def test_a_spent_budget_is_refused_with_resource_exhausted_before_reaching_the_api(
    proxy: MeteringProxy, gemini: GeminiStandIn
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget(tokens=500))
    assert (await call(sock, "POST", STREAM, body()))[0] == 200
    status, raw = await call(sock, "POST", STREAM, body())
    error = json.loads(raw)["error"]
    assert (status, error["code"], error["status"]) == (429, 429, "RESOURCE_EXHAUSTED")
    assert "token budget of task t1 is spent" in error["message"]
    assert proxy.budget_exceeded("s1", "t1", 0) and len(gemini.paths) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/gemini/v1beta/models"), ("POST", "/gemini/v1beta/models/gemini-2.5-pro:embedContent"),
     ("GET", GENERATE.format(model="gemini-2.5-pro")),
     ("POST", "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent")],
)  # fmt: skip
async def test_other_gemini_requests_get_not_found_and_never_reach_the_api(
    proxy: MeteringProxy, gemini: GeminiStandIn, method: str, path: str
) -> None:
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    status, raw = await call(sock, method, path, body())
    error = json.loads(raw)["error"]
    assert (status, error["status"]) == (404, "NOT_FOUND")
    assert "streamGenerateContent?alt=sse" in error["message"] and method in error["message"]
    assert gemini.paths == [] and gemini.seen_keys == []


@pytest.mark.parametrize("busy_status", [429, 503])
async def test_busy_gemini_answers_are_retried_without_counting_twice(
    proxy: MeteringProxy, gemini: GeminiStandIn, busy_status: int
) -> None:
    gemini.faults = Faults(busy_first=2, busy_status=busy_status, retry_after="0")
    sock = await proxy.open_task_socket("s1", "t1", 0, TaskBudget())
    status, _ = await call(sock, "POST", STREAM, body())
    assert status == 200 and gemini.busy_answers == 2 and len(gemini.served) == 1
    assert counts(proxy.usage_for("s1", "t1", 0)) == counts(expected_usage(gemini.served))
