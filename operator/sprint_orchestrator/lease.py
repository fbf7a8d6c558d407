"""One active replica: a coordination.k8s.io Lease, and a fencing check before every ref move and write.

With `SPRINT_ORCHESTRATOR_LEASE_NAMESPACE` set (the Deployment's namespace), an operator holds the
Lease `sprint-orchestrator` there before it does anything: at start-up it waits (a standby replica) until
the Lease is free or expired, then renews it every third of its duration. `fence()` runs before every
ref move (gitops/core.py) and every Kubernetes write (kube.py): it refuses unless this process renewed
the Lease less than a duration ago (by its own monotonic clock, from before the renewal was sent, so a
replica that waits for the Lease to expire never overlaps it). A paused operator (SIGSTOP, a stalled
node) wakes with its lease expired: every write is refused (NotLeader), its next renewal finds another
holder, and it stands down (it stops, as on SIGTERM; its Deployment restarts it as the standby).

Without the setting there is no Lease and no fencing (one operator per state dir, as before).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .errors import OrchestratorError

log = logging.getLogger("sprint_orchestrator.lease")

LEASE_NAME = "sprint-orchestrator"
SAFETY_S = 1.0  # stop acting this long before the Lease could be taken by another replica


class NotLeader(OrchestratorError):
    """This operator does not hold a live Lease: it must not move a ref or write to the API server."""


# --- pure decisions ---------------------------------------------------------------------------------


def _parse(stamp: str | None) -> dt.datetime | None:
    if not stamp:
        return None
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def micro_time(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def may_take(spec: Mapping[str, Any], me: str, now: dt.datetime) -> bool:
    """Whether `me` may hold the Lease now: it is free, ours, or its holder let it expire."""
    holder = spec.get("holderIdentity")
    if not holder or holder == me:
        return True
    renewed = _parse(spec.get("renewTime") or spec.get("acquireTime"))
    duration = float(spec.get("leaseDurationSeconds") or 15)
    return renewed is None or now > renewed + dt.timedelta(seconds=duration)


def next_spec(spec: Mapping[str, Any], me: str, now: dt.datetime, duration: int) -> dict[str, Any]:
    """The Lease's spec once `me` holds (or renews) it."""
    ours = spec.get("holderIdentity") == me
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": duration,
        "acquireTime": spec.get("acquireTime") if ours else micro_time(now),
        "renewTime": micro_time(now),
        "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if ours else 1),
    }


# --- the process's fence ----------------------------------------------------------------------------

_keeper: LeaseKeeper | None = None


def fence() -> None:
    """Raise NotLeader unless this process holds a live Lease (a no-op when no Lease is configured)."""
    keeper = _keeper
    if keeper is not None:
        keeper.check()


class LeaseKeeper:
    def __init__(self, kube: Any, namespace: str, duration: int, name: str = LEASE_NAME) -> None:
        self.kube, self.namespace, self.name, self.duration = kube, namespace, name, duration
        self.identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._valid_until = 0.0  # time.monotonic() until which this process may act
        self._lock = threading.Lock()
        self.held = False

    def check(self) -> None:
        with self._lock:
            late = time.monotonic() - self._valid_until
        if late >= 0:
            raise NotLeader(
                f"this operator ({self.identity}) does not hold a live Lease {self.namespace}/{self.name} "
                f"(expired {late:.1f}s ago): it does not act; another replica may"
            )

    def try_hold(self) -> bool:
        """Take or renew the Lease (compare-and-swap on its resourceVersion); True if we hold it now."""
        sent = time.monotonic()
        now = dt.datetime.now(dt.UTC)
        lease = self.kube.get_lease(self.namespace, self.name)
        spec = (lease or {}).get("spec") or {}
        if not may_take(spec, self.identity, now):
            return False
        body = next_spec(spec, self.identity, now, self.duration)
        version = (lease or {}).get("metadata", {}).get("resourceVersion")
        if not self.kube.write_lease(self.namespace, self.name, body, version):
            return False  # another replica wrote it first
        with self._lock:
            self._valid_until = sent + self.duration - SAFETY_S
        return True

    async def acquire(self) -> None:
        """Wait until this process holds the Lease (a standby replica waits here)."""
        waited = False
        while not await asyncio.to_thread(self.try_hold):
            if not waited:
                log.info("waiting for the Lease %s/%s (another replica holds it)", self.namespace, self.name)
                waited = True
            await asyncio.sleep(max(self.duration / 5, 0.5))
        self.held = True
        log.info("holding the Lease %s/%s as %s", self.namespace, self.name, self.identity)

    async def keep(self) -> None:
        """Renew every third of the duration; stand down when another replica holds the Lease."""
        while True:
            await asyncio.sleep(self.duration / 3)
            try:
                held = await asyncio.to_thread(self.try_hold)
            except OrchestratorError as exc:  # the API server unreachable: the fence expires by itself
                log.warning("could not renew the Lease: %s", exc)
                continue
            if not held:
                log.warning(
                    "the Lease %s/%s is held by another replica: this operator stands down",
                    self.namespace,
                    self.name,
                )
                self.held = False
                os.kill(os.getpid(), signal.SIGTERM)  # kopf stops gracefully; nothing acts meanwhile
                return


def install(keeper: LeaseKeeper | None) -> None:
    global _keeper
    _keeper = keeper
