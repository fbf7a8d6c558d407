"""What a task Pod's Events say that its status does not: pure functions of the Pod and its Events.

A Pod whose RuntimeClass names a handler the node's container runtime does not have (a RuntimeClass
`gvisor` with handler `runsc` on a node without runsc) never gets a sandbox: its status stays Pending,
its containers "ContainerCreating" with no message, and only the kubelet's `FailedCreatePodSandBox`
Events say why, again at each retry. Left alone it would wait for its deadline. The handler will not
appear by waiting (the container runtime's configuration changes only with a human and a restart), so
it is a final stall: the attempt ends at once and the task fails `RuntimeHandlerMissing`, naming the
class, the handler, the node and the kubelet's message (handlers/failures.py), like a Pod the API
server refuses (`PodRejected`) and unlike the transient infrastructure failures, retried on a budget.

Example: a Pod with runtimeClassName "gvisor" bound to node "n1" and the Event {"reason":
"FailedCreatePodSandBox", "message": "Failed to create pod sandbox: rpc error: code = Unknown desc =
failed to get sandbox runtime: no runtime for \\"runsc\\" is configured"} -> Stall("RuntimeHandlerMissing",
'RuntimeClass gvisor: handler runsc is not configured on node n1: Failed to create pod sandbox: ...',
final=True).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .podstatus import Stall, progressed

SANDBOX_FAILED = "FailedCreatePodSandBox"  # the kubelet's Event reason when a Pod's sandbox fails
HANDLER_MISSING = "RuntimeHandlerMissing"  # the stall kind, the Task's failure reason
# The container runtimes' words for a handler they do not have.
HANDLER_PATTERNS = (
    re.compile(r'no runtime for "(?P<handler>[^"]*)" is configured'),  # containerd
    re.compile(r"failed to find runtime handler (?P<handler>\S+) from runtime list"),  # CRI-O
)


def worth_reading(pod: Mapping[str, Any] | None) -> bool:
    """Whether the Pod's Events may hold a missing handler: it names a RuntimeClass, is bound to a
    node, and none of its containers has run yet (so a Pod without a RuntimeClass costs no read)."""
    spec = (pod or {}).get("spec") or {}
    status = (pod or {}).get("status") or {}
    return bool(
        spec.get("runtimeClassName")
        and spec.get("nodeName")
        and status.get("phase") in (None, "Pending")
        and not progressed(pod)
    )


def handler_missing(pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> Stall | None:
    """A final stall when one of the Pod's Events says its RuntimeClass's handler is missing on its
    node, else None (no such Event yet, or a sandbox failure for another reason: the deadline ends
    those as before)."""
    spec = pod.get("spec") or {}
    for event in events:
        if event.get("reason") != SANDBOX_FAILED:
            continue
        message = str(event.get("message") or "")
        for pattern in HANDLER_PATTERNS:
            found = pattern.search(message)
            if found:
                node = spec.get("nodeName") or (event.get("source") or {}).get("host") or "?"
                why = (
                    f"RuntimeClass {spec.get('runtimeClassName')}: handler {found['handler'][:253]} "
                    f"is not configured on node {node}: {message[:1000]}"
                )
                return Stall(HANDLER_MISSING, why, final=True)
    return None
