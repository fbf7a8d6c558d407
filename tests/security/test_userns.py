"""Root in a task container is not root on the host: every task and gate container runs in its own user
namespace, mapped to an unprivileged range of host ids, and what it writes in its workspace belongs to
that range until the operator takes it back (real Podman, runc; the operator runs as root)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from _e2e import wait_for
from _podman import PODMAN_ENV, build_base_image, remove_sprint, runtime_for, task_spec
from sprint_orchestrator.runtime import Health, Limits, Mount, RunHandle, containers, ownership
from sprint_orchestrator.runtime.podman import PodmanRuntime

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="user namespaces per container need root")
UNPRIVILEGED = 100_000  # the lowest host id a mapped container id may have
HOLD = "id -u > /workspace/uid; touch /workspace/made; while [ ! -e /workspace/go ]; do sleep 0.1; done"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanRuntime]:
    build_base_image()
    yield from runtime_for(tmp_path_factory.mktemp("userns-state"))


@pytest.fixture
def sprint(runtime: PodmanRuntime) -> Iterator[str]:
    sprint_id = f"u{uuid.uuid4().hex[:10]}"
    yield sprint_id
    remove_sprint(runtime, sprint_id)


def host_ids(handle: RunHandle) -> tuple[list[int], list[int], str]:
    """The Uid and Gid lines of the container's main process as the host's /proc shows them, and its
    uid_map (the pid read from the host with `podman inspect`)."""
    pid = subprocess.run(
        ["podman", "inspect", "--format", "{{.State.Pid}}", handle.name],
        env=PODMAN_ENV, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status if line.startswith("Gid:")).split()[1:]
    return [int(u) for u in uids], [int(g) for g in gids], Path(f"/proc/{pid}/uid_map").read_text()


@pytest.mark.podman
@ROOT_ONLY
def test_root_in_a_task_container_is_an_unprivileged_host_id_and_its_files_come_back_to_the_operator(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    spec = task_spec(tmp_path, sprint, "root", ["sh", "-c", HOLD], user="0:0")
    (spec.workspace / "given.txt").write_text("from the operator\n")
    handle = runtime.start_task(spec)
    wait_for(lambda: (spec.workspace / "made").exists(), timeout=120, what="the task to write its file")
    assert (spec.workspace / "uid").read_text().strip() == "0"  # root inside
    uids, gids, uid_map = host_ids(handle)
    assert min(uids) >= UNPRIVILEGED and min(gids) >= UNPRIVILEGED, (uids, gids)
    inside, outside, size = (int(n) for n in uid_map.split())
    assert (inside, size) == (0, 65536) and outside >= UNPRIVILEGED
    made = (spec.workspace / "made").stat()
    assert made.st_uid == outside and made.st_gid >= UNPRIVILEGED  # the mapped range owns it meanwhile
    assert (spec.workspace / "given.txt").stat().st_uid == outside  # handed over to the task (Podman's U)
    (spec.workspace / "go").touch()
    outcome = runtime.wait(handle, spec.timeout_s)
    assert (outcome.health, outcome.exit_code) == (Health.EXITED, 0), outcome
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [spec.workspace, *spec.workspace.rglob("*")]}
    assert owners == {(0, 0)}  # taken back: the operator's git engine can commit it


@pytest.mark.podman
@ROOT_ONLY
def test_two_task_containers_get_disjoint_host_ranges_and_the_agent_user_is_mapped_too(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    specs = [
        task_spec(
            tmp_path / name, sprint, name, ["sh", "-c", HOLD], **({"user": "0:0"} if name == "a" else {})
        )
        for name in ("a", "b")
    ]
    handles = [runtime.start_task(spec) for spec in specs]
    for spec in specs:
        wait_for(lambda s=spec: (s.workspace / "made").exists(), timeout=120, what="both tasks to start")
    maps = [host_ids(handle)[2].split() for handle in handles]
    starts = sorted(int(m[1]) for m in maps)
    assert starts[1] - starts[0] >= 65536, maps  # no id of one container is an id of the other
    assert (specs[1].workspace / "uid").read_text().strip() == "1000"  # the image's agent user
    assert min(host_ids(handles[1])[0]) == int(maps[1][1]) + 1000
    for spec, handle in zip(specs, handles, strict=True):
        (spec.workspace / "go").touch()
        assert runtime.wait(handle, spec.timeout_s).exit_code == 0


@pytest.mark.podman
@ROOT_ONLY
def test_a_gate_container_runs_in_its_own_user_namespace(runtime: PodmanRuntime, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "test.sh").write_text("exit 0\n")
    script = "cat /proc/self/uid_map; touch /workspace/cache && echo wrote"
    result = runtime.run_oneshot(runtime.base_image, ["sh", "-c", script], tree, 120, Limits(pids=64))
    assert result.exit_code == 0, result.log_tail
    inside, outside, size = (int(n) for n in result.log_tail.split()[:3])
    assert (inside, size) == (0, 65536) and outside >= UNPRIVILEGED
    assert "wrote" in result.log_tail
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in [tree, *tree.rglob("*")]} == {(0, 0)}


@pytest.mark.parametrize(
    ("subuid", "problem"),
    [
        ("containers:2147483647:2147483648\n", None),
        ("alice:100000:65536\ncontainers:100000:65536\n", None),
        ("", "/etc/subuid has no range of host ids for the 'containers' user"),
        ("containers:0:65536\n", "/etc/subuid has no range"),  # host root would be inside
        ("containers:100000:1000\n", "/etc/subuid has no range"),  # too small for one container
        ("alice:100000:65536\n", "/etc/subuid has no range"),
    ],
)
def test_the_start_up_check_names_a_missing_subordinate_id_range(subuid: str, problem: str | None) -> None:
    found = ownership.subid_problem(subuid, "containers:2147483647:2147483648\n")
    assert found is None if problem is None else (found or "").startswith(problem)
    if problem:
        assert "containers:2147483647:2147483648" in (found or "")  # says how to fix it


def test_task_containers_get_their_own_user_namespace_and_chowned_mounts(tmp_path: Path) -> None:
    spec = task_spec(tmp_path, "s", "t", ["true"], extra_mounts=[Mount(tmp_path / "proxy", "/run/p")])
    kwargs = containers.task_kwargs(spec, "so-s-t-1", "1000:1000", tmp_path / "log", tmp_path / "sec", True)
    assert kwargs["userns_mode"] == {"nsmode": "auto"} and kwargs["idmappings"]["AutoUserNs"] is True
    chowned = {m["target"]: m.get("chown", False) for m in kwargs["mounts"] if m["type"] == "bind"}
    assert chowned == {"/workspace": True, "/artifacts": True, "/run/p": False, "/run/secrets": True}
    plain = containers.task_kwargs(spec, "so-s-t-1", "1000:1000", tmp_path / "log", None)
    assert "userns_mode" not in plain and not any(m.get("chown") for m in plain["mounts"])
