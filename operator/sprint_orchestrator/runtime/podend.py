"""A task Pod's end, as soon as it is known: the kubelet's verdict (podwatch.py) or, sooner, the Pod's
wrapper reporting that its command exited 0 with every result tree in (`?exit=N` on its last upload,
transfer.py). The kubelet's Pod status follows a container's end by seconds (its status sync); a task
whose result is already home need not wait for it. Only exit 0 is taken from the wrapper: any other
exit waits for the kubelet, whose verdict says OOMKilled, deadline or eviction. The exit is the agent's
own word either way (its code runs in that container); it never decides a gate.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from ..kube import Kube
from . import podstatus
from .podwatch import PodWatcher
from .transfer import Grant, TransferServer

Found = tuple[podstatus.PodVerdict, dict[str, Any] | None]


class ReportedEnds:
    def __init__(self, watcher: PodWatcher, transfer: TransferServer, kube: Kube, namespace: str) -> None:
        self.watcher, self.transfer, self.kube, self.namespace = watcher, transfer, kube, namespace
        self._wakes: dict[str, threading.Event] = {}  # Pod name -> set when its wrapper reported
        transfer.on_settled = self._settled

    def watch(self, name: str, key: str, deadline: float) -> Found:
        """The Pod's verdict and the Pod as last read; the kubelet's watch goes on in its thread until
        the Pod is deleted (the runner removes it once it has the result) or its deadline."""
        wake = self._wakes.setdefault(name, threading.Event())
        found: list[Found] = []
        failed: list[BaseException] = []

        def watch() -> None:
            try:
                found.append(self.watcher.watch(name, deadline))
            except BaseException as exc:  # handed to the waiting caller
                failed.append(exc)
            finally:
                wake.set()

        threading.Thread(target=watch, name=f"watch-{name}", daemon=True).start()
        try:
            while True:
                if failed:
                    raise failed[0]
                if found:
                    return found[0]
                grant = self.transfer.grant_by_key(key)
                if grant is not None and grant.reported_success:
                    pod = self.kube.get_pod(self.namespace, name)
                    return podstatus.reported_end(pod, datetime.now(UTC)), pod
                wake.wait()
                wake.clear()
        finally:
            self._wakes.pop(name, None)

    def _settled(self, grant: Grant) -> None:
        wake = self._wakes.get(grant.pod)
        if wake is not None:
            wake.set()
