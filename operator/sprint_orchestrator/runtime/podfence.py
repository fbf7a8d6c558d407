"""Each Pod's fence: its NetworkPolicy and Secret (podnet.py), put before the Pod and deleted after it.

The policy of a removed Pod is deleted only once the Pod's object is gone: it stays (Terminating) until
the kubelet has killed its processes, so a process that outlives its result (a task over at its upload:
podend.py) is never unfenced while it runs. A Pod that outlives GONE_WAIT_S (a lost node's) keeps its
policy until its Task is deleted, or until a restarted operator's sweep (podsweep.py) finds it gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..kube import Kube, KubeError
from . import podnet

GONE_WAIT_S, GONE_POLL_S = 120.0, 0.5


class Fences:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        operator_host: str,
        ports: Sequence[int],
        advertised_host: str,
        marks: Mapping[str, str],
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.operator_host = operator_host
        self.ports = tuple(ports)
        self.dns = not _is_ip(advertised_host)
        self.marks = dict(marks)  # the operator's owner and instance labels (podsweep.py reads them)
        self._unfencing: set[threading.Thread] = set()  # removed Pods whose policy waits for them to go
        self._lock = threading.Lock()

    def attach(
        self,
        name: str,
        labels: Mapping[str, str],
        secrets: Mapping[str, str],
        owners: list[dict[str, Any]],
        extra: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Before the Pod: its NetworkPolicy, and its Secret when it has secrets (podnet.py)."""
        labels = {**labels, **self.marks}
        policy = podnet.network_policy(
            name, self.namespace, labels, self.operator_host, self.ports, owners,
            operator_namespace=_own_namespace(), dns=self.dns, extra=extra,
        )  # fmt: skip
        self.kube.put_namespaced(self.namespace, policy)
        if secrets:
            secret = podnet.secret(name, self.namespace, labels, secrets, owners)
            self.kube.put_namespaced(self.namespace, secret)

    def detach(self, name: str, secret: bool = True, policy: bool = True) -> None:
        kinds = (["Secret"] if secret else []) + (["NetworkPolicy"] if policy else [])
        for kind in kinds:
            with contextlib.suppress(KubeError):  # the Task owns it: deleting the Task collects it
                self.kube.delete_namespaced(kind, self.namespace, name)

    def unfence(self, name: str, versions: Mapping[str, tuple[str, str]] | None = None) -> None:
        """Delete the Pod's NetworkPolicy once the Pod is gone, in a thread. `versions`: kind -> (uid,
        resourceVersion) of the objects to delete as they were read (the sweep's); else the policy by name."""

        def when_gone() -> None:
            try:
                deadline = time.monotonic() + GONE_WAIT_S
                while time.monotonic() < deadline:
                    with contextlib.suppress(KubeError):
                        if self.kube.get_pod(self.namespace, name) is None:
                            self._delete(name, versions)
                            return
                    time.sleep(GONE_POLL_S)
            finally:
                with self._lock:
                    self._unfencing.discard(thread)

        thread = threading.Thread(target=when_gone, name=f"unfence-{name}", daemon=True)
        with self._lock:
            self._unfencing.add(thread)
        thread.start()

    def _delete(self, name: str, versions: Mapping[str, tuple[str, str]] | None) -> None:
        if versions is None:
            self.detach(name, secret=False)
            return
        for kind, (uid, version) in versions.items():
            with contextlib.suppress(KubeError):
                self.kube.delete_namespaced(kind, self.namespace, name, uid, version)

    def wait(self, timeout_s: float) -> None:
        """Wait (up to `timeout_s`) for the removed Pods to go and their policies to be deleted."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            pending = list(self._unfencing)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))


_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _own_namespace() -> str | None:
    """The operator's namespace when it runs in a Pod (its ServiceAccount's), else None."""
    try:
        return _SA_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
