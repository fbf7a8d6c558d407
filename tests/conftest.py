"""Shared fixtures: the real local control plane (session-scoped) and a fresh namespace per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))

from _oplog import _operator_logs_are_clean  # noqa: E402, F401  (an autouse fixture)
from localcluster import BIN, LocalCluster  # noqa: E402

CRDS = REPO / "crds"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real etcd + kube-apiserver + kube-controller-manager, with our CRDs installed."""
    state = tmp_path_factory.mktemp("cluster")
    local = LocalCluster(state)
    local.up()
    try:
        kubectl(local, "apply", "--server-side", "-f", str(CRDS))
        for crd in ("sprints", "tasks"):
            kubectl(
                local,
                "wait",
                "--for=condition=Established",
                f"crd/{crd}.sprintorchestrator.dev",
                "--timeout=60s",
            )
        yield local
    finally:
        local.down()


def kubectl(local: LocalCluster, *args: str, check: bool = True, input: str | None = None) -> str:
    """Run the kubectl built from the same Kubernetes release against the local cluster."""
    result = subprocess.run(
        [str(BIN / "kubectl"), "--kubeconfig", str(local.kubeconfig), *args],
        capture_output=True,
        text=True,
        input=input,
        check=False,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + (result.stderr if not check else "")


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl(cluster, "create", "namespace", name)
    yield name
    kubectl(cluster, "delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubeconfig_env(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    return str(cluster.kubeconfig)


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in (
        ("GIT_AUTHOR_NAME", "Test Author"),
        ("GIT_AUTHOR_EMAIL", "author@example.com"),
        ("GIT_COMMITTER_NAME", "Test Committer"),
        ("GIT_COMMITTER_EMAIL", "committer@example.com"),
    ):
        if var not in os.environ:
            monkeypatch.setenv(var, value)
