"""The dashboard's one view of the cluster: a cache fed by ONE watch per kind, shared by every client.

`Hub.apply(kind, type, obj)` is called on the event loop for each watch event. It updates the cache,
works out which sprint changed and, for a Task whose board column moved, tells the transition
listeners (notifications, Kaiban mirroring) `Transition(kind, sprint, task, old, new)`. Subscribers
(WebSocket clients) of that sprint are woken; they read the projection when they send, so a burst of
events costs one message per client, never a queue of stale boards.

The cache is the watch's copy of `.status`, never a second source of truth: it is rebuilt from a list
whenever the watch restarts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import LABEL_SPRINT, board
from ..kaiban.state import team_state
from ..manifest import dns_name

log = logging.getLogger(__name__)

Body = dict[str, Any]
SPRINT, TASK = "Sprint", "Task"


@dataclass(frozen=True)
class Transition:
    """A board move: a Task changed column (task set) or a Sprint changed phase (task None)."""

    kind: str
    sprint: Mapping[str, Any]
    task: Mapping[str, Any] | None
    old: str | None
    new: str


Listener = Callable[[Transition], Awaitable[None]]


@dataclass(eq=False)  # compared (and hashed) by identity: one per connection
class Subscriber:
    sprint: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    changed: set[str] = field(default_factory=set)


def sprint_of_task(task: Mapping[str, Any]) -> str:
    labels = task["metadata"].get("labels") or {}
    return str(labels.get(LABEL_SPRINT) or (task.get("spec") or {}).get("sprintRef") or "")


class Hub:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.sprints: dict[str, Body] = {}
        self.tasks: dict[str, Body] = {}
        self.listeners: list[Listener] = []
        self.subscribers: set[Subscriber] = set()
        self.synced = asyncio.Event()
        self._pending: set[asyncio.Task[None]] = set()
        self._generation: dict[str, int] = {}
        self._snapshots: dict[str, tuple[int, dict[str, Any], dict[str, Any]]] = {}

    # --- reads (by name or by the PRD's sprint id) ----------------------------------------------

    def sprint(self, key: str) -> Body | None:
        if key in self.sprints:
            return self.sprints[key]
        for body in self.sprints.values():
            if board.sprint_id(body) == key:
                return body
        try:
            return self.sprints.get(dns_name(key))
        except ValueError:
            return None

    def tasks_of(self, sprint_name: str) -> list[Body]:
        return [t for t in self.tasks.values() if sprint_of_task(t) == sprint_name]

    def find_tasks(self, key: str) -> list[Body]:
        """Tasks whose name is `key`, or whose task id is `key`, or "{sprint}:{task id}"."""
        if key in self.tasks:
            return [self.tasks[key]]
        sprint, _, tid = key.rpartition(":")
        return [
            t
            for t in self.tasks.values()
            if board.task_id(t) == tid and (not sprint or sprint_of_task(t) == self._name(sprint))
        ]

    def _name(self, key: str) -> str:
        found = self.sprint(key)
        return str(found["metadata"]["name"]) if found else key

    def board(self, name: str, now: dt.datetime | None = None) -> dict[str, Any]:
        sprint = self.sprints[name]
        return board.page(sprint, self.tasks_of(name), now or dt.datetime.now(dt.UTC))

    def kaiban(self, name: str) -> dict[str, Any]:
        return team_state(self.sprints[name], self.tasks_of(name))

    def snapshot(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(board page, Kaiban state) of a sprint, computed once per change for all its clients."""
        cached = self._snapshots.get(name)
        if cached is None or cached[0] != self._generation.get(name, 0):
            cached = (self._generation.get(name, 0), self.board(name), self.kaiban(name))
            self._snapshots[name] = cached
        return cached[1], cached[2]

    # --- writes from the watch ------------------------------------------------------------------

    def reset(self, kind: str, items: list[Body]) -> None:
        """A fresh list replaces the cache of one kind (after a (re)start of its watch)."""
        store = self.sprints if kind == SPRINT else self.tasks
        old = dict(store)
        store.clear()
        for item in items:
            store[item["metadata"]["name"]] = item
        for name in set(old) | set(store):
            if old.get(name) != store.get(name):
                self._changed(kind, old.get(name), store.get(name))

    def apply(self, kind: str, type_: str, obj: Body) -> None:
        if type_ == "BOOKMARK":
            return
        store = self.sprints if kind == SPRINT else self.tasks
        name = obj["metadata"]["name"]
        old = store.get(name)
        if type_ == "DELETED":
            store.pop(name, None)
            self._changed(kind, old, None)
        else:
            store[name] = obj
            self._changed(kind, old, obj)

    def _changed(self, kind: str, old: Body | None, new: Body | None) -> None:
        body = new or old
        if body is None:
            return
        sprint_name = sprint_of_task(body) if kind == TASK else body["metadata"]["name"]
        changed = board.task_id(body) if kind == TASK else ""
        self._generation[sprint_name] = self._generation.get(sprint_name, 0) + 1
        for sub in list(self.subscribers):
            if sub.sprint == sprint_name:
                sub.changed.add(changed)
                sub.wake.set()
        # Nothing moves during the first sync: what is already on the board was announced before.
        if new is not None and sprint_name in self.sprints and self.synced.is_set():
            self._transition(kind, self.sprints[sprint_name], old, new)

    def _transition(self, kind: str, sprint: Body, old: Body | None, new: Body) -> None:
        def where(body: Body | None) -> str | None:
            if body is None or not body.get("status"):
                return None
            if kind == TASK:
                return board.column_of(body)
            return str((body.get("status") or {}).get("phase") or "") or None

        before, after = where(old), where(new)
        if after is None or before == after:
            return
        move = Transition(kind, sprint, new if kind == TASK else None, before, after)
        for listener in self.listeners:
            job = asyncio.get_running_loop().create_task(_safely(listener, move))
            self._pending.add(job)
            job.add_done_callback(self._pending.discard)

    # --- subscriptions --------------------------------------------------------------------------

    def subscribe(self, sprint_name: str) -> Subscriber:
        sub = Subscriber(sprint_name)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)


async def _safely(listener: Listener, move: Transition) -> None:
    """A failing listener (a Slack outage) is logged; it never stops the board."""
    try:
        await listener(move)
    except Exception:
        log.exception("transition listener %r failed on %s %s -> %s", listener, move.kind, move.old, move.new)
