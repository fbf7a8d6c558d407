"""A gate's Pod the API server refuses is never a failed gate (the Pods runtime, the real API server, no
node needed): a refusal that will hold is `PodRejected` (for a human), any other is the cluster's
(`infrastructure`, retried on the infrastructure budget); its fence goes with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _e2e import wait_for
from conftest import kubectl
from localcluster import LocalCluster
from sprint_orchestrator.errors import PodRejected
from sprint_orchestrator.kube import Kube, KubeError
from sprint_orchestrator.runtime import Limits, Scheduling
from sprint_orchestrator.runtime.podoneshot import POD_FAILED
from sprint_orchestrator.runtime.pods import PodsRuntime

pytestmark = pytest.mark.cluster

SMALL = Limits(cpus=0.25, memory_bytes=32 << 20)


@pytest.fixture
def runtime(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[PodsRuntime]:
    wait_for(
        lambda: kubectl(cluster, "-n", namespace, "get", "serviceaccount", "default", check=False),
        60,
        "the namespace's default ServiceAccount (Pods are admitted with it)",
    )
    pods = PodsRuntime(
        Kube.from_kubeconfig(str(cluster.kubeconfig)), namespace, "127.0.0.1", tmp_path / "state"
    )
    yield pods
    pods.close()


def _policies(cluster: LocalCluster, namespace: str) -> str:
    return kubectl(cluster, "-n", namespace, "get", "networkpolicies", "-o", "name").strip()


def test_a_gate_pod_refused_for_good_is_pod_rejected_not_a_failed_gate(
    cluster: LocalCluster, namespace: str, runtime: PodsRuntime, tmp_path: Path
) -> None:
    placed = Scheduling(priority_class_name="no-such-priority-class")
    with pytest.raises(PodRejected, match="no-such-priority-class"):
        runtime.run_oneshot("registry.invalid/gate:1", ["true"], tmp_path, 60, SMALL, scheduling=placed)
    wait_for(lambda: _policies(cluster, namespace) == "", 60, "the refused Pod's NetworkPolicy deleted")


def test_a_gate_pod_the_api_server_did_not_take_for_now_is_the_cluster_s_failure_to_retry(
    cluster: LocalCluster,
    namespace: str,
    runtime: PodsRuntime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy API server (429, what the Kube adapter raises for it) refuses only for now: the gate's run is
    an infrastructure failure, retried on that budget, not a verdict on the command. (A ResourceQuota
    does not do here: the control plane alone runs no quota controller, and admission lets Pods in.)"""

    def busy(namespace: str, pod: object) -> None:
        raise KubeError("create Pod: 429 TooManyRequests", status=429)

    monkeypatch.setattr(runtime.kube, "create_pod", busy)
    outcome = runtime.run_oneshot("registry.invalid/gate:1", ["true"], tmp_path, 60, SMALL)
    assert (outcome.exit_code, outcome.infrastructure) == (None, POD_FAILED), outcome
    assert "429" in outcome.log_tail
    wait_for(lambda: _policies(cluster, namespace) == "", 60, "the Pod's NetworkPolicy deleted")
