"""Team adapters: from a task and the sprint's team config to the container command.

Each adapter is pure: it returns a `TeamLaunch` (command, non-secret environment, read-only mounts, the
names of the secrets the team needs, and where its token usage comes from). Agent CLIs get their API
key through `with-secrets.sh`, which exports the files under /run/secrets (mounted by the runtime, never
in the container config) and execs the CLI.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInput
from ..model import TaskFields, TeamConfig
from ..runtime import Mount
from . import TeamLaunch
from .taskmd import task_id_of

FILES = Path(__file__).resolve().parent / "files"
TEAM_DIR = "/opt/sprint-team"
RECIPES_DIR = "/opt/demo-recipes"
WITH_SECRETS = ["sh", f"{TEAM_DIR}/with-secrets.sh"]
PROMPT = (
    "Read TASK.md in the current directory and carry out the task it describes. Change only files in "
    "this directory. When you are done, write RESULTS.md here summarizing what you changed and how you "
    "tested it. Do not run git commands."
)
_TEAM_FILES = Mount(FILES, TEAM_DIR)


def demo(task: TaskFields, team: TeamConfig) -> TeamLaunch:
    """The deterministic demo team: copies the task's recipe files, runs its tests, reports usage."""
    env = {"SPRINT_TASK_ID": task_id_of(task)}
    if team.sleep_seconds:
        env["SPRINT_DEMO_SLEEP"] = str(team.sleep_seconds)
    mounts = [_TEAM_FILES]
    if team.recipes:
        recipes = Path(team.recipes).resolve()
        if not recipes.is_dir():
            raise InvalidInput(
                f"spec.team.recipes: {team.recipes!r} is not a directory on the operator's host"
            )
        mounts.append(Mount(recipes, RECIPES_DIR))
    return TeamLaunch(("python3", f"{TEAM_DIR}/demo_team.py"), env, tuple(mounts), "usage-jsonl", "artifact")


def command(task: TaskFields, team: TeamConfig) -> TeamLaunch:
    """Any program: usage from /artifacts/usage.jsonl if it writes one, else detected from its stdout."""
    if not team.command:
        raise InvalidInput("spec.team.command: required when team type is 'command'")
    env = {"SPRINT_TASK_ID": task_id_of(task)}
    return TeamLaunch(tuple(team.command), env, (_TEAM_FILES,), "auto", "artifact-or-stdout")


def claude_code(task: TaskFields, team: TeamConfig) -> TeamLaunch:
    cmd = [
        *WITH_SECRETS,
        "claude",
        "-p",
        PROMPT,
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        *_model(team),
    ]
    env = {"SPRINT_TASK_ID": task_id_of(task), "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    return TeamLaunch(tuple(cmd), env, (_TEAM_FILES,), "claude-stream-json", "stdout", ("ANTHROPIC_API_KEY",))


def codex(task: TaskFields, team: TeamConfig) -> TeamLaunch:
    cmd = [
        *WITH_SECRETS,
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
        *_model(team),
        PROMPT,
    ]
    env = {"SPRINT_TASK_ID": task_id_of(task)}
    return TeamLaunch(tuple(cmd), env, (_TEAM_FILES,), "codex-json", "stdout", ("OPENAI_API_KEY",))


def gemini(task: TaskFields, team: TeamConfig) -> TeamLaunch:
    cmd = [*WITH_SECRETS, "gemini", "-p", PROMPT, "--output-format", "stream-json", "--yolo", *_model(team)]
    env = {"SPRINT_TASK_ID": task_id_of(task)}
    return TeamLaunch(tuple(cmd), env, (_TEAM_FILES,), "gemini-stream-json", "stdout", ("GEMINI_API_KEY",))


def _model(team: TeamConfig) -> list[str]:
    return ["--model", team.model] if team.model else []
