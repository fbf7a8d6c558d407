"""Watch a namespace's Sprints and Tasks while a chaos run goes on: every phase change and every task
commit the API server ever held, as ground truth for the invariant checker (a watch delivers each
version of an object, so no transition is missed between two polls)."""

from __future__ import annotations

import threading
import time
from typing import Any

from invariants import Transition

from sprint_orchestrator.kube import SPRINTS, TASKS, Kube, KubeError


class Recorder:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}
        self._transitions: list[Transition] = []
        self._moments: list[float] = []  # time.monotonic() of each transition, in order
        self._commits: set[str] = set()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._follow, args=(plural, kind), daemon=True, name=f"record {plural}")
            for plural, kind in ((SPRINTS, "Sprint"), (TASKS, "Task"))
        ]
        self.errors: list[str] = []

    def __enter__(self) -> Recorder:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def transitions(self) -> list[Transition]:
        with self._lock:
            return list(self._transitions)

    def progress_after(self, moment: float) -> float | None:
        """The time.monotonic() of the first phase change after `moment`, or None (none yet)."""
        with self._lock:
            return next((m for m in self._moments if m > moment), None)

    def commits(self) -> set[str]:
        with self._lock:
            return set(self._commits)

    def _seen(self, kind: str, obj: dict[str, Any], gap: bool = False) -> None:
        """One version of an object. After a `gap` (listed again: the versions in between are lost) a
        changed phase is recorded as a move from an unknown phase ("")."""
        status = obj.get("status") or {}
        key = (kind, obj["metadata"]["name"])
        phase = status.get("phase")
        with self._lock:
            if kind == "Task" and status.get("commit"):
                self._commits.add(str(status["commit"]))
            old = self._phases.get(key)
            if phase and phase != old:
                self._phases[key] = phase
                if old is not None:
                    self._transitions.append(Transition(kind, key[1], "" if gap else old, phase))
                    self._moments.append(time.monotonic())

    def _follow(self, plural: str, kind: str) -> None:
        version, listed = "", False
        while not self._stop.is_set():
            try:
                if not version:
                    items, version = self.kube.list_versioned(plural, self.namespace)
                    for item in items:
                        self._seen(kind, item, gap=listed)
                    listed = True
                for type_, obj in self.kube.watch(plural, self.namespace, version, timeout_seconds=5):
                    version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                    if type_ in ("ADDED", "MODIFIED"):
                        self._seen(kind, obj)
                    if self._stop.is_set():
                        return
            except KubeError as exc:
                if exc.status == 410:  # too old (an apiserver restarted): list again, a gap (say so)
                    self.errors.append(f"watch of {plural} expired; listed again")
                    version = ""
                    continue
                self.errors.append(str(exc))
                time.sleep(0.5)
            except Exception as exc:  # the apiserver restarting, a dropped connection: watch again
                self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.5)
