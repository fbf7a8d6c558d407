"""Task token usage: read it from the team's output, project it into status, check budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import usage
from ..errors import InvalidInput


def read_live(artifacts: Path, fmt: str) -> Any:
    """The usage so far, from the team's usage file while it is being written; None if unreadable."""
    path = artifacts / "usage.jsonl" if fmt == "usage-jsonl" else artifacts / "agent-output.jsonl"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
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
    spec: Any, definition: Any, used: Any, sprint_used_by_others: int, sprint_budget: int | None
) -> str | None:
    """A reason to stop the task now: over estimatedTokens x tokenBudgetFactor, or the sprint over
    its tokenBudget counting this task's usage so far; None to let it run."""
    total = used.total_tokens
    verdict = usage.budget_verdict(
        total,
        definition.estimated_tokens,
        spec.policy.token_budget_factor,
        None if total is None else sprint_used_by_others + total,
        sprint_budget,
    )
    return f"token budget exceeded: {verdict.reason}" if verdict.exceeded else None
