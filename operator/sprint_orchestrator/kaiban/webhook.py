"""Signed JSON POSTs for every card move (`kaiban.webhook_url`), with retries and backoff.

Signature: `X-Sprint-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">` with the shared
secret, plus `X-Sprint-Timestamp` (epoch seconds) and a unique `X-Sprint-Delivery` id that stays the
same across the retries of one delivery, so a receiver can verify and deduplicate:

    expected = hmac.new(secret, f"{ts}.".encode() + body, sha256).hexdigest()

Retried: connection errors, timeouts, 408, 429 and 5xx (exponential backoff from 0.5 s, capped at
8 s, at most 5 attempts). Any other 4xx is final: the receiver refused the payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..board import prd_card, sprint_id, task_id
from .state import TASK_STATUS

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Delivery:
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Backoff:
    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** (attempt - 1)))


DEFAULT_BACKOFF = Backoff()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str | None, body: bytes, event: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Sprint-Event": event,
        "X-Sprint-Timestamp": stamp,
        "X-Sprint-Delivery": uuid.uuid4().hex,
    }
    if secret:
        headers["X-Sprint-Signature"] = sign(secret, stamp, body)
    return headers


def card_move(
    sprint: Mapping[str, Any], task: Mapping[str, Any], old: str | None, new: str
) -> dict[str, Any]:
    """The payload of one card move."""
    sid = sprint_id(sprint)
    return {
        "event": "card.moved",
        "board_id": f"sprint-{sid}",
        "sprint_id": sid,
        "task_id": task_id(task),
        "from": old,
        "to": new,
        "kaiban_status": TASK_STATUS.get(new, "TODO"),
        "card": prd_card(task),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


async def send_with_retries(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    backoff: Backoff = DEFAULT_BACKOFF,
    method: str = "POST",
) -> Delivery:
    """Send until it succeeds (2xx), fails for good (other 4xx), or the attempts run out."""
    last = Delivery(False, 0)
    for attempt in range(1, backoff.attempts + 1):
        try:
            response = await client.request(method, url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            last = Delivery(False, attempt, error=f"{type(exc).__name__}: {exc}")
        else:
            if response.is_success:
                return Delivery(True, attempt, response.status_code)
            last = Delivery(False, attempt, response.status_code, response.text[:200])
            if response.status_code not in RETRY_STATUSES:
                return last
        if attempt < backoff.attempts:
            await asyncio.sleep(backoff.delay(attempt))
    return last


class WebhookMirror:
    """A transition listener: POSTs a signed `card.moved` for every Task column change."""

    def __init__(
        self, url: str, secret: str | None, client: httpx.AsyncClient, backoff: Backoff = DEFAULT_BACKOFF
    ) -> None:
        self.url, self.secret, self.client, self.backoff = url, secret, client, backoff
        self.deliveries: deque[Delivery] = deque(maxlen=100)

    async def __call__(self, move: Any) -> None:
        if move.task is None:
            return
        body = json.dumps(card_move(move.sprint, move.task, move.old, move.new)).encode()
        headers = signed_headers(self.secret, body, "card.moved")
        self.deliveries.append(await send_with_retries(self.client, self.url, body, headers, self.backoff))
