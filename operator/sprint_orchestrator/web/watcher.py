"""The dashboard's ONE watch per kind (Sprints, Tasks), run in a thread and fed into the Hub's loop.

List, then watch from the list's resourceVersion; a watch that times out continues from the last
version seen; a 410 Gone or any API error lists again after a short pause. The hub's `synced` event
is set once both kinds have been listed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from ..kube import SPRINTS, TASKS, Kube, KubeError
from .hub import SPRINT, TASK, Body, Hub

log = logging.getLogger(__name__)

KINDS = ((SPRINT, SPRINTS), (TASK, TASKS))
WATCH_SECONDS = 30
RETRY_SECONDS = 1.0


class Watcher:
    def __init__(self, kube: Kube, hub: Hub, loop: asyncio.AbstractEventLoop) -> None:
        self.kube, self.hub, self.loop = kube, hub, loop
        self.stopping = threading.Event()
        self._listed: set[str] = set()
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(kind, plural), name=f"watch-{plural}", daemon=True)
            for kind, plural in KINDS
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def _run(self, kind: str, plural: str) -> None:
        while not self.stopping.is_set():
            try:
                self._list_and_watch(kind, plural)
            except KubeError as exc:
                log.warning("watch of %s restarts: %s", plural, exc)
                self.stopping.wait(RETRY_SECONDS)
            except Exception:  # the dashboard outlives a bug in one event; it lists again
                log.exception("watch of %s failed; listing again", plural)
                self.stopping.wait(RETRY_SECONDS)

    def _list_and_watch(self, kind: str, plural: str) -> None:
        items, version = self.kube.list_versioned(plural, self.hub.namespace)
        self._call(self.hub.reset, kind, items)
        self._mark_listed(kind)
        while not self.stopping.is_set():
            for type_, obj in self.kube.watch(plural, self.hub.namespace, version, WATCH_SECONDS):
                version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                if type_ != "BOOKMARK":
                    self._call(self.hub.apply, kind, type_, _plain(obj))
                if self.stopping.is_set():
                    return

    def _mark_listed(self, kind: str) -> None:
        with self._lock:
            self._listed.add(kind)
            if len(self._listed) == len(KINDS):
                self._call(self.hub.synced.set)


def _plain(obj: Body) -> Body:
    return dict(obj)
