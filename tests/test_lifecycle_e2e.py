"""Whole sprints end to end: the real control plane, the operator as a real process, real git
repositories, real Podman containers running the demo team."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from _e2e import (
    SPRINTCTL,
    apply,
    assert_container_times_in_order,
    demo_sprint,
    operator_env,
    operator_process,
    recipe,
    sprint_status,
    start_operator,
    stop_operator,
    tasks_of,
    wait_for,
)
from _podman import host_debian_sources
from conftest import REPO, kubectl
from localcluster import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
TERMINAL = ("Completed", "Partial", "Failed", "RolledBack")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def seed_repository(tmp: Path, source: Path | None = None, files: dict[str, str] | None = None) -> Path:
    """A bare repository whose main holds `source` (a directory) or `files`: the target repository."""
    seed = tmp / "seed"
    if source is not None:
        subprocess.run(["cp", "-r", str(source), str(seed)], check=True)
    seed.mkdir(exist_ok=True)
    for path, text in (files or {}).items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(text)
    git("-C", str(seed), "init", "-q", "-b", "main")
    git("-C", str(seed), "add", "-A")
    git("-C", str(seed), "commit", "-qm", "initial commit")
    bare = tmp / "target.git"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("-C", str(seed), "push", "-q", str(bare), "main")
    return bare


def example(name: str, repo: Path) -> dict[str, Any]:
    manifest = yaml.safe_load((REPO / "examples" / name).read_text())
    manifest["spec"]["repository"] = {"url": str(repo), "mainBranch": "main"}
    team = manifest["spec"]["team"]
    team["recipes"] = str(REPO / team["recipes"])
    return dict(manifest)


def config(tmp: Path, concurrent_sprints: int = 20) -> dict[str, str]:
    path = tmp / "config.yaml"
    path.write_text(
        f"orchestrator: {{max_concurrent_sprints: {concurrent_sprints}, max_parallel_tasks_per_sprint: 10, "
        f"allowed_host_paths: ['{tmp}']}}\n"
        f"git: {{working_trees_path: '{tmp / 'trees'}'}}\n"
        "containers: {base_image: localhost/sprint-orchestrator/base:bookworm}\n"
    )
    return {"SPRINT_ORCHESTRATOR_CONFIG": str(path)}


def wait_terminal(cluster: LocalCluster, ns: str, name: str, timeout: float = 600) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (s := sprint_status(cluster, ns, name)).get("phase") in TERMINAL and s,
            timeout=timeout,
            what=f"sprint {name} to finish",
        )
    )


def by_id(cluster: LocalCluster, ns: str, sprint: str) -> dict[str, dict[str, Any]]:
    return {t["spec"]["taskId"]: t.get("status") or {} for t in tasks_of(cluster, ns, sprint)}


def events_in(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    return list(json.loads(kubectl(cluster, "get", "events", "-n", namespace, "-o", "json"))["items"])


def task_containers(sprint: str) -> str:
    """Ids of the task containers of a sprint that still exist (any state)."""
    return subprocess.run(
        [
            "podman",
            "ps",
            "-a",
            "-q",
            "--filter",
            f"label=sprintorchestrator.dev/sprint={sprint}",
            "--filter",
            "label=sprintorchestrator.dev/attempt",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def tree_files(repo: Path, ref: str = "main") -> dict[str, str]:
    """path -> blob id on `ref`, without the sprint report (it carries timestamps)."""
    out = git("-C", str(repo), "ls-tree", "-r", ref)
    rows = (line.split(maxsplit=3) for line in out.splitlines())
    return {path: sha for _, _, sha, path in rows if not path.startswith(".sprint/reports/")}


def test_the_demo_sprint_runs_to_completion_and_moves_main(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, REPO / "examples" / "textstats")
    before = git("-C", str(repo), "rev-parse", "main").strip()
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, example("sprint.yaml", repo))
        status = wait_terminal(cluster, namespace, "textstats-1")
    assert status["phase"] == "Completed", status.get("message")
    assert status["progress"] == "6/6"
    tasks = by_id(cluster, namespace, "textstats-1")
    assert all(t["column"] == "completed" and t["mergeCommit"] for t in tasks.values())
    assert all(g["passed"] for t in tasks.values() for g in t["gates"])
    assert all(t["tokens"]["actual"] > 0 and t["tokens"]["byCategory"] for t in tasks.values())
    main = git("-C", str(repo), "rev-parse", "main").strip()
    assert main == status["mainCommit"] and main != before
    files = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    for path in ("textstats/words.py", "textstats/cli.py", "docs/usage.md", ".sprint/reports/textstats-1.md"):
        assert path in files
    assert "TASK.md" not in files and "RESULTS.md" not in files
    report = git("-C", str(repo), "show", "main:.sprint/reports/textstats-1.md")
    assert "| words | completed" in report
    assert status["report"]["slotUtilization"] > 0
    events = events_in(cluster, namespace)
    assert {"PhaseChanged", "MainUpdated", "Completed", "RefChanged"} <= {e["reason"] for e in events}
    admitted = [e for e in events if e["reason"] == "PhaseChanged" and "-> Running (admit)" in e["message"]]
    assert {e["involvedObject"]["name"] for e in admitted} == {f"textstats-1-{t}" for t in tasks}
    assert all(e["message"].endswith(": attempt 1") for e in admitted)
    ref_events = [e["message"] for e in events if e["reason"] == "RefChanged"]
    assert any(m.startswith("refs/heads/main:") for m in ref_events)
    assert any(m.startswith("refs/heads/sprint/textstats-1: none -> ") for m in ref_events)  # created
    # each merge moved the sprint branch; the Task's Event of its move to Completed says from where to
    # where (no RefChanged, no second Event on the Sprint)
    merged = [
        e["message"] for e in events if e["reason"] == "PhaseChanged" and "Completed (merged)" in e["message"]
    ]
    pattern = (
        r"(Gating|Running) -> Completed \(merged\): into sprint/textstats-1 as (\w{12}) \(\w{12} -> \2\)"
    )
    assert len(merged) == 6 and all(re.fullmatch(pattern, m) for m in merged), merged
    assert "TaskMerged" not in {e["reason"] for e in events}
    assert not [m for m in ref_events if "(merge task" in m]
    leftovers = task_containers("textstats-1")
    assert leftovers.strip() == ""


def test_a_conflict_is_isolated_a_failed_gate_waits_for_review_and_bisection_ejects_the_culprit(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, REPO / "examples" / "textstats")
    env = {**operator_env(cluster, tmp_path), "KUBECONFIG": str(cluster.kubeconfig)}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, example("sprint-trouble.yaml", repo))

        def settled() -> dict[str, dict[str, Any]] | None:
            tasks = by_id(cluster, namespace, "textstats-trouble")
            phases = {k: v.get("phase") for k, v in tasks.items()}
            done = phases.get("buggy") == "Review" and phases.get("words") == "Completed"
            versions = sorted([phases.get("version-a") or "", phases.get("version-b") or ""])
            return tasks if done and versions == ["Completed", "Failed"] else None

        tasks = wait_for(settled, timeout=300, what="conflict and review")
        loser = "version-a" if tasks["version-a"]["phase"] == "Failed" else "version-b"
        assert tasks[loser]["reason"] == "Conflict"
        assert tasks[loser]["conflicts"] == ["textstats/__init__.py"]
        assert "manual merge required" in tasks[loser]["error"]
        assert tasks["buggy"]["column"] == "review"
        assert not tasks["buggy"]["gates"][0]["passed"]

        # The sprint has counted every task settled but `buggy` in review (it moves to Integrating in
        # the same step once all are settled): it waits for a human, whatever the time it is given.
        def counted() -> dict[str, Any] | None:
            status = sprint_status(cluster, namespace, "textstats-trouble")
            columns = status.get("columns") or {}
            busy = columns.get("ready", 0) + columns.get("inProgress", 0)
            settled = columns.get("review") == 1 and columns.get("completed") == 2 and not busy
            return status if settled else None

        seen = wait_for(counted, what="the sprint to count the task in review")
        assert seen["phase"] == "Running"
        subprocess.run(
            [SPRINTCTL, "approve", "textstats-trouble", "buggy", "-n", namespace],
            env=env,
            check=True,
            capture_output=True,
        )
        status = wait_terminal(cluster, namespace, "textstats-trouble", timeout=300)
    assert status["phase"] == "Partial", status.get("message")
    tasks = by_id(cluster, namespace, "textstats-trouble")
    assert tasks["buggy"]["phase"] == "Failed" and tasks["buggy"]["reason"] == "IntegrationFailure"
    files = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    assert "textstats/words.py" in files
    assert "textstats/buggy.py" not in files
    winner = "version-b" if loser == "version-a" else "version-a"
    version = {"version-a": "0.2.0", "version-b": "1.0.0"}[winner]
    assert version in git("-C", str(repo), "show", "main:textstats/__init__.py")


def held_while(task: str) -> str:
    """A test command that waits while the recipes directory holds `hold/<task>`. The demo team runs
    it in the task's container (the recipes are bind-mounted there), so a test keeps the task running
    exactly as long as it needs, whatever the machine's speed; the gates run it without the recipes
    directory, so they never wait."""
    return f"while [ -e /opt/demo-recipes/hold/{task} ]; do sleep 0.2; done"


def hold(recipes: Path, task: str) -> Path:
    """Keep `task` (its test commands start with held_while(task)) running until the file is removed."""
    (recipes / "hold").mkdir(parents=True, exist_ok=True)
    (recipes / "hold" / task).touch()
    return recipes / "hold" / task


def chain_sprint(name: str, repo: Path, recipes: Path, tasks: int = 10) -> dict[str, Any]:
    """`tasks` tasks, each writing its own file; a diamond-and-chain dependency graph."""
    graph = {2: (0, 1), 3: (2,), 4: (2,), 5: (3, 4), 7: (6,), 8: (5, 7), 9: (8,)}
    definitions = []
    for i in range(tasks):
        deps = [f"t{j}" for j in graph.get(i, ())]
        (recipes / f"t{i}" / "files").mkdir(parents=True, exist_ok=True)
        (recipes / f"t{i}" / "files" / f"t{i}.txt").write_text(f"task {i}\n")
        definitions.append(
            {
                "id": f"t{i}",
                "title": f"Task {i}",
                "priority": ["high", "medium", "low"][i % 3],
                "dependencies": sorted(set(deps)),
                "filesToModify": [f"files/t{i}.txt"],
                "testRequirements": [f"{held_while(f't{i}')}; test -s files/t{i}.txt"],
                "estimatedTokens": 10000,  # the demo team bills by what it reads: TASK.md quotes deps
            }
        )
    return demo_sprint(
        name,
        repo,
        recipes,
        definitions,
        maxParallelTasks=3,
        integrationTests=["test $(ls files | wc -l) -eq 10"],
    )


def run_chain(cluster: LocalCluster, namespace: str, tmp: Path, name: str, kill: bool) -> tuple[Path, int]:
    """Run the chain sprint; with `kill`, SIGKILL the operator 3 times per task, each at one of the
    task's steps (its container running, its container exiting, merged), whatever the machine's speed:
    every task is held running (see chain_sprint) until its kills are done. Returns (repo, kills)."""
    repo = seed_repository(tmp, files={"README.md": "chain\n"})
    manifest = chain_sprint(name, repo, tmp / "recipes")
    order = [t["id"] for t in manifest["spec"]["tasks"]]  # every task's dependencies come before it
    holds = {task: hold(tmp / "recipes", task) for task in (order if kill else [])}
    apply(cluster, namespace, manifest)
    env = config(tmp)
    proc = start_operator(cluster, namespace, tmp / "state", tmp / "op.log", **env)
    killed = 0

    def crash_and_restart() -> None:
        nonlocal proc, killed
        stop_operator(proc, signal.SIGKILL)
        killed += 1
        proc = start_operator(cluster, namespace, tmp / "state", tmp / "op.log", **env)

    def task_is(task: str, key: str, value: str) -> bool:
        return by_id(cluster, namespace, name).get(task, {}).get(key) == value

    try:
        for task in order if kill else []:
            wait_for(lambda t=task: task_is(t, "containerHealth", "running"), 300, f"{task} running")
            crash_and_restart()  # the container keeps running while no operator watches it
            holds[task].unlink()
            crash_and_restart()  # the container exits while no operator watches it
            wait_for(lambda t=task: task_is(t, "phase", "Completed"), 300, f"{task} merged")
            crash_and_restart()  # right after a merge, with the next tasks starting
        status = wait_terminal(cluster, namespace, name, timeout=600)
    finally:
        stop_operator(proc)
    phases = {t: (s.get("phase"), s.get("reason")) for t, s in by_id(cluster, namespace, name).items()}
    assert status["phase"] == "Completed", (status.get("message"), phases)
    return repo, killed


def test_an_operator_killed_30_times_loses_no_work_and_leaves_nothing_behind(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    results: dict[str, dict[str, str]] = {}
    for run, kill in (("calm", False), ("killed", True)):
        tmp = tmp_path / run
        tmp.mkdir()
        name = f"chain-{run}"
        repo, killed = run_chain(cluster, namespace, tmp, name, kill)
        assert killed == (30 if kill else 0)
        results[run] = tree_files(repo)
        merges = git("-C", str(repo), "log", "--merges", "--format=%s", "main").splitlines()
        merged = [line for line in merges if line.startswith("Merge task ")]
        assert len(merged) == len(set(merged)) == 10, merges  # every task merged exactly once
        left = task_containers(name)
        assert left.strip() == "", "containers left behind"
        (clone,) = list((tmp / "trees").glob("*/repo.git"))  # one clone per repository
        worktrees = git("--git-dir", str(clone), "worktree", "list", "--porcelain")
        task_trees = [w for w in worktrees.split("\n\n") if "/tasks/" in w]
        assert task_trees == [], worktrees
        assert list(clone.rglob("*.lock")) == []
    assert results["killed"] == results["calm"]
    assert len(results["calm"]) == 11


def hold_only_task(manifest: dict[str, Any], recipes: Path) -> Path:
    """Keep small_sprint's task running until the returned file is removed."""
    manifest["spec"]["tasks"][0]["testRequirements"] = [held_while("only")]
    return hold(recipes, "only")


