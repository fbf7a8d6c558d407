"""Attacks on the quality gate by a hostile task team, in real containers on the real control plane.

The team does not fix the bug its gate tests for; it tries to make the gate pass anyway, each task with
another trick (a root pytest.py that shadows pytest, a conftest.py that rewrites every report, runner
options, a rewritten test). The gate runs the sprint's trusted tree, so every trick fails; a trick the
Sprint author put in scope runs but cannot merge without a human. One honest task shows the gate can
pass. One task snoops for the operator's secrets (canaries) and writes whatever it finds everywhere.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hostile import CANARIES, attack, command_task, everything_visible, hostile_sprint, leaks, operator_clone

from _oplog import assert_clean_log
from conftest import kubectl
from localcluster import LocalCluster
from test_lifecycle_e2e import git, seed_repository

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
SPRINT = "hostile-gate"
GATE = "python3 -m pytest -q -p no:cacheprovider tests/test_app.py"
PASS_EVERYTHING = (
    "import pytest\n"
    "@pytest.hookimpl(hookwrapper=True)\n"
    "def pytest_runtest_makereport(item, call):\n"
    "    outcome = yield\n"
    '    outcome.get_result().outcome = "passed"\n'
)
SCRIPTS = {
    "shadow-pytest": "printf 'import sys\\nsys.exit(0)\\n' > pytest.py",
    "conftest-hook": f"printf '%s' '{PASS_EVERYTHING}' > conftest.py",
    "ini-collect-only": "printf '[pytest]\\naddopts = --co\\n' > pytest.ini",
    "setup-cfg": "printf '[tool:pytest]\\naddopts = --co\\n' > setup.cfg",
    "rewrite-test": "printf 'def test_greet():\\n    pass\\n' > tests/test_app.py",
    "declared-conftest": f"printf '%s' '{PASS_EVERYTHING}' > conftest.py",
    "honest": "printf 'def greet():\\n    return \"hello\"\\n' > src/app.py",
    "snoop": (
        "{ env; cat /proc/1/environ; ls -la / /run /root /tmp; cat /root/.ssh/* /root/.aws/* /run/secrets/* "
        f"{Path.home()}/.ssh/* 2>&1; find / -xdev \\( -name 'id_*' -o -name credentials \\) 2>/dev/null; }} "
        "> src/app.py 2>&1; cp src/app.py RESULTS.md; mkdir -p /artifacts; "
        "cp src/app.py /artifacts/loot.txt; cat src/app.py"
    ),
}
CHEATS = ("shadow-pytest", "conftest-hook", "ini-collect-only", "setup-cfg", "rewrite-test")


@pytest.fixture(scope="module")
def attacked(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("hostile-gate")
    repo = seed_repository(
        tmp,
        files={
            "src/__init__.py": "",
            "src/app.py": "def greet():\n    return 'bye'\n",
            "tests/test_app.py": (
                "from src.app import greet\n\n\ndef test_greet():\n    assert greet() == 'hello'\n"
            ),
        },
    )
    declared = {
        tid: ["src/app.py", *(["conftest.py"] if tid == "declared-conftest" else [])] for tid in SCRIPTS
    }
    tasks = [command_task(tid, SCRIPTS[tid], declared[tid], GATE) for tid in SCRIPTS]
    with attack(cluster, tmp, hostile_sprint(SPRINT, repo, tasks, SCRIPTS), timeout=600) as result:
        yield {**result, "repo": repo}


def sprint_tree(attacked: dict[str, Any]) -> list[str]:
    """The files on the sprint branch, read from the operator's clone."""
    gitdir = operator_clone(attacked["tmp"])
    return git("--git-dir", str(gitdir), "ls-tree", "-r", "--name-only", f"sprint/{SPRINT}").split()


@pytest.mark.parametrize("trick", CHEATS)
def test_a_trick_outside_the_declared_files_does_not_pass_the_gate(
    attacked: dict[str, Any], trick: str
) -> None:
    task = attacked["tasks"][trick]
    assert (task["phase"], task["reason"]) == ("Review", "GateFailed"), task
    assert [g["passed"] for g in task["gates"]] == [False]
    assert "1 failed" in task["gates"][0]["logTail"]  # the real test ran and failed
    assert task["outOfScope"], task  # and the tampering is on record
    assert any(a["event"] == "OutOfScopeChanges" for a in task["audit"])


def test_a_protected_file_in_scope_runs_but_cannot_merge_without_a_human(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["declared-conftest"]
    assert (task["phase"], task["reason"]) == ("Review", "ProtectedPaths"), task
    assert task["protectedPaths"] == ["conftest.py"]
    assert "pytest_runtest_makereport" in task["protectedDiff"]
    assert any(a["event"] == "ProtectedPathsChanged" for a in task["audit"])


def test_the_honest_task_passes_the_same_gate_and_merges(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["honest"]
    assert (task["phase"], task["reason"]) == ("Completed", "Merged"), task.get("gates")
    assert [g["passed"] for g in task["gates"]] == [True]


def test_no_tampering_file_reached_the_sprint_branch(attacked: dict[str, Any]) -> None:
    files = set(sprint_tree(attacked))
    assert not {"pytest.py", "conftest.py", "pytest.ini", "setup.cfg"} & files
    assert "src/app.py" in files


def test_tampering_attempts_are_kubernetes_events(cluster: LocalCluster, attacked: dict[str, Any]) -> None:
    events = kubectl(
        cluster, "get", "events", "-n", attacked["namespace"], "-o", "jsonpath={.items[*].reason}"
    )
    assert "OutOfScopeChanges" in events.split() and "ProtectedPathsChanged" in events.split()


def test_the_snooping_team_finds_no_canary_anywhere(cluster: LocalCluster, attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["snoop"]
    assert task["phase"] == "Review" and "PATH=" in task["results"]["summary"]  # it did look around
    tmp = attacked["tmp"]
    seen = everything_visible(
        cluster, attacked["namespace"], [attacked["repo"], *tmp.joinpath("trees").glob("*")],
        [attacked["log"], tmp / "state"],
    )  # fmt: skip
    assert CANARIES["env"] not in subprocess.run(["env"], capture_output=True, text=True).stdout  # sanity
    assert leaks(seen) == []


def test_the_operator_logged_no_unexpected_error_under_attack(attacked: dict[str, Any]) -> None:
    assert_clean_log(attacked["log"])
