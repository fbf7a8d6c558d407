"""WebSocket push: the board of a sprint on every change seen by the shared watch, and task logs.

/ws/sprints/{id}: a first message with the whole board, then one per burst of changes:
  {"type": "board", "sprint": NAME, "changed": [task ids], "sent_at": epoch s, "board": {...},
   "kaiban": {...}}
/ws/tasks/{id}/logs: the task's log file, streamed as text frames while it grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect

from .context import Dashboard, find_task
from .files import LOG_CHUNK, log_file, read_from
from .hub import Subscriber

router = APIRouter()
SYNC_SECONDS = 10.0
LOG_POLL_SECONDS = 0.25


def _dash(socket: WebSocket) -> Dashboard:
    found: Dashboard = socket.app.state.dashboard
    return found


def message(dash: Dashboard, name: str, changed: set[str]) -> dict[str, Any]:
    if name not in dash.hub.sprints:
        return {"type": "deleted", "sprint": name, "sent_at": time.time()}
    page, kaiban = dash.hub.snapshot(name)
    return {
        "type": "board",
        "sprint": name,
        "changed": sorted(c for c in changed if c),
        "sent_at": time.time(),
        "board": page,
        "kaiban": kaiban,
    }


def cross_origin(socket: WebSocket) -> bool:
    """A browser always sends Origin on a WebSocket: one from another site must not read our pushes
    (cross-site WebSocket hijacking). Clients that send none (sprintctl, curl) are not browsers."""
    origin = socket.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != (socket.headers.get("host") or "").lower()


async def _accept(socket: WebSocket) -> bool:
    if cross_origin(socket):
        await socket.close(code=1008, reason="cross-origin WebSocket refused")
        return False
    await socket.accept()
    return True


@router.websocket("/ws/sprints/{sprint_id}")
async def sprint_updates(socket: WebSocket, sprint_id: str) -> None:
    dash = _dash(socket)
    if not await _accept(socket):
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(dash.hub.synced.wait(), SYNC_SECONDS)
    sprint = dash.hub.sprint(sprint_id)
    if sprint is None:
        await socket.close(code=4404, reason=f"sprint {sprint_id!r} not found")
        return
    sub = dash.hub.subscribe(sprint["metadata"]["name"])
    try:
        await _push(socket, dash, sub)
    except WebSocketDisconnect:
        pass
    finally:
        dash.hub.unsubscribe(sub)


async def _push(socket: WebSocket, dash: Dashboard, sub: Subscriber) -> None:
    await socket.send_json(message(dash, sub.sprint, set()))
    closed = asyncio.ensure_future(_until_closed(socket))
    try:
        while not closed.done():
            woken = asyncio.ensure_future(sub.wake.wait())
            await asyncio.wait({woken, closed}, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            if closed.done():
                return
            sub.wake.clear()
            changed, sub.changed = sub.changed, set()
            await socket.send_json(message(dash, sub.sprint, changed))
    finally:
        closed.cancel()


async def _until_closed(socket: WebSocket) -> None:
    """Read (and ignore) client frames until the client goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_text()


@router.websocket("/ws/tasks/{task_id}/logs")
async def task_logs(socket: WebSocket, task_id: str) -> None:
    dash = _dash(socket)
    if not await _accept(socket):
        return
    closed = asyncio.ensure_future(_until_closed(socket))
    try:
        await _stream_log(socket, dash, task_id, closed)
    except (WebSocketDisconnect, HTTPException):
        pass
    finally:
        closed.cancel()


async def _stream_log(socket: WebSocket, dash: Dashboard, task_id: str, closed: asyncio.Future[None]) -> None:
    path, offset = None, 0
    while not closed.done():
        current = log_file(dash, find_task(dash, task_id))
        if current != path:  # a new attempt writes a new log
            path, offset = current, 0
        if path is not None:
            text, offset = await asyncio.to_thread(read_from, path, offset, LOG_CHUNK)
            if text:
                await socket.send_text(text)
                continue
        await asyncio.sleep(LOG_POLL_SECONDS)
