"""Task teams: what runs inside a task container, and what it leaves behind.

`TEAMS[team.type](task, team)` builds a `TeamLaunch`: the command, its non-secret environment, the
read-only mounts, the secrets it needs and where its token usage is found. `write_task_files` puts
TASK.md (and .sprint/task.json) into the workspace; `collect_results` reads RESULTS.md, the artifacts
and the usage transcript after the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import TaskFields, TeamConfig
    from ..runtime import Mount


@dataclass(frozen=True)
class TeamLaunch:
    """How to start a team. usage_source: "artifact" (/artifacts/usage.jsonl), "stdout" (the container's
    output, in `usage_format`) or "artifact-or-stdout". proxy: the model API ("anthropic", "openai")
    the team reaches through the operator's metering proxy, "" for none; the runner then mounts the
    attempt's socket at `proxy.CONTAINER_SOCKET_DIR` and bills the proxy's usage. session: the CLI
    whose session the runner keeps between attempts (sessions.py), "" for none."""

    command: Sequence[str]
    environment: Mapping[str, str]
    mounts: Sequence[Mount]
    usage_format: str
    usage_source: str
    secrets: Sequence[str] = field(default_factory=tuple)
    proxy: str = ""
    session: str = ""


TeamAdapter = Callable[["TaskFields", "TeamConfig"], TeamLaunch]


def _teams() -> dict[str, TeamAdapter]:
    from . import adapters

    return {
        "demo": adapters.demo,
        "command": adapters.command,
        "claude-code": adapters.claude_code,
        "codex": adapters.codex,
        "gemini": adapters.gemini,
    }


TEAMS: dict[str, TeamAdapter] = _teams()


def resumed(team_type: str) -> Callable[..., TeamLaunch] | None:
    """The adapter that resumes a kept session (`adapter(task, team, resume)`), None when the team's
    CLI has none."""
    from . import adapters

    return {"claude-code": adapters.claude_code, "codex": adapters.codex}.get(team_type)


from .keys import missing_key  # noqa: E402
from .results import TaskResults, collect_results  # noqa: E402
from .taskmd import render_task_md, task_id_of, write_task_files  # noqa: E402

__all__ = [
    "TEAMS",
    "TaskResults",
    "TeamAdapter",
    "TeamLaunch",
    "collect_results",
    "missing_key",
    "render_task_md",
    "resumed",
    "task_id_of",
    "write_task_files",
]
