"""A container can fill only its own size-capped disk: its workspace and /artifacts live on an ext4 image
of the configured size (runtime/disks.py), a fill ends with ENOSPC inside it and a reason naming the cap,
and what it wrote comes back to the host directories when it ends (real Podman, real loop mounts)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from _e2e import wait_for
from _podman import build_base_image, remove_sprint, runtime_for, task_spec
from _procs import mounts_under
from sprint_orchestrator import quantities, retry
from sprint_orchestrator.config import ContainersSection
from sprint_orchestrator.handlers import tokens
from sprint_orchestrator.model import ResourceLimits
from sprint_orchestrator.runtime import Health, Limits, TaskRunSpec, disks
from sprint_orchestrator.runtime.podman import PodmanRuntime

CAP = 32 << 20
FILL = 'head -c 100000000 /dev/zero > /workspace/fill; echo "dd: $?" > /artifacts/after.txt; exit 7'
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a task's disk needs a root operator")

# -- pure parts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "size"), [("64Mi", 64 << 20), ("64m", 64 << 20), ("2Gi", 2 << 30), (2 << 30, 2 << 30)]
)
def test_a_disk_cap_is_written_in_either_memory_notation(written: int | str, size: int) -> None:
    assert ResourceLimits(disk=written).disk_bytes == size
    assert ContainersSection(default_disk=written).default_disk == size


def test_a_disk_cap_too_small_for_a_filesystem_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"disk[\s\S]*less than 16Mi"):
        ResourceLimits(disk="8Mi")
    with pytest.raises(ValidationError, match=r"default_disk[\s\S]*less than 16Mi"):
        ContainersSection(default_disk="8m")
    assert ContainersSection(default_disk=0).default_disk == 0  # no cap


def test_the_operator_default_applies_when_the_sprint_sets_no_disk_cap() -> None:
    defaults = retry.operator_defaults(type("C", (), {"containers": ContainersSection()})())
    assert defaults.disk_bytes == 2 << 30  # containers.default_disk
    assert retry.effective_limits(None, {}, 60, defaults)[0].disk_bytes == 2 << 30
    assert retry.effective_limits(ResourceLimits(disk="64Mi"), {}, 60, defaults)[0].disk_bytes == 64 << 20
    none = retry.operator_defaults(type("C", (), {"containers": ContainersSection(default_disk=0)})())
    assert retry.effective_limits(None, {}, 60, none)[0].disk_bytes is None
    assert quantities.format_bytes(CAP) == "32Mi"


# -- real containers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("disk-state")


@pytest.fixture(scope="module")
def runtime(state: Path) -> Iterator[PodmanRuntime]:
    build_base_image()
    yield from runtime_for(state)


@pytest.fixture
def sprint(runtime: PodmanRuntime) -> Iterator[str]:
    sprint_id = f"d{uuid.uuid4().hex[:10]}"
    yield sprint_id
    remove_sprint(runtime, sprint_id)
    assert disks.attached(runtime.disk_dir) == [] and mounts_under(runtime.disk_dir) == []


def capped(tmp_path: Path, sprint: str, task: str, script: str) -> TaskRunSpec:
    limits = Limits(cpus=1.0, memory_bytes=256 << 20, pids=128, disk_bytes=CAP)
    return task_spec(tmp_path, sprint, task, ["sh", "-c", script], limits=limits)


@pytest.mark.podman
@ROOT_ONLY
def test_a_disk_fill_fails_only_its_task_with_a_reason_naming_the_cap(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    spec = capped(tmp_path, sprint, "fill", FILL)
    (spec.workspace / "given.txt").write_text("from the operator\n")
    outcome = runtime.wait(runtime.start_task(spec), 120)
    assert (outcome.health, outcome.exit_code, outcome.disk_full) == (Health.EXITED, 7, True), outcome
    assert "filled their disk cap (32Mi)" in outcome.reason
    workspace, artifacts = spec.workspace, spec.artifacts
    assert (artifacts / "after.txt").read_text() == "dd: 1\n"  # ENOSPC inside, seen by the team
    assert (workspace / "given.txt").read_text() == "from the operator\n"  # the work came back
    assert 16 << 20 < (workspace / "fill").stat().st_size < CAP  # stopped by the cap, not by 100 MB
    owners = {p.lstat().st_uid for p in [workspace, *workspace.rglob("*"), *artifacts.rglob("*")]}
    assert owners == {os.getuid()}
    assert mounts_under(tmp_path) == [] and disks.attached(runtime.disk_dir) == []


@pytest.mark.podman
@ROOT_ONLY
def test_a_task_under_its_cap_runs_as_usual_and_the_host_sees_its_artifacts_live(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    script = (
        "echo '{\"n\": 1}' > /artifacts/usage.jsonl; mkdir -p d; ln -s /etc/passwd d/link; mkfifo d/fifo; "
        "echo done > RESULTS.md; while [ ! -e /workspace/go ]; do sleep 0.1; done"
    )
    spec = capped(tmp_path, sprint, "ok", script)
    handle = runtime.start_task(spec)
    artifacts, workspace = spec.artifacts, spec.workspace
    wait_for(lambda: (artifacts / "usage.jsonl").exists(), timeout=120, what="the live usage file")
    assert sorted(mounts_under(tmp_path)) == sorted([str(workspace), str(artifacts)])
    (workspace / "go").touch()
    outcome = runtime.wait(handle, 120)
    assert (outcome.health, outcome.exit_code, outcome.disk_full) == (Health.EXITED, 0, False), outcome
    assert (workspace / "RESULTS.md").read_text() == "done\n"
    assert os.readlink(workspace / "d" / "link") == "/etc/passwd"  # copied back as a link, not followed
    assert (workspace / "d" / "fifo").is_fifo()
    assert mounts_under(tmp_path) == []


@pytest.mark.podman
@ROOT_ONLY
def test_a_task_removed_while_it_runs_gives_its_work_back_and_its_disk_up(
    runtime: PodmanRuntime, sprint: str, tmp_path: Path
) -> None:
    spec = capped(tmp_path, sprint, "gone", "echo partial > work.txt; sleep 300")
    handle = runtime.start_task(spec)
    workspace = spec.workspace
    wait_for(lambda: (workspace / "work.txt").exists(), timeout=120, what="the task to write")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(runtime.wait, handle, 300)
        runtime.remove(handle)
        outcome = waiting.result(timeout=300)
    assert outcome.health == Health.REMOVED
    assert (workspace / "work.txt").read_text() == "partial\n"
    assert mounts_under(tmp_path) == [] and disks.attached(runtime.disk_dir) == []


@pytest.mark.podman
@ROOT_ONLY
def test_a_gate_that_fills_its_disk_fails_and_leaves_no_mount(runtime: PodmanRuntime, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "test_x.py").write_text("# the sprint's test\n")
    script = "head -c 100000000 /dev/zero > /workspace/junk || exit 9"
    result = runtime.run_oneshot(runtime.base_image, ["sh", "-c", script], tree, 120, Limits(disk_bytes=CAP))
    assert result.exit_code == 9, result.log_tail
    assert (tree / "test_x.py").read_text() == "# the sprint's test\n"
    assert mounts_under(tmp_path) == [] and disks.attached(runtime.disk_dir) == []


@ROOT_ONLY
def test_attaching_twice_mounts_once_and_a_half_made_disk_is_made_again(tmp_path: Path) -> None:
    root, tree = tmp_path / "disks", tmp_path / "ws"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    try:
        disks.attach(root, "c1", CAP, {"workspace": tree})
        disks.attach(root, "c1", CAP, {"workspace": tree})  # a restarted operator: nothing more
        assert sorted(mounts_under(tmp_path)) == sorted([str(tree), str(root / "c1" / "mnt")])
        (tree / "b.txt").write_text("b\n")  # written on the capped disk
        (root / "c1" / "ready").unlink()  # as if the operator died while copying in
        disks.attach(root, "c1", CAP, {"workspace": tree})
        assert sorted(p.name for p in tree.iterdir()) == ["a.txt"]  # made again from the host tree
        assert disks.detach(root, "c1") is True
    finally:
        disks.detach(root, "c1", copy_back=False)
    assert mounts_under(tmp_path) == [] and not (root / "c1").exists()
    assert (tree / "a.txt").read_text() == "a\n"


@pytest.mark.podman
@ROOT_ONLY
def test_the_disk_of_a_container_that_is_gone_is_given_back_at_start_up(
    runtime: PodmanRuntime, tmp_path: Path
) -> None:
    tree = tmp_path / "ws"
    tree.mkdir()
    name = f"so-gone-{uuid.uuid4().hex[:8]}-1"  # no such container: its operator died before the removal
    disks.attach(runtime.disk_dir, name, CAP, {"workspace": tree})
    (tree / "late.txt").write_text("written before the crash\n")
    runtime.prune_oneshots()
    assert name not in disks.attached(runtime.disk_dir) and mounts_under(tmp_path) == []
    assert (tree / "late.txt").read_text() == "written before the crash\n"


def test_the_live_usage_reader_never_blocks_on_a_fifo_nor_follows_a_symlink(tmp_path: Path) -> None:
    # A task that runs long enough gets its usage file read while it runs, on the operator's event loop.
    os.mkfifo(tmp_path / "usage.jsonl")
    assert tokens.read_live(tmp_path, "usage-jsonl") is None  # returns at once: no writer needed
    os.unlink(tmp_path / "usage.jsonl")
    (tmp_path / "real.jsonl").write_text('{"input_tokens": 5, "output_tokens": 7}\n')
    os.symlink(tmp_path / "real.jsonl", tmp_path / "usage.jsonl")
    assert tokens.read_live(tmp_path, "usage-jsonl") is None


@ROOT_ONLY
def test_an_unmount_waits_while_the_mount_is_busy_for_a_moment_and_then_says_so(tmp_path: Path) -> None:
    """The processes of a container that was just removed may hold its disk a moment longer: the
    unmount tries again until they let go; a mount that stays busy is still an error naming it."""
    import subprocess
    import threading

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        holder = open(mnt / "held", "w")  # noqa: SIM115 (closed by the timer)
        threading.Timer(1.0, holder.close).start()
        disks.umount(mnt, busy_for_s=30)
        assert not os.path.ismount(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
        with open(mnt / "held", "w"), pytest.raises(Exception, match="busy"):
            disks.umount(mnt, busy_for_s=0.5)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
