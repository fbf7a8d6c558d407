"""A hostile team attacks the operator through what it leaves behind and through the resources it
uses, in real containers on the real control plane: each attack fails or stays inside its own task, and
an honest task beside them completes and merges.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hostile import attack, command_task, hostile_sprint, operator_clone

from _oplog import assert_clean_log
from _procs import mounts_under
from localcluster import LocalCluster
from test_lifecycle_e2e import git, seed_repository

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
SPRINT = "hostile-ws"
PY = "python3 -c"
SCRIPTS = {
    "symlink-escape": "ln -s /etc/passwd OUT; ln -s ../../../../../root up.txt; echo ok > RESULTS.md",
    "huge-file": "head -c 70000000 /dev/zero > OUT",
    "fifo-results": "mkfifo RESULTS.md; mkfifo /artifacts/usage.jsonl; echo x > OUT",
    "results-symlink": "ln -s /etc/shadow RESULTS.md; echo x > OUT",
    "huge-usage": "truncate -s 200M /artifacts/usage.jsonl; echo x > OUT",
    "fork-bomb": (
        f"{PY} 'import os,time\nn=0\ntry:\n  while True:\n    if os.fork()==0:\n"
        "      time.sleep(30); os._exit(0)\n    n+=1\nexcept OSError as e:\n"
        '  print("forks",n,e); raise SystemExit(3)\''
    ),
    "memory-balloon": f"{PY} 'b=[]\nwhile True: b.append(bytearray(64<<20))'",
    "stdout-flood": "head -c 300000000 /dev/zero | tr '\\000' A; echo x > OUT",
    "tmp-fill": 'head -c 900000000 /dev/zero > /tmp/fill; echo "tmp: $?" > OUT',
    "disk-fill": "head -c 400000000 /dev/zero > OUT",
    "network": "ls /sys/class/net > OUT",
    "honest": "echo 'all good' > OUT",
}


@pytest.fixture(scope="module")
def attacked(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("hostile-ws")
    repo = seed_repository(tmp, files={"README.md": "# target\n"})
    scripts = {tid: script.replace("OUT", f"out-{tid}.txt") for tid, script in SCRIPTS.items()}
    tasks = [command_task(tid, scripts[tid], [f"out-{tid}.txt"], "true") for tid in SCRIPTS]
    manifest = hostile_sprint(SPRINT, repo, tasks, scripts)
    limits = {"memory": "1Gi", "pids": 128, "timeoutSeconds": 300, "disk": "128Mi"}  # huge-file's 70 MB fit
    manifest["spec"]["container"]["resourceLimits"] = limits
    manifest["spec"]["policy"] = {"maxAttempts": 1, "outOfScopeChanges": "warn"}
    with attack(cluster, tmp, manifest) as result:
        yield {**result, "repo": repo}


def sprint_files(attacked: dict[str, Any]) -> dict[str, str]:
    listing = git("--git-dir", str(operator_clone(attacked["tmp"])), "ls-tree", "-r", f"sprint/{SPRINT}")
    return {line.split("\t")[1]: line.split()[0] for line in listing.splitlines()}


def test_the_operator_survived_every_attack_and_the_honest_task_merged(attacked: dict[str, Any]) -> None:
    assert attacked["alive"]
    honest = attacked["tasks"]["honest"]
    assert (honest["phase"], honest["reason"]) == ("Completed", "Merged"), honest


def test_symlinks_out_of_the_repository_are_refused_at_commit(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["symlink-escape"]
    refused = sorted(r.split(":")[0] for r in task["refusedFiles"])
    assert refused == ["out-symlink-escape.txt", "up.txt"], task
    assert any(a["event"] == "FilesRefused" for a in task["audit"])


def test_a_huge_file_is_refused_at_commit(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["huge-file"]
    assert [r.split(":")[0] for r in task["refusedFiles"]] == ["out-huge-file.txt"], task
    assert "over the limit" in task["refusedFiles"][0]


def test_a_fifo_as_results_or_usage_does_not_hang_the_operator(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["fifo-results"]
    assert task["phase"] in ("Completed", "Review") and task["results"]["present"] is False, task


def test_a_results_symlink_to_a_host_file_is_not_followed(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["results-symlink"]
    assert task["results"]["present"] is False and "root:" not in (task["results"].get("summary") or "")


def test_an_oversized_usage_file_is_named_not_loaded(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["huge-usage"]
    assert any("usage.jsonl" in p and "over the limit" in p for p in task["results"]["problems"]), task


def test_a_fork_bomb_hits_the_pids_limit_and_fails_only_its_task(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["fork-bomb"]
    assert (task["phase"], task["exitCode"]) == ("Failed", 3), task


def test_a_memory_balloon_is_killed_and_fails_only_its_task(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["memory-balloon"]
    assert task["phase"] == "Failed" and task["exitCode"] == 137, task


def test_a_flood_of_output_is_capped(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["stdout-flood"]
    assert (task["phase"], task.get("reason")) == ("Completed", "Merged"), (task.get("gates"), task)
    assert Path(task["logPath"]).stat().st_size < 40 << 20  # 300 MB written, the log capped


def test_tmp_is_size_capped(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["tmp-fill"]
    assert (task["phase"], task.get("reason")) == ("Completed", "Merged"), (task.get("gates"), task)
    assert "out-tmp-fill.txt" in sprint_files(attacked)


def test_a_disk_fill_fails_only_its_task_with_a_clear_reason(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["disk-fill"]
    assert (task["phase"], task.get("reason")) == ("Failed", "DiskQuotaExceeded"), task
    assert "filled their disk cap (128Mi)" in task["error"], task
    assert "out-disk-fill.txt" not in sprint_files(attacked)
    assert mounts_under(attacked["tmp"]) == []  # every task's disk unmounted once its container ended


def test_a_task_container_has_no_network_but_loopback(attacked: dict[str, Any]) -> None:
    task = attacked["tasks"]["network"]
    assert (task["phase"], task.get("reason")) == ("Completed", "Merged"), (task.get("gates"), task)
    text = git("--git-dir", str(operator_clone(attacked["tmp"])), "show", f"{task['commit']}:out-network.txt")
    assert text.split() == ["lo"]


def test_the_operator_logged_no_unexpected_error_under_attack(attacked: dict[str, Any]) -> None:
    assert_clean_log(attacked["log"])
