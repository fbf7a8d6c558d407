"""The runner's side of the metering proxy: budgets, the status `tokens` block, the upstream settings,
and one attempt's socket opened and closed on a real MeteringProxy through the OperatorContext."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _proxy import REAL_KEY, anthropic_body, counts, expected_usage, post
from _standin_anthropic import AnthropicStandIn
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.handlers import metering, tokens
from sprint_orchestrator.handlers.context import OperatorContext
from sprint_orchestrator.kube import Kube
from sprint_orchestrator.proxy import CONTAINER_SOCKET_DIR, TaskBudget, TaskKey
from sprint_orchestrator.proxy.ledger import Ledger
from sprint_orchestrator.settings import DEFAULT_LLM_UPSTREAMS, Settings, from_env
from sprint_orchestrator.usage import TokenUsage, parse


def task(task_id: str, source: str, actual: Any) -> dict[str, Any]:
    return {
        "spec": {"taskId": task_id},
        "status": {"attempt": 1, "tokens": {"source": source, "actual": actual}},
    }


def test_the_task_budget_is_the_estimate_times_the_factor_or_none() -> None:
    assert tokens.task_budget(20_000, 1.5) == TaskBudget(tokens=30_000)
    assert tokens.task_budget(None, 2.0) == TaskBudget(tokens=None)
    assert tokens.task_budget(0, 2.0) == TaskBudget(tokens=None)


def test_every_attempt_the_statuses_know_counts_once_against_the_sprint() -> None:
    retried = task("r", "proxy", 40)
    retried["status"].update(attempt=3, tokensByAttempt={"1": 500, "2": 700})
    tasks = [task("a", "agent", 100), task("c", "none", None), {"spec": {"taskId": "d"}}, retried]
    known = tokens.known_usage(tasks, "s1-x")
    assert known == {TaskKey("s1-x", "a", 1): 100, TaskKey("s1-x", "r", 1): 500,
                     TaskKey("s1-x", "r", 2): 700, TaskKey("s1-x", "r", 3): 40}  # fmt: skip
    assert tokens.earlier_attempts(retried["status"]) == 1200
    assert tokens.by_attempt_after(retried["status"]) == {"1": 500, "2": 700, "3": 40}
    assert tokens.by_attempt_after({}) == {}
    assert tokens.task_budget(1000, 1.0, 1200) == TaskBudget(tokens=1000, used_before=1200)


def test_the_proxys_sprint_book_counts_an_attempt_it_also_metered_once() -> None:
    ledger = Ledger()
    key = TaskKey("s1", "t1", 1)
    ledger.open(key, TaskBudget())
    ledger.record(key, TokenUsage(input_tokens=300, output_tokens=0))
    ledger.set_sprint_budget("s1", 1000, known={key: 250, TaskKey("s1", "t0", 1): 600})
    assert ledger.sprint_spent("s1") == 900  # max(300, 250) + 600: before a restart, after it alike
    assert ledger.refusal(key) is None
    ledger.record(key, TokenUsage(input_tokens=100, output_tokens=0))
    assert ledger.sprint_spent("s1") == 1000 and "sprint s1 is spent" in (ledger.refusal(key) or "")


def message(output: int) -> str:
    usage = {"input_tokens": 10, "output_tokens": output, "cache_read_input_tokens": 0,
             "cache_creation_input_tokens": 0}  # fmt: skip
    return json.dumps({"type": "message", "model": "m", "usage": usage})


def test_the_status_block_bills_the_proxy_and_shows_the_agents_own_count() -> None:
    wire, agent = parse(message(5), "anthropic-json"), parse(message(4), "anthropic-json")
    block = tokens.proxy_tokens(wire, agent, 100, None)
    assert (block["source"], block["actual"], block["agentReported"]) == ("proxy", 15, 14)
    assert (block["input"], block["output"], block["efficiency"], block["partial"]) == (10, 5, 0.15, False)
    assert "agentReported" not in tokens.proxy_tokens(wire, None, 100, True)
    assert tokens.status_tokens(None, agent, 100, None)["source"] == "agent"


def claude_result(input_: int, output: int, cache_read: int, cache_creation: int, cost: float) -> str:
    """Claude Code's stream-json `result` line: `modelUsage` and `total_cost_usd` cover the session."""
    model = {"inputTokens": input_, "outputTokens": output, "cacheReadInputTokens": cache_read,
             "cacheCreationInputTokens": cache_creation, "costUSD": cost}  # fmt: skip
    record = {"type": "result", "subtype": "success", "session_id": "s", "total_cost_usd": cost,
              "usage": {"input_tokens": 1}, "modelUsage": {"claude-x": model}}  # fmt: skip
    return json.dumps(record)


def test_a_resumed_claude_session_reports_only_what_this_attempt_spent() -> None:
    """Real figures from a resumed attempt: the CLI said 1946 tokens / $0.0039285 for the whole session,
    of which attempt 1 had reported 1143 / $0.00275175; the proxy metered 803 for attempt 2."""
    first = parse(claude_result(321, 69, 600, 153, 0.00275175), "claude-stream-json")
    second = parse(claude_result(442, 98, 1200, 206, 0.0039285), "claude-stream-json")
    wire = parse(message(29), "anthropic-json")
    session = tokens.session_report({"cli": "claude-code", "id": "s", "attempt": 1}, first)
    assert (session["reportedTokens"], session["reportedCostUsd"]) == (1143, 0.00275175)
    block = tokens.proxy_tokens(wire, second, 100, None, earlier=session)
    assert (block["agentReported"], block["costUsd"]) == (1946 - 1143, round(0.0039285 - 0.00275175, 8))
    assert tokens.proxy_tokens(wire, second, 100, None)["agentReported"] == 1946  # not resumed: as said


