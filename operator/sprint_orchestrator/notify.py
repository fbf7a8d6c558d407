"""Notifications: Slack (incoming webhook) and email (SMTP) when a sprint completes or fails and when a
task fails or waits for review.

`message_for(kind, sprint, task, old, new)` decides (pure); senders deliver. The dashboard drives this
from its one watch (`sprintctl dashboard --slack-webhook-file ... --smtp ...`), so the operator stays
lean; `Notifier.on_transition(kind, sprint_body, task_body, old, new)` is the same entry point for any
other caller (e.g. the operator's sprint loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from .board import sprint_id, sprint_title, task_id
from .kaiban.webhook import DEFAULT_BACKOFF, Backoff, Delivery, send_with_retries
from .status import Column

log = logging.getLogger(__name__)

SPRINT_END = {
    "Completed": "completed",
    "Partial": "completed with failed tasks",
    "Failed": "failed",
    "RolledBack": "was rolled back",
}
TASK_ALERT: dict[str, str] = {Column.FAILED: "failed", Column.REVIEW: "is waiting for review"}


@dataclass(frozen=True)
class Notification:
    subject: str
    text: str
    severity: str  # "info" or "warning"
    link: str | None = None


def message_for(
    kind: str,
    sprint: Mapping[str, Any],
    task: Mapping[str, Any] | None,
    new: str,
    base_url: str | None = None,
) -> Notification | None:
    """What to say about a move, or None when it is not worth a notification."""
    sid, title = sprint_id(sprint), sprint_title(sprint)
    link = f"{base_url.rstrip('/')}/board/{sid}" if base_url else None
    if kind == "Sprint" and new in SPRINT_END:
        status = sprint.get("status") or {}
        text = f"Sprint {sid} ({title}) {SPRINT_END[new]}: {status.get('progress') or '?'} tasks done."
        if status.get("message"):
            text += f" {status['message']}"
        return Notification(
            f"Sprint {sid} {SPRINT_END[new]}", text, "info" if new == "Completed" else "warning", link
        )
    if kind == "Task" and task is not None and new in TASK_ALERT:
        status = task.get("status") or {}
        tid = task_id(task)
        text = (
            f"Task {tid} ({(task.get('spec') or {}).get('title') or tid}) of sprint {sid} {TASK_ALERT[new]}."
        )
        detail = status.get("error") or status.get("reason")
        if detail:
            text += f" {detail}"
        if status.get("recoveryAction"):
            text += f" Next: {status['recoveryAction']}."
        return Notification(f"Task {tid} {TASK_ALERT[new]} (sprint {sid})", text, "warning", link)
    return None


class Sender(Protocol):
    async def send(self, note: Notification) -> None: ...


class SlackSender:
    """Slack incoming webhook: POST {"text": ...} (retried on 429 / 5xx)."""

    def __init__(self, url: str, client: httpx.AsyncClient, backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self.url, self.client, self.backoff = url, client, backoff
        self.last: Delivery | None = None

    async def send(self, note: Notification) -> None:
        text = f"*{note.subject}*\n{note.text}" + (f"\n<{note.link}|Open the board>" if note.link else "")
        body = json.dumps({"text": text}).encode()
        headers = {"Content-Type": "application/json"}
        self.last = await send_with_retries(self.client, self.url, body, headers, self.backoff)
        if not self.last.ok:
            log.warning("Slack notification not delivered: %s %s", self.last.status, self.last.error)


class EmailSender:
    """Plain-text email through an SMTP server (no auth: a local relay)."""

    def __init__(self, host: str, port: int, sender: str, recipients: Sequence[str]) -> None:
        self.host, self.port, self.sender, self.recipients = host, port, sender, list(recipients)

    def _send(self, note: Notification) -> None:
        message = EmailMessage()
        message["Subject"] = note.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(note.text + (f"\n\nBoard: {note.link}\n" if note.link else "\n"))
        with smtplib.SMTP(self.host, self.port, timeout=30) as smtp:
            smtp.send_message(message)

    async def send(self, note: Notification) -> None:
        try:
            await asyncio.to_thread(self._send, note)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("email to %s not sent: %s", ", ".join(self.recipients), exc)


class Notifier:
    """A transition listener (see web/hub.py) that fans one notification out to every sender."""

    def __init__(self, senders: Sequence[Sender], base_url: str | None = None) -> None:
        self.senders, self.base_url = list(senders), base_url

    async def on_transition(
        self, kind: str, sprint: Mapping[str, Any], task: Mapping[str, Any] | None, old: str | None, new: str
    ) -> Notification | None:
        if old == new:
            return None
        note = message_for(kind, sprint, task, new, self.base_url)
        if note is not None:
            await asyncio.gather(*(sender.send(note) for sender in self.senders))
        return note

    async def __call__(self, move: Any) -> None:
        await self.on_transition(move.kind, move.sprint, move.task, move.old, move.new)
