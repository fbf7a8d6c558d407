"""Shared fixtures: the real local control plane (session-scoped), a fresh namespace per test, and the
session's last check: no process the suite started outlives it."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack"))

import _procs  # noqa: E402
from _oplog import _operator_logs_are_clean  # noqa: E402, F401  (an autouse fixture)
from localcluster import BIN, LocalCluster  # noqa: E402

CRDS = REPO / "crds"
LEFTOVER_GRACE_S = 30.0  # for a process already told to stop (SIGTERM sent) to finish exiting


def pytest_configure(config: pytest.Config) -> None:
    if not _procs.become_subreaper():
        raise pytest.UsageError("prctl(PR_SET_CHILD_SUBREAPER) failed: the leftover check needs it")


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Set up before every other fixture, so torn down after them all: then fail the run if any
    process this session started (a descendant of pytest, orphans included) is still alive, or any
    filesystem is still mounted under its temporary directories (a task's size-capped disk)."""
    yield
    mounted = _procs.mounts_under(tmp_path_factory.getbasetemp())
    for point in mounted:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    if mounted:
        pytest.fail("mounts the test session made outlived it (now unmounted):\n  " + "\n  ".join(mounted))
    left = _procs.wait_gone(_procs.descendants(), LEFTOVER_GRACE_S)
    for proc in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    _procs.wait_gone(left, LEFTOVER_GRACE_S)
    _procs.reap_orphans()
    if left:
        listing = "\n".join(f"  {proc}" for proc in left)
        pytest.fail(f"{len(left)} process(es) the test session started outlived it (now killed):\n{listing}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real etcd + kube-apiserver + kube-controller-manager, with our CRDs installed."""
    state = tmp_path_factory.mktemp("cluster")
    local = LocalCluster(state)
    local.up()
    try:
        local.apply_crds(CRDS)
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


@pytest.fixture(scope="module", autouse=True)
def _garbage_of_this_module() -> Iterator[None]:
    """Collect the module's garbage as it ends: a socket or transport one of its tests left open is
    then reported (filterwarnings = error) in this module's last test, not in whichever later test
    happens to trigger the collector (a CI run once failed a pure hypothesis test in test_plan.py on
    an unclosed asyncio transport some earlier module leaked)."""
    yield
    gc.collect()


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
