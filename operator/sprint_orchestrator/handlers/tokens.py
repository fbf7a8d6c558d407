"""A task's token accounting, in one place: what it may spend, what it spent, and its status block.

The usage comes from the metering proxy's count when the attempt went through it (`metering.py` runs
the attempt's proxy access and hands its count here), else from the team's own output (`read_live`
while it runs, `final_usage` after). `status_tokens` projects either into the Task status `tokens`
block; `task_budget`, `spent_outside_proxy` and `budget_verdict` decide what the task and the sprint may
still spend. Pure functions: no I/O beyond reading the team's usage file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import usage
from ..errors import InvalidInput
from ..proxy import TaskBudget, TaskKey
from ..teams.results import USAGE_MAX
from ..teams.safefiles import TooLarge, read_capped
from ..usage import TokenUsage


def read_live(artifacts: Path, fmt: str) -> Any:
    """The usage so far, from the team's usage file while it is being written; None if unreadable."""
    path = artifacts / "usage.jsonl" if fmt == "usage-jsonl" else artifacts / "agent-output.jsonl"
    try:  # the team's file: never a FIFO that blocks the event loop, a symlink, or too large to load
        data = read_capped(path, USAGE_MAX)
    except (OSError, TooLarge):
        return None
    if data is None:
        return None
    text = data.decode(errors="replace")
    complete = text[: text.rfind("\n") + 1]  # ignore a line still being written
    if not complete.strip():
        return None
    try:
        return usage.parse(complete, fmt)
    except InvalidInput:
        return None


def final_usage(results: Any) -> Any:
    if not getattr(results, "usage_text", None):
        return None
    try:
        return usage.parse(results.usage_text, results.usage_format or "auto")
    except InvalidInput:
        return None


def task_tokens(used: Any, estimated: int | None, partial: bool | None) -> dict[str, Any]:
    """The Task status `tokens` block. Missing usage stays null (never 0) and is marked partial."""
    est = int(estimated or 0)
    if used is None:
        return {"estimated": est, "actual": None, "partial": True, "source": "none"}
    total = used.total_tokens
    out: dict[str, Any] = {
        "estimated": est,
        "actual": total,
        "input": used.input_tokens,
        "output": used.output_tokens,
        "cacheRead": used.cache_read_tokens,
        "cacheCreation": used.cache_creation_tokens,
        "byCategory": {k: v.total_tokens for k, v in used.by_category.items() if v.total_tokens is not None},
        "byModel": {k: v.total_tokens for k, v in used.by_model.items() if v.total_tokens is not None},
        "partial": bool(used.partial) if partial is None else partial,
        "source": "agent",
        "efficiency": round(total / est, 4) if (total is not None and est) else None,
    }
    if used.cost_usd is not None:
        out["costUsd"] = float(used.cost_usd)
    return {k: v for k, v in out.items() if v is not None or k == "actual"}


def budget_verdict(
    spec: Any,
    definition: Any,
    used: Any,
    sprint_used_by_others: int,
    sprint_budget: int | None,
    used_before: int = 0,
) -> str | None:
    """A reason to stop the task now: over estimatedTokens x tokenBudgetFactor (its earlier attempts'
    `used_before` included), or the sprint over its tokenBudget counting this task's usage so far; None
    to let it run."""
    total = used.total_tokens
    verdict = usage.budget_verdict(
        None if total is None else total + used_before,
        definition.estimated_tokens,
        spec.policy.token_budget_factor,
        None if total is None else sprint_used_by_others + total,
        sprint_budget,
    )
    return f"token budget exceeded: {verdict.reason}" if verdict.exceeded else None


def task_budget(estimated: int | None, factor: float, used_before: int = 0) -> TaskBudget:
    """The attempt's budget: estimate x factor tokens for the task over all its attempts (`used_before`:
    what the earlier ones spent), or no task budget when nothing was estimated."""
    return TaskBudget(tokens=int(estimated * factor) if estimated else None, used_before=used_before)


def by_attempt_after(status: Mapping[str, Any]) -> dict[str, int]:
    """`tokensByAttempt` for the task's next attempt: the earlier ones' and the last one's total."""
    earlier = {k: int(v) for k, v in (status.get("tokensByAttempt") or {}).items() if isinstance(v, int)}
    attempt = int(status.get("attempt") or 0)
    actual = (status.get("tokens") or {}).get("actual")
    if attempt and isinstance(actual, int):
        earlier[str(attempt)] = actual
    return earlier


def earlier_attempts(status: Mapping[str, Any]) -> int:
    """What the task's earlier attempts spent (they count against this attempt's budgets)."""
    return sum(int(v) for v in (status.get("tokensByAttempt") or {}).values() if isinstance(v, int))


def known_usage(tasks: Iterable[Mapping[str, Any]], sprint_key: str) -> dict[TaskKey, int]:
    """What every attempt of the sprint's tasks spent as their statuses say, for the proxy's sprint
    book: it counts each attempt once, at the larger of this and its own count."""
    known: dict[TaskKey, int] = {}
    for task in tasks:
        task_id = str(task.get("spec", {}).get("taskId") or "")
        status = task.get("status") or {}
        for attempt, value in (status.get("tokensByAttempt") or {}).items():
            if isinstance(value, int) and str(attempt).isdigit():
                known[TaskKey(sprint_key, task_id, int(attempt))] = value
        actual = (status.get("tokens") or {}).get("actual")
        if isinstance(actual, int) and int(status.get("attempt") or 0):
            known[TaskKey(sprint_key, task_id, int(status["attempt"]))] = actual
    return known


def proxy_tokens(
    metered: TokenUsage,
    agent: TokenUsage | None,
    estimated: int | None,
    partial: bool | None,
    earlier: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Task status `tokens` block from the proxy's count, with the CLI's own total beside it.
    `earlier`: the status `session` block of the attempt whose session this one resumed, when the CLI
    reports the whole session (Claude Code's `modelUsage` and `total_cost_usd` do): its figures are
    taken off, so each attempt shows what the CLI says it spent in that attempt."""
    out = task_tokens(metered, estimated, partial)
    out["source"] = "proxy"
    out.pop("costUsd", None)  # the proxy knows no prices: a cost is only ever the CLI's own figure
    reported = agent.total_tokens if agent is not None else None
    before = earlier or {}
    if reported is not None:
        out["agentReported"] = max(0, int(reported) - int(before.get("reportedTokens") or 0))
    if agent is not None and agent.cost_usd is not None:
        cost = float(agent.cost_usd) - float(before.get("reportedCostUsd") or 0.0)
        out["costUsd"] = round(max(0.0, cost), 8)
    return out


def session_report(session: Mapping[str, Any], agent: TokenUsage | None) -> dict[str, Any]:
    """The status `session` block with the CLI's whole-session figures at this attempt's end."""
    if agent is None or agent.total_tokens is None:
        return dict(session)
    cost = {"reportedCostUsd": float(agent.cost_usd)} if agent.cost_usd is not None else {}
    return {**session, "reportedTokens": int(agent.total_tokens), **cost}


def status_tokens(
    metered: TokenUsage | None,
    agent: TokenUsage | None,
    estimated: int | None,
    partial: bool | None,
    earlier: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `tokens` block: the proxy's count when the attempt is metered, else the agent's own report.
    While running (`partial=True`) a metered block carries no agentReported: the CLI reports at its end."""
    if metered is None:
        return task_tokens(agent, estimated, partial)
    return proxy_tokens(metered, None if partial else agent, estimated, partial, earlier)
