"""The foundation end to end: the real kube-apiserver, our CRDs, the operator under KopfRunner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from _e2e import apply, get_json, sprint_status, suspended_sprint, tasks_of, wait_for
from _oplog import unexpected_errors
from conftest import kubectl
from localcluster import LocalCluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def operator(
    cluster: LocalCluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KopfRunner]:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setenv("SPRINT_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    args = ["run", "--standalone", "--namespace", namespace, "-m", "sprint_orchestrator.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert not unexpected_errors(runner.output), unexpected_errors(runner.output)


def test_applying_a_sprint_creates_its_tasks_with_owner_and_labels(
    cluster: LocalCluster, namespace: str, operator: KopfRunner
) -> None:
    apply(cluster, namespace, suspended_sprint("alpha", tasks=3))
    tasks = wait_for(
        lambda: len(tasks_of(cluster, namespace, "alpha")) == 3 and tasks_of(cluster, namespace, "alpha")
    )
    sprint = get_json(cluster, "sprint", "alpha", "-n", namespace)
    for task in tasks:
        owner = task["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("Sprint", "alpha", sprint["metadata"]["uid"])
        assert owner["controller"] is True
        assert task["metadata"]["labels"]["sprintorchestrator.dev/sprint"] == "alpha"
        assert task["metadata"]["labels"]["sprintorchestrator.dev/task"] == task["spec"]["taskId"]
    assert sorted(t["metadata"]["name"] for t in tasks) == ["alpha-t0", "alpha-t1", "alpha-t2"]
    wait_for(
        lambda: all(
            (t.get("status") or {}).get("column") == "ready" for t in tasks_of(cluster, namespace, "alpha")
        )
    )


def test_kubectl_get_shows_the_printer_columns(
    cluster: LocalCluster, namespace: str, operator: KopfRunner
) -> None:
    apply(cluster, namespace, suspended_sprint("beta", tasks=2))
    wait_for(lambda: sprint_status(cluster, namespace, "beta").get("progress") == "0/2", what="progress 0/2")
    table = kubectl(cluster, "get", "sprints", "-n", namespace)
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "DONE", "TOKENS", "AGE"]
    assert row.split()[:4] == ["beta", "Pending", "0/2", "0/1000000"]
    tasks = kubectl(cluster, "get", "stask", "-n", namespace)
    assert tasks.splitlines()[0].split() == [
        "NAME",
        "SPRINT",
        "COLUMN",
        "ATTEMPT",
        "TOKENS",
        "CONTAINER",
        "AGE",
    ]
    assert "ready" in tasks.splitlines()[1].split()


def test_a_schema_violation_is_refused_by_the_api_server(cluster: LocalCluster, namespace: str) -> None:
    bad = suspended_sprint("gamma")
    bad["spec"]["tasks"][0]["priority"] = "urgent"
    bad["spec"]["maxParallelTasks"] = 0
    out = kubectl(cluster, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert "spec.tasks[0].priority" in out and "urgent" in out
    assert "spec.maxParallelTasks" in out
    assert "gamma" not in kubectl(cluster, "get", "sprints", "-n", namespace, "-o", "name")


def test_a_dependency_cycle_gets_the_invalid_spec_condition(
    cluster: LocalCluster, namespace: str, operator: KopfRunner
) -> None:
    sprint = suspended_sprint("delta", tasks=3)
    sprint["spec"]["tasks"][0]["dependencies"] = ["t2"]
    out = kubectl(cluster, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(sprint), check=False)
    if "created" not in out:  # the API server's CEL rules may catch it first: equally good
        assert "cycle" in out or "depend" in out
        return

    def invalid() -> dict[str, str] | None:
        conds = sprint_status(cluster, namespace, "delta").get("conditions") or []
        return next((c for c in conds if c["type"] == "Ready" and c["status"] == "False"), None)

    cond = wait_for(invalid, what="Ready=False")
    assert cond["reason"] == "InvalidSpec"
    assert "cycle" in cond["message"] and "t0" in cond["message"]
    assert tasks_of(cluster, namespace, "delta") == []


def test_deleting_a_sprint_removes_its_tasks(
    cluster: LocalCluster, namespace: str, operator: KopfRunner
) -> None:
    apply(cluster, namespace, suspended_sprint("eps", tasks=2))
    wait_for(lambda: len(tasks_of(cluster, namespace, "eps")) == 2)
    kubectl(cluster, "delete", "sprint", "eps", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(lambda: tasks_of(cluster, namespace, "eps") == [], timeout=90, what="garbage collection")


def test_restarting_the_operator_creates_no_duplicates(
    cluster: LocalCluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setenv("SPRINT_ORCHESTRATOR_STATE_DIR", str(tmp_path / "state"))
    args = ["run", "--standalone", "--namespace", namespace, "-m", "sprint_orchestrator.handlers"]
    apply(cluster, namespace, suspended_sprint("zeta", tasks=4))
    with KopfRunner(args, timeout=60):
        first = wait_for(
            lambda: len(tasks_of(cluster, namespace, "zeta")) == 4 and tasks_of(cluster, namespace, "zeta")
        )
    with KopfRunner(args, timeout=60):
        wait_for(lambda: sprint_status(cluster, namespace, "zeta").get("progress") == "0/4")
        second = tasks_of(cluster, namespace, "zeta")
    assert sorted(t["metadata"]["uid"] for t in first) == sorted(t["metadata"]["uid"] for t in second)


def test_applying_the_same_manifest_twice_changes_nothing(
    cluster: LocalCluster, namespace: str, operator: KopfRunner
) -> None:
    manifest = suspended_sprint("eta", tasks=2)
    apply(cluster, namespace, manifest)
    wait_for(lambda: sprint_status(cluster, namespace, "eta").get("progress") == "0/2")
    before = get_json(cluster, "sprint", "eta", "-n", namespace)
    out = apply(cluster, namespace, manifest)
    assert "unchanged" in out
    diff = kubectl(cluster, "diff", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert diff.strip() == ""
    after = get_json(cluster, "sprint", "eta", "-n", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert not any(k.startswith("kopf.zalando.org") for k in (after["metadata"].get("annotations") or {}))


def test_a_sprint_naming_host_paths_outside_the_allowed_roots_is_refused(
    cluster: LocalCluster, namespace: str, operator: KopfRunner
) -> None:
    """A namespace editor may not mount /etc into task containers, clone /root/secret.git or push to a
    branch the configuration does not allow."""
    manifest = suspended_sprint("hosty", tasks=1, suspend=False)
    manifest["spec"]["team"] = {"type": "demo", "recipes": "/etc"}
    manifest["spec"]["repository"] = {"url": "/root/secret.git", "mainBranch": "release"}
    apply(cluster, namespace, manifest)

    def refused() -> dict[str, Any] | None:
        ready = [
            c
            for c in sprint_status(cluster, namespace, "hosty").get("conditions") or []
            if c["type"] == "Ready"
        ]
        return ready[0] if ready and ready[0]["reason"] == "InvalidSpec" else None

    condition = wait_for(refused, what="InvalidSpec")
    assert "spec.team.recipes: '/etc' is outside" in condition["message"]
    assert "spec.repository.url: '/root/secret.git' is outside" in condition["message"]
    assert (
        "spec.repository.mainBranch: 'release' is not a branch this operator may push" in condition["message"]
    )
    assert tasks_of(cluster, namespace, "hosty") == [] or all(
        not (t.get("status") or {}).get("containerId") for t in tasks_of(cluster, namespace, "hosty")
    )
    assert sprint_status(cluster, namespace, "hosty").get("phase") in (None, "Pending")
