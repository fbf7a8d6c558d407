"""Helpers for the board tests: Sprint/Task bodies as the API stores them, a running `sprintctl
dashboard` process against the local control plane, Tasks created the way the operator creates them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from sprint_orchestrator import LABEL_SPRINT, LABEL_TASK
from sprint_orchestrator.kube import SPRINTS, TASKS, Kube
from sprint_orchestrator.model import task_resource_name

SPRINTCTL = str(Path(sys.executable).parent / "sprintctl")
TOKEN = "test-token-0123456789"
API = "sprintorchestrator.dev/v1alpha1"


def sprint_body(name: str = "s1", tasks: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Sprint",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "sprintId": name,
            "displayName": f"Name of {name}",
            "maxParallelTasks": 2,
            "tasks": [
                {
                    "id": f"t{i}",
                    "title": f"Task {i}",
                    "priority": ["high", "medium", "low"][i % 3],
                    "estimatedTokens": 1000 * (i + 1),
                }
                for i in range(tasks)
            ],
            **spec,
        },
    }


def task_body(sprint: dict[str, Any], tid: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    definition = next(t for t in sprint["spec"]["tasks"] if t["id"] == tid)
    name = sprint["metadata"]["name"]
    fields = {k: v for k, v in definition.items() if k != "id"}
    return {
        "apiVersion": API,
        "kind": "Task",
        "metadata": {
            "name": task_resource_name(name, tid),
            "namespace": sprint["metadata"].get("namespace", "ns"),
            "labels": {LABEL_SPRINT: name, LABEL_TASK: tid},
        },
        "spec": {
            "sprintRef": name,
            "sprintId": sprint["spec"].get("sprintId") or name,
            "taskId": tid,
            **fields,
        },
        "status": status or {},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_sprint_with_tasks(kube: Kube, namespace: str, sprint: dict[str, Any]) -> list[dict[str, Any]]:
    """The Sprint and its Tasks, created as the operator does (labels, spec), with no operator running."""
    sprint = {**sprint, "metadata": {"name": sprint["metadata"]["name"]}}
    created, _ = kube.create(SPRINTS, namespace, sprint)
    tasks = []
    for definition in sprint["spec"]["tasks"]:
        body = task_body({**created, "metadata": {**created["metadata"]}}, definition["id"])
        body["metadata"]["namespace"] = namespace
        body.pop("status")
        tasks.append(kube.create(TASKS, namespace, body)[0])
    return tasks


def set_status(kube: Kube, namespace: str, sprint: str, tid: str, status: dict[str, Any]) -> dict[str, Any]:
    out = kube.patch_status(TASKS, namespace, task_resource_name(sprint, tid), status)
    if out is None:
        raise AssertionError(f"task {tid} of {sprint} is gone")
    return out


@contextmanager
def dashboard(
    kubeconfig: Path, namespace: str, tmp_path: Path, *extra: str, token: str | None = TOKEN
) -> Iterator[str]:
    """`sprintctl dashboard` as a real process; yields its base URL once its watch has synced."""
    port = free_port()
    args = [SPRINTCTL, "dashboard", "--port", str(port), "--namespace", namespace, *extra]
    if token:
        token_file = tmp_path / "tokens"
        token_file.write_text(f"# action tokens\n{token}\n")
        args += ["--token-file", str(token_file)]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "SPRINT_ORCHESTRATOR_STATE_DIR": str(tmp_path)}
    log = (tmp_path / "dashboard.log").open("ab")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, tmp_path / "dashboard.log")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"dashboard did not become healthy:\n{log.read_text()}")


def wait_until(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def demo_sprint(tmp: Path, repo_root: Path) -> dict[str, Any]:
    """examples/sprint.yaml against a fresh bare copy of examples/textstats (as hack/demo.sh runs it)."""
    import yaml

    seed, bare = tmp / "seed", tmp / "target.git"
    subprocess.run(["cp", "-r", str(repo_root / "examples" / "textstats"), str(seed)], check=True)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial commit"]):
        subprocess.run(["git", "-C", str(seed), *args], check=True, capture_output=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "-C", str(seed), "push", "-q", str(bare), "main"], check=True, capture_output=True)
    manifest = yaml.safe_load((repo_root / "examples" / "sprint.yaml").read_text())
    manifest["spec"]["repository"] = {"url": str(bare), "mainBranch": "main"}
    manifest["spec"]["team"]["recipes"] = str(repo_root / manifest["spec"]["team"]["recipes"])
    return dict(manifest)


def operator_config(tmp: Path) -> dict[str, str]:
    path = tmp / "config.yaml"
    path.write_text(
        f"orchestrator: {{allowed_host_paths: ['{tmp}']}}\n"
        f"git: {{working_trees_path: '{tmp / 'trees'}'}}\n"
        "containers: {base_image: localhost/sprint-orchestrator/base:bookworm}\n"
    )
    return {"SPRINT_ORCHESTRATOR_CONFIG": str(path)}
