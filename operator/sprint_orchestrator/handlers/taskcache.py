"""The Tasks of each Sprint as the operator last saw them: the sprint loop's reads without a LIST.

Fed by the Task watch (kopf's event handler, handlers/tasks.py) and by the operator's own writes (a
status patch answers with the whole object), whichever is newer by resourceVersion: a round sees the
phase it has just written even before the watch delivers it, so a slot freed by a runner is refilled
on the round the runner wakes, without a LIST of every Task of the sprint (at 1,000 Tasks a LIST is
megabytes, once per round). Until the first LIST of a sprint (and again every RESYNC_SECONDS, which
heals anything missed) the loop LISTs and primes the cache.

resourceVersions are compared as integers: the apiserver's are etcd revisions, and a value that is
not one makes the newer-by-version check fall back to "the later arrival wins".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

RESYNC_SECONDS = 60.0


def _version(obj: Mapping[str, Any]) -> int | None:
    text = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class TaskCache:
    def __init__(self) -> None:
        self._tasks: dict[str, dict[str, dict[str, Any]]] = {}  # "ns/sprint" -> name -> Task
        self._primed: dict[str, float] = {}  # "ns/sprint" -> monotonic time of its last LIST
        self.lists = 0  # LISTs the loops needed (benchmarks compare this with the rounds)

    @staticmethod
    def key_of(task: Mapping[str, Any]) -> str | None:
        meta = task.get("metadata") or {}
        sprint = (task.get("spec") or {}).get("sprintRef")
        return f"{meta.get('namespace')}/{sprint}" if sprint and meta.get("name") else None

    def remember(self, task: Mapping[str, Any] | None) -> None:
        """Keep `task` unless the cache holds a newer version of it."""
        key = self.key_of(task or {})
        if task is None or key is None:
            return
        tasks = self._tasks.setdefault(key, {})
        name = task["metadata"]["name"]
        held = tasks.get(name)
        new, old = _version(task), _version(held or {})
        if held is None or new is None or old is None or new >= old:
            tasks[name] = dict(task)

    def forget(self, task: Mapping[str, Any]) -> None:
        key = self.key_of(task)
        if key is not None:
            self._tasks.get(key, {}).pop(task["metadata"]["name"], None)

    def fresh(self, key: str) -> bool:
        """Whether the sprint's Tasks were LISTed within RESYNC_SECONDS."""
        primed = self._primed.get(key)
        return primed is not None and time.monotonic() - primed < RESYNC_SECONDS

    def prime(self, key: str, listed: list[dict[str, Any]]) -> None:
        """The result of a LIST: every Task of the sprint (newer cached versions are kept)."""
        names = {task["metadata"]["name"] for task in listed}
        held = self._tasks.setdefault(key, {})
        for name in [n for n in held if n not in names]:
            del held[name]
        for task in listed:
            self.remember(task)
        self._primed[key] = time.monotonic()
        self.lists += 1

    def get(self, key: str, name: str) -> dict[str, Any] | None:
        """The Task `name` of the sprint `key` as held (not a copy: do not change it)."""
        return self._tasks.get(key, {}).get(name)

    def tasks(self, key: str) -> list[dict[str, Any]]:
        """Shallow copies (a round replaces a copy's status; the cache keeps its own)."""
        return [dict(task) for task in self._tasks.get(key, {}).values()]

    def drop(self, key: str) -> None:
        self._tasks.pop(key, None)
        self._primed.pop(key, None)
