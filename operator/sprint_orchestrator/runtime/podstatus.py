"""What a task Pod's status says, in Kubernetes' own words: pure functions of the Pod object.

Three families of verdict:

- the work ended: exited with a code, `OOMKilled` (-> more memory), `DeadlineExceeded` (-> a longer
  timeout), the workspace could not be fetched (a Pod made with a `fetch` init container by an operator
  before this one; today's Pods fetch in their one container and the endpoint tells: `podspec.FETCH_FAILED`);
- the infrastructure failed the work (`PodVerdict.infrastructure` names how; retried unchanged, with
  backoff, on a budget of its own): the Pod was evicted (the kubelet's node-pressure eviction, phase
  Failed reason `Evicted`; the Eviction API; a preemption), its node was lost (the taint manager or the
  Pod garbage collector deleted it: condition `DisruptionTarget`; the old `NodeLost` reason), the
  kubelet refused it, or someone else deleted it from under the operator;
- the Pod is stuck before it runs (`stall`): an image that cannot be pulled or a container that cannot
  be created (ends the attempt as an infrastructure failure after a grace: pulls often fail
  transiently), or no node fits it (reported on the Task while the Pod waits: an autoscaler may add a
  node; still unscheduled at its deadline, the attempt ends "no node fits").

Example: a Pod whose status holds {"type": "DisruptionTarget", "status": "True", "reason":
"EvictionByEvictionAPI"} -> PodVerdict(done=True, health=removed, infrastructure="Evicted", ...), even
while its phase still says Running (it is being terminated).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .. import LABEL_ATTEMPT, LABEL_SPRINT, LABEL_TASK
from ..stamps import rfc3339
from ..status import ContainerHealth
from . import ContainerInfo

# status.reason of a Failed Pod that the node (not the work) ended.
NODE_REASONS = {
    "Evicted": "Evicted",
    "NodeLost": "NodeLost",
    "Shutdown": "NodeShutdown",
    "Terminated": "NodeShutdown",
    "NodeShutdown": "NodeShutdown",
    "UnexpectedAdmissionError": "NodeRejected",
    "NodeAffinity": "NodeRejected",
    "OutOfcpu": "NodeRejected",
    "OutOfmemory": "NodeRejected",
    "OutOfpods": "NodeRejected",
}
# reasons of the DisruptionTarget condition (PodDisruptionConditions), by what they mean here.
DISRUPTIONS = {
    "EvictionByEvictionAPI": "Evicted",
    "TerminationByKubelet": "Evicted",
    "PreemptionByScheduler": "Preempted",
    "PreemptionByKubeScheduler": "Preempted",
    "DeletionByTaintManager": "NodeLost",
    "DeletionByPodGC": "NodeLost",
}
PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
)
FINAL_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull"})  # waiting will not change them
CREATE_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})


@dataclass(frozen=True)
class PodVerdict:
    done: bool
    health: ContainerHealth
    exit_code: int | None
    reason: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    infrastructure: str = ""  # why the infrastructure (not the work) ended the Pod, e.g. "Evicted"


@dataclass(frozen=True)
class Stall:
    """A Pod that cannot get going: kind ImagePullFailed, ContainerCreateFailed, Unschedulable, or
    RuntimeHandlerMissing (read from its Events: podevents.py)."""

    kind: str
    message: str
    final: bool = False


@dataclass(frozen=True)
class StallPolicy:
    pull_grace_s: float = 60.0  # an image pull failing this long ends the attempt
    unschedulable_report_s: float = 120.0  # unschedulable this long is reported on the Task
    # activeDeadlineSeconds counts from the kubelet's start: a Pod not started by its timeout plus this
    # (never scheduled, say) is ended by the operator
    pending_slack_s: float = 120.0


DEFAULT_STALLS = StallPolicy()


def verdict(
    pod: Mapping[str, Any] | None, last_seen: Mapping[str, Any] | None = None, ours: bool = False
) -> PodVerdict:
    """What the kubelet's Pod status says. `last_seen`: the Pod as last read (for one that is gone);
    `ours`: the operator deleted it itself (a budget stop, a cancel), so its disappearance is no fault."""
    if pod is None:
        return _gone(last_seen, ours)
    status = pod.get("status") or {}
    phase = status.get("phase")
    main = _state(status.get("containerStatuses"), "main", "terminated")
    started = (main or {}).get("startedAt") or status.get("startTime")
    finished = (main or {}).get("finishedAt")
    broken = infrastructure(pod, ours)
    if broken is not None:
        return PodVerdict(True, ContainerHealth.REMOVED, None, broken[1], started, finished, broken[0])
    if phase not in ("Succeeded", "Failed"):
        return PodVerdict(False, ContainerHealth.RUNNING, None, started_at=started)
    if status.get("reason") == "DeadlineExceeded":
        return PodVerdict(
            True, ContainerHealth.TIMED_OUT, None, "the Pod passed its deadline", started, finished
        )
    fetch = _state(status.get("initContainerStatuses"), "fetch", "terminated")
    if fetch is not None and fetch.get("exitCode") != 0:
        reason = f"fetching the workspace failed (exit {fetch.get('exitCode')}: {fetch.get('reason')})"
        return PodVerdict(True, ContainerHealth.EXITED, None, reason, started, finished)
    if main is None:
        return PodVerdict(True, ContainerHealth.EXITED, None, f"the Pod {phase}: {status.get('reason')}")
    code = main.get("exitCode")
    if main.get("reason") == "OOMKilled":
        return PodVerdict(
            True, ContainerHealth.OOM_KILLED, code, "killed for memory (OOMKilled)", started, finished
        )
    return PodVerdict(True, ContainerHealth.EXITED, code, "", started, finished)


def reported_end(pod: Mapping[str, Any] | None, now: datetime) -> PodVerdict:
    """The end of a task Pod whose wrapper reported exit 0 with its results in (transfer.py), before
    the kubelet says so: exited 0 now. A verdict the kubelet already gave wins (an eviction, OOMKilled)."""
    if pod is not None and (given := verdict(pod)).done:
        return given
    status = (pod or {}).get("status") or {}
    running = _state(status.get("containerStatuses"), "main", "running")
    started = (running or {}).get("startedAt") or status.get("startTime")
    return PodVerdict(True, ContainerHealth.EXITED, 0, "", started, rfc3339(now))


def infrastructure(pod: Mapping[str, Any], ours: bool = False) -> tuple[str, str] | None:
    """(kind, sentence) when the node or the cluster ended the Pod (not its work), else None."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            kind = DISRUPTIONS.get(str(condition.get("reason")), "Disrupted")
            return kind, _sentence(kind, condition.get("reason"), condition.get("message"))
    reason = str(status.get("reason") or "")
    if status.get("phase") == "Failed" and reason in NODE_REASONS:
        return NODE_REASONS[reason], _sentence(NODE_REASONS[reason], reason, status.get("message"))
    if (pod.get("metadata") or {}).get("deletionTimestamp") and not ours:
        return "PodDeleted", "the Pod was deleted while it ran (not by the operator)"
    return None


