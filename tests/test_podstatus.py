"""Kubernetes' verdicts on a task Pod, from Pod objects shaped as the kubelet, the scheduler and the
controllers write them: evicted, node lost, preempted, an image that cannot be pulled, no node fits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sprint_orchestrator.runtime import Health
from sprint_orchestrator.runtime.podstatus import (
    Stall,
    StallPolicy,
    create_refusal_is_final,
    progressed,
    reported_end,
    stall,
    stall_action,
    verdict,
)
from sprint_orchestrator.runtime.podwatch import RecentNames

IMAGE = "10.88.0.1:5000/sprints/demo@sha256:" + "a" * 64


def _pod(
    phase: str = "Running",
    *,
    reason: str = "",
    message: str = "",
    conditions: list[dict[str, Any]] | None = None,
    init: dict[str, Any] | None = None,
    main: dict[str, Any] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions or [],
        "startTime": "2026-12-06T20:00:00Z",
    }
    if reason:
        status |= {"reason": reason, "message": message}
    status["initContainerStatuses"] = [
        {"name": "fetch", "image": IMAGE, "ready": False, "restartCount": 0, "state": init or {"terminated": {
            "exitCode": 0, "reason": "Completed", "startedAt": "2026-12-06T20:00:01Z"}}}
    ]  # fmt: skip
    status["containerStatuses"] = [
        {"name": "main", "image": IMAGE, "ready": True, "restartCount": 0, "state": main or {"running": {
            "startedAt": "2026-12-06T20:00:02Z"}}}
    ]  # fmt: skip
    meta: dict[str, Any] = {"name": "so-s-t-1", "labels": {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T20:05:00Z"
    return {"metadata": meta, "status": status}


def _disruption(reason: str, message: str) -> dict[str, Any]:
    return {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-12-06T20:04:59Z",
    }


def _waiting(reason: str, message: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


def test_a_pod_evicted_through_the_eviction_api_is_an_infrastructure_failure_while_it_still_runs() -> None:
    pod = _pod(conditions=[_disruption("EvictionByEvictionAPI", "Eviction API: evicting")], deleting=True)
    found = verdict(pod)
    assert (found.done, found.health, found.infrastructure) == (True, Health.REMOVED, "Evicted")
    assert found.reason == "the Pod was evicted (EvictionByEvictionAPI; Eviction API: evicting)"
    assert found.exit_code is None


def test_the_kubelets_node_pressure_eviction_is_not_read_as_the_agents_exit_code() -> None:
    """The kubelet kills the containers (exit 137) and sets phase Failed, reason Evicted."""
    pod = _pod(
        "Failed",
        reason="Evicted",
        message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi.",
        main={"terminated": {"exitCode": 137, "reason": "Error", "startedAt": "2026-12-06T20:00:02Z"}},
        conditions=[_disruption("TerminationByKubelet", "The node was low on resource: memory.")],
    )
    found = verdict(pod)
    assert (found.infrastructure, found.exit_code) == ("Evicted", None)
    assert "low on resource: memory" in found.reason
    without_condition = dict(pod, status={**pod["status"], "conditions": []})
    assert verdict(without_condition).infrastructure == "Evicted"


@pytest.mark.parametrize(
    ("condition", "kind"),
    [
        (_disruption("DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint"), "NodeLost"),
        (_disruption("DeletionByPodGC", "PodGC: node no longer exists"), "NodeLost"),
        (_disruption("PreemptionByScheduler", "default-scheduler: preempting to accommodate"),
         "Preempted"),
    ],
)  # fmt: skip
def test_a_lost_node_or_a_preemption_is_an_infrastructure_failure(
    condition: dict[str, Any], kind: str
) -> None:
    assert verdict(_pod(conditions=[condition], deleting=True)).infrastructure == kind


def test_the_old_node_lost_reason_and_a_node_shutdown_are_infrastructure_failures() -> None:
    lost = _pod("Failed", reason="NodeLost", message="Node node2 which was running pod is unresponsive")
    assert verdict(lost).infrastructure == "NodeLost"
    shutdown = _pod(
        "Failed", reason="Terminated", message="Pod was terminated in response to imminent node shutdown."
    )
    assert verdict(shutdown).infrastructure == "NodeShutdown"


def test_a_disruption_condition_that_is_false_changes_nothing() -> None:
    condition = {**_disruption("EvictionByEvictionAPI", "x"), "status": "False"}
    assert not verdict(_pod(conditions=[condition])).done


def test_a_pod_deleted_by_someone_else_is_an_infrastructure_failure_but_not_one_the_operator_deleted() -> (
    None
):
    deleting = _pod(deleting=True)
    assert verdict(deleting).infrastructure == "PodDeleted"
    assert not verdict(deleting, ours=True).done  # ours: it ends as the kubelet says
    gone = verdict(None, last_seen=_pod())
    assert (gone.done, gone.infrastructure) == (True, "PodDeleted")
    assert verdict(None, last_seen=_pod(), ours=True).infrastructure == ""


def test_a_pod_that_vanished_after_a_disruption_keeps_the_disruptions_reason() -> None:
    last = _pod(
        conditions=[_disruption("DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint")]
    )
    gone = verdict(None, last_seen=last)
    assert gone.infrastructure == "NodeLost" and "Taint manager" in gone.reason


def test_the_work_verdicts_are_unchanged_by_the_infrastructure_ones() -> None:
    oom = _pod("Failed", main={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    assert (verdict(oom).health, verdict(oom).infrastructure) == (Health.OOM_KILLED, "")
    late = _pod(
        "Failed",
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
    )
    assert verdict(late).health == Health.TIMED_OUT
    failed = _pod("Failed", main={"terminated": {"exitCode": 3, "reason": "Error"}})
    assert (verdict(failed).exit_code, verdict(failed).infrastructure) == (3, "")


def test_an_image_pull_error_on_the_init_container_is_a_stall_naming_the_image_and_the_kubelets_message() -> (
    None
):
    message = (
        f'Back-off pulling image "{IMAGE}": ErrImagePull: failed to pull and unpack image "{IMAGE}": '
        "failed to resolve reference: not found"
    )
    pod = _pod("Pending", init=_waiting("ImagePullBackOff", message), main=_waiting("PodInitializing", ""))
    found = stall(pod)
    assert found is not None and found.kind == "ImagePullFailed" and not found.final
    assert found.message.startswith(f"image {IMAGE} cannot be pulled (ImagePullBackOff: Back-off pulling")
    assert not verdict(pod).done  # the stall decides, after its grace


def test_an_invalid_image_name_does_not_wait_for_the_grace() -> None:
    pod = _pod("Pending", init=_waiting("InvalidImageName", 'Failed to apply default image tag "Bad//x"'))
    found = stall(pod)
    assert found is not None and found.final
    assert stall_action(found, 0.0, StallPolicy()) == "end"


def test_a_container_that_cannot_be_created_is_a_stall() -> None:
    pod = _pod(main=_waiting("CreateContainerConfigError", 'secret "so-s-t-1" not found'))
    found = stall(pod)
    assert found is not None and found.kind == "ContainerCreateFailed"
    assert 'secret "so-s-t-1" not found' in found.message


def test_an_unschedulable_pod_is_a_stall_with_the_schedulers_message() -> None:
    scheduler = (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": scheduler}
    pod = {"metadata": {}, "status": {"phase": "Pending", "conditions": [condition]}}
    assert stall(pod) == Stall("Unschedulable", f"no node fits: {scheduler}")
    assert not progressed(pod)


@pytest.mark.parametrize(
    ("kind", "seen_s", "action"),
    [
        ("ImagePullFailed", 59.0, "wait"),
        ("ImagePullFailed", 60.0, "end"),
        ("ContainerCreateFailed", 61.0, "end"),
        ("Unschedulable", 119.0, "wait"),
        ("Unschedulable", 120.0, "report"),
        ("Unschedulable", 10_000.0, "report"),  # never ended here: the Pod's deadline does
    ],
)
def test_a_stall_waits_out_its_grace_then_ends_or_is_reported(kind: str, seen_s: float, action: str) -> None:
    assert stall_action(Stall(kind, "x"), seen_s, StallPolicy(60, 120)) == action


def test_a_running_or_finished_pod_is_no_stall() -> None:
    assert stall(_pod()) is None
    assert progressed(_pod())
    assert stall(_pod("Succeeded", main={"terminated": {"exitCode": 0}})) is None
    assert stall(None) is None


@pytest.mark.parametrize(
    ("status", "message", "final"),
    [
        (403, 'pods "so-x-1" is forbidden: pod rejected: RuntimeClass "gvisor" not found', True),
        (403, 'pods "so-x-1" is forbidden: no PriorityClass with name batch-low was found', True),
        (403, 'pods "so-x-1" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=8', False),
        (422, 'Pod "so-x-1" is invalid: spec.tolerations[0].operator: Invalid value: "Sometimes"', True),
        (500, "etcdserver: request timed out", False),
        (429, "too many requests", False),
    ],
)  # fmt: skip
def test_a_refused_pod_creation_is_final_only_when_a_retry_would_meet_it_again(
    status: int, message: str, final: bool
) -> None:
    assert create_refusal_is_final(status, message) is final


def test_the_names_of_pods_the_operator_deleted_are_kept_newest_first_up_to_a_cap() -> None:
    names = RecentNames(cap=3)
    for name in ("a", "b", "c"):
        names.add(name)
    names.add("a")  # deleted again: now the newest
    names.add("d")
    assert "b" not in names and {"a", "c", "d"} == {n for n in "abcd" if n in names}
    names.discard("c")
    assert "c" not in names and len(names) == 2


def test_a_reported_end_is_exit_0_now_from_the_containers_start_unless_the_kubelet_said_otherwise() -> None:
    now = datetime(2026, 12, 6, 20, 0, 5, 250000, tzinfo=UTC)
    running = reported_end(_pod("Running"), now)
    assert (running.done, running.health, running.exit_code) == (True, Health.EXITED, 0)
    assert (running.started_at, running.finished_at) == ("2026-12-06T20:00:02Z", "2026-12-06T20:00:05.250Z")
    oom = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-12-06T20:00:04Z"}}
    assert reported_end(_pod("Failed", main=oom), now).health == Health.OOM_KILLED
    evicted = _pod("Running", conditions=[_disruption("EvictionByEvictionAPI", "Eviction API: evicting")])
    assert reported_end(evicted, now).infrastructure
    gone = reported_end(None, now)
    assert (gone.exit_code, gone.started_at) == (0, None)
