"""Kubernetes' own verdicts on real nodes (`containers.runtime: pods`): an image that cannot be pulled, a
RuntimeClass that does not exist or whose handler no node has (for a task Pod, a gate Pod and the
integration tests' Pod), a Pod no node fits, an evicted task Pod, and a sprint's nodeSelector placing every
task Pod on the node it names."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _e2e import apply, operator_process, sprint_status, suspended_sprint, wait_for
from _node import build_busybox_image, pods_operator, pods_runtime, two_nodes
from _oplog import assert_clean_log
from localcluster import LocalCluster
from nodeset import push_image
from sprint_orchestrator.errors import PodRejected
from sprint_orchestrator.runtime import Health, Limits, RunOutcome, Scheduling, TaskRunSpec
from sprint_orchestrator.runtime.pods import PodsRuntime
from sprint_orchestrator.runtime.podstatus import StallPolicy
from test_lifecycle_e2e import git, seed_repository

pytestmark = [pytest.mark.node, pytest.mark.podman, pytest.mark.timeout(1500)]

SMALL = Limits(cpus=0.5, memory_bytes=64 << 20)
# Short enough for a test, long enough that a transient pull error on a loaded machine is not one.
STALLS = StallPolicy(pull_grace_s=10, unschedulable_report_s=2, pending_slack_s=30)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with two_nodes(tmp_path_factory.mktemp("infra")) as local:
        yield local


@pytest.fixture(scope="module")
def image(nodes: LocalCluster) -> str:
    return str(
        push_image(build_busybox_image(), nodes.registry, f"infra-test/busybox:{uuid.uuid4().hex[:8]}")
    )


@pytest.fixture(scope="module")
def runtime(nodes: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodsRuntime]:
    with pods_runtime(nodes, tmp_path_factory.mktemp("state"), "infra", stalls=STALLS) as pods:
        yield pods


def _spec(tmp_path: Path, image: str, script: str = "echo hi > out.txt", **changes: Any) -> TaskRunSpec:
    ws, artifacts = tmp_path / "ws", tmp_path / "artifacts"
    ws.mkdir(exist_ok=True)
    artifacts.mkdir(exist_ok=True)
    spec = TaskRunSpec(
        sprint_id="infra-1",
        task_id=f"t{uuid.uuid4().hex[:6]}",
        attempt=1,
        image=image,
        command=["/bin/sh", "-c", script],
        workspace=ws,
        artifacts=artifacts,
        limits=SMALL,
        timeout_s=600,
    )
    return dataclasses.replace(spec, **changes)


def test_a_task_pod_whose_image_cannot_be_pulled_ends_as_an_infrastructure_failure_naming_the_image(
    tmp_path: Path, runtime: PodsRuntime, nodes: LocalCluster
) -> None:
    missing = f"{nodes.registry}/infra-test/never-pushed:{uuid.uuid4().hex[:8]}"
    spec = _spec(tmp_path, missing)
    handle = runtime.start_task(spec)
    outcome = runtime.wait(handle, spec.timeout_s)
    runtime.remove(handle)
    assert outcome.infrastructure == "ImagePullFailed", outcome
    assert outcome.health != Health.TIMED_OUT
    assert missing in outcome.reason and "cannot be pulled" in outcome.reason, outcome.reason
    assert "ErrImagePull" in outcome.reason or "ImagePullBackOff" in outcome.reason, outcome.reason
    wait_for(lambda: runtime.status(handle.name) is None, 60, "the stuck Pod deleted")


def test_a_runtime_class_that_does_not_exist_refuses_the_pod_with_a_clear_error(
    tmp_path: Path, image: str, runtime: PodsRuntime
) -> None:
    spec = _spec(tmp_path, image, scheduling=Scheduling(runtime_class_name="no-such-sandbox"))
    with pytest.raises(PodRejected, match="no-such-sandbox") as refused:
        runtime.start_task(spec)
    assert "RuntimeClass" in str(refused.value)
    assert runtime.status(f"so-infra-1-{spec.task_id}-1") is None


def test_a_runtime_class_whose_handler_no_node_has_ends_the_run_at_once_naming_class_handler_and_node(
    tmp_path: Path, image: str, runtime: PodsRuntime, nodes: LocalCluster
) -> None:
    """The API server admits the Pod (the RuntimeClass exists), the kubelet cannot make its sandbox
    (containerd has no such handler) and says so only in Events: the run ends on them, not at its
    deadline (without them it would end TIMED_OUT)."""
    suffix = uuid.uuid4().hex[:6]
    klass, handler = f"gvisor-{suffix}", f"runsc-{suffix}"
    body = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": klass}}
    nodes.kubectl("create", "-f", "-", input=json.dumps({**body, "handler": handler}))
    try:
        spec = _spec(tmp_path, image, scheduling=Scheduling(runtime_class_name=klass), timeout_s=180)
        handle = runtime.start_task(spec)
        outcome = runtime.wait(handle, spec.timeout_s)
        runtime.remove(handle)
    finally:
        nodes.kubectl("delete", "runtimeclass", klass, "--wait=false")
    assert (outcome.health, outcome.infrastructure) == (Health.REMOVED, "RuntimeHandlerMissing"), outcome
    assert outcome.reason.startswith(f"RuntimeClass {klass}: handler {handler} is not configured on node ")
    assert f'no runtime for "{handler}" is configured' in outcome.reason, outcome.reason
    wait_for(lambda: runtime.status(handle.name) is None, 60, "the stuck Pod deleted")


def test_a_pod_no_node_fits_is_reported_then_ends_as_unschedulable_not_as_a_timeout(
    tmp_path: Path, image: str, runtime: PodsRuntime
) -> None:
    placed = Scheduling(node_selector={"kubernetes.io/hostname": "no-such-node"})
    spec = _spec(tmp_path, image, scheduling=placed, timeout_s=5)
    handle = runtime.start_task(spec)
    outcomes: list[RunOutcome] = []
    waiter = threading.Thread(target=lambda: outcomes.append(runtime.wait(handle, spec.timeout_s)))
    waiter.start()
    try:
        notice = wait_for(lambda: runtime.notice(handle.name), 120, "the unschedulable notice")
        assert notice.startswith("no node fits: 0/2 nodes are available"), notice
        assert "node affinity/selector" in notice, notice
    finally:
        waiter.join(timeout=300)
    runtime.remove(handle)
    (outcome,) = outcomes
    assert (outcome.health, outcome.infrastructure) == (Health.REMOVED, "Unschedulable"), outcome
    assert outcome.reason.startswith("no node fits: "), outcome.reason


def _running_pods(nodes: LocalCluster, ns: str, sprint: str) -> list[dict[str, Any]]:
    """The sprint's task Pods whose agent (main container) runs now."""
    selector = f"sprintorchestrator.dev/role=task,sprintorchestrator.dev/sprint={sprint}"
    pods = json.loads(nodes.kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "json"))
    return [
        pod
        for pod in pods["items"]
        if any(
            s["name"] == "main" and "running" in (s.get("state") or {})
            for s in pod.get("status", {}).get("containerStatuses") or []
        )
    ]


