"""Out-of-memory kills told from the container's own memory cgroup (runtime/cgroups.py), with real
Podman containers: an OOM kill of any process of the container, even one the agent survives."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from _podman import build_base_image, remove_sprint, runtime_for, task_spec
from sprint_orchestrator.runtime import Health, Limits, cgroups, exits
from sprint_orchestrator.runtime.podman import PodmanRuntime

HOG = "b'x' * (256 << 20)"  # touches every page: charged to the cgroup at once


@pytest.mark.parametrize(
    ("facts", "health"),
    [
        (exits.ExitFacts(1, False, False, True, None, cgroup_oom=True), Health.OOM_KILLED),
        (exits.ExitFacts(137, False, False, True, False, cgroup_oom=True), Health.OOM_KILLED),
        (exits.ExitFacts(0, False, False, True, None, cgroup_oom=True), Health.EXITED),  # it recovered
        (exits.ExitFacts(137, False, False, True, None, cgroup_oom=False), Health.EXITED),  # watched: no OOM
        (exits.ExitFacts(137, False, True, True, None, cgroup_oom=True), Health.TIMED_OUT),
    ],
)
def test_the_cgroup_count_decides_when_it_was_watched(facts: exits.ExitFacts, health: Health) -> None:
    assert exits.classify(facts)[0] == health


def test_the_memory_cgroup_of_a_process_comes_from_proc(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "memory"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text("5:devices:/x\n4:memory:/libpod_parent/libpod-abc\n0::/\n")
    (root / "libpod_parent" / "libpod-abc").mkdir(parents=True)
    assert cgroups.memory_cgroup(42, proc, root) is None  # no memory.oom_control: not a memory cgroup
    (root / "libpod_parent" / "libpod-abc" / "memory.oom_control").write_text("oom_kill 0\n")
    assert cgroups.memory_cgroup(42, proc, root) == root / "libpod_parent" / "libpod-abc"
    assert cgroups.memory_cgroup(43, proc, root) is None


def test_a_containers_cgroup_is_found_where_podmans_managers_put_it(tmp_path: Path) -> None:
    assert cgroups.container_cgroup("abc", tmp_path) is None
    for relative in ("libpod_parent/libpod-abc", "machine.slice/libpod-def.scope"):
        (tmp_path / relative).mkdir(parents=True)
        (tmp_path / relative / "memory.oom_control").write_text("oom_kill 0\n")
    assert cgroups.container_cgroup("abc", tmp_path) == tmp_path / "libpod_parent" / "libpod-abc"
    assert cgroups.container_cgroup("def", tmp_path) == tmp_path / "machine.slice" / "libpod-def.scope"


# -- real containers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanRuntime]:
    build_base_image()
    if not cgroups.MEMORY_ROOT.is_dir():
        pytest.skip("no cgroup v1 memory hierarchy on this host")
    yield from runtime_for(tmp_path_factory.mktemp("oom-state"))


@pytest.fixture
def sprint(runtime: PodmanRuntime) -> Iterator[str]:
    sprint_id = f"oom{uuid.uuid4().hex[:8]}"
    yield sprint_id
    remove_sprint(runtime, sprint_id)


def run(
    runtime: PodmanRuntime, tmp_path: Path, sprint: str, task: str, command: list[str]
) -> tuple[Health, int | None, str]:
    spec = task_spec(tmp_path / task, sprint, task, command, limits=Limits(memory_bytes=64 << 20, pids=64))
    outcome = runtime.wait(runtime.start_task(spec), spec.timeout_s)
    return outcome.health, outcome.exit_code, outcome.reason


@pytest.mark.podman
def test_an_oom_kill_of_a_child_the_agent_survives_is_seen_in_the_cgroup(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    # The agent's test run is OOM-killed; the agent itself exits 1, not 137: only the cgroup can tell.
    script = f'python3 -c "{HOG}"; echo child exited $?; exit 1'
    health, code, reason = run(runtime, tmp_path, sprint, "child", ["sh", "-c", script])
    assert (health, code) == (Health.OOM_KILLED, 1)
    assert "memory cgroup counted an OOM kill" in reason


@pytest.mark.podman
def test_an_oom_in_the_first_instant_is_not_missed(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    health, code, reason = run(runtime, tmp_path, sprint, "early", ["python3", "-c", HOG])
    assert (health, code) == (Health.OOM_KILLED, 137)
    assert "memory cgroup" in reason


@pytest.mark.podman
def test_a_failure_that_is_not_an_oom_is_not_called_one(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    assert run(runtime, tmp_path, sprint, "fail", ["sh", "-c", "exit 3"])[:2] == (Health.EXITED, 3)
    assert run(runtime, tmp_path, sprint, "kill9", ["sh", "-c", "kill -9 $$"])[:2] == (Health.EXITED, 137)
    small = "b'x' * (16 << 20); print('fits')"
    assert run(runtime, tmp_path, sprint, "fits", ["python3", "-c", small])[:2] == (Health.EXITED, 0)


@pytest.mark.podman
def test_watching_leaves_no_thread_or_file_descriptor_behind(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    run(runtime, tmp_path, sprint, "warm", ["true"])  # the first run opens the client's connections

    def watch_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith("oom-watch-"))

    before = len(os.listdir("/proc/self/fd"))
    for i in range(5):
        run(runtime, tmp_path, sprint, f"r{i}", ["python3", "-c", HOG] if i % 2 else ["true"])
    for _ in range(50):  # a watch ends when the kernel reports its cgroup removed
        if watch_threads() == 0:
            break
        time.sleep(0.1)
    assert watch_threads() == 0
    assert len(os.listdir("/proc/self/fd")) <= before
