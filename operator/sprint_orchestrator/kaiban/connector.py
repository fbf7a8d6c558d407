"""The Kaiban.io connector (behind configuration: `kaiban.api_url` + a token).

Kaiban.io's REST paths are not publicly documented (shared/kaiban.md), so this is the wire format we
implement and test against a local stand-in; every call carries `Authorization: Bearer <token>`:

    PUT  {api}/boards/{board}/cards/{card}             card upsert: title, description, column, status
    POST {api}/boards/{board}/cards/{card}/activities  {"type": "cost", ...} once per finished task;
                                                       {"type": "review", ...} when a reviewer requests
                                                       changes; {"type": "approval", ...} on approval

Columns todo/doing/done/blocked, statuses TODO/DOING/DONE/BLOCKED (review and failed both block).
Card ids are "{sprint id}-{task id}"; the board is the configured one, else "sprint-{sprint id}".
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ..board import actual_tokens, prd_card, sprint_id, task_id
from ..status import Column, parse_task_status
from .webhook import DEFAULT_BACKOFF, Backoff, Delivery, send_with_retries

COLUMN: dict[str, tuple[str, str]] = {
    Column.READY: ("todo", "TODO"),
    Column.IN_PROGRESS: ("doing", "DOING"),
    Column.REVIEW: ("blocked", "BLOCKED"),
    Column.COMPLETED: ("done", "DONE"),
    Column.FAILED: ("blocked", "BLOCKED"),
}
FINISHED = (Column.COMPLETED, Column.FAILED, Column.REVIEW)


def card_body(sprint: Mapping[str, Any], task: Mapping[str, Any], column: str) -> dict[str, Any]:
    key, status = COLUMN.get(column, ("todo", "TODO"))
    card = prd_card(task)
    return {
        "title": card["title"],
        "description": card["description"],
        "column": key,
        "status": status,
        "labels": card["labels"],
        "metadata": {"sprint_id": sprint_id(sprint), "task_id": task_id(task), **card["custom_fields"]},
    }


def cost_activity(task: Mapping[str, Any]) -> dict[str, Any]:
    tokens = parse_task_status(task.get("status")).tokens
    cost = tokens.cost_usd if tokens else None
    return {
        "type": "cost",
        "task_id": task_id(task),
        "tokens": actual_tokens(task),
        "estimated_tokens": int((task.get("spec") or {}).get("estimatedTokens") or 0),
        "cost_usd": round(cost, 4) if cost is not None else None,
        "by_model": (tokens.by_model or {}) if tokens else {},
    }


def review_activity(task: Mapping[str, Any]) -> dict[str, Any] | None:
    """The latest request for changes (who, on which attempt and commit, the message and the anchored
    comments) when it is about the attempt in hand (not an earlier one, as on a plain retry), else None.
    `id` makes a repeated delivery recognisable."""
    status = parse_task_status(task.get("status"))
    if not status.reviews or status.reviews[-1].attempt != (status.attempt or 0):
        return None
    review = status.reviews[-1]
    return {
        "type": "review",
        "id": f"{task_id(task)}-review-{len(status.reviews)}",
        "task_id": task_id(task),
        "by": review.by,
        "attempt": review.attempt,
        "commit": review.commit,
        "message": review.message or "",
        "comments": [c.model_dump(exclude_none=True) for c in review.comments or []],
        "time": review.time,
    }


def approval_activity(task: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reviewer's approval of an exact commit, or None when the task was not approved."""
    status = parse_task_status(task.get("status"))
    if not status.approved_commit:
        return None
    return {
        "type": "approval",
        "id": f"{task_id(task)}-approval-{status.approved_commit}",
        "task_id": task_id(task),
        "commit": status.approved_commit,
        "attempt": status.attempt,
    }


class KaibanConnector:
    """A transition listener mirroring Task column changes into a Kaiban.io board."""

    def __init__(
        self,
        api_url: str,
        token: str,
        client: httpx.AsyncClient,
        board_id: str | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.api = api_url.rstrip("/")
        self.token, self.client, self.board_id, self.backoff = token, client, board_id, backoff
        self.deliveries: deque[Delivery] = deque(maxlen=100)

    def _card_url(self, sprint: Mapping[str, Any], task: Mapping[str, Any]) -> str:
        board = self.board_id or f"sprint-{sprint_id(sprint)}"
        card = f"{sprint_id(sprint)}-{task_id(task)}"
        return f"{self.api}/boards/{quote(board, safe='')}/cards/{quote(card, safe='')}"

    async def _send(self, method: str, url: str, payload: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        body = json.dumps(payload).encode()
        self.deliveries.append(await send_with_retries(self.client, url, body, headers, self.backoff, method))

    async def __call__(self, move: Any) -> None:
        if move.task is None:
            return
        url = self._card_url(move.sprint, move.task)
        await self._send("PUT", url, card_body(move.sprint, move.task, move.new))
        if move.old == Column.REVIEW and move.new == Column.READY:  # sent back: the review is why
            review = review_activity(move.task)
            if review is not None:
                await self._send("POST", f"{url}/activities", review)
        elif move.old == Column.REVIEW and move.new != Column.FAILED:  # approved: merging the commit
            approval = approval_activity(move.task)
            if approval is not None:
                await self._send("POST", f"{url}/activities", approval)
        if move.new in FINISHED:
            await self._send("POST", f"{url}/activities", cost_activity(move.task))