def small_sprint(name: str, repo: Path, recipes: Path, **spec: Any) -> dict[str, Any]:
    recipe(recipes, "only", f"out/{name}.txt", f"{name}\n")
    tasks = [{"id": "only", "title": "write a file", "filesToModify": [f"out/{name}.txt"]}]
    return demo_sprint(name, repo, recipes, tasks, **spec)


def test_a_sprint_after_another_starts_when_that_one_completes(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, small_sprint("second", repo, tmp_path / "r2", after="first"))
        waiting = wait_for(
            lambda: (
                "waiting for sprint 'first'"
                in (sprint_status(cluster, namespace, "second").get("message") or "")
            )
        )
        assert waiting
        apply(cluster, namespace, small_sprint("first", repo, tmp_path / "r1"))
        first = wait_terminal(cluster, namespace, "first")
        second = wait_terminal(cluster, namespace, "second")
        task = tasks_of(cluster, namespace, "first")[0]["status"]
    assert first["phase"] == second["phase"] == "Completed"
    assert_container_times_in_order(task)
    assert second["startedAt"] >= first["completedAt"]
    files = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    assert {"out/first.txt", "out/second.txt"} <= set(files)


def test_cancel_stops_the_containers_and_leaves_main_alone(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    before = git("-C", str(repo), "rev-parse", "main").strip()
    env = {**operator_env(cluster, tmp_path), "KUBECONFIG": str(cluster.kubeconfig)}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        manifest = small_sprint("slow", repo, tmp_path / "r")
        hold_only_task(manifest, tmp_path / "r")  # never released: runs until cancelled
        apply(cluster, namespace, manifest)
        wait_for(
            lambda: by_id(cluster, namespace, "slow").get("only", {}).get("containerHealth") == "running"
        )
        subprocess.run(
            [SPRINTCTL, "cancel", "slow", "-n", namespace], env=env, check=True, capture_output=True
        )
        status = wait_terminal(cluster, namespace, "slow", timeout=120)
    assert status["phase"] == "Failed" and "cancel" in status["message"]
    assert by_id(cluster, namespace, "slow")["only"]["reason"] == "Cancelled"
    assert git("-C", str(repo), "rev-parse", "main").strip() == before
    left = task_containers("slow")
    assert left.strip() == ""
    events = events_in(cluster, namespace)
    assert any(e["reason"] == "CancelRequested" for e in events)


def test_cancel_right_after_a_container_started_removes_it_though_the_status_does_not_name_it_yet(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    # a started container's name goes with the Task's next status write (runner.py): the cancel finds
    # the container of the task's attempt by the name the runner gives it
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    env = {**operator_env(cluster, tmp_path), "KUBECONFIG": str(cluster.kubeconfig)}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        manifest = small_sprint("early", repo, tmp_path / "r")
        manifest["spec"]["team"]["sleepSeconds"] = 60
        apply(cluster, namespace, manifest)
        wait_for(lambda: task_containers("early").strip(), timeout=120, what="the task's container")
        subprocess.run(
            [SPRINTCTL, "cancel", "early", "-n", namespace], env=env, check=True, capture_output=True
        )
        status = wait_terminal(cluster, namespace, "early", timeout=120)
    assert status["phase"] == "Failed" and "cancel" in status["message"]
    assert task_containers("early").strip() == ""


def test_retry_runs_a_task_in_review_again_as_a_new_attempt(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, REPO / "examples" / "textstats")
    env = {**operator_env(cluster, tmp_path), "KUBECONFIG": str(cluster.kubeconfig)}
    manifest = example("sprint-trouble.yaml", repo)
    manifest["spec"]["tasks"] = [t for t in manifest["spec"]["tasks"] if t["id"] == "buggy"]
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, manifest)
        wait_for(
            lambda: by_id(cluster, namespace, "textstats-trouble").get("buggy", {}).get("phase") == "Review"
        )
        subprocess.run(
            [SPRINTCTL, "retry", "textstats-trouble", "buggy", "-n", namespace],
            env=env,
            check=True,
            capture_output=True,
        )
        again = wait_for(
            lambda: (
                (t := by_id(cluster, namespace, "textstats-trouble")["buggy"]).get("attempt") == 2
                and t.get("phase") == "Review"
                and t
            ),
            timeout=120,
        )
    assert again["column"] == "review"  # a test failure is never retried into a pass
    events = events_in(cluster, namespace)
    assert any(e["reason"] == "RetryRequested" for e in events)


def test_a_task_over_its_token_budget_fails_and_is_not_merged(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    manifest = small_sprint("thrifty", repo, tmp_path / "r")
    manifest["spec"]["tasks"][0]["estimatedTokens"] = 10
    manifest["spec"]["policy"] = {"tokenBudgetFactor": 1.5}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, manifest)
        status = wait_terminal(cluster, namespace, "thrifty")
    task = by_id(cluster, namespace, "thrifty")["only"]
    assert task["phase"] == "Failed" and task["reason"] == "BudgetExceeded"
    assert "over its limit of 15" in task["error"]
    assert task["attempt"] == 1  # a budget stop is final: no retry
    assert status["phase"] == "Failed" and "no task completed" in status["message"]
    files = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    assert "out/thrifty.txt" not in files


def test_a_sprint_image_that_cannot_be_built_fails_the_sprint_with_the_log_tail(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    manifest = small_sprint("broken-image", repo, tmp_path / "r")
    manifest["spec"]["container"] = {"dependencies": ["apt:this-package-does-not-exist-sprint-orchestrator"]}
    env = config(tmp_path)
    sources = host_debian_sources()  # image builds reach only the sources the configuration names
    if not sources:
        pytest.skip("this machine's apt names no Debian archive")
    path = Path(env["SPRINT_ORCHESTRATOR_CONFIG"])
    path.write_text(
        path.read_text().replace(
            "containers: {", f"containers: {{package_sources: {{apt: {json.dumps(list(sources))}}}, "
        )
    )
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env):
        apply(cluster, namespace, manifest)
        status = wait_terminal(cluster, namespace, "broken-image", timeout=300)
    assert status["phase"] == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ImageBuildFailed"
    assert "this-package-does-not-exist" in ready["message"]
    assert "Unable to locate package" in ready["message"]  # the build's own log tail: it did run
    assert by_id(cluster, namespace, "broken-image")["only"]["phase"] == "Pending"  # nothing ran


def test_changes_outside_files_to_modify_go_to_review_when_the_policy_says_so(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    manifest = small_sprint("scoped", repo, tmp_path / "r")
    manifest["spec"]["tasks"][0]["filesToModify"] = ["out/other.txt"]  # the recipe writes out/scoped.txt
    manifest["spec"]["policy"] = {"outOfScopeChanges": "review"}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, manifest)
        task = wait_for(
            lambda: (t := by_id(cluster, namespace, "scoped").get("only", {})).get("phase") == "Review" and t
        )
    assert task["outOfScope"] == ["out/scoped.txt"]
    assert "changes outside filesToModify" in task["error"]


def test_rollback_policy_leaves_main_alone_when_the_integration_tests_fail(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    before = git("-C", str(repo), "rev-parse", "main").strip()
    manifest = small_sprint("doomed", repo, tmp_path / "r")
    manifest["spec"]["integrationTests"] = ["test -f does-not-exist.txt"]
    manifest["spec"]["policy"] = {"onIntegrationFailure": "rollback"}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, manifest)
        status = wait_terminal(cluster, namespace, "doomed")
    assert status["phase"] == "RolledBack"
    assert not status["integration"][0]["passed"]
    assert git("-C", str(repo), "rev-parse", "main").strip() == before
    assert by_id(cluster, namespace, "doomed")["only"]["phase"] == "Completed"  # merged into the sprint only


def test_main_moving_during_the_sprint_is_merged_in_and_retested(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    manifest = small_sprint("moving", repo, tmp_path / "r")
    held = hold_only_task(manifest, tmp_path / "r")
    manifest["spec"]["integrationTests"] = ["test -f out/moving.txt && test -f hotfix.txt"]
    other = tmp_path / "other"
    git("clone", "-q", str(repo), str(other))
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, manifest)
        wait_for(
            lambda: by_id(cluster, namespace, "moving").get("only", {}).get("containerHealth") == "running"
        )
        (other / "hotfix.txt").write_text("fixed on main meanwhile\n")
        git("-C", str(other), "add", "-A")
        git("-C", str(other), "commit", "-qm", "hotfix on main")
        git("-C", str(other), "push", "-q", "origin", "main")
        hotfix = git("-C", str(other), "rev-parse", "HEAD").strip()
        held.unlink()  # main moved while the task ran
        status = wait_terminal(cluster, namespace, "moving")
    task = by_id(cluster, namespace, "moving")["only"]
    assert status["phase"] == "Completed", (
        status.get("message"),
        task.get("phase"),
        task.get("reason"),
        task.get("error"),
    )
    files = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    assert {"out/moving.txt", "hotfix.txt"} <= set(files)
    assert git("-C", str(repo), "merge-base", "--is-ancestor", hotfix, "main") == ""  # exit 0: kept
    events = events_in(cluster, namespace)
    assert any(e["reason"] == "MainMoved" for e in events)


def test_max_concurrent_sprints_queues_the_second_sprint(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    first = small_sprint("one", repo, tmp_path / "r1")
    held = hold_only_task(first, tmp_path / "r1")
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path, 1)):
        apply(cluster, namespace, first)
        wait_for(lambda: sprint_status(cluster, namespace, "one").get("phase") == "Running")
        apply(cluster, namespace, small_sprint("two", repo, tmp_path / "r2"))
        queued = wait_for(lambda: "queued" in (sprint_status(cluster, namespace, "two").get("message") or ""))
        assert queued
        held.unlink()  # sprint one runs until sprint two has been seen queued
        one = wait_terminal(cluster, namespace, "one")
        two = wait_terminal(cluster, namespace, "two")
    assert one["phase"] == two["phase"] == "Completed"
    assert two["startedAt"] >= one["completedAt"]
