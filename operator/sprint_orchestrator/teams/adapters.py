"""Team adapters: from a task and the sprint's team config to the container command.

Each adapter is pure: it returns a `TeamLaunch` (command, non-secret environment, read-only mounts,
the secrets it needs, where its token usage comes from and which model API it reaches through the
metering proxy). No API key ever enters a container: Claude Code, Codex and the Gemini CLI run under
the in-image forwarder (`proxy.forwarder_command`), pointed at it by `proxy.agent_environment()` with a
placeholder key; the operator's proxy puts the real key in.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInput
from ..model import TaskFields, TeamConfig
from ..proxy import agent_environment, codex_provider_args, forwarder_command
from ..runtime import Mount
from . import TeamLaunch, sessions
from .sessions import Resume
from .taskmd import task_id_of

FILES = Path(__file__).resolve().parent / "files"
TEAM_DIR = "/opt/sprint-team"
RECIPES_DIR = "/opt/demo-recipes"
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


def claude_code(task: TaskFields, team: TeamConfig, resume: Resume | None = None) -> TeamLaunch:
    """Claude Code through the metering proxy; its own stream-json report stays the agent's view.
    Its sessions are kept in the workspace (sessions.py); `resume` continues one with the review."""
    start = ["-p", resume.prompt, "--resume", resume.session_id] if resume else ["-p", PROMPT]
    claude = ["claude", *start, "--output-format", "stream-json", "--verbose",
              "--permission-mode", "acceptEdits", *_model(team)]  # fmt: skip
    env = {"SPRINT_TASK_ID": task_id_of(task), **agent_environment(), **sessions.environment("claude-code")}
    return TeamLaunch(tuple(forwarder_command(claude)), env, (), "claude-stream-json", "stdout",
                      proxy="anthropic", session="claude-code")  # fmt: skip


def codex(task: TaskFields, team: TeamConfig, resume: Resume | None = None) -> TeamLaunch:
    """Codex through the metering proxy (it ignores OPENAI_BASE_URL: the provider is set by options).
    `resume`: `codex exec resume ID PROMPT` (which takes the sandbox only as a config value)."""
    common = ["--json", "--skip-git-repo-check"]
    if resume:
        cli = ["codex", "exec", "resume", *common, "-c", 'sandbox_mode="workspace-write"',
               *codex_provider_args(), *_model(team), resume.session_id, resume.prompt]  # fmt: skip
    else:
        cli = ["codex", "exec", *common, "--sandbox", "workspace-write",
               *codex_provider_args(), *_model(team), PROMPT]  # fmt: skip
    env = {"SPRINT_TASK_ID": task_id_of(task), **agent_environment(), **sessions.environment("codex")}
    return TeamLaunch(tuple(forwarder_command(cli)), env, (), "codex-json", "stdout", proxy="openai",
                      session="codex")  # fmt: skip


def gemini(task: TaskFields, team: TeamConfig) -> TeamLaunch:
    """The Gemini CLI through the metering proxy: GOOGLE_GEMINI_BASE_URL with the placeholder key (the
    image's system settings select API-key auth and turn telemetry and update checks off). The task
    workspace is trusted explicitly: in an untrusted folder the CLI drops --yolo back to asking."""
    cli = ["gemini", "-p", PROMPT, "--output-format", "stream-json", "--yolo", *_model(team)]
    env = {"SPRINT_TASK_ID": task_id_of(task), **agent_environment(), "GEMINI_CLI_TRUST_WORKSPACE": "true"}
    return TeamLaunch(tuple(forwarder_command(cli)), env, (), "gemini-stream-json", "stdout", proxy="gemini")


def _model(team: TeamConfig) -> list[str]:
    return ["--model", team.model] if team.model else []
