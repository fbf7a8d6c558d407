"""Retention end to end: sprints back to back on the real control plane with real Podman containers and
a small policy (keep 3); the state directory and the clone stop growing once the window is full, and
what the policy dropped is gone while the last three sprints keep everything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _e2e import apply, demo_sprint, operator_process, recipe, wait_for
from conftest import kubectl
from localcluster import LocalCluster
from sprint_orchestrator.prunefs import size
from test_lifecycle_e2e import git, seed_repository, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
KEEP = 3
SPRINTS = 9
BLOCK = 4096
# What each sprint keeps for good, one disk block each: its sprint branch's reflog, its claim on the
# sprint id (owners/), and its report, a file of the repository, in each of the kept checkouts; and two
# blocks of slack (the pack, its index and packed-refs grow by a few lines, now and then a block).
KEPT_PER_SPRINT = (2 + KEEP + 2) * BLOCK


def disk_bytes(*roots: Path) -> int:
    """The disk blocks in use under `roots` (du's count), no link followed."""
    return sum(size(root) for root in roots)


def retention_config(tmp: Path, keep: int) -> dict[str, str]:
    path = tmp / "config.yaml"
    path.write_text(
        f"orchestrator: {{max_concurrent_sprints: 5, allowed_host_paths: ['{tmp}']}}\n"
        f"git: {{working_trees_path: '{tmp / 'trees'}'}}\n"
        "containers: {base_image: localhost/sprint-orchestrator/base:bookworm}\n"
        # a full git gc after every sprint (one pack, no loose object piling up), unreachable objects
        # pruned once a second old: the policy window is the only thing that holds disk here
        f"retention: {{keep_sprints: {keep}, git_loose_objects: 0, git_packs: 0, git_prune_after: 1s}}\n"
    )
    return {"SPRINT_ORCHESTRATOR_CONFIG": str(path)}


def retention_event(cluster: LocalCluster, namespace: str, sprint: str) -> str | None:
    out = kubectl(
        cluster, "get", "events", "-n", namespace, "-o", "json",
        "--field-selector", f"involvedObject.name={sprint},reason=Retention",
    )  # fmt: skip
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return str(items[-1]["message"]) if items else None


def one_file_sprint(name: str, repo: Path, recipes: Path) -> dict[str, Any]:
    """A sprint of one demo-team task that rewrites out/result.txt: the repository does not grow by a
    file a sprint (its report aside), so what grows is what the operator keeps."""
    recipe(recipes, "only", "out/result.txt", f"{name}\n")
    return demo_sprint(
        name, repo, recipes, [{"id": "only", "title": "write a file", "filesToModify": ["out/result.txt"]}]
    )


def refs(repo_root: Path) -> list[str]:
    gitdirs = list(repo_root.glob("*/repo.git"))
    assert len(gitdirs) == 1, gitdirs
    return git("--git-dir", str(gitdirs[0]), "for-each-ref", "--format=%(refname)").split()


def test_disk_use_stays_flat_once_the_policy_window_is_full_and_only_the_last_sprints_keep_data(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    state, trees = tmp_path / "state", tmp_path / "trees"
    names = [f"r{i}" for i in range(SPRINTS)]
    measured: dict[int, int] = {}
    with operator_process(cluster, namespace, state, tmp_path / "op.log", **retention_config(tmp_path, KEEP)):
        for i, name in enumerate(names):
            apply(cluster, namespace, one_file_sprint(name, repo, tmp_path / f"recipes-{name}"))
            assert wait_terminal(cluster, namespace, name)["phase"] == "Completed"
            wait_for(
                lambda n=name: retention_event(cluster, namespace, n),
                timeout=120,
                what=f"the retention run after {name}",
            )
            measured[i + 1] = disk_bytes(state, trees)
    print("disk bytes after each sprint:", measured)
    full = KEEP + 1  # the first sprint whose end prunes one
    before = (measured[KEEP] - measured[1]) / (KEEP - 1)  # each sprint's data, all of it kept
    after = (measured[SPRINTS] - measured[full]) / (SPRINTS - full)
    assert before > 2 * KEPT_PER_SPRINT, measured  # the test can tell flat from growing
    assert after <= KEPT_PER_SPRINT, measured
    pruned, kept = names[: SPRINTS - KEEP], names[SPRINTS - KEEP :]
    for name in pruned:
        assert not (state / "artifacts" / namespace / name).exists()
        assert not list(trees.glob(f"*/sprints/{name}"))
    for name in kept:
        assert (state / "artifacts" / namespace / name / "report.json").is_file()
    names_in_refs = refs(trees)
    for name in pruned:
        assert f"refs/heads/sprint/{name}" in names_in_refs  # the sprint branch stays
        assert f"refs/heads/task/{name}/only" not in names_in_refs
    for name in kept:
        assert f"refs/heads/task/{name}/only" in names_in_refs
    logs = [p.name for p in (state / "logs").iterdir()]
    assert logs and all(log.startswith(tuple(f"so-{name}-" for name in kept)) for log in logs), logs
    message = retention_event(cluster, namespace, names[-1]) or ""
    assert "retention pruned 1 sprint(s)" in message and "git maintenance" in message, message
    assert git("-C", str(repo), "show", "main:out/result.txt") == f"{names[-1]}\n"
    reports = git("-C", str(repo), "ls-tree", "--name-only", "main", ".sprint/reports/").split()
    assert len(reports) == SPRINTS  # main has every sprint's work
