"""The agent CLI's session around one attempt (teams/sessions.py does the file work): before, its
directory in the workspace and, after a review, the launch that resumes the kept session; after, the
transcript taken into the operator's state before the commit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..teams import resumed, sessions


async def prepare(runner: Any, launch: Any, workspace: Path, reviews: list[Any], attempt: int) -> Any:
    """A CLI that keeps sessions: its directory in the workspace and, when changes were requested
    and the previous attempt's transcript was kept, the launch that resumes it with the review."""
    store = runner.ctx.sessions_for(runner.rec.namespace, runner.rec.name, runner.task_id)
    runner.resume = await asyncio.to_thread(sessions.prepare, workspace, launch.session, store, reviews)
    adapter = resumed(runner.team_type)
    if runner.resume is None or adapter is None:
        if reviews:
            why = f"task {runner.task_id}: attempt {attempt} starts a fresh {launch.session} session"
            runner.rec.event(runner.body, "SessionNotResumed", f"{why} (no session of it was kept)")
        return launch
    runner.rec.event(
        runner.body,
        "SessionResumed",
        f"task {runner.task_id}: attempt {attempt} resumes the {launch.session} session "
        f"{runner.resume.session_id} of attempt {runner.resume.previous_attempt} with the review",
    )
    return adapter(runner.definition, runner.spec.team, runner.resume)


async def keep(runner: Any, launch: Any, results: Any, workspace: Path) -> dict[str, Any] | None:
    """Take the CLI's transcript out of the workspace into the operator's state (before the commit)."""
    if not launch.session:
        return None
    stdout = results.usage_text if results.usage_format != "usage-jsonl" else None
    store = runner.ctx.sessions_for(runner.rec.namespace, runner.rec.name, runner.task_id)
    attempt = int(runner.status.get("attempt") or 1)
    kept = await asyncio.to_thread(sessions.harvest, launch.session, stdout, workspace, store, attempt)
    if kept is None:
        return None
    return {**kept.dump(), "resumedFrom": runner.resume.previous_attempt if runner.resume else None}


def resumed_report(runner: Any, launch: Any) -> dict[str, Any] | None:
    """The earlier attempt's `session` block when this attempt resumed it and the CLI reports the whole
    session, so its figures come off this attempt's (tokens.proxy_tokens); else None."""
    resume = runner.resume
    earlier = runner.status.get("session") or {}
    if resume is None or launch.session not in sessions.WHOLE_SESSION_REPORTS:
        return None
    if earlier.get("id") != resume.session_id or earlier.get("attempt") != resume.previous_attempt:
        return None
    return dict(earlier)
