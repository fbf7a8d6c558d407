"""Two tenants on one operator: the same Sprint name and sprintId in two namespaces, each with its own
repository. Nothing is shared (branches, workspaces, containers, budgets), and each repository gets its
own clone (one operator serves any number of repositories)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from _e2e import apply, operator_process, sprint_status, suspended_sprint, wait_for
from conftest import kubectl
from localcluster import LocalCluster
from test_lifecycle_e2e import config, git, seed_repository

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")


@pytest.fixture
def two_namespaces(cluster: LocalCluster) -> Iterator[list[str]]:
    names = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        kubectl(cluster, "create", "namespace", name)
    yield names
    for name in names:
        kubectl(cluster, "delete", "namespace", name, "--wait=false", check=False)


def test_two_tenants_with_the_same_sprint_share_nothing(
    cluster: LocalCluster, two_namespaces: list[str], tmp_path: Path
) -> None:
    repos = []
    for i in (0, 1):
        (tmp_path / f"tenant{i}").mkdir()
        repos.append(seed_repository(tmp_path / f"tenant{i}", files={"README.md": f"# tenant {i}\n"}))
    env = config(tmp_path)
    with operator_process(cluster, two_namespaces, tmp_path / "state", tmp_path / "op.log", **env):
        for namespace, repo in zip(two_namespaces, repos, strict=True):
            manifest = suspended_sprint("same", tasks=2, suspend=False, sprintId="same-id")
            manifest["spec"]["repository"] = {"url": str(repo), "mainBranch": "main"}
            apply(cluster, namespace, manifest)
        for namespace in two_namespaces:
            wait_for(
                lambda ns=namespace: sprint_status(cluster, ns, "same").get("phase") in TERMINAL,
                timeout=300,
                what=f"sprint same in {namespace}",
            )
    for namespace, repo in zip(two_namespaces, repos, strict=True):
        assert sprint_status(cluster, namespace, "same")["phase"] == "Completed"
        files = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
        assert {"notes/t0.md", "notes/t1.md", ".sprint/reports/same-id.md"} <= set(files)
    readmes = [git("-C", str(repo), "show", "main:README.md") for repo in repos]
    assert readmes == ["# tenant 0\n", "# tenant 1\n"]  # each main moved in its own repository
    clones = sorted(p.name for p in (tmp_path / "trees").iterdir())
    assert len(clones) == 2 and clones[0] != clones[1]


def test_a_second_tenant_cannot_take_over_a_sprint_id_in_the_same_repository(
    cluster: LocalCluster, two_namespaces: list[str], tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "# shared\n"})
    first, second = two_namespaces
    env = config(tmp_path)
    with operator_process(cluster, two_namespaces, tmp_path / "state", tmp_path / "op.log", **env):
        for namespace in two_namespaces:
            manifest = suspended_sprint("same", tasks=1, suspend=namespace == second, sprintId="same-id")
            manifest["spec"]["repository"] = {"url": str(repo), "mainBranch": "main"}
            apply(cluster, namespace, manifest)
        wait_for(lambda: sprint_status(cluster, first, "same").get("phase") in TERMINAL, timeout=300)
        start = '{"spec":{"suspend":false}}'
        kubectl(cluster, "patch", "sprint", "same", "-n", second, "--type=merge", "-p", start)
        status = wait_for(
            lambda: (s := sprint_status(cluster, second, "same")).get("phase") in TERMINAL and s, timeout=120
        )
    assert sprint_status(cluster, first, "same")["phase"] == "Completed"
    assert status["phase"] == "Failed" and f"by the Sprint {first}/same" in status["message"], status