def test_a_missing_key_names_the_variable_to_set() -> None:
    message = metering.missing_key_message("anthropic", "claude-code")
    assert "ANTHROPIC_API_KEY" in message and "'claude-code'" in message and "never enters" in message


def test_the_upstream_urls_come_from_the_environment_with_the_providers_as_defaults() -> None:
    assert from_env({}).llm_upstreams == DEFAULT_LLM_UPSTREAMS
    env = {"SPRINT_ORCHESTRATOR_ANTHROPIC_URL": "http://127.0.0.1:9/x", "ANTHROPIC_API_KEY": REAL_KEY}
    settings = from_env(env)
    assert settings.llm_upstreams == {**DEFAULT_LLM_UPSTREAMS, "anthropic": "http://127.0.0.1:9/x"}
    assert REAL_KEY not in repr(settings)


def test_the_gemini_key_and_url_come_from_gemini_api_key_and_the_gemini_url_setting() -> None:
    env = {"GEMINI_API_KEY": REAL_KEY, "SPRINT_ORCHESTRATOR_GEMINI_URL": "http://127.0.0.1:9/g"}
    settings = from_env(env)
    assert (
        settings.api_keys == {"gemini": REAL_KEY}
        and settings.llm_upstreams["gemini"] == "http://127.0.0.1:9/g"
    )
    assert "GEMINI_API_KEY" in metering.missing_key_message("gemini", "gemini")


@pytest.fixture
async def standin() -> Any:
    server = AnthropicStandIn()
    await server.start()
    yield server
    await server.stop()


async def test_an_attempt_is_metered_budgeted_and_closed_through_the_context(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    settings = Settings(state_dir=tmp_path, api_keys={"anthropic": REAL_KEY},
                        llm_upstreams={"anthropic": standin.url})  # fmt: skip
    ctx = OperatorContext(settings=settings, kube=kube(tmp_path))
    try:
        metered = await metering.open_attempt(
            ctx, "anthropic", "claude-code", ("s1", "t1", 1), (TaskBudget(tokens=150), None, {})
        )
        assert metered.mount.target == CONTAINER_SOCKET_DIR and metered.mount.read_only
        assert metered.mount.source == metered.socket.parent
        status, _ = await post(metered.socket, "/anthropic/v1/messages", anthropic_body(stream=True))
        assert status == 200 and metered.changed.is_set()  # on_usage reached the attempt's listener
        assert counts(metered.usage()) == counts(expected_usage(standin.served))
        assert metered.refusal() is None
        status, body = await post(metered.socket, "/anthropic/v1/messages", anthropic_body(stream=False))
        assert status == 400 and b"token budget of task t1 is spent" in body
        refusal = metered.refusal()
        assert refusal is not None and "task budget: 150" in refusal and "tokenBudgetFactor" in refusal
        await metering.close_attempt(ctx, metered)
        assert not metered.socket.exists() and ("s1", "t1", 1) not in ctx.usage_listeners
        assert metered.usage().total_tokens == expected_usage(standin.served).total_tokens
    finally:
        await ctx.stop()
    assert ctx.proxy is None and len(standin.served) == 1 and standin.seen_keys == [REAL_KEY]


async def test_a_restarted_operator_reattaches_in_the_same_directory_and_keeps_the_usage_exact(
    tmp_path: Path, standin: AnthropicStandIn
) -> None:
    settings = Settings(state_dir=tmp_path, api_keys={"anthropic": REAL_KEY},
                        llm_upstreams={"anthropic": standin.url})  # fmt: skip
    key, budgets = ("s1", "t1", 1), (TaskBudget(), None, {})
    first = OperatorContext(settings=settings, kube=kube(tmp_path))
    try:
        metered = await metering.open_attempt(first, "anthropic", "claude-code", key, budgets)
        await post(metered.socket, "/anthropic/v1/messages", anthropic_body(stream=True))
        await metering.close_attempt(first, metered, keep=True)  # the operator is stopping
    finally:
        await first.stop()
    mounted = metered.socket.parent.stat().st_ino  # what the running container has bind-mounted
    assert not metered.socket.exists() and metered.journal.is_file()
    second = OperatorContext(settings=settings, kube=kube(tmp_path))
    try:
        again = await metering.open_attempt(second, "anthropic", "claude-code", key, budgets)
        assert again.socket == metered.socket and again.socket.parent.stat().st_ino == mounted
        assert counts(again.usage()) == counts(expected_usage(standin.served))
        await post(again.socket, "/anthropic/v1/messages", anthropic_body(stream=False))
        assert len(standin.served) == 2
        assert counts(again.usage()) == counts(expected_usage(standin.served))
        assert metering.read_journal(again.journal) == again.usage()
        await metering.close_attempt(second, again)
    finally:
        await second.stop()
    assert not again.journal.exists() and not again.socket.parent.exists()


def test_an_unreadable_journal_is_no_usage(tmp_path: Path) -> None:
    (tmp_path / "j.json").write_text("{not json")
    assert metering.read_journal(tmp_path / "j.json") is None
    assert metering.read_journal(tmp_path / "missing.json") is None


async def test_an_attempt_without_the_providers_key_is_refused_before_anything_starts(tmp_path: Path) -> None:
    ctx = OperatorContext(settings=Settings(state_dir=tmp_path), kube=kube(tmp_path))
    with pytest.raises(InvalidInput, match="OPENAI_API_KEY"):
        await metering.open_attempt(ctx, "openai", "codex", ("s1", "t1", 1), (TaskBudget(), None, {}))
    assert ctx.proxy is None


def kube(tmp_path: Path) -> Kube:
    """A real Kubernetes client for a server that is never contacted here (the context only closes it)."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return Kube.from_kubeconfig(str(path))


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
