"""Review like a merge request, end to end: the real control plane, the operator as a real process,
real git and real Podman containers running the demo team. A reviewer reads the diff, requests
changes with a line comment, and the agent's next attempt continues from its commit with the review
in TASK.md; an approval merges exactly the commit approved, never one the task branch moved to."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from _e2e import SPRINTCTL, apply, operator_env, operator_process, wait_for
from conftest import REPO, kubectl
from localcluster import LocalCluster
from sprint_orchestrator.gitops import GitEngine
from test_lifecycle_e2e import by_id, config, events_in, example, git, seed_repository, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
SPRINT = "textstats-trouble"
RECIPE = REPO / "examples" / "demo-team" / SPRINT / "buggy"


def buggy_only(repo: Path, integration: bool) -> dict[str, Any]:
    manifest = example("sprint-trouble.yaml", repo)
    manifest["spec"]["tasks"] = [t for t in manifest["spec"]["tasks"] if t["id"] == "buggy"]
    if not integration:
        manifest["spec"]["integrationTests"] = []
    return manifest


def sprintctl(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([SPRINTCTL, *args], env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"sprintctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def buggy(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    return by_id(cluster, namespace, SPRINT).get("buggy", {})


def in_review(cluster: LocalCluster, namespace: str, attempt: int) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (
                (t := buggy(cluster, namespace)).get("phase") == "Review"
                and t.get("attempt") == attempt
                and t
            ),
            timeout=300,
            what=f"task buggy in Review on attempt {attempt}",
        )
    )


def reasons(cluster: LocalCluster, namespace: str) -> list[str]:
    return [e["reason"] for e in events_in(cluster, namespace)]


def test_the_demo_team_reads_the_review_from_task_md_and_fixes_the_failing_gate_on_attempt_2(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, REPO / "examples" / "textstats")
    settings = config(tmp_path)
    env = {**operator_env(cluster, tmp_path / "state"), **settings}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **settings):
        apply(cluster, namespace, buggy_only(repo, integration=True))
        first = in_review(cluster, namespace, 1)
        assert first["reason"] == "GateFailed"
        stat = sprintctl(env, "diff", SPRINT, "buggy", "-n", namespace, "--stat").stdout
        assert "added     +6     -0     textstats/buggy.py" in stat, stat
        assert "tests/test_buggy.py" in stat and "2 file(s)" in stat
        diff = json.loads(sprintctl(env, "diff", SPRINT, "buggy", "-n", namespace, "--json").stdout)
        assert (diff["base"], diff["head"]) == (first["baseCommit"], first["commit"])
        # a hostile review written with kubectl is refused, naming the field; the task keeps waiting
        name = f"{SPRINT}-buggy"
        kubectl(
            cluster, "annotate", "-n", namespace, "stask", name, "--overwrite",
            'sprintorchestrator.dev/review={"comments":[{"path":"../../etc/passwd","body":"x"}]}',
            f"sprintorchestrator.dev/request-changes={uuid.uuid4().hex[:12]}",
        )  # fmt: skip
        wait_for(lambda: "RequestChangesIgnored" in reasons(cluster, namespace), what="the refusal")
        assert buggy(cluster, namespace)["phase"] == "Review"
        sprintctl(
            env, "request-changes", SPRINT, "buggy", "-n", namespace, "--by", "alice",
            "-m", "The gate fails: average_word_length is off by one.",
            "-c", "textstats/buggy.py:6=divide by len(words), not len(words) + 1",
            "-c", "keep the test as it is",
        )  # fmt: skip
        done = wait_terminal(cluster, namespace, SPRINT, timeout=600)
    assert done["phase"] == "Completed", done
    task = buggy(cluster, namespace)
    assert (task["phase"], task["attempt"], task["reason"]) == ("Completed", 2, "Merged")
    (review,) = task["reviews"]
    assert (review["by"], review["attempt"], review["commit"]) == ("alice", 1, first["commit"])
    assert review["comments"][0] == {
        "path": "textstats/buggy.py",
        "line": 6,
        "body": "divide by len(words), not len(words) + 1",
    }
    assert review["comments"][1] == {"body": "keep the test as it is"}
    task_md = (Path(task["artifactsPath"]) / "TASK.md").read_text()
    assert "## Review: changes requested" in task_md
    assert "- Comment 1 on `textstats/buggy.py:6`:" in task_md
    results = (Path(task["artifactsPath"]) / "RESULTS.md").read_text()
    # attempt 2 wrote only the fix: the test file is attempt 1's, kept from the reviewed commit
    assert "- `textstats/buggy.py` (" in results and "- `tests/test_buggy.py` (" not in results
    assert (
        git("-C", str(repo), "show", "main:textstats/buggy.py")
        == (RECIPE / ".review" / "textstats" / "buggy.py").read_text()
    )
    assert (
        git("-C", str(repo), "show", "main:tests/test_buggy.py")
        == (RECIPE / "tests" / "test_buggy.py").read_text()
    )
    # the continued attempt's commit sits on top of the reviewed one
    git("-C", str(repo), "merge-base", "--is-ancestor", first["commit"], task["commit"])
    assert "ChangesRequested" in reasons(cluster, namespace)


def test_an_approval_merges_the_commit_reviewed_and_refuses_a_task_branch_that_moved(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, REPO / "examples" / "textstats")
    settings = config(tmp_path)
    env = {**operator_env(cluster, tmp_path / "state"), **settings}
    clone = GitEngine.root_for(tmp_path / "trees", str(repo)) / "repo.git"
    branch = f"refs/heads/task/{SPRINT}/buggy"
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **settings):
        apply(cluster, namespace, buggy_only(repo, integration=False))
        reviewed = in_review(cluster, namespace, 1)["commit"]
        # an approval given for another commit than the task's is ignored (kubectl, the same nonce)
        kubectl(
            cluster, "annotate", "-n", namespace, "stask", f"{SPRINT}-buggy", "--overwrite",
            f"sprintorchestrator.dev/approve-commit={'0' * 40}",
            f"sprintorchestrator.dev/approve={uuid.uuid4().hex[:12]}",
        )  # fmt: skip
        wait_for(lambda: "ApproveIgnored" in reasons(cluster, namespace), what="the ignored approval")
        assert buggy(cluster, namespace)["phase"] == "Review"
        # the task branch moves after the review: a commit nobody reviewed
        tree = git("--git-dir", str(clone), "rev-parse", f"{reviewed}^{{tree}}").strip()
        moved = git("--git-dir", str(clone), "commit-tree", tree, "-p", reviewed, "-m", "unreviewed").strip()
        git("--git-dir", str(clone), "update-ref", branch, moved, reviewed)
        out = sprintctl(env, "approve", SPRINT, "buggy", "-n", namespace).stdout
        assert reviewed[:12] in out
        again = wait_for(
            lambda: (t := buggy(cluster, namespace)).get("reason") == "ReviewedCommitMoved" and t,
            timeout=120,
            what="the refused merge",
        )
        assert (again["phase"], again["commit"]) == ("Review", moved)
        assert "MergeRefused" in reasons(cluster, namespace)
        sprint_head = git("--git-dir", str(clone), "rev-parse", f"refs/heads/sprint/{SPRINT}").strip()
        merged = subprocess.run(
            ["git", "--git-dir", str(clone), "merge-base", "--is-ancestor", reviewed, sprint_head],
            check=False,
        )
        assert merged.returncode == 1  # nothing of the task reached the sprint branch
        stale = sprintctl(env, "approve", SPRINT, "buggy", "-n", namespace, "--commit", reviewed, check=False)
        assert stale.returncode == 1 and "review it again" in stale.stderr
        sprintctl(env, "approve", SPRINT, "buggy", "-n", namespace, "--commit", moved)
        final = wait_for(
            lambda: (t := buggy(cluster, namespace)).get("phase") == "Completed" and t,
            timeout=120,
            what="the approved merge",
        )
        assert final["approvedCommit"] == moved
        sprint_head = git("--git-dir", str(clone), "rev-parse", f"refs/heads/sprint/{SPRINT}").strip()
        git("--git-dir", str(clone), "merge-base", "--is-ancestor", moved, sprint_head)


def test_auto_fix_sends_a_failed_gate_back_to_the_team_with_its_output_before_asking_a_human(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, REPO / "examples" / "textstats")
    settings = config(tmp_path)
    manifest = buggy_only(repo, integration=False)
    manifest["spec"]["autoFix"] = {"maxRounds": 1}
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **settings):
        apply(cluster, namespace, manifest)
        task = in_review(cluster, namespace, 2)  # attempt 1 failed its gate, attempt 2 was automatic
    assert (task["reason"], task["autoFixRounds"]) == ("GateFailed", 1)
    (feedback,) = task["reviews"]
    assert (feedback["by"], feedback["attempt"], feedback["comments"]) == ("autoFix", 1, [])
    assert feedback["tokens"] > 0
    assert "Gate `python3 -m pytest -q tests/test_buggy.py` failed (exit 1)" in feedback["message"]
    assert "assert" in feedback["message"]  # pytest's failing output reached the team
    task_md = (Path(task["artifactsPath"]) / "TASK.md").read_text()
    assert "### Review of attempt 1" in task_md and "round 1 of 1" in task_md
    assert "AutoFixRequested" in reasons(cluster, namespace)
