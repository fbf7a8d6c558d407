"""The Kaiban.io connector (behind configuration: `kaiban.api_url` + a token).

Kaiban.io's REST paths are not publicly documented (shared/kaiban.md), so this is the wire format we
implement and test against a local stand-in; every call carries `Authorization: Bearer <token>`:

    PUT  {api}/boards/{board}/cards/{card}             card upsert: title, description, column, status
    POST {api}/boards/{board}/cards/{card}/activities  {"type": "cost", ...} once per finished task

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
        if move.new in FINISHED:
            await self._send("POST", f"{url}/activities", cost_activity(move.task))
