"""Warm gate Pods of the Kubernetes runtime: one-shot Pods started before their work exists, so a task's
gate does not wait for a Pod to be created, scheduled, started and fenced on its critical path.

`containers.warm_gate_pods` (0: none) is how many warm Pods each sprint keeps per kind of gate run (its
image, limits, timeout and scheduling). When a task's Pod starts, the pool is filled for its gate; when a
gate takes a warm Pod, another is started for the next one. A warm Pod (podspec.POOL_SCRIPT) runs the
same restricted spec as any gate Pod, owned by its Sprint: it waits for its NetworkPolicy, then holds a
claim request on its own one-time grant (transfer.py) until the operator assigns it a run, fetches the
workspace and `exec`s the gate's command. A warm Pod is used once and never shared between tasks: its
grant answers one claim and each URL once, and it is deleted when its run ends, as any one-shot Pod.

Only a Pod whose wrapper is waiting now is taken (`TransferServer.waiting`): one still starting, lost
or stuck leaves the gate to a fresh Pod, as without a pool, and a claim that does not reach its Pod
within CLAIM_ACK_S is given up the same way. Idle Pods older than WARM_IDLE_S, and those that never
asked for work or stopped asking (failed, evicted), are deleted when the pool is next used; a sprint's
are deleted when it ends (`release`), all of them when the runtime closes; a crashed operator's are
swept at its next start (podsweep.py: role `oneshot`, an earlier instance).

A warm Pod holds its requests while it waits: the capacity of `warm_gate_pods` Pods per sprint is the
price of a faster gate, which is why the default is none.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..kube import KubeError
from . import LABEL_ROLE, Limits, Scheduling, podnet, podspec

if TYPE_CHECKING:
    from .pods import PodsRuntime

log = logging.getLogger("sprint_orchestrator.runtime")

WARM_IDLE_S = 300.0  # a warm Pod not taken for this long is deleted (at the pool's next use)
START_GRACE_S = 180.0  # ... one that has not asked for its work this long after its creation
CLAIM_SLACK_S = 15.0  # ... one whose last claim request is older than the endpoint's hold and this


@dataclass(frozen=True)
class PoolKey:
    """What makes two gate runs interchangeable: the same sprint, image, limits, timeout and placement."""

    sprint: str  # namespace/name of the Sprint resource
    image: str
    limits: Limits
    timeout_s: float
    placement: str  # repr() of the Scheduling, which is not hashable (its mappings)
    scheduling: Scheduling = field(default=Scheduling(), compare=False, hash=False)


@dataclass(frozen=True)
class Warm:
    name: str
    token: str
    created: float  # time.monotonic()


def key_for(
    owner: Mapping[str, Any] | None, image: str, limits: Limits, timeout_s: float, scheduling: Scheduling
) -> PoolKey | None:
    """The pool a Task's gate runs come from; None for a run of no Task (an integration check)."""
    meta, spec = (owner or {}).get("metadata") or {}, (owner or {}).get("spec") or {}
    if not meta.get("namespace") or not spec.get("sprintRef"):
        return None
    sprint = f"{meta['namespace']}/{spec['sprintRef']}"
    return PoolKey(sprint, image, limits, timeout_s, repr(scheduling), scheduling)


def shell_command(command: Sequence[str]) -> str | None:
    """The shell text of a gate's `/bin/sh -c TEXT` (what a warm Pod runs); None for any other form."""
    if len(command) == 3 and command[0] == "/bin/sh" and command[1] == "-c" and command[2]:
        return command[2]
    return None


