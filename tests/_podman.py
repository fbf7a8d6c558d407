"""Helpers for tests that run real Podman containers: the base image, a runtime, task workspaces."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from sprint_orchestrator.runtime import Limits, TaskRunSpec
from sprint_orchestrator.runtime.podman import PodmanRuntime
from sprint_orchestrator.settings import Settings

REPO = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = REPO / "hack" / "containers.conf"
BASE_IMAGE = "localhost/sprint-orchestrator/base:bookworm"
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def build_base_image() -> str:
    """hack/base-image.sh (a no-op when the image is current); skip the test when Podman is missing."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: run hack/setup-podman.sh")
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "base-image.sh")], env=PODMAN_ENV, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"hack/base-image.sh failed:\n{result.stderr[-3000:]}")
    return BASE_IMAGE


def settings_for(state_dir: Path, env: Mapping[str, str] | None = None) -> Settings:
    return Settings(state_dir=state_dir, base_image=BASE_IMAGE, env=dict(PODMAN_ENV if env is None else env))


def runtime_for(state_dir: Path) -> Iterator[PodmanRuntime]:
    runtime = PodmanRuntime.connect(settings_for(state_dir))
    try:
        yield runtime
    finally:
        runtime.close()


def remove_sprint(runtime: PodmanRuntime, sprint_id: str) -> None:
    """Remove the containers of one test sprint (never anybody else's)."""
    for info in runtime.find_task_containers(sprint_id):
        runtime.remove(info.name)


def task_spec(tmp_path: Path, sprint: str, task: str, command: list[str], **changes: object) -> TaskRunSpec:
    """A TaskRunSpec on fresh workspace and artifacts directories under tmp_path."""
    workspace, artifacts = tmp_path / "workspace", tmp_path / "artifacts"
    workspace.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    spec = TaskRunSpec(
        sprint_id=sprint, task_id=task, attempt=1, image=BASE_IMAGE, command=command, workspace=workspace,
        artifacts=artifacts, limits=Limits(cpus=1.0, memory_bytes=256 << 20, pids=128), timeout_s=60,
    )  # fmt: skip
    return replace(spec, **changes)  # type: ignore[arg-type]


def host_debian_sources() -> tuple[str, ...]:
    """The Debian archive URLs this machine's apt uses (the only package source reachable here)."""
    urls: list[str] = []
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:"):
                urls += [u for u in line.split()[1:] if u.rstrip("/").endswith("/debian")]
    return tuple(dict.fromkeys(urls))