def _evict(nodes: LocalCluster, ns: str, name: str) -> None:
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}}
    path = f"/api/v1/namespaces/{ns}/pods/{name}/eviction"
    nodes.kubectl("create", "--raw", path, "-f", "-", input=json.dumps(eviction))


def _ended(nodes: LocalCluster, ns: str, name: str) -> dict[str, Any] | None:
    status = sprint_status(nodes, ns, name)
    return status if status.get("phase") in ("Completed", "Partial", "Failed", "RolledBack") else None


def test_an_evicted_task_pod_is_retried_as_infrastructure_on_the_selected_node_and_the_sprint_completes(
    tmp_path: Path, nodes: LocalCluster
) -> None:
    """The operator as a process. Sprint `placed` selects node2 for its Pods; its first task Pod is
    evicted through the Eviction API while the agent runs: that attempt is an infrastructure failure,
    retried (not counted against maxAttempts: 1 here), and the sprint completes, every Pod on node2.
    Beside it, sprint `sandboxed` names a RuntimeClass the cluster does not have: its task fails at once
    with the API server's reason, no hang and no retries; sprint `handlerless` names one whose handler no
    node has: its task fails at once, RuntimeHandlerMissing, naming both (the kubelet's Events), not at
    its timeout; and sprint `unfit` selects a node that does not exist: its Task says "no node fits"
    while it waits, then fails Unschedulable (not Timeout)."""
    ns, config = pods_operator(
        nodes,
        tmp_path,
        "evict",
        {"max_concurrent_sprints": 4, "default_team": "demo"},
        {"cleanup_on_completion": False, "unschedulable_report_after": 3},
    )
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    (tmp_path / "other").mkdir()
    other = seed_repository(tmp_path / "other", files={"README.md": "# other\n"})
    placed = suspended_sprint("placed", tasks=2, repository={"url": str(repo), "mainBranch": "main"})
    placed["spec"].update(
        suspend=False,
        team={"type": "demo", "sleepSeconds": 20},  # the agent runs long enough to be evicted
        policy={"maxAttempts": 1},  # an eviction must not use up the work's only attempt
        container={"nodeSelector": {"kubernetes.io/hostname": "node2"}},
    )
    sandboxed = suspended_sprint("sandboxed", tasks=1, repository={"url": str(other), "mainBranch": "main"})
    sandboxed["spec"].update(suspend=False, container={"runtimeClassName": "no-such-sandbox"})
    (tmp_path / "third").mkdir()
    third = seed_repository(tmp_path / "third", files={"README.md": "# third\n"})
    unfit = suspended_sprint("unfit", tasks=1, repository={"url": str(third), "mainBranch": "main"})
    unfit["spec"].update(
        suspend=False,
        container={
            "nodeSelector": {"kubernetes.io/hostname": "no-such-node"},
            "resourceLimits": {"timeoutSeconds": 5},
        },
    )
    (tmp_path / "fourth").mkdir()
    fourth = seed_repository(tmp_path / "fourth", files={"README.md": "# fourth\n"})
    klass, handler = f"kata-{uuid.uuid4().hex[:6]}", f"kata-qemu-{uuid.uuid4().hex[:6]}"
    handlerless = suspended_sprint(
        "handlerless", tasks=1, repository={"url": str(fourth), "mainBranch": "main"}
    )
    handlerless["spec"].update(suspend=False, container={"runtimeClassName": klass})
    runtime_class = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": klass}}
    nodes.kubectl("create", "-f", "-", input=json.dumps({**runtime_class, "handler": handler}))
    with operator_process(
        nodes, ns, tmp_path / "state", tmp_path / "operator.log", SPRINT_ORCHESTRATOR_CONFIG=str(config)
    ):
        apply(nodes, ns, placed)
        apply(nodes, ns, sandboxed)
        apply(nodes, ns, unfit)
        apply(nodes, ns, handlerless)
        (victim,) = wait_for(
            lambda: _running_pods(nodes, ns, "placed"), 600, "the first task Pod's agent running"
        )
        _evict(nodes, ns, victim["metadata"]["name"])
        status = wait_for(lambda: _ended(nodes, ns, "placed"), 900, "sprint placed ended")
        assert status["phase"] == "Completed", json.dumps(status, indent=1)[:4000]
        refused = wait_for(lambda: _ended(nodes, ns, "sandboxed"), 300, "sprint sandboxed ended")
        assert refused["phase"] == "Failed", refused
        wait_for(lambda: _ended(nodes, ns, "unfit"), 600, "sprint unfit ended")
        missing = wait_for(lambda: _ended(nodes, ns, "handlerless"), 600, "sprint handlerless ended")
        assert missing["phase"] == "Failed", missing
        events = json.loads(nodes.kubectl("-n", ns, "get", "events", "-o", "json"))["items"]
        tasks = {
            (t["spec"]["sprintRef"], t["spec"]["taskId"]): t["status"]
            for t in json.loads(nodes.kubectl("-n", ns, "get", "stask", "-o", "json"))["items"]
        }
    evicted = tasks[("placed", "t0")]
    assert (evicted["attempt"], evicted["infraRetries"], evicted["phase"]) == (2, 1, "Completed"), evicted
    retries = [e["message"] for e in events if e.get("reason") == "TaskRetry"]
    assert any("Evicted" in m and "EvictionByEvictionAPI" in m for m in retries), retries
    placements = {
        e["involvedObject"]["name"]: e["message"].rsplit(" to ", 1)[-1]
        for e in events
        if e.get("reason") == "Scheduled"
    }
    task_pods = [name for name in placements if name.startswith("so-placed-")]
    assert len(task_pods) == 3, placements  # t0 twice (evicted, then retried), t1 once
    assert {placements[name] for name in task_pods} == {"node2"}, placements
    sandbox = tasks[("sandboxed", "t0")]
    assert (sandbox["phase"], sandbox["reason"], sandbox["attempt"]) == ("Failed", "PodRejected", 1), sandbox
    assert "no-such-sandbox" in sandbox["error"] and "RuntimeClass" in sandbox["error"], sandbox
    nodes.kubectl("delete", "runtimeclass", klass, "--wait=false")
    bare = tasks[("handlerless", "t0")]
    assert (bare["phase"], bare["reason"], bare["attempt"]) == ("Failed", "RuntimeHandlerMissing", 1), bare
    assert bare["error"].startswith(f"RuntimeClass {klass}: handler {handler} is not configured on node ")
    assert not bare.get("infraRetries"), bare
    lonely = tasks[("unfit", "t0")]
    assert (lonely["phase"], lonely["reason"], lonely["attempt"]) == ("Failed", "Unschedulable", 1), lonely
    assert lonely["error"].startswith("no node fits: 0/2 nodes are available"), lonely["error"]
    (scheduled,) = [c for c in lonely["conditions"] if c["type"] == "PodScheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable"), scheduled
    assert "node affinity/selector" in scheduled["message"], scheduled
    assert any(e.get("reason") == "TaskUnschedulable" for e in events), [e.get("reason") for e in events]
    merged = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main")
    assert "notes/t0.md" in merged and "notes/t1.md" in merged


