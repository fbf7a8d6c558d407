"""Faults at every step: the operator SIGKILLed at a named step boundary (SPRINT_ORCHESTRATOR_FAULTS,
faults.py), a remote that refuses the push, a user editing or deleting a running Sprint. The real
control plane, the operator as a real process, real git (a git daemon where a hook must run), real
Podman containers running the demo team. Every wait is on API, process or repository state."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _e2e import (
    SPRINTCTL,
    apply,
    operator_env,
    recipe,
    sprint_status,
    start_operator,
    stop_operator,
    wait_for,
)
from conftest import kubectl
from localcluster import LocalCluster
from test_lifecycle_e2e import (
    by_id,
    config,
    events_in,
    git,
    seed_repository,
    small_sprint,
    task_containers,
    wait_terminal,
)

pytestmark = [pytest.mark.cluster, pytest.mark.podman]


def clone_of(tmp: Path) -> Path:
    """The operator's bare clone of the target repository (one per repository under the trees dir)."""
    (gitdir,) = list((tmp / "trees").glob("*/repo.git"))
    return gitdir


def killed_at(proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """The operator ran into its armed fault point: it died by SIGKILL (not by an error of its own)."""
    assert proc.wait(timeout=timeout) == -signal.SIGKILL


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def rev(repo: Path, ref: str) -> str:
    return git("--git-dir", str(repo), "rev-parse", ref).strip()


# --- the push window -------------------------------------------------------------------------------


def test_an_operator_killed_after_moving_main_and_before_the_push_pushes_it_after_a_restart(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    before = rev(repo, "main")
    env = config(tmp_path)
    apply(cluster, namespace, small_sprint("pushy", repo, tmp_path / "r"))
    proc = start_operator(
        cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env,
        SPRINT_ORCHESTRATOR_FAULTS="main-moved-before-push",
    )  # fmt: skip
    try:
        killed_at(proc)
        # The window: main moved in the operator's clone, the remote and the Sprint know nothing of it.
        assert rev(clone_of(tmp_path), "main") != before
        assert rev(repo, "main") == before
        assert sprint_status(cluster, namespace, "pushy")["phase"] == "Integrating"
        proc = start_operator(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env)
        status = wait_terminal(cluster, namespace, "pushy")
    finally:
        stop_operator(proc)
    assert status["phase"] == "Completed", status.get("message")
    assert rev(repo, "main") == status["mainCommit"] == rev(clone_of(tmp_path), "main")
    assert "out/pushy.txt" in git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    assert condition(status, "Pushed")["status"] == "True"
    # Finished, not redone: one report commit, and main did not "move during the sprint".
    log = git("-C", str(repo), "log", "--format=%s", "main").splitlines()
    assert log.count("sprint pushy: report") == 1, log
    assert not any(e["reason"] == "MainMoved" for e in events_in(cluster, namespace))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The target repository served by `git daemon` (pushes run its hooks, unlike a local path)."""
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    port = free_port()
    proc = subprocess.Popen(
        [
            "git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", "--export-all",
            "--enable=receive-pack", f"--base-path={tmp_path}", str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"git://127.0.0.1:{port}/{repo.name}"
    try:
        wait_for(
            lambda: subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0,
            timeout=30,
            what="git daemon to serve",
        )
        yield repo, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_push_the_remote_refuses_is_not_completed_says_why_and_is_retried_until_it_succeeds(
    cluster: LocalCluster, namespace: str, tmp_path: Path, git_daemon: tuple[Path, str]
) -> None:
    repo, url = git_daemon
    before = rev(repo, "main")
    hook = repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is frozen by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    manifest = small_sprint("frozen", repo, tmp_path / "r")
    manifest["spec"]["repository"] = {"url": url}
    proc = start_operator(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path))
    try:
        apply(cluster, namespace, manifest)
        refused = wait_for(
            lambda: (
                (s := sprint_status(cluster, namespace, "frozen")).get("push", {}).get("attempts", 0) >= 2
                and s
            ),
            timeout=300,
            what="two refused pushes",
        )
        assert refused["phase"] == "Integrating"  # never Completed while the remote lacks main
        pushed = condition(refused, "Pushed")
        assert pushed["status"] == "False" and pushed["reason"] == "PushRefused"
        assert "refused the push" in refused["message"] and "declined" in refused["push"]["lastError"]
        assert rev(repo, "main") == before
        hook.unlink()
        status = wait_terminal(cluster, namespace, "frozen", timeout=300)
    finally:
        stop_operator(proc)
    assert status["phase"] == "Completed", status.get("message")
    assert rev(repo, "main") == status["mainCommit"] != before
    assert condition(status, "Pushed")["status"] == "True"
    assert status["push"]["attempts"] >= 2


# --- task commit and merge windows -----------------------------------------------------------------


def test_an_operator_killed_between_a_task_commit_and_its_status_still_sends_out_of_scope_work_to_review(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    manifest = small_sprint("scoped", repo, tmp_path / "r")
    manifest["spec"]["tasks"][0]["filesToModify"] = ["out/other.txt"]  # the recipe writes out/scoped.txt
    manifest["spec"]["policy"] = {"outOfScopeChanges": "review"}
    env = config(tmp_path)
    apply(cluster, namespace, manifest)
    proc = start_operator(
        cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env,
        SPRINT_ORCHESTRATOR_FAULTS="task-committed-before-status",
    )  # fmt: skip
    try:
        killed_at(proc)
        clone = clone_of(tmp_path)
        committed = rev(clone, "task/scoped/only")
        assert committed != rev(clone, "sprint/scoped")  # the commit exists ...
        assert by_id(cluster, namespace, "scoped")["only"]["phase"] == "Running"  # ... the Task lacks it
        proc = start_operator(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env)
        task = wait_for(
            lambda: (t := by_id(cluster, namespace, "scoped")["only"]).get("phase") == "Review" and t,
            timeout=300,
            what="the task in Review",
        )
    finally:
        stop_operator(proc)
    assert task["outOfScope"] == ["out/scoped.txt"] and task["reason"] == "OutOfScope"
    assert task["commit"] == committed == rev(clone, "task/scoped/only")  # the same commit, not a second
    assert task["attempt"] == 1


def test_an_operator_killed_between_a_merge_and_its_status_merges_each_task_once(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    manifest = small_sprint("twice", repo, tmp_path / "r")
    (tmp_path / "r" / "second" / "out").mkdir(parents=True)
    (tmp_path / "r" / "second" / "out" / "second.txt").write_text("second\n")
    manifest["spec"]["tasks"].append(
        {
            "id": "second",
            "title": "another file",
            "filesToModify": ["out/second.txt"],
            "dependencies": ["only"],
        }
    )
    env = config(tmp_path)
    apply(cluster, namespace, manifest)
    proc = start_operator(
        cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env,
        SPRINT_ORCHESTRATOR_FAULTS="task-merged-before-status@2",
    )  # fmt: skip
    try:
        killed_at(proc)
        clone = clone_of(tmp_path)
        tasks = by_id(cluster, namespace, "twice")
        # second has no gate: merged in the write that ends its run, which the kill stopped
        assert tasks["only"]["phase"] == "Completed" and tasks["second"]["phase"] == "Running"
        merged_at_kill = rev(clone, "sprint/twice")
        assert (
            git(
                "--git-dir",
                str(clone),
                "merge-base",
                "--is-ancestor",
                rev(clone, "task/twice/second"),  # its commit: on its branch, not yet in its status
                merged_at_kill,
            )
            == ""
        )
        proc = start_operator(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env)
        status = wait_terminal(cluster, namespace, "twice")
    finally:
        stop_operator(proc)
    assert status["phase"] == "Completed", status.get("message")
    assert sorted(status["merged"]) == ["only", "second"]
    tasks = by_id(cluster, namespace, "twice")
    assert tasks["second"]["mergeCommit"] == merged_at_kill
    merges = git("-C", str(repo), "log", "--merges", "--format=%s", "main").splitlines()
    assert sorted(m for m in merges if m.startswith("Merge task ")) == [
        "Merge task only into sprint twice",
        "Merge task second into sprint twice",
    ]
    assert rev(repo, "main") == status["mainCommit"]


def test_an_operator_killed_during_the_report_and_the_cleanup_ends_the_sprint_once_and_clean(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    env = config(tmp_path)
    apply(cluster, namespace, small_sprint("tidy", repo, tmp_path / "r"))
    proc = start_operator(
        cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env,
        SPRINT_ORCHESTRATOR_FAULTS="report-committed-before-status",
    )  # fmt: skip
    try:
        killed_at(proc)
        proc = start_operator(
            cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env,
            SPRINT_ORCHESTRATOR_FAULTS="cleanup",
        )  # fmt: skip
        killed_at(proc)
        assert sprint_status(cluster, namespace, "tidy")["phase"] == "Integrating"
        proc = start_operator(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **env)
        status = wait_terminal(cluster, namespace, "tidy")
    finally:
        stop_operator(proc)
    assert status["phase"] == "Completed", status.get("message")
    assert rev(repo, "main") == status["mainCommit"]
    reports = git("-C", str(repo), "log", "--format=%s", "main", "--", ".sprint/reports/tidy.md").splitlines()
    assert reports == ["sprint tidy: report"]
    assert task_containers("tidy").strip() == ""
    worktrees = git("--git-dir", str(clone_of(tmp_path)), "worktree", "list", "--porcelain")
    assert [w for w in worktrees.split("\n\n") if "/tasks/" in w] == []


# --- the user changes a running sprint --------------------------------------------------------------


def test_a_task_added_to_a_running_sprint_is_created_and_run(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    recipes = tmp_path / "r"
    manifest = small_sprint("growing", repo, recipes)
    # The first task waits in Review (out of scope), so the sprint cannot end before the edit.
    manifest["spec"]["tasks"][0]["filesToModify"] = ["out/other.txt"]
    manifest["spec"]["policy"] = {"outOfScopeChanges": "review"}
    recipe(recipes, "later", "out/later.txt")
    env = {**operator_env(cluster, tmp_path), "KUBECONFIG": str(cluster.kubeconfig)}
    proc = start_operator(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path))
    try:
        apply(cluster, namespace, manifest)
        wait_for(lambda: by_id(cluster, namespace, "growing").get("only", {}).get("phase") == "Review")
        manifest["spec"]["tasks"].append(
            {"id": "later", "title": "added later", "filesToModify": ["out/later.txt"]}
        )
        apply(cluster, namespace, manifest)
        later = wait_for(
            lambda: (
                (t := by_id(cluster, namespace, "growing").get("later", {})).get("phase") == "Completed" and t
            ),
            timeout=300,
            what="the added task merged",
        )
        assert later["mergeCommit"]
        subprocess.run([SPRINTCTL, "approve", "growing", "only", "-n", namespace], env=env, check=True)
        status = wait_terminal(cluster, namespace, "growing", timeout=300)
    finally:
        stop_operator(proc)
    assert status["phase"] == "Completed", status.get("message")
    files = git("-C", str(repo), "ls-tree", "-r", "--name-only", "main").split()
    assert {"out/growing.txt", "out/later.txt"} <= set(files)


def long_sprint(name: str, repo: Path, recipes: Path) -> dict[str, Any]:
    """`slow` runs until stopped (the demo team runs its test command, a long sleep, in its container);
    `quick` commits a file outside its filesToModify and waits in Review: committed, unmerged work."""
    recipe(recipes, "slow", "out/slow.txt")
    recipe(recipes, "quick", "out/quick.txt")
    manifest = small_sprint(name, repo, recipes)
    manifest["spec"]["tasks"] = [
        {
            "id": "slow",
            "title": "runs long",
            "filesToModify": ["out/slow.txt"],
            "testRequirements": ["sleep 500"],
        },
        {"id": "quick", "title": "out of scope", "filesToModify": ["out/other.txt"]},
    ]
    manifest["spec"]["policy"] = {"outOfScopeChanges": "review"}
    return manifest


def test_a_task_removed_from_a_running_sprint_is_stopped_and_failed_with_the_reason(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    manifest = long_sprint("shrinking", repo, tmp_path / "r")
    proc = start_operator(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path))
    try:
        apply(cluster, namespace, manifest)
        wait_for(
            lambda: (
                by_id(cluster, namespace, "shrinking").get("slow", {}).get("containerHealth") == "running"
            ),
            timeout=300,
        )
        name = by_id(cluster, namespace, "shrinking")["slow"]["containerName"]
        manifest["spec"]["tasks"] = [t for t in manifest["spec"]["tasks"] if t["id"] != "slow"]
        apply(cluster, namespace, manifest)
        slow = wait_for(
            lambda: (t := by_id(cluster, namespace, "shrinking")["slow"]).get("phase") == "Failed" and t,
            timeout=120,
            what="the removed task stopped",
        )
        running = subprocess.run(
            ["podman", "ps", "-a", "-q", "--filter", f"name=^{name}$"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert running.strip() == "", f"the removed task's container {name} is still there"
        wait_for(lambda: sprint_status(cluster, namespace, "shrinking").get("total") == 1, what="total 1")
    finally:
        stop_operator(proc)
    assert slow["reason"] == "RemovedFromSpec" and "removed from the Sprint" in slow["error"]
    assert slow["column"] == "failed"


def test_deleting_a_running_sprint_stops_its_containers_and_keeps_its_work_in_salvage_refs(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    before = rev(repo, "main")
    proc = start_operator(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path))
    try:
        apply(cluster, namespace, long_sprint("doomed", repo, tmp_path / "r"))

        def both_busy() -> dict[str, dict[str, Any]] | None:
            tasks = by_id(cluster, namespace, "doomed")
            ok = tasks.get("slow", {}).get("containerHealth") == "running"
            return tasks if ok and tasks.get("quick", {}).get("phase") == "Review" else None

        tasks = wait_for(both_busy, timeout=300, what="one task running, one committed in review")
        written = Path(tasks["slow"]["workspace"]) / "out" / "slow.txt"
        wait_for(written.exists, timeout=120, what="the running task's first file")  # not committed
        meta = kubectl(
            cluster, "get", "sprint", "doomed", "-n", namespace, "-o", "jsonpath={.metadata.finalizers}"
        )
        assert "sprintorchestrator.dev/finalizer" in meta
        kubectl(cluster, "delete", "sprint", "doomed", "-n", namespace, "--wait=false")
        wait_for(
            lambda: "NotFound" in kubectl(cluster, "get", "sprint", "doomed", "-n", namespace, check=False),
            timeout=120,
            what="the Sprint to be gone",
        )
    finally:
        stop_operator(proc)
    assert task_containers("doomed").strip() == ""
    clone = clone_of(tmp_path)
    refs = git("--git-dir", str(clone), "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    by_name = dict(line.split() for line in refs)
    quick = tasks["quick"]["commit"]
    assert by_name[f"refs/sprint-orchestrator/salvage/doomed/quick/abandoned-{quick[:12]}"] == quick
    salvaged = by_name["refs/sprint-orchestrator/salvage/doomed/slow/1"]  # its uncommitted file
    assert "out/slow.txt" in git("--git-dir", str(clone), "ls-tree", "-r", "--name-only", salvaged).split()
    assert not any(name.startswith("refs/heads/task/doomed/") for name in by_name)
    worktrees = git("--git-dir", str(clone), "worktree", "list", "--porcelain")
    assert [w for w in worktrees.split("\n\n") if "/tasks/" in w or "/sprints/" in w] == []
    assert rev(repo, "main") == before
