"""The Pods runtime's start-up sweep of fences (podsweep.py) on the real API server, no node needed.

A task Pod's NetworkPolicy is deleted only after the Pod object is gone, in a thread (podfence.py): an
operator killed in between leaves the policy (and the attempt's Secret) behind. The next process of the
same operator (its state directory) deletes them at start-up; the policy of a Pod that still exists,
another operator's, and one this process has just put stay. Unscheduled Pods stand in for running ones:
the sweep reads Pod objects only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _e2e import wait_for
from conftest import kubectl
from localcluster import LocalCluster
from sprint_orchestrator.kube import Kube
from sprint_orchestrator.runtime import LABEL_INSTANCE, LABEL_OWNER, LABEL_ROLE, Limits, TaskRunSpec, podnet
from sprint_orchestrator.runtime.pods import PodsRuntime

pytestmark = pytest.mark.cluster


@pytest.fixture
def runtimes(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[list[PodsRuntime]]:
    """The Pods runtimes a test opens (on one state directory: one operator), closed at its end."""
    made: list[PodsRuntime] = []
    wait_for(
        lambda: kubectl(cluster, "-n", namespace, "get", "serviceaccount", "default", check=False),
        60,
        "the namespace's default ServiceAccount (Pods are admitted with it)",
    )
    yield made
    for runtime in made:
        runtime.close()


def _open(cluster: LocalCluster, namespace: str, state: Path, made: list[PodsRuntime]) -> PodsRuntime:
    kube = Kube.from_kubeconfig(str(cluster.kubeconfig))
    runtime = PodsRuntime(kube, namespace, "127.0.0.1", state, registry="registry.invalid")
    made.append(runtime)
    return runtime


def _start(runtime: PodsRuntime, root: Path, task: str, secrets: dict[str, str]) -> str:
    """A task attempt as the runtime starts it (fence, then Pod); its Pod is never scheduled."""
    (root / task / "ws").mkdir(parents=True)
    (root / task / "artifacts").mkdir()
    spec = TaskRunSpec(
        sprint_id="sweep", task_id=task, attempt=1, image="registry.invalid/busybox:1",
        command=["sleep", "600"], workspace=root / task / "ws", artifacts=root / task / "artifacts",
        limits=Limits(cpus=0.25, memory_bytes=32 << 20), secrets=secrets,
    )  # fmt: skip
    return runtime.start_task(spec).name


def _exists(cluster: LocalCluster, namespace: str, kind: str, name: str) -> bool:
    found = kubectl(cluster, "-n", namespace, "get", kind, name, "--ignore-not-found", "-o", "name")
    return bool(found.strip())


def _foreign_policy(cluster: LocalCluster, namespace: str, name: str) -> None:
    """Another operator's fence whose Pod is gone (a killed operator of its own): not ours to sweep."""
    labels = {LABEL_ROLE: "task", podnet.LABEL_POD: name, LABEL_OWNER: "f" * 32, LABEL_INSTANCE: "e" * 32}
    policy = podnet.network_policy(name, namespace, labels, "10.0.0.1", [1], [])
    kubectl(cluster, "apply", "-f", "-", input=json.dumps(policy))


def _policy(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl(cluster, "-n", namespace, "get", "networkpolicy", name, "-o", "json")))


def test_a_restarted_operator_deletes_the_task_policy_and_secret_its_killed_predecessor_left_without_a_pod(
    cluster: LocalCluster, namespace: str, tmp_path: Path, runtimes: list[PodsRuntime]
) -> None:
    state, work = tmp_path / "state", tmp_path / "work"
    killed = _open(cluster, namespace, state, runtimes)
    live = _start(killed, work, "live", {})
    gone = _start(killed, work, "gone", {"SO_KEY": "x"})
    # Killed after deleting the Pod, before its deferred policy deletion ran: the Pod is gone, its
    # NetworkPolicy and Secret are not, and no Task deletion will come to collect them (none owns them).
    kubectl(cluster, "-n", namespace, "delete", "pod", gone, "--wait=true", "--timeout=60s")
    _foreign_policy(cluster, namespace, "so-theirs-1")

    restarted = _open(cluster, namespace, state, runtimes)
    assert restarted.owner == killed.owner and restarted.instance != killed.instance
    fresh = "so-sweep-fresh-1"  # this process's own fence, put before its Pod (not yet created)
    restarted.fences.attach(fresh, {LABEL_ROLE: "task", podnet.LABEL_POD: fresh}, {}, [])
    removed = restarted.prune_oneshots()

    assert removed == [gone], removed
    assert not _exists(cluster, namespace, "networkpolicy", gone)
    assert not _exists(cluster, namespace, "secret", gone)
    for spared in (live, "so-theirs-1", fresh):
        assert _exists(cluster, namespace, "networkpolicy", spared), spared
    assert _exists(cluster, namespace, "pod", live)
    assert restarted.prune_oneshots() == []


def test_a_policy_put_again_between_the_sweeps_listing_and_its_delete_is_kept(
    cluster: LocalCluster, namespace: str, tmp_path: Path, runtimes: list[PodsRuntime]
) -> None:
    """The deletes carry the uid and resourceVersion the sweep read: a fence this process put again for
    a new Pod of that name after the listing (the API server bumps its version) is not deleted."""
    state = tmp_path / "state"
    killed = _open(cluster, namespace, state, runtimes)
    name = _start(killed, tmp_path / "work", "again", {})
    kubectl(cluster, "-n", namespace, "delete", "pod", name, "--wait=true", "--timeout=60s")
    read = _policy(cluster, namespace, name)["metadata"]["resourceVersion"]

    restarted = _open(cluster, namespace, state, runtimes)
    listed = restarted.kube.list_pods

    def list_then_put_again(ns: str, selector: str) -> list[dict[str, Any]]:
        pods = listed(ns, selector)  # after the policies were listed: the sweep holds the old version
        restarted.fences.attach(name, {LABEL_ROLE: "task", podnet.LABEL_POD: name}, {}, [])
        return pods

    restarted.kube.list_pods = list_then_put_again  # type: ignore[method-assign]
    assert restarted.prune_oneshots() == []
    kept = _policy(cluster, namespace, name)["metadata"]
    assert kept["resourceVersion"] != read
    assert kept["labels"][LABEL_INSTANCE] == restarted.instance
