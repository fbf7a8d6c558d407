"""Kaiban mirroring: signed webhook posts with retries, the Kaiban.io connector's wire format (against a
local stand-in), and the hub turning watch events into transitions for them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import httpx

from _board import sprint_body, task_body
from _receivers import http_receiver
from sprint_orchestrator.kaiban.connector import KaibanConnector
from sprint_orchestrator.kaiban.webhook import Backoff, WebhookMirror
from sprint_orchestrator.web.hub import Hub, Transition

FAST = Backoff(attempts=4, base=0.01, cap=0.02)
SECRET = "s3cret"


def move(new: str, old: str | None = "ready", status: dict | None = None) -> Transition:
    sprint = sprint_body("s1", tasks=1)
    return Transition("Task", sprint, task_body(sprint, "t0", {"column": new, **(status or {})}), old, new)


async def test_webhook_posts_a_card_move_signed_with_hmac_sha256() -> None:
    async with http_receiver() as hook, httpx.AsyncClient() as client:
        await WebhookMirror(f"{hook.url}/moves", SECRET, client, FAST)(move("in-progress"))
    request = hook.requests[0]
    payload = json.loads(request.body)
    assert (payload["event"], payload["task_id"], payload["from"], payload["to"]) == (
        "card.moved",
        "t0",
        "ready",
        "in-progress",
    )
    assert payload["kaiban_status"] == "DOING" and payload["board_id"] == "sprint-s1"
    stamp = request.headers["X-Sprint-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Sprint-Signature"] == f"sha256={expected}"


async def test_webhook_retries_5xx_and_429_with_the_same_delivery_id() -> None:
    async with http_receiver([500, 429, 502]) as hook, httpx.AsyncClient() as client:
        mirror = WebhookMirror(hook.url, SECRET, client, FAST)
        await mirror(move("failed"))
    assert len(hook.requests) == 4
    assert len({r.headers["X-Sprint-Delivery"] for r in hook.requests}) == 1
    assert mirror.deliveries[-1].ok and mirror.deliveries[-1].attempts == 4


async def test_webhook_gives_up_at_once_on_a_4xx_and_after_the_attempts_on_5xx() -> None:
    async with http_receiver([400]) as hook, httpx.AsyncClient() as client:
        mirror = WebhookMirror(hook.url, SECRET, client, FAST)
        await mirror(move("failed"))
    assert len(hook.requests) == 1 and not mirror.deliveries[-1].ok
    async with http_receiver([503] * 10) as hook, httpx.AsyncClient() as client:
        mirror = WebhookMirror(hook.url, SECRET, client, FAST)
        await mirror(move("failed"))
    assert len(hook.requests) == FAST.attempts and mirror.deliveries[-1].status == 503


async def test_connector_upserts_the_card_and_posts_a_cost_activity_when_finished() -> None:
    async with http_receiver() as kaiban, httpx.AsyncClient() as client:
        connector = KaibanConnector(f"{kaiban.url}/api/v1", "tok-1", client, backoff=FAST)
        await connector(move("in-progress"))
        await connector(move("completed", "in-progress", {"tokens": {"actual": 900, "costUsd": 0.01234}}))
    calls = [(r.method, r.path) for r in kaiban.requests]
    assert calls == [
        ("PUT", "/api/v1/boards/sprint-s1/cards/s1-t0"),
        ("PUT", "/api/v1/boards/sprint-s1/cards/s1-t0"),
        ("POST", "/api/v1/boards/sprint-s1/cards/s1-t0/activities"),
    ]
    assert all(r.headers["Authorization"] == "Bearer tok-1" for r in kaiban.requests)
    first, done, cost = (json.loads(r.body) for r in kaiban.requests)
    assert (first["column"], first["status"]) == ("doing", "DOING")
    assert (done["column"], done["status"]) == ("done", "DONE")
    assert cost == {
        "type": "cost",
        "task_id": "t0",
        "tokens": 900,
        "estimated_tokens": 1000,
        "cost_usd": 0.0123,
        "by_model": {},
    }


async def test_hub_reports_column_moves_only_after_the_first_sync() -> None:
    hub = Hub("ns")
    seen: list[Transition] = []

    async def listener(moved: Transition) -> None:
        seen.append(moved)

    hub.listeners.append(listener)
    sprint = sprint_body("s1", tasks=1)
    hub.reset("Sprint", [sprint])
    hub.reset("Task", [task_body(sprint, "t0", {"column": "failed"})])
    hub.synced.set()
    hub.apply("Task", "MODIFIED", task_body(sprint, "t0", {"column": "failed", "attempt": 2}))
    hub.apply("Task", "MODIFIED", task_body(sprint, "t0", {"column": "in-progress"}))
    hub.apply("Sprint", "MODIFIED", {**sprint, "status": {"phase": "Completed"}})
    await asyncio.gather(*hub._pending)  # every listener call apply() scheduled, to its end
    assert [(m.kind, m.old, m.new) for m in seen] == [
        ("Task", "failed", "in-progress"),
        ("Sprint", None, "Completed"),
    ]


def test_hub_computes_a_sprint_snapshot_once_per_change_for_all_clients() -> None:
    hub = Hub("ns")
    sprint = sprint_body("s1", tasks=1)
    hub.reset("Sprint", [sprint])
    hub.reset("Task", [task_body(sprint, "t0")])
    first = hub.snapshot("s1")
    assert hub.snapshot("s1")[0] is first[0]
    hub.apply("Task", "MODIFIED", task_body(sprint, "t0", {"column": "completed"}))
    page, kaiban = hub.snapshot("s1")
    assert page is not first[0]
    assert page["cards"][0]["column"] == "completed" and kaiban["tasks"][0]["status"] == "DONE"


async def test_connector_posts_the_reviewers_request_for_changes_and_the_approval_as_activities() -> None:
    """Sent back from review with a review of the attempt in hand: a `review` activity with the
    comments; a plain retry (the last review is about an earlier attempt): none; approved: the commit."""
    review = {
        "attempt": 2, "by": "ana", "time": "2026-12-06T10:00:00Z", "commit": "c0ffee1",
        "message": "Handle empty input.",
        "comments": [{"body": "off by one", "path": "textstats/words.py", "line": 3}, {"body": "more tests"}],
    }  # fmt: skip
    async with http_receiver() as kaiban, httpx.AsyncClient() as client:
        connector = KaibanConnector(f"{kaiban.url}/api/v1", "tok-1", client, backoff=FAST)
        await connector(move("ready", "review", {"attempt": 2, "reviews": [review]}))
        await connector(move("ready", "review", {"attempt": 3, "reviews": [review]}))
        await connector(move("in-progress", "review", {"attempt": 3, "approvedCommit": "beef042"}))
        await connector(move("in-progress", "ready", {"attempt": 3, "reviews": [review]}))
    activities = [json.loads(r.body) for r in kaiban.requests if r.path.endswith("/activities")]
    assert activities == [
        {
            "type": "review", "id": "t0-review-1", "task_id": "t0", "by": "ana", "attempt": 2,
            "commit": "c0ffee1", "message": "Handle empty input.", "time": "2026-12-06T10:00:00Z",
            "comments": review["comments"],
        },
        {"type": "approval", "id": "t0-approval-beef042", "task_id": "t0", "commit": "beef042", "attempt": 3},
    ]  # fmt: skip
    assert len([r for r in kaiban.requests if r.method == "PUT"]) == 4
