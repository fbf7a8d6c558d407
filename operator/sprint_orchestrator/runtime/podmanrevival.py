"""A Podman API service that stops answering under a running operator (killed, OOM-killed, restarted
by whoever supervises it). Containers outlive it (conmon supervises them), so a call that lost the
service says nothing about any task: the call is made once more when the service answers again. The
operator starts the service again itself when the socket is its own (under its run dir); a configured
`podman_url` is somebody else's, waited for up to WAIT_S. Still no service: RuntimeUnavailable, an
infrastructure failure of the step (retried on its own budget), never a verdict on the work.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import podman.errors

from ..errors import RuntimeUnavailable
from .service import ServiceProcess

WAIT_S = 60.0  # how long a service someone else runs may take to come back
REVIVALS = 3  # services brought back during one call before it gives up
_POLL_S = 0.5
log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


class Revival:
    """Brings the API service of one runtime back: `restart` starts (or finds) the operator's own
    service, None for a service the operator does not run; `answers(url)` pings it."""

    def __init__(self, restart: Callable[[], ServiceProcess] | None, answers: Callable[[str], bool]) -> None:
        self.restart, self.answers = restart, answers
        self.closed = False  # the runtime closed (the operator stopping): nothing is started any more
        self.generation = 0  # services brought back so far: a call that failed across one is made again
        self._lock = threading.Lock()  # two runners lose the service at once: one restarts it

    def revive(self, current: ServiceProcess) -> ServiceProcess:
        """The service answering again: `current` when it does (someone brought it back), else a new
        one; RuntimeUnavailable when it cannot be had."""
        with self._lock:
            if self.answers(current.url):
                return current
            if self.closed:
                raise RuntimeUnavailable(f"the Podman API at {current.url} was stopped with the operator")
            if self.restart is not None:
                if current.process is not None:
                    current.process.poll()  # reap the one that died
                fresh = self.restart()
                self.generation += 1
                pid = fresh.process.pid if fresh.process is not None else "another operator's"
                log.warning("the Podman API service at %s stopped answering; started it again (pid %s)",
                            fresh.url, pid)  # fmt: skip
                return fresh
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                time.sleep(_POLL_S)
                if self.answers(current.url):
                    self.generation += 1
                    return current
        raise RuntimeUnavailable(
            f"the Podman API at {current.url} stopped answering and did not come back within {WAIT_S:g}s"
        )


def revived(method: Callable[Concatenate[Any, P], T]) -> Callable[Concatenate[Any, P], T]:
    """A runtime method made again after the service it talks to stopped answering (an API error while
    the service does not answer a ping, or across a restart another thread made) and was brought back,
    up to REVIVALS times. The runtime has `service` (a ServiceProcess) and `revival` (a Revival); the
    method must be idempotent (they all adopt what exists: a container created, started or removed
    before the loss)."""

    @functools.wraps(method)
    def call(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        revivals = 0
        while True:
            generation = self.revival.generation
            try:
                return method(self, *args, **kwargs)
            except podman.errors.APIError as exc:
                if self.revival.generation == generation and self.revival.answers(self.service.url):
                    raise  # the service answers and was never lost: a verdict of Podman's
                if revivals == REVIVALS:
                    raise RuntimeUnavailable(
                        f"the Podman API at {self.service.url} stopped answering {revivals + 1} times "
                        f"during one call: {exc}"
                    ) from exc
            revivals += 1
            self.service = self.revival.revive(self.service)

    return call
