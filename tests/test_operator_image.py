"""The operator image: built with Podman from the local base image (hack/operator-image.sh, offline),
then run: the installed package works, it runs as a non-root user, `sprintctl` is the entrypoint."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.podman


def podman(*args: str) -> str:
    env = dict(os.environ, CONTAINERS_CONF=str(REPO / "hack" / "containers.conf"))
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300, env=env)
    if result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    env = dict(os.environ, CONTAINERS_CONF=str(REPO / "hack" / "containers.conf"))
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "operator-image.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    yield result.stdout.strip().splitlines()[-1]


def test_the_image_is_built_from_the_local_base_image(image: str) -> None:
    base = json.loads(podman("image", "inspect", "localhost/sprint-orchestrator/base:bookworm"))[0]
    built = json.loads(podman("image", "inspect", image))[0]
    assert set(base["RootFS"]["Layers"]) <= set(built["RootFS"]["Layers"])
    assert built["Config"]["User"] == "1000:1000"
    assert built["Config"]["Entrypoint"] == ["sprintctl"]


def test_sprintctl_in_the_image_lists_the_operator_command(image: str) -> None:
    out = podman("run", "--rm", "--network", "none", image, "--help")
    assert "operator" in out and "crds" in out


def test_the_installed_package_renders_the_same_crds_as_the_checkout(image: str) -> None:
    printed = podman("run", "--rm", "--network", "none", image, "crds", "--print")
    for path in sorted((REPO / "crds").glob("*.yaml")):
        name = next(line for line in path.read_text().splitlines() if line.startswith("  name: "))
        assert name in printed


def test_the_operator_s_modules_import_in_the_image(image: str) -> None:
    code = "import sprint_orchestrator.handlers, sprint_orchestrator.metrics; print('ok')"
    out = podman("run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c", code)
    assert out.strip() == "ok"