def _gone(last_seen: Mapping[str, Any] | None, ours: bool) -> PodVerdict:
    if ours:
        return PodVerdict(True, ContainerHealth.REMOVED, None, "the Pod was removed")
    seen = infrastructure(last_seen, ours) if last_seen is not None else None
    kind, why = seen or ("PodDeleted", "the Pod disappeared while it ran (deleted, not by the operator)")
    return PodVerdict(True, ContainerHealth.REMOVED, None, why, infrastructure=kind)


def _sentence(kind: str, reason: Any, message: Any) -> str:
    what = {
        "Evicted": "the Pod was evicted",
        "Preempted": "the Pod was preempted",
        "NodeLost": "the Pod's node was lost",
        "NodeShutdown": "the Pod's node shut down",
        "NodeRejected": "the node refused the Pod",
    }.get(kind, "the Pod was disrupted")
    detail = "; ".join(str(p) for p in (reason, message) if p)
    return f"{what} ({detail[:500]})" if detail else what


def stall(pod: Mapping[str, Any] | None) -> Stall | None:
    """Why a Pod that has not ended cannot get going, or None (running, starting normally, ended)."""
    status = (pod or {}).get("status") or {}
    if status.get("phase") not in (None, "Pending", "Running"):
        return None
    for item in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (item.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        message = str(waiting.get("message") or "")[:1000]
        if reason in PULL_REASONS:
            image = item.get("image") or "?"
            why = f"image {image} cannot be pulled ({reason}: {message})"
            return Stall("ImagePullFailed", why, reason in FINAL_REASONS)
        if reason in CREATE_REASONS:
            why = f"container {item.get('name')} cannot be created ({reason}: {message})"
            return Stall("ContainerCreateFailed", why)
    for condition in status.get("conditions") or []:
        unscheduled = condition.get("type") == "PodScheduled" and condition.get("status") == "False"
        if unscheduled and condition.get("reason") == "Unschedulable":
            return Stall("Unschedulable", f"no node fits: {str(condition.get('message') or '')[:1000]}")
    return None


def progressed(pod: Mapping[str, Any] | None) -> bool:
    """True once any of the Pod's containers runs or has run (its images were pulled)."""
    status = (pod or {}).get("status") or {}
    items = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return any({"running", "terminated"} & set(item.get("state") or {}) for item in items)


def stall_action(found: Stall, seen_s: float, policy: StallPolicy) -> Literal["wait", "report", "end"]:
    """What to do about a stall seen for `seen_s` seconds: keep waiting, report it on the Task, or end
    the attempt (an infrastructure failure). Unschedulable is never ended here: the deadline does."""
    if found.kind == "Unschedulable":
        return "report" if seen_s >= policy.unschedulable_report_s else "wait"
    return "end" if found.final or seen_s >= policy.pull_grace_s else "wait"


def create_refusal_is_final(status: int, message: str) -> bool:
    """Whether the API server's refusal to create a Pod will hold on a retry: an invalid spec (422) or an
    admission refusal (403: a RuntimeClass or PriorityClass that does not exist, Pod Security) will;
    an exceeded quota (403 too) or a busy or failing API server will not."""
    if status == 422:
        return True
    return status == 403 and "exceeded quota" not in message


def _state(statuses: Any, name: str, state: str) -> dict[str, Any] | None:
    for item in statuses or []:
        if item.get("name") == name:
            found = (item.get("state") or {}).get(state)
            return dict(found) if found else None
    return None


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def info(pod: Mapping[str, Any]) -> ContainerInfo:
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    verdict_ = verdict(pod, ours=True)
    return ContainerInfo(
        name=str(meta.get("name")),
        container_id=str(meta.get("uid") or ""),
        sprint_id=str(labels.get(LABEL_SPRINT, "")),
        task_id=str(labels.get(LABEL_TASK, "")),
        attempt=int(labels.get(LABEL_ATTEMPT, "0") or 0),
        health=verdict_.health,
        exit_code=verdict_.exit_code,
        started_at=parse_time(verdict_.started_at),
        finished_at=parse_time(verdict_.finished_at),
    )
