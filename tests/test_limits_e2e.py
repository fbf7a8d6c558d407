"""The PRD's failure scenarios through the operator: the real control plane, the operator as a real
process, real Podman containers. A task that runs out of memory is retried with more memory, one that
runs past its timeout with a longer timeout; once the attempts are used up it ends Failed, with the
reason. Each scenario is tied to state (the memory limit, the attempt number), not to speed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _e2e import apply, operator_process, sprint_status, tasks_of, wait_for
from localcluster import LocalCluster
from test_lifecycle_e2e import by_id, config, events_in, seed_repository, wait_terminal

pytestmark = [pytest.mark.cluster, pytest.mark.podman]
MiB = 1 << 20

# One command for every task of a sprint; what it does depends on the task ($SPRINT_TASK_ID):
#   hog      allocates 100 MiB: killed under 64 MiB, fine under 128 MiB
#   slow     sleeps past any timeout on its first attempt, finishes at once on the next
#   glutton  allocates 1 GiB: killed under any limit the retries reach
#   sleeper  sleeps past any timeout on every attempt
TEAM_SCRIPT = """
set -e
mkdir -p out
case "$SPRINT_TASK_ID" in
  hog) python3 -c "b'x' * (100 << 20)" ;;
  slow) if [ "$SPRINT_TASK_ATTEMPT" = 1 ]; then sleep 600; fi ;;
  glutton) python3 -c "b'x' * (1 << 30)" ;;
  sleeper) sleep 600 ;;
esac
echo "$SPRINT_TASK_ID attempt $SPRINT_TASK_ATTEMPT" > "out/$SPRINT_TASK_ID.txt"
echo "done" > RESULTS.md
"""


MEMORY_BOUND = {"memory": "64m", "cpus": "500m", "timeoutSeconds": 600}  # Podman/Docker's 64 MiB
TIME_BOUND = {"memory": "64Mi", "timeoutSeconds": 3}  # the quick tasks' memory is never the limit


def sprint(name: str, repo: Path, task_ids: list[str], limits: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": name},
        "spec": {
            "repository": {"url": str(repo)},
            "team": {"type": "command", "command": ["sh", "-c", TEAM_SCRIPT]},
            "container": {"resourceLimits": limits},
            "tasks": [{"id": t, "title": t, "filesToModify": [f"out/{t}.txt"]} for t in task_ids],
            "maxParallelTasks": 2,
            **spec,
        },
    }


def retry_events(cluster: LocalCluster, namespace: str, task: str) -> list[str]:
    return [
        e["message"]
        for e in events_in(cluster, namespace)
        if e["reason"] == "TaskRetry" and e["message"].startswith(f"task {task}:")
    ]


def test_an_oom_kill_gets_more_memory_and_a_timeout_a_longer_timeout_then_both_succeed(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, sprint("recover-oom", repo, ["hog"], MEMORY_BOUND))
        apply(cluster, namespace, sprint("recover-time", repo, ["slow"], TIME_BOUND))
        statuses = [wait_terminal(cluster, namespace, f"recover-{s}", timeout=300) for s in ("oom", "time")]
    tasks = {**by_id(cluster, namespace, "recover-oom"), **by_id(cluster, namespace, "recover-time")}
    assert [s["phase"] for s in statuses] == ["Completed", "Completed"], (statuses, tasks)

    hog = tasks["hog"]
    assert (hog["phase"], hog["attempt"]) == ("Completed", 2)
    assert hog["limits"]["memory"] == "128Mi" and hog["limits"]["memoryBytes"] == 128 * MiB
    assert hog["limits"]["cpus"] == 0.5 and hog["limits"]["nanoCpus"] == 500_000_000
    [oom] = retry_events(cluster, namespace, "hog")
    assert "ran out of memory (64Mi; out of memory: the container's memory cgroup counted an OOM" in oom
    assert "attempt 2 with memory 128Mi" in oom

    slow = tasks["slow"]
    assert (slow["phase"], slow["attempt"]) == ("Completed", 2)
    assert slow["limits"]["timeoutSeconds"] == 6 and slow["limits"]["memory"] == "64Mi"
    [timeout] = retry_events(cluster, namespace, "slow")
    assert "ran past its time limit (3s)" in timeout and "attempt 2 with timeout 6s" in timeout


def test_capped_attempts_end_failed_with_the_reason(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        policy = {"maxAttempts": 2}
        apply(cluster, namespace, sprint("capped-oom", repo, ["glutton"], MEMORY_BOUND, policy=policy))
        apply(cluster, namespace, sprint("capped-time", repo, ["sleeper"], TIME_BOUND, policy=policy))
        statuses = [wait_terminal(cluster, namespace, f"capped-{s}", timeout=300) for s in ("oom", "time")]
    tasks = {**by_id(cluster, namespace, "capped-oom"), **by_id(cluster, namespace, "capped-time")}
    assert [s["phase"] for s in statuses] == ["Failed", "Failed"], (statuses, tasks)

    glutton = tasks["glutton"]
    assert (glutton["phase"], glutton["reason"], glutton["attempt"]) == ("Failed", "OOMKilled", 2)
    assert glutton["containerHealth"] == "oom-killed"
    assert glutton["limits"]["memory"] == "128Mi"  # the second attempt had more memory, and still ran out
    assert "ran out of memory (128Mi" in glutton["error"]
    assert "no attempts left (2 of 2 used)" in glutton["error"]

    sleeper = tasks["sleeper"]
    assert (sleeper["phase"], sleeper["reason"], sleeper["attempt"]) == ("Failed", "Timeout", 2)
    assert sleeper["containerHealth"] == "timed-out"
    assert sleeper["limits"]["timeoutSeconds"] == 6
    assert "ran past its time limit (6s)" in sleeper["error"]
    assert "no attempts left (2 of 2 used)" in sleeper["error"]
    assert (
        len(retry_events(cluster, namespace, "glutton"))
        == len(retry_events(cluster, namespace, "sleeper"))
        == 1
    )


def test_a_limit_only_the_operator_refuses_is_reported_with_the_cycle_in_the_invalid_spec_condition(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    repo = seed_repository(tmp_path, files={"README.md": "x\n"})
    manifest = sprint("tiny", repo, ["a", "b"], dict(MEMORY_BOUND))
    manifest["spec"]["container"]["resourceLimits"] = {
        **MEMORY_BOUND,
        "cpus": "0.001",
    }  # the CRD's pattern cannot see 10m
    manifest["spec"]["tasks"][0]["dependencies"] = ["b"]
    manifest["spec"]["tasks"][1]["dependencies"] = ["a"]  # a cycle: beyond CEL, the operator's to find
    with operator_process(cluster, namespace, tmp_path / "state", tmp_path / "op.log", **config(tmp_path)):
        apply(cluster, namespace, manifest)
        ready = wait_for(
            lambda: next(
                (c for c in sprint_status(cluster, namespace, "tiny").get("conditions") or []
                 if c["type"] == "Ready" and c["status"] == "False"),
                None,
            ),
            what="Ready=False",
        )  # fmt: skip
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"] == (
        "spec.container.resourceLimits.cpus: '0.001' is less than 0.01 CPU (10m), the smallest limit a "
        "container can have; spec.tasks: dependency cycle a -> b -> a"
    )
    assert tasks_of(cluster, namespace, "tiny") == []
