"""A restarted operator adopts the task Pods it finds (`containers.runtime: pods`): the operator process
is SIGKILLed while a task Pod runs on a real node, a new one starts on the same state directory, finds
the Pod by name and labels, re-registers its transfer grant from disk, and the task's result still comes
back and is merged, in the same attempt."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _e2e import apply, sprint_status, start_operator, stop_operator, suspended_sprint, wait_for
from _node import pods_operator, two_nodes
from localcluster import LocalCluster
from test_lifecycle_e2e import git, seed_repository

pytestmark = [pytest.mark.node, pytest.mark.podman, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with two_nodes(tmp_path_factory.mktemp("adopt")) as local:
        yield local


def _main_running(nodes: LocalCluster, ns: str, sprint: str = "") -> dict[str, Any] | None:
    """The task Pod once its main container (the agent) runs, else None (a sprint that failed or was
    refused fails the wait at once)."""
    status = sprint_status(nodes, ns, sprint) if sprint else {}
    assert status.get("phase") != "Failed" and "Invalid" not in json.dumps(status.get("conditions")), status
    pods = json.loads(
        nodes.kubectl("-n", ns, "get", "pods", "-l", "sprintorchestrator.dev/role=task", "-o", "json")
    )
    for pod in pods["items"]:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if status["name"] == "main" and "running" in (status.get("state") or {}):
                return dict(pod)
    return None


def test_an_operator_killed_while_a_task_pod_runs_adopts_it_after_a_restart_and_merges_its_result(
    tmp_path: Path, nodes: LocalCluster
) -> None:
    ns, config = pods_operator(nodes, tmp_path, "adopt", {"default_team": "demo"}, None)
    repo = seed_repository(tmp_path, files={"README.md": "# target\n"})
    manifest = suspended_sprint("adopt", tasks=1, repository={"url": str(repo), "mainBranch": "main"})
    manifest["spec"]["suspend"] = False
    manifest["spec"]["team"] = {"type": "demo", "sleepSeconds": 45}  # the Pod runs while the operator is away
    state = tmp_path / "state"
    env = {"SPRINT_ORCHESTRATOR_CONFIG": str(config)}
    first = start_operator(nodes, ns, state, tmp_path / "operator-1.log", **env)
    try:
        apply(nodes, ns, manifest)
        pod = wait_for(lambda: _main_running(nodes, ns, "adopt"), 600, "the task Pod's container running")
        # The Pod's one container first downloads its workspace and the team's files: the operator dies
        # once they went out whole (the agent runs then), not during the download.
        wait_for(lambda: _fetched(state), 300, "the task Pod's workspace and files sent")
        grants = list((state / "transfer").glob("*.json"))
        assert len(grants) == 1 and json.loads(grants[0].read_text())["pod"] == pod["metadata"]["name"]
    finally:
        stop_operator(first, signal.SIGKILL)  # a crash: nothing is cleaned up
    assert _main_running(nodes, ns) is not None, "the Pod must outlive its operator"
    token = next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "SO_TRANSFER")
    assert token.rsplit("/", 1)[-1] not in grants[0].read_text()  # only the token's digest is on disk

    second = start_operator(nodes, ns, state, tmp_path / "operator-2.log", **env)
    try:
        status = wait_for(
            lambda: (
                (s := sprint_status(nodes, ns, "adopt")).get("phase") in ("Completed", "Partial", "Failed")
                and s
            ),
            900,
            "the sprint ended",
        )
    finally:
        stop_operator(second)
    assert status["phase"] == "Completed", json.dumps(status.get("conditions"), indent=1)
    task = json.loads(nodes.kubectl("-n", ns, "get", "stask", "-o", "json"))["items"][0]["status"]
    assert task["attempt"] == 1, task  # adopted, not retried
    assert task["containerName"] == pod["metadata"]["name"]
    assert "notes/t0.md" in git("-C", str(repo), "ls-tree", "-r", "--name-only", "main")
    assert not list((state / "transfer").glob("*.json")), "the grant is revoked once the Pod is removed"


def _fetched(state: Path) -> bool:
    grants = [json.loads(p.read_text()) for p in (state / "transfer").glob("*.json")]
    return len(grants) == 1 and set(grants[0].get("sent") or []) >= {
        "workspace",
        *(f"mount/{i}" for i in range(len(grants[0]["mounts"]))),
    }