def _oneshot_running(nodes: LocalCluster, ns: str, sprint: str) -> list[dict[str, Any]]:
    """The one-shot Pods running now while the sprint is Integrating: its integration tests' Pod."""
    if sprint_status(nodes, ns, sprint).get("phase") != "Integrating":
        return []
    selector = "sprintorchestrator.dev/role=oneshot"
    pods = json.loads(nodes.kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "json"))["items"]
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running" and _main_running(p)]


def _main_running(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(s["name"] == "main" and "running" in (s.get("state") or {}) for s in statuses)


def test_integration_tests_the_cluster_keeps_ending_run_again_on_the_budget_then_fail_the_sprint_saying_so(
    tmp_path: Path, nodes: LocalCluster
) -> None:
    """An evicted integration-test Pod says nothing about the sprint: the tests run again after the
    backoff, on the infrastructure budget (`containers.infrastructure_retries`: 1 here); evicted again,
    the sprint fails saying the tests could not run, and main is left alone."""
    ns, config = pods_operator(
        nodes, tmp_path, "integ", {"default_team": "demo"}, {"infrastructure_retries": 1}
    )
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    before = git("-C", str(repo), "rev-parse", "main")
    shaky = suspended_sprint("shaky", tasks=1, repository={"url": str(repo), "mainBranch": "main"})
    shaky["spec"].update(suspend=False, integrationTests=["sleep 600"])
    with operator_process(
        nodes, ns, tmp_path / "state", tmp_path / "operator.log", SPRINT_ORCHESTRATOR_CONFIG=str(config)
    ):
        apply(nodes, ns, shaky)
        evicted: list[str] = []
        for round_ in (1, 2):
            (pod,) = wait_for(
                lambda: [
                    p for p in _oneshot_running(nodes, ns, "shaky") if p["metadata"]["name"] not in evicted
                ],
                600,
                f"integration tests running ({round_})",
            )
            evicted.append(pod["metadata"]["name"])
            _evict(nodes, ns, evicted[-1])
            if round_ == 1:
                wait_for(
                    lambda: sprint_status(nodes, ns, "shaky").get("integrationInfraRetries") == 1,
                    300,
                    "the first eviction counted",
                )
        status = wait_for(lambda: _ended(nodes, ns, "shaky"), 600, "sprint shaky ended")
        events = json.loads(nodes.kubectl("-n", ns, "get", "events", "-o", "json"))["items"]
    assert status["phase"] == "Failed", json.dumps(status, indent=1)[:4000]
    assert status["message"].startswith("the integration tests could not run: "), status["message"]
    assert (
        "Evicted" in status["message"] and "no infrastructure retries left (1 of 1 used)" in status["message"]
    )
    assert status["integrationInfraRetries"] == 1
    retried = [e["message"] for e in events if e.get("reason") == "IntegrationRetry"]
    assert len(retried) == 1 and "infrastructure retry 1 of 1" in retried[0], retried
    assert git("-C", str(repo), "rev-parse", "main") == before


# A gate or integration-test Pod whose RuntimeClass's handler no node has ends at once: well before its
# timeout (the gate's is the task's, 900 s here; the integration tests' 1800 s).
ENDS_WITHIN_S = 300


@dataclasses.dataclass(frozen=True)
class HandlerGone:
    """How a sprint ended whose RuntimeClass lost its handler while its one task's Pod ran."""

    klass: str
    handler: str
    status: dict[str, Any]  # the Sprint's
    task: dict[str, Any]  # its Task's
    seconds: float | None  # from the RuntimeClass's change to the sprint's end (None: not in time)
    main_moved: bool


def _runtime_class(klass: str, handler: str) -> str:
    meta = {"name": klass}
    return json.dumps(
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": meta, "handler": handler}
    )


def _swap_when_running(nodes: LocalCluster, ns: str, classes: dict[str, tuple[str, str]]) -> dict[str, float]:
    """Once a sprint's task Pod runs its agent (its sandbox made by runc), make its RuntimeClass again
    with a handler no node has (a handler is immutable): every later Pod of that sprint gets no sandbox.
    Returns sprint -> when (monotonic)."""
    swapped: dict[str, float] = {}
    while len(swapped) < len(classes):
        running = wait_for(
            lambda: [s for s in classes if s not in swapped and _running_pods(nodes, ns, s)],
            600,
            f"the task Pods' agents running ({sorted(set(classes) - set(swapped))})",
        )
        for sprint in running:
            klass, handler = classes[sprint]
            nodes.kubectl("delete", "runtimeclass", klass)
            nodes.kubectl("create", "-f", "-", input=_runtime_class(klass, handler))
            swapped[sprint] = time.monotonic()
    return swapped


def _ended_within(nodes: LocalCluster, ns: str, sprint: str, since: float) -> float | None:
    """Seconds from `since` to the sprint's end; None when it has not ended ENDS_WITHIN_S after it."""
    while time.monotonic() - since < ENDS_WITHIN_S:
        if _ended(nodes, ns, sprint):
            return time.monotonic() - since
        time.sleep(0.25)
    return None


@pytest.fixture(scope="module")
def handler_gone(nodes: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, HandlerGone]:
    """The operator as a process, two sprints, each on a RuntimeClass of its own whose handler (runc)
    every node has while its task Pod starts, then none has: sprint `gated` (its task has a quality gate)
    meets it at its gate Pod, sprint `integrated` (no gate) at its integration tests' Pod."""
    tmp_path = tmp_path_factory.mktemp("handler-gone")
    ns, config = pods_operator(nodes, tmp_path, "gone", {"max_concurrent_sprints": 2})
    suffix = uuid.uuid4().hex[:6]
    classes = {s: (f"{s}-{suffix}", f"gone-{s}-{suffix}") for s in ("gated", "integrated")}
    repos, before, manifests = {}, {}, []
    for sprint, (klass, _) in classes.items():
        (tmp_path / sprint).mkdir()
        repos[sprint] = seed_repository(tmp_path / sprint, files={"README.md": f"# {sprint}\n"})
        before[sprint] = git("-C", str(repos[sprint]), "rev-parse", "main")
        manifest = suspended_sprint(
            sprint, tasks=1, repository={"url": str(repos[sprint]), "mainBranch": "main"}
        )
        manifest["spec"].update(
            suspend=False,
            team={"type": "demo", "sleepSeconds": 20},
            container={"runtimeClassName": klass, "resourceLimits": {"timeoutSeconds": 900}},
        )
        manifests.append(manifest)
        nodes.kubectl("create", "-f", "-", input=_runtime_class(klass, "runc"))
    manifests[0]["spec"]["tasks"][0]["testRequirements"] = ["true"]
    manifests[1]["spec"]["integrationTests"] = ["true"]
    log = tmp_path / "operator.log"
    try:
        with operator_process(nodes, ns, tmp_path / "state", log, SPRINT_ORCHESTRATOR_CONFIG=str(config)):
            for manifest in manifests:
                apply(nodes, ns, manifest)
            swapped = _swap_when_running(nodes, ns, classes)
            seconds = {s: _ended_within(nodes, ns, s, swapped[s]) for s in classes}
            tasks = {
                t["spec"]["sprintRef"]: t["status"]
                for t in json.loads(nodes.kubectl("-n", ns, "get", "stask", "-o", "json"))["items"]
            }
    finally:
        for klass, _ in classes.values():
            nodes.kubectl("delete", "runtimeclass", klass, "--ignore-not-found", "--wait=false")
    assert_clean_log(log)  # the module-scoped operator is not the per-test oracle's
    return {
        s: HandlerGone(
            klass,
            handler,
            sprint_status(nodes, ns, s),
            tasks[s],
            seconds[s],
            git("-C", str(repos[s]), "rev-parse", "main") != before[s],
        )
        for s, (klass, handler) in classes.items()
    }


def test_a_gate_pod_whose_runtime_class_handler_no_node_has_fails_its_task_at_once_for_a_human_to_retry(
    handler_gone: dict[str, HandlerGone],
) -> None:
    gone = handler_gone["gated"]
    assert gone.seconds is not None, f"not ended {ENDS_WITHIN_S} s after (its gate's timeout: 900 s)"
    task = gone.task
    assert (task["phase"], task["reason"], task["recoveryAction"]) == ("Failed", "PodRejected", "retry"), task
    prefix = f"the run of 'true' cannot start: RuntimeClass {gone.klass}: handler {gone.handler} "
    assert re.match(re.escape(prefix) + r"is not configured on node node[12]: ", task["error"]), task["error"]
    assert f'no runtime for "{gone.handler}" is configured' in task["error"], task["error"]
    assert gone.status["phase"] == "Failed", gone.status
    assert gone.status["message"].endswith("main was not changed"), gone.status["message"]
    assert not gone.main_moved


def test_an_integration_test_pod_whose_runtime_class_handler_no_node_has_fails_the_sprint_at_once_saying_so(
    handler_gone: dict[str, HandlerGone],
) -> None:
    gone = handler_gone["integrated"]
    assert gone.seconds is not None, f"not ended {ENDS_WITHIN_S} s after (the tests' timeout: 1800 s)"
    assert gone.task["phase"] == "Completed", gone.task
    message = gone.status["message"]
    assert gone.status["phase"] == "Failed", gone.status
    prefix = (
        "the integration tests cannot run: the run of 'true' cannot start: "
        f"RuntimeClass {gone.klass}: handler {gone.handler} "
    )
    assert re.match(re.escape(prefix) + r"is not configured on node node[12]: ", message), message
    assert f'no runtime for "{gone.handler}" is configured' in message, message
    assert message.endswith("; main was not changed"), message
    assert not gone.status.get("integrationInfraRetries"), gone.status  # final: not retried on the budget
    assert not gone.main_moved
