"""Watching one Pod to its end for the Kubernetes runtime: the kubelet's verdict (podstatus.py), a stall
ended after its grace, "no node fits" noticed while the Pod waits, a RuntimeClass handler missing on
the node read from the Pod's Events (podevents.py: the status does not say it), the deadline kept.

A watch from the Pod's resourceVersion, not a poll: each change arrives as it happens; a watch lasts at
most WATCH_S (then the Pod is read again), STALL_CHECK_S while a stall's grace runs (so the grace is
checked even when nothing changes). A watch that fails (410 Gone, the API server restarting) is followed
by a plain read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..kube import Kube, KubeError
from . import Health, podevents, podstatus

WATCH_S = 60  # one watch request of a Pod lasts at most this long, then it is read again
STALL_CHECK_S = 5  # while the Pod is stuck (pull errors, unschedulable) or has no sandbox yet: how often
# its grace is checked (or its Events read)
RETRY_S = 0.5  # after a failed watch


class RecentNames:
    """The names of the Pods the operator deleted itself, the newest `cap` of them: a watch reads it when
    its Pod ends; a name is never used again once its attempt is over, so the oldest can go (a set would
    grow by one name per Pod for the operator's whole life)."""

    def __init__(self, cap: int = 4096) -> None:
        self.cap = cap
        self._names: dict[str, None] = {}
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        with self._lock:
            self._names.pop(name, None)
            self._names[name] = None
            while len(self._names) > self.cap:
                del self._names[next(iter(self._names))]

    def discard(self, name: str) -> None:
        with self._lock:
            self._names.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __len__(self) -> int:
        return len(self._names)


class PodWatcher:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        stalls: podstatus.StallPolicy,
        delete: Callable[[str], None],
        ours: RecentNames,
    ) -> None:
        """`delete` ends a Pod (past its deadline); `ours`: the names of the Pods the operator deleted
        itself, read at each change (their end is no one's fault)."""
        self.kube, self.namespace, self.stalls = kube, namespace, stalls
        self._delete, self._ours = delete, ours
        self._notices: dict[str, str] = {}  # Pod name -> what the Task should show while it waits

    def watch(self, name: str, deadline: float) -> tuple[podstatus.PodVerdict, dict[str, Any] | None]:
        """The Pod's verdict once it is done (and the Pod as last read, for its logs)."""
        try:
            return self._watch(name, deadline)
        finally:
            self._notices.pop(name, None)

    def notice(self, name: str) -> str | None:
        """What the Task should show about its waiting Pod now ("no node fits: ..."), "" once that has
        passed, None when there is nothing to say."""
        return self._notices.get(name)

    def _watch(self, name: str, deadline: float) -> tuple[podstatus.PodVerdict, dict[str, Any] | None]:
        last: dict[str, Any] | None = None
        seen: dict[str, float] = {}  # stall kind -> when first seen (monotonic); kept across a pull retry
        pod = self.kube.get_pod(self.namespace, name)
        while True:
            verdict = podstatus.verdict(pod, last, ours=name in self._ours)
            if verdict.done:
                return verdict, pod
            last, stall, now = pod, podstatus.stall(pod), time.monotonic()
            early = stall is None and podevents.worth_reading(pod)  # no sandbox yet: the Events say why
            if early:
                stall = podevents.handler_missing(pod or {}, self._events(name, pod))
            if stall is None and podstatus.progressed(pod):
                seen.clear()
            action = "wait"
            if stall is not None:
                action = podstatus.stall_action(stall, now - seen.setdefault(stall.kind, now), self.stalls)
            if stall is not None and action == "end":
                return ended(stall.kind, stall.message), pod
            self._note(name, stall.message if stall is not None and action == "report" else None)
            if now > deadline:
                self._delete(name)
                if stall is not None and stall.kind == "Unschedulable":
                    return ended("Unschedulable", stall.message), pod
                late = podstatus.PodVerdict(True, Health.TIMED_OUT, None, "the Pod never finished in time")
                return late, pod
            pod = self._next(name, pod, deadline, STALL_CHECK_S if stall or early else WATCH_S)

    def _events(self, name: str, pod: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The kubelet's sandbox failures for this Pod; none when they cannot be read (an install whose
        Role does not grant reading Events yet: the Pod's deadline ends it, as before)."""
        uid = str(((pod or {}).get("metadata") or {}).get("uid") or "")
        try:
            return self.kube.pod_events(self.namespace, name, uid, podevents.SANDBOX_FAILED)
        except KubeError:
            return []

    def _note(self, name: str, message: str | None) -> None:
        if message:
            self._notices[name] = message
        elif name in self._notices:
            self._notices[name] = ""  # it passed (scheduled after all): the Task's notice is cleared

    def _next(
        self, name: str, pod: dict[str, Any] | None, deadline: float, longest: float
    ) -> dict[str, Any] | None:
        """The Pod after its next change (None once deleted), watched from the version in hand; when the
        watch ends with no change (its timeout, the deadline) or fails, the Pod as it is now."""
        version = str(((pod or {}).get("metadata") or {}).get("resourceVersion") or "")
        seconds = int(max(1, min(longest, deadline - time.monotonic() + 1)))
        if version:
            try:
                for kind, changed in self.kube.watch_pod(self.namespace, name, version, seconds):
                    if kind == "DELETED":
                        return None
                    if kind in ("ADDED", "MODIFIED"):
                        return changed
            except KubeError:  # 410 (the version is too old) or the API server: read it again
                time.sleep(RETRY_S)
        return self.kube.get_pod(self.namespace, name)


def ended(kind: str, why: str) -> podstatus.PodVerdict:
    """The verdict on a Pod the operator ends because it is stuck (an infrastructure failure)."""
    return podstatus.PodVerdict(True, Health.REMOVED, None, why, infrastructure=kind)
