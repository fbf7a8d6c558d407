"""A hostile task team and planted canaries: what the attack tests share.

Canaries are secrets planted where a careless operator would leak them: its environment, a fake SSH
key and a fake cloud credential file in its HOME, and the model API key. After an attack, none may
appear in any Task or Sprint status, Event, operator log, container log, artifact or git object.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import kubectl
from localcluster import LocalCluster

CANARIES = {
    "env": "canary-env-8f1d2c7a",
    "ssh": "canary-ssh-5b9e0f31",
    "cloud": "canary-cloud-c47a9d02",
    "api_key": "sk-ant-canary-3e61b8d4",
}


def plant(home: Path) -> dict[str, str]:
    """A HOME holding a fake SSH key and cloud credentials; the env the operator gets."""
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "id_ed25519").write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{CANARIES['ssh']}\n")
    (home / ".aws").mkdir(mode=0o700)
    (home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {CANARIES['cloud']}\n")
    return {
        "HOME": str(home),
        "SPRINT_CANARY_SECRET": CANARIES["env"],
        "ANTHROPIC_API_KEY": CANARIES["api_key"],
    }


def command_task(task_id: str, script: str, declared: list[str], gate: str, **extra: Any) -> dict[str, Any]:
    """A task whose team is the hostile shell script (run as `sh -c` in the task container)."""
    return {
        "id": task_id,
        "title": f"hostile {task_id}",
        "priority": "high",
        "filesToModify": declared,
        "testRequirements": [gate],
        **extra,
    }


def hostile_sprint(
    name: str, repo: Path, tasks: list[dict[str, Any]], scripts: dict[str, str]
) -> dict[str, Any]:
    """One Sprint whose command team runs `scripts[task id]` (dispatch on $SPRINT_TASK_ID)."""
    cases = "".join(f"  {tid}) {script} ;;\n" for tid, script in scripts.items())
    dispatcher = f'case "$SPRINT_TASK_ID" in\n{cases}esac\n'
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": name},
        "spec": {
            "repository": {"url": str(repo), "mainBranch": "main"},
            "team": {"type": "command", "command": ["sh", "-c", dispatcher]},
            "container": {
                "resourceLimits": {"cpus": 1, "memory": "256Mi", "pids": 128, "timeoutSeconds": 300}
            },
            "maxParallelTasks": 4,
            "tasks": tasks,
        },
    }


def leaks(text: str) -> list[str]:
    return [name for name, value in CANARIES.items() if value in text]


def everything_visible(
    cluster: LocalCluster, namespace: str, repo_dirs: list[Path], files: list[Path]
) -> str:
    """Statuses, Events, every git object reachable in the given repositories, and the given files."""
    parts = [
        kubectl(cluster, "get", "sprints,stask,events", "-n", namespace, "-o", "json"),
    ]
    for repo in repo_dirs:
        if repo.exists():
            parts.append(
                subprocess.run(
                    ["git", "-C", str(repo), "log", "--all", "-p", "--format=%H %an %s%n%b"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
            )
    for path in files:
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            parts.append(file.read_bytes().decode(errors="replace"))
    return "\n".join(parts)


def phases(cluster: LocalCluster, namespace: str, sprint: str) -> dict[str, dict[str, Any]]:
    out = json.loads(
        kubectl(
            cluster,
            "get",
            "stask",
            "-n",
            namespace,
            "-l",
            f"sprintorchestrator.dev/sprint={sprint}",
            "-o",
            "json",
        )
    )
    return {t["spec"]["taskId"]: t.get("status") or {} for t in out["items"]}


@contextmanager
def attack(
    cluster: LocalCluster, tmp: Path, manifest: dict[str, Any], timeout: float = 900
) -> Iterator[dict[str, Any]]:
    """Run one hostile Sprint with its own operator (canaries planted) in a fresh namespace until every
    task settled; yield what the tests look at, then remove the namespace."""
    from _e2e import apply, start_operator, stop_operator, wait_for
    from test_lifecycle_e2e import config

    namespace = f"t-{uuid.uuid4().hex[:10]}"
    kubectl(cluster, "create", "namespace", namespace)
    sprint, count = manifest["metadata"]["name"], len(manifest["spec"]["tasks"])
    log = tmp / "op.log"
    proc = start_operator(cluster, namespace, tmp / "state", log, **config(tmp), **plant(tmp / "home"))
    try:
        apply(cluster, namespace, manifest)
        settled = ("Review", "Completed", "Failed")
        tasks = wait_for(
            lambda: (
                (p := phases(cluster, namespace, sprint))
                and len(p) == count
                and all(s.get("phase") in settled for s in p.values())
                and p
            ),
            timeout=timeout,
            what="every hostile task to settle",
        )
        alive = proc.poll() is None
    finally:
        stop_operator(proc)
    yield {"tasks": tasks, "namespace": namespace, "tmp": tmp, "log": log, "alive": alive}
    kubectl(cluster, "delete", "namespace", namespace, "--wait=false", check=False)


def operator_clone(tmp: Path) -> Path:
    """The git directory of the operator's clone of the target repository (under tmp/trees/)."""
    for head in tmp.joinpath("trees").rglob("HEAD"):
        if (head.parent / "objects").is_dir() and (head.parent / "refs").is_dir():
            return head.parent
    raise AssertionError(f"no clone of the target repository under {tmp / 'trees'}")
