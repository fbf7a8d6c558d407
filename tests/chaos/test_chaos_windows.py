"""Chaos at named step boundaries: the operator SIGKILLed at each fault point (faults.py) of a sprint
with a dependency, a gate and an integration test, restarted, and the run checked against every
invariant (tests/chaos/invariants.py). Plus the window that loses a scope flag, and a remote that refuses
a few pushes. The real control plane, real git, real Podman running the demo team; every wait is on
API, process or repository state."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _chaos import ChaosRun, git

from _e2e import apply, demo_sprint, operator_env, recipe, sprint_status, wait_for
from localcluster import LocalCluster
from test_faults_e2e import git_daemon  # noqa: F401  (a fixture)
from test_lifecycle_e2e import SPRINTCTL, by_id, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman]


@pytest.fixture
def run(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[ChaosRun]:
    chaos = ChaosRun(cluster, namespace, tmp_path)
    try:
        yield chaos
    finally:
        chaos.close()


def pair_sprint(name: str, repo: Path | str, recipes: Path) -> dict[str, Any]:
    """`first`, then `second` (depends on it, has a gate); an integration test that both files exist."""
    recipe(recipes, "first", "out/first.txt")
    recipe(recipes, "second", "out/second.txt")
    tasks = [
        {"id": "first", "title": "first file", "filesToModify": ["out/first.txt"]},
        {
            "id": "second",
            "title": "second file",
            "filesToModify": ["out/second.txt"],
            "dependencies": ["first"],
            "testRequirements": ["test -s out/second.txt"],
        },
    ]
    return demo_sprint(
        name, repo, recipes, tasks, integrationTests=["test -s out/first.txt && test -s out/second.txt"]
    )


# Each point with the hit that kills: `@2` where the first hit is a step of `first` and the window
# worth testing is `second`'s (merged while a task merged before it).
POINTS = [
    "task-started-before-status",
    "task-committed-before-status",
    "gates-passed-before-status",
    "task-merged-before-status@2",
    "report-committed-before-status",
    "main-moved-before-push",
    "main-pushed-before-status",
    "cleanup",
]


@pytest.mark.parametrize("point", POINTS)
def test_an_operator_killed_at_each_fault_point_ends_the_sprint_once_with_every_invariant_holding(
    run: ChaosRun, point: str
) -> None:
    name = "pair-" + point.split("@")[0].replace("-before-status", "").replace("-", "")[:20]
    apply(run.cluster, run.namespace, pair_sprint(name, run.repo, run.tmp / "r"))
    run.start(faults=point)
    run.killed_at_fault()
    run.start()
    status = wait_terminal(run.cluster, run.namespace, name, timeout=600)
    assert status["phase"] == "Completed", status.get("message")
    assert sorted(status["merged"]) == ["first", "second"]
    assert git(run.repo, "rev-parse", "main") == status["mainCommit"]
    files = git(run.repo, "ls-tree", "-r", "--name-only", "main").split()
    assert {"out/first.txt", "out/second.txt", f".sprint/reports/{name}.md"} <= set(files)
    reports = git(run.repo, "log", "--format=%s", "main", "--", f".sprint/reports/{name}.md").splitlines()
    assert reports == [f"sprint {name}: report"]  # the report committed once, not redone
    run.finish()


def test_an_out_of_scope_change_committed_before_a_kill_still_goes_to_review_and_ends_clean(
    run: ChaosRun,
) -> None:
    manifest = pair_sprint("scope", run.repo, run.tmp / "r")
    manifest["spec"]["tasks"][0]["filesToModify"] = ["out/elsewhere.txt"]  # the recipe writes out/first.txt
    manifest["spec"]["policy"] = {"outOfScopeChanges": "review"}
    apply(run.cluster, run.namespace, manifest)
    run.start(faults="task-committed-before-status")
    run.killed_at_fault()
    run.start()
    first = wait_for(
        lambda: (t := by_id(run.cluster, run.namespace, "scope")["first"]).get("phase") == "Review" and t,
        timeout=300,
        what="the out-of-scope task in Review after the restart",
    )
    assert first["reason"] == "OutOfScope" and first["outOfScope"] == ["out/first.txt"]
    assert first["attempt"] == 1
    env = operator_env(run.cluster, run.tmp)
    subprocess.run([SPRINTCTL, "approve", "scope", "first", "-n", run.namespace], env=env, check=True)
    status = wait_terminal(run.cluster, run.namespace, "scope", timeout=600)
    assert status["phase"] == "Completed", status.get("message")
    run.finish()


def test_a_remote_that_refuses_three_pushes_gets_main_on_the_fourth_with_the_reason_shown_meanwhile(
    cluster: LocalCluster,
    namespace: str,
    tmp_path: Path,
    git_daemon: tuple[Path, str],  # noqa: F811
) -> None:
    repo, url = git_daemon
    counter = tmp_path / "refusals"
    hook = repo / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {counter} 2>/dev/null || echo 0)\n"
        'if [ "$n" -lt 3 ]; then\n'
        f"  echo $((n + 1)) > {counter}\n"
        "  echo 'main is frozen by policy' >&2\n"
        "  exit 1\n"
        "fi\n"
    )
    hook.chmod(0o755)
    run = ChaosRun(cluster, namespace, tmp_path, repo=repo)
    try:
        manifest = pair_sprint("frozen", url, tmp_path / "r")
        apply(cluster, namespace, manifest)
        run.start()
        refused = wait_for(
            lambda: (s := sprint_status(cluster, namespace, "frozen")).get("push", {}).get("attempts") and s,
            timeout=600,
            what="a refused push",
        )
        assert refused["phase"] == "Integrating"
        assert "refused the push" in refused["message"] and "declined" in refused["push"]["lastError"]
        status = wait_terminal(cluster, namespace, "frozen", timeout=600)
        assert status["phase"] == "Completed", status.get("message")
        assert status["push"]["attempts"] == 3
        assert counter.read_text().strip() == "3"
        assert git(repo, "rev-parse", "main") == status["mainCommit"]
        run.finish()
    finally:
        run.close()
