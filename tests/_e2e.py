"""Helpers for end-to-end tests: run the operator (in-process with KopfRunner, or as a real
subprocess that can be killed), apply manifests with the real kubectl, wait on API state."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

import _procs
from _oplog import watch
from conftest import REPO, kubectl
from localcluster import LocalCluster

SPRINTCTL = str(Path(sys.executable).parent / "sprintctl")
_STATE_DIRS: dict[int, Path] = {}  # operator pid -> its state dir, to find the Podman service it left


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


def get_json(local: LocalCluster, *args: str) -> Any:
    return json.loads(kubectl(local, "get", *args, "-o", "json"))


def apply(local: LocalCluster, namespace: str, manifest: dict[str, Any] | str) -> str:
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
    return kubectl(local, "apply", "-n", namespace, "-f", "-", input=text)


def tasks_of(local: LocalCluster, namespace: str, sprint: str) -> list[dict[str, Any]]:
    out = get_json(local, "stask", "-n", namespace, "-l", f"sprintorchestrator.dev/sprint={sprint}")
    return list(out["items"])


def sprint_status(local: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_json(local, "sprint", name, "-n", namespace).get("status") or {})


def operator_env(local: LocalCluster, state_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KUBECONFIG=str(local.kubeconfig),
        SPRINT_ORCHESTRATOR_STATE_DIR=str(state_dir),
        CONTAINERS_CONF=str(REPO / "hack" / "containers.conf"),
        **extra,
    )
    return env


@contextmanager
def operator_process(
    local: LocalCluster, namespace: str | list[str], state_dir: Path, log: Path, **extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`sprintctl operator --namespace NS` as a real process (so tests can SIGKILL it)."""
    proc = start_operator(local, namespace, state_dir, log, **extra)
    try:
        yield proc
    finally:
        stop_operator(proc)


def start_operator(
    local: LocalCluster, namespace: str | list[str], state_dir: Path, log: Path, **extra: str
) -> subprocess.Popen[bytes]:
    watch(log)  # the test fails if this operator logs an unexpected error
    watched = [namespace] if isinstance(namespace, str) else namespace
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [SPRINTCTL, "operator", *(f"--namespace={ns}" for ns in watched), "--log-format", "json"],
            env=operator_env(local, state_dir, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _STATE_DIRS[proc.pid] = state_dir
    return proc


def stop_operator(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop the operator's process group with `sig`. SIGKILL simulates a crash: the Podman service
    survives it (in its own session, by design) for the next operator to reuse. Any other signal is
    the end of the operator: the service is stopped too, whichever operator process started it."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    state_dir = _STATE_DIRS.pop(proc.pid, None)
    if state_dir is not None and sig != signal.SIGKILL:
        _procs.stop_podman_service(state_dir)


def suspended_sprint(name: str, tasks: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": name},
        "spec": {
            "displayName": f"Sprint {name}",
            "suspend": True,
            "team": {"type": "demo"},
            "maxParallelTasks": 2,
            "tasks": [
                {
                    "id": f"t{i}",
                    "title": f"Task {i}",
                    "priority": "high" if i == 0 else "medium",
                    "estimatedTokens": 1000 * (i + 1),
                    "dependencies": [f"t{i - 1}"] if i else [],
                    "filesToModify": [f"notes/t{i}.md"],  # what the demo team writes without a recipe
                }
                for i in range(tasks)
            ],
            **spec,
        },
    }


def recipe(recipes: Path, task: str, path: str, content: str | None = None) -> None:
    """The demo team's recipe for `task`: it writes `path` (default content: the task's id)."""
    (recipes / task / Path(path).parent).mkdir(parents=True, exist_ok=True)
    (recipes / task / path).write_text(f"{task}\n" if content is None else content)


def demo_sprint(
    name: str, repo: Path | str, recipes: Path, tasks: list[dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    """A Sprint of demo-team `tasks` on `repo`, the team writing what `recipes` holds."""
    return {
        "apiVersion": "sprintorchestrator.dev/v1alpha1",
        "kind": "Sprint",
        "metadata": {"name": name},
        "spec": {
            "repository": {"url": str(repo)},
            "team": {"type": "demo", "recipes": str(recipes)},
            "tasks": tasks,
            **spec,
        },
    }


def assert_container_times_in_order(task_status: dict[str, Any]) -> None:
    """A finished Task's timeline: admitted <= its command started <= ended <= the task completed
    (containerStartedAt/FinishedAt are the runtime's own stamps: Podman's, the kubelet's)."""
    stamps = [task_status.get(k) for k in ("startTime", "containerStartedAt", "containerFinishedAt")]
    stamps.append(task_status.get("completionTime"))
    assert all(stamps), task_status
    moments = [dt.datetime.fromisoformat(str(s).replace("Z", "+00:00")) for s in stamps]
    slack = dt.timedelta(seconds=1)  # the runtime's clock and the operator's, whole-second stamps
    assert moments[0] - slack <= moments[1] <= moments[2] <= moments[3] + slack, stamps
