"""A restarted operator sweeps what its SIGKILLed predecessor left on the cluster (`containers.runtime:
pods`): a gate Pod no one waits for any more and its NetworkPolicy, and the policy and Secret of a task
Pod that is gone, while a running task Pod (which it adopts) keeps its policy, and another operator's
leftovers stay. A process running the Pods runtime on real nodes is killed; a new runtime on the same
state directory sweeps at start-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _e2e import wait_for
from _node import build_busybox_image, restricted_namespace, two_nodes
from localcluster import LocalCluster
from nodeset import push_image
from sprint_orchestrator.kube import Kube
from sprint_orchestrator.runtime import LABEL_INSTANCE, LABEL_OWNER, LABEL_ROLE, podnet
from sprint_orchestrator.runtime.pods import PodsRuntime

pytestmark = [pytest.mark.node, pytest.mark.podman, pytest.mark.timeout(900)]

# The operator that is killed: a task Pod that runs on, a task Pod with a Secret, a gate Pod that waits;
# it says their names once all three exist, then waits to be killed.
KILLED = """
import json, sys, threading, time
from pathlib import Path
from sprint_orchestrator.kube import Kube
from sprint_orchestrator.runtime import Limits, TaskRunSpec
from sprint_orchestrator.runtime.pods import PodsRuntime

a = json.loads(sys.argv[1])
rt = PodsRuntime(Kube.from_kubeconfig(a["kubeconfig"]), a["namespace"], a["host"], Path(a["state"]),
                 registry=a["registry"])
limits = Limits(cpus=0.25, memory_bytes=32 << 20)
sleep = ["/bin/sh", "-c", "sleep 600"]

def spec(task, secrets):
    root = Path(a["work"]) / task
    (root / "ws").mkdir(parents=True)
    (root / "artifacts").mkdir()
    return TaskRunSpec(sprint_id="sweep", task_id=task, attempt=1, image=a["image"], command=sleep,
                       workspace=root / "ws", artifacts=root / "artifacts", environment={}, limits=limits,
                       timeout_s=900, secrets=secrets)

live = rt.start_task(spec("live", {})).name
gone = rt.start_task(spec("gone", {"SO_KEY": "x"})).name
threading.Thread(target=rt.run_oneshot, args=(a["image"], sleep, None, 900, limits), daemon=True).start()
while not rt.kube.list_pods(a["namespace"], "sprintorchestrator.dev/role=oneshot"):
    time.sleep(0.2)
gate = rt.kube.list_pods(a["namespace"], "sprintorchestrator.dev/role=oneshot")[0]["metadata"]["name"]
print(json.dumps({"live": live, "gone": gone, "gate": gate, "owner": rt.owner}), flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with two_nodes(tmp_path_factory.mktemp("sweep")) as local:
        yield local


@pytest.fixture(scope="module")
def image(nodes: LocalCluster) -> str:
    return str(
        push_image(build_busybox_image(), nodes.registry, f"sweep-test/busybox:{uuid.uuid4().hex[:8]}")
    )


def _exists(nodes: LocalCluster, ns: str, kind: str, name: str) -> bool:
    return bool(nodes.kubectl("-n", ns, "get", kind, name, "--ignore-not-found", "-o", "name").strip())


def _killed_operator(nodes: LocalCluster, ns: str, state: Path, work: Path, image: str) -> dict[str, str]:
    """Run the Pods runtime in a process, let it start its Pods, then SIGKILL it: nothing is cleaned up."""
    node_set = nodes.node_set()
    assert node_set is not None
    args = {
        "kubeconfig": str(nodes.kubeconfig), "namespace": ns, "host": node_set.slot.host_ip,
        "state": str(state), "registry": nodes.registry, "work": str(work), "image": image,
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, json.dumps(args)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the process says its names once its Pods exist (or dies: "")
        assert line, f"the killed operator's process ended first ({proc.wait()})"
        return dict(json.loads(line))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _foreign_policy(nodes: LocalCluster, ns: str) -> str:
    """Another operator's fence whose Pod is gone: only that operator may sweep it."""
    name = f"so-s-theirs-{uuid.uuid4().hex[:6]}"
    labels = {LABEL_ROLE: "task", podnet.LABEL_POD: name, LABEL_OWNER: "f" * 32, LABEL_INSTANCE: "theirs"}
    policy = podnet.network_policy(name, ns, labels, "10.0.0.1", [1], [])
    nodes.kubectl("apply", "-f", "-", input=json.dumps(policy))
    return name


def test_a_restarted_operator_sweeps_the_gate_pod_and_fences_its_killed_predecessor_left_but_not_a_live_pods(
    tmp_path: Path, nodes: LocalCluster, image: str
) -> None:
    ns = restricted_namespace(nodes, "sweep")
    state = tmp_path / "state"
    left = _killed_operator(nodes, ns, state, tmp_path / "work", image)
    live, gone, gate = left["live"], left["gone"], left["gate"]
    # As if it was killed between deleting the Pod and its fence: the Pod is gone, its policy and Secret not.
    nodes.kubectl("-n", ns, "delete", "pod", gone, "--wait=true", "--timeout=120s")
    for kind, name in (("networkpolicy", gone), ("secret", gone), ("networkpolicy", gate), ("pod", gate)):
        assert _exists(nodes, ns, kind, name), (kind, name)
    assert _labels_of(nodes, ns, "pod", gate)[LABEL_OWNER] == left["owner"]
    assert _labels_of(nodes, ns, "networkpolicy", live)[LABEL_OWNER] == left["owner"]
    theirs = _foreign_policy(nodes, ns)

    node_set = nodes.node_set()
    assert node_set is not None
    kube = Kube.from_kubeconfig(str(nodes.kubeconfig))
    runtime = PodsRuntime(kube, ns, node_set.slot.host_ip, state, registry=nodes.registry)
    try:
        assert runtime.owner == left["owner"], "a restart on the same state directory is the same operator"
        removed = runtime.prune_oneshots()
        assert gate in removed and gone in removed, removed
        assert live not in removed and theirs not in removed, removed
        assert not _exists(nodes, ns, "networkpolicy", gone) and not _exists(nodes, ns, "secret", gone)
        wait_for(lambda: not _exists(nodes, ns, "pod", gate), 180, "the left gate Pod gone")
        wait_for(lambda: not _exists(nodes, ns, "networkpolicy", gate), 180, "the gate's policy deleted")
        # The running task Pod keeps its fence (the restarted operator adopts it), and a second sweep
        # finds nothing more to remove.
        assert _exists(nodes, ns, "pod", live) and _exists(nodes, ns, "networkpolicy", live)
        assert _exists(nodes, ns, "networkpolicy", theirs)
        assert runtime.prune_oneshots() == []
        assert _exists(nodes, ns, "networkpolicy", live)
        runtime.remove(live)
        wait_for(
            lambda: not _exists(nodes, ns, "networkpolicy", live), 180, "the removed Pod's policy deleted"
        )
    finally:
        runtime.close()
        nodes.kubectl("delete", "namespace", ns, "--wait=false")


def _labels_of(nodes: LocalCluster, ns: str, kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(nodes.kubectl("-n", ns, "get", kind, name, "-o", "json"))["metadata"]["labels"])
