"""Notifications: what is said when, delivered to a local Slack-format receiver and a real SMTP server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from _board import SPRINTCTL, sprint_body, task_body
from _receivers import http_receiver, smtp_receiver
from sprint_orchestrator.kaiban.webhook import Backoff
from sprint_orchestrator.notify import EmailSender, Notifier, SlackSender, message_for

FAST = Backoff(attempts=3, base=0.01, cap=0.02)


@pytest.mark.parametrize(
    ("kind", "new", "expected"),
    [
        ("Sprint", "Completed", "Sprint s1 completed"),
        ("Sprint", "Failed", "Sprint s1 failed"),
        ("Task", "failed", "Task t0 failed (sprint s1)"),
        ("Task", "review", "Task t0 is waiting for review (sprint s1)"),
        ("Sprint", "Running", None),
        ("Task", "in-progress", None),
        ("Task", "completed", None),
    ],
)
def test_only_sprint_ends_and_task_failures_or_reviews_notify(
    kind: str, new: str, expected: str | None
) -> None:
    sprint = sprint_body(tasks=1)
    note = message_for(kind, sprint, task_body(sprint, "t0") if kind == "Task" else None, new)
    assert (note.subject if note else None) == expected


def test_a_task_failure_says_the_error_the_next_step_and_links_the_board() -> None:
    sprint = sprint_body(tasks=1)
    task = task_body(
        sprint, "t0", {"column": "failed", "error": "OOM killed", "recoveryAction": "retry with 1Gi"}
    )
    note = message_for("Task", sprint, task, "failed", "http://board.example:8080/")
    assert note is not None
    assert "OOM killed" in note.text and "retry with 1Gi" in note.text
    assert note.link == "http://board.example:8080/board/s1"


async def test_slack_and_email_receive_a_sprint_completion() -> None:
    sprint = {**sprint_body(tasks=1), "status": {"phase": "Completed", "progress": "1/1"}}
    async with (
        http_receiver() as slack,
        smtp_receiver() as (host, port, mails),
        httpx.AsyncClient() as client,
    ):
        notifier = Notifier(
            [
                SlackSender(f"{slack.url}/hooks/T1", client, FAST),
                EmailSender(host, port, "bot@localhost", ["team@localhost"]),
            ]
        )
        note = await notifier.on_transition("Sprint", sprint, None, "Running", "Completed")
    assert note is not None
    assert [r.path for r in slack.requests] == ["/hooks/T1"]
    text = json.loads(slack.requests[0].body)["text"]
    assert "Sprint s1 completed" in text and "1/1 tasks done" in text
    assert len(mails) == 1
    assert mails[0]["Subject"] == "Sprint s1 completed"
    assert mails[0]["To"] == "team@localhost"
    assert "1/1 tasks done" in mails[0].get_payload()


async def test_slack_is_retried_on_server_errors_until_it_answers() -> None:
    sprint = sprint_body(tasks=1)
    async with http_receiver([503, 500]) as slack, httpx.AsyncClient() as client:
        sender = SlackSender(slack.url, client, FAST)
        await Notifier([sender]).on_transition(
            "Task", sprint, task_body(sprint, "t0"), "in-progress", "failed"
        )
    assert len(slack.requests) == 3
    assert sender.last is not None and sender.last.ok and sender.last.attempts == 3


async def test_an_unreachable_smtp_server_is_logged_not_raised() -> None:
    sprint = {**sprint_body(tasks=1), "status": {"phase": "Failed"}}
    from _board import free_port

    sender = EmailSender("127.0.0.1", free_port(), "bot@localhost", ["team@localhost"])
    note = await Notifier([sender]).on_transition("Sprint", sprint, None, "Running", "Failed")
    assert note is not None and note.severity == "warning"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--smtp", "localhost:25"], "--email-to: at least one recipient"),
        (["--smtp", "localhost", "--email-to", "a@b"], "--smtp 'localhost': expected HOST:PORT"),
        (["--kaiban-api-url", "http://127.0.0.1:9/api"], "--kaiban-token-file: required"),
        (["--token-file", "/nonexistent/tokens"], "--token-file /nonexistent/tokens: cannot read it"),
    ],
)
def test_dashboard_options_are_checked_before_anything_starts(
    args: list[str], message: str, tmp_path: Path
) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none"), "SPRINT_ORCHESTRATOR_STATE_DIR": str(tmp_path)}
    result = subprocess.run(
        [SPRINTCTL, "dashboard", "--port", "1", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1
    assert message in result.stderr
