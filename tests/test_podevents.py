"""A RuntimeClass whose handler the node does not have, read from the kubelet's Events about a task Pod
(its status says nothing): Pods and Events shaped as the API server returns them."""

from __future__ import annotations

from typing import Any

import pytest

from sprint_orchestrator.handlers.failures import FINAL_KINDS
from sprint_orchestrator.runtime.podevents import HANDLER_MISSING, handler_missing, worth_reading
from sprint_orchestrator.runtime.podstatus import DEFAULT_STALLS, stall, stall_action

CONTAINERD = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: "
    'no runtime for "runsc" is configured'
)
CRIO = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to find runtime handler runsc "
    "from runtime list map[crun:0xc000 runc:0xc001]"
)


def _pod(runtime_class: str | None = "gvisor", node: str | None = "n1", **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main"}]}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    if node:
        spec["nodeName"] = node
    waiting = {"name": "main", "image": "img", "state": {"waiting": {"reason": "ContainerCreating"}}}
    body = {"phase": "Pending", "containerStatuses": [waiting], **status}
    return {"metadata": {"name": "so-s-t-1", "uid": "u1"}, "spec": spec, "status": body}


def _event(message: str, reason: str = "FailedCreatePodSandBox") -> dict[str, Any]:
    return {"reason": reason, "message": message, "type": "Warning", "source": {"component": "kubelet"}}


@pytest.mark.parametrize("message", [CONTAINERD, CRIO])
def test_a_missing_handler_is_a_final_stall_naming_the_class_the_handler_the_node_and_the_message(
    message: str,
) -> None:
    pod = _pod()
    assert stall(pod) is None  # the Pod's status alone says nothing
    found = handler_missing(pod, [_event(message)])
    assert found is not None and found.kind == HANDLER_MISSING and found.final
    assert found.message.startswith("RuntimeClass gvisor: handler runsc is not configured on node n1: ")
    assert message in found.message
    assert stall_action(found, 0.0, DEFAULT_STALLS) == "end"  # at once: waiting will not add the handler


def test_a_missing_handler_fails_the_task_rather_than_being_retried_as_infrastructure() -> None:
    assert HANDLER_MISSING in FINAL_KINDS


@pytest.mark.parametrize(
    "events",
    [
        [],
        [_event("Failed to create pod sandbox: plugin type=bridge failed (add): failed to allocate")],
        [_event('no runtime for "runsc" is configured', reason="FailedMount")],
        [{"reason": "Scheduled", "message": "Successfully assigned ns/so-s-t-1 to n1"}],
    ],
)
def test_other_sandbox_failures_and_other_events_are_no_missing_handler(events: list[dict[str, Any]]) -> None:
    assert handler_missing(_pod(), events) is None


def test_a_hostile_handler_name_in_the_message_is_cut_short() -> None:
    found = handler_missing(_pod(), [_event(f'no runtime for "{"x" * 5000}" is configured')])
    assert found is not None and len(found.message) < 2400


def test_events_are_read_only_for_a_bound_pod_with_a_runtime_class_that_has_not_started() -> None:
    assert worth_reading(_pod())
    assert not worth_reading(_pod(runtime_class=None))  # no RuntimeClass: no extra API read
    assert not worth_reading(_pod(node=None))  # not scheduled yet: no sandbox was tried
    running = [{"name": "main", "state": {"running": {"startedAt": "2026-12-07T06:00:00Z"}}}]
    assert not worth_reading(_pod(containerStatuses=running))
    assert not worth_reading(_pod(phase="Failed"))
    assert not worth_reading(None)