class WarmPods:
    def __init__(self, rt: PodsRuntime, size: int, idle_s: float = WARM_IDLE_S) -> None:
        self.rt, self.size, self.idle_s = rt, size, idle_s
        self._lock = threading.Lock()
        self._idle: dict[PoolKey, list[Warm]] = {}
        self._starting: dict[PoolKey, int] = {}
        self._closed = False

    def take(self, key: PoolKey) -> Warm | None:
        """A warm Pod of `key` that waits for its work now (removed from the pool), or None; idle ones
        past WARM_IDLE_S are deleted."""
        now, stale, found = time.monotonic(), [], None
        with self._lock:
            pods = self._idle.get(key, [])
            for warm in list(pods):
                if now - warm.created > self.idle_s or self._lost(warm, now):
                    pods.remove(warm)
                    stale.append(warm)
                elif found is None and self.rt.transfer.waiting(warm.token):
                    pods.remove(warm)
                    found = warm
        for warm in stale:
            self.discard(warm)
        return found

    def _lost(self, warm: Warm, now: float) -> bool:
        """A warm Pod that never asked for its work within START_GRACE_S, or stopped asking (it failed,
        was evicted, lost its node): it would hold its place in the pool for nothing."""
        last = self.rt.transfer.last_claim(warm.token)
        if last is None:
            return now - warm.created > START_GRACE_S
        return now - last > self.rt.transfer.claim_poll_s + CLAIM_SLACK_S and not self.rt.transfer.waiting(
            warm.token
        )

    def fill(self, key: PoolKey, owners: list[dict[str, Any]]) -> None:
        """Start warm Pods for `key` (in the background) until it has `size` of them."""
        with self._lock:
            missing = self.size - len(self._idle.get(key, [])) - self._starting.get(key, 0)
            if self._closed or missing <= 0:
                return
            self._starting[key] = self._starting.get(key, 0) + missing
        for _ in range(missing):
            threading.Thread(target=self._start, args=(key, owners), name="warm-pod", daemon=True).start()

    def _start(self, key: PoolKey, owners: list[dict[str, Any]]) -> None:
        rt = self.rt
        name = f"so-oneshot-{uuid.uuid4().hex[:12]}"
        labels = {LABEL_ROLE: "oneshot", podnet.LABEL_POD: name, **rt.marks}  # podsweep.py
        placeholder = rt.log_dir / "empty"
        placeholder.mkdir(parents=True, exist_ok=True)
        token = rt.transfer.pool_grant(placeholder)
        pod = podspec.PodRun(
            name, rt.namespace, key.image, (), rt.transfer.url(token), labels, key.limits,
            self.idle_s + key.timeout_s, {}, upload=False, owners=owners, scheduling=key.scheduling,
            canary=rt.canary_address, policy_wait_s=rt.policy_wait_s, pull_secret=rt.pull_secret,
            pooled=True,
        )  # fmt: skip
        warm = Warm(name, token, time.monotonic())
        started = False
        try:
            rt.fences.attach(name, labels, {}, owners, ())
            rt.kube.create_pod(rt.namespace, podspec.manifest(pod))
            started = True
        except (KubeError, OSError) as exc:  # the pool stays short: a gate then starts a fresh Pod
            log.warning("warm gate Pod %s not started: %s", name, exc)
        finally:
            with self._lock:
                self._starting[key] -= 1
                kept = started and not self._closed
                if kept:
                    self._idle.setdefault(key, []).append(warm)
        if not kept:
            self.discard(warm)

    def discard(self, warm: Warm) -> None:
        """Delete a warm Pod that will not run (best effort: the start-up sweep finds what is left)."""
        rt = self.rt
        rt.transfer.revoke(warm.token)
        try:
            rt._delete(warm.name)
        except KubeError as exc:
            log.warning("warm gate Pod %s not deleted: %s", warm.name, exc)
        rt._ours.discard(warm.name)
        rt.fences.unfence(warm.name)

    def release(self, sprint: str) -> None:
        """Delete the idle warm Pods of the Sprint `namespace/name` (it has ended)."""
        with self._lock:
            keys = [k for k in self._idle if k.sprint == sprint]
            gone = [warm for k in keys for warm in self._idle.pop(k)]
        for warm in gone:
            self.discard(warm)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            gone = [warm for pods in self._idle.values() for warm in pods]
            self._idle.clear()
        for warm in gone:
            self.discard(warm)

    def idle(self, key: PoolKey) -> list[str]:
        """The names of the idle warm Pods of `key`."""
        with self._lock:
            return [w.name for w in self._idle.get(key, [])]

    def ready(self, key: PoolKey) -> list[str]:
        """... of those, the ones whose wrapper waits for its work now (what `take` hands out)."""
        with self._lock:
            pods = list(self._idle.get(key, []))
        return [w.name for w in pods if self.rt.transfer.waiting(w.token)]
