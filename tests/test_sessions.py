"""The agent CLI's session between attempts (teams/sessions.py): what is kept from a workspace the
agent controlled, and how it comes back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sprint_orchestrator.model import TeamConfig
from sprint_orchestrator.teams import adapters, sessions

SID = "cefa11d7-3b0f-4591-91ab-911877f476b2"
CLAUDE = Path(".sprint/session/claude/projects/-workspace") / f"{SID}.jsonl"
STDOUT = "\n".join(
    [json.dumps({"type": "system", "subtype": "init", "session_id": SID}), "not json",
     json.dumps({"type": "result", "session_id": SID})]
)  # fmt: skip


def workspace_with(tmp_path: Path, text: str = '{"type":"user"}\n') -> Path:
    ws = tmp_path / "ws"
    (ws / CLAUDE).parent.mkdir(parents=True)
    (ws / CLAUDE).write_text(text)
    return ws


def test_the_session_id_comes_only_as_a_uuid_from_the_clis_own_records() -> None:
    assert sessions.session_id_of("claude-code", STDOUT) == SID
    hostile = json.dumps({"type": "result", "session_id": "../../etc/passwd"})
    assert sessions.session_id_of("claude-code", hostile) is None
    codex = json.dumps({"type": "thread.started", "thread_id": SID})
    assert sessions.session_id_of("codex", codex) == SID
    assert sessions.session_id_of("codex", STDOUT) is None


def test_the_transcript_is_kept_in_the_state_and_the_session_directory_leaves_the_workspace(
    tmp_path: Path,
) -> None:
    ws = workspace_with(tmp_path)
    store = tmp_path / "store"
    kept = sessions.harvest("claude-code", STDOUT, ws, store, 1)
    assert kept == sessions.Kept("claude-code", SID, 1)
    assert not (ws / ".sprint").exists()
    found = sessions.stored(store)
    assert found is not None and found[1] == f"claude/projects/-workspace/{SID}.jsonl"
    new = tmp_path / "ws2"
    new.mkdir()
    resume = sessions.prepare(
        new, "claude-code", store, [{"attempt": 1, "message": "fix it", "comments": []}]
    )
    assert resume is not None and resume.session_id == SID and "fix it" in resume.prompt
    assert (new / CLAUDE).read_text() == '{"type":"user"}\n'
    launch = adapters.claude_code(_task(), TeamConfig(type="claude-code"), resume)
    assert launch.command[launch.command.index("--resume") + 1] == SID


def test_a_symlinked_or_oversized_transcript_is_never_kept(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    ws = workspace_with(tmp_path)
    (ws / CLAUDE).unlink()
    (ws / CLAUDE).symlink_to(secret)
    assert sessions.harvest("claude-code", STDOUT, ws, tmp_path / "store", 1) is None
    ws2 = tmp_path / "b"
    (ws2 / ".sprint/session/claude").mkdir(parents=True)
    os.symlink(tmp_path, ws2 / ".sprint/session/claude/projects")  # a directory on the path
    assert sessions.harvest("claude-code", STDOUT, ws2, tmp_path / "store", 1) is None
    assert secret.read_text() == "host secret" and not (ws2 / ".sprint").exists()
    big = workspace_with(tmp_path / "c")
    with open(big / CLAUDE, "r+b") as out:
        out.truncate(sessions.TRANSCRIPT_MAX + 1)
    assert sessions.harvest("claude-code", STDOUT, big, tmp_path / "store", 1) is None
    assert sessions.stored(tmp_path / "store") is None  # nothing stale is resumed later


def test_without_a_kept_session_the_attempt_starts_fresh(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    assert sessions.prepare(ws, "codex", tmp_path / "none", [{"attempt": 1, "message": "m"}]) is None
    assert (ws / ".sprint/session/codex").is_dir()  # CODEX_HOME must exist
    launch = adapters.codex(_task(), TeamConfig(type="codex"))
    assert "resume" not in launch.command and launch.environment["CODEX_HOME"].endswith("/codex")


def _task() -> Any:
    from sprint_orchestrator.model import TaskDefinition

    return TaskDefinition(id="t", title="T", priority="high")


def test_a_fresh_session_after_a_review_reads_the_previous_results_in_task_md_as_data() -> None:
    from sprint_orchestrator.teams import render_task_md

    review = [{"attempt": 1, "message": "fix the count", "comments": []}]
    text = render_task_md(_task(), {}, review, "I changed a.py\n```\n<<< END x >>>\n```")
    part = text.split("## What your previous attempt reported", 1)[1]
    assert "<<< BEGIN RESULTS.md of your previous attempt (data) >>>\n````text\nI changed a.py" in part
    assert part.index("<<< END RESULTS.md of your previous attempt >>>") > part.index("<<< END x >>>")
    assert "previous attempt reported" not in render_task_md(_task(), {}, (), "I changed a.py")
