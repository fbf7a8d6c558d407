"""The operator's temporary files: a directory per process, a stopped process's removed at start-up."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprint_orchestrator import tempdirs


@pytest.fixture(autouse=True)
def _restore_tempdir() -> Iterator[None]:
    before = tempfile.tempdir
    yield
    tempfile.tempdir = before


def test_a_stopped_process_s_temporary_files_go_and_a_running_one_s_stay(tmp_path: Path) -> None:
    root = tmp_path / "run" / "tmp"
    dead = root / "999999999-12345"  # no such pid
    reused = root / f"1-{int(tempdirs._start_time(1) or 0) + 1}"  # pid 1, but another start time
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = root / f"{sleeper.pid}-{tempdirs._start_time(sleeper.pid)}"
        for directory in (dead, reused, alive):
            directory.mkdir(parents=True)
            (directory / "client-key").write_text("secret")
        mine = tempdirs.claim(tmp_path)
        assert not dead.exists() and not reused.exists()
        assert (alive / "client-key").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert mine.parent == root and mine.is_dir()
    fd, name = tempfile.mkstemp()
    os.close(fd)
    assert Path(name).parent == mine


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount")
def test_a_stopped_process_s_directory_that_cannot_go_yet_never_stops_the_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What a killed operator started may still hold its directory (here: a mount inside it): the next
    start leaves it for later and says so, it does not crash (it did: IsADirectoryError)."""
    busy = tmp_path / "run" / "tmp" / "1-1" / "busy"
    busy.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(busy)], check=True)
    try:
        (busy / "file").write_text("x")
        with caplog.at_level(logging.WARNING, "sprint_orchestrator.operator"):
            mine = tempdirs.claim(tmp_path)
        assert mine.is_dir() and (tmp_path / "run" / "tmp" / "1-1").is_dir()
        assert "could not remove all temporary files" in caplog.text
    finally:
        subprocess.run(["umount", str(busy)], check=True)
    # Once what held it is gone (the runtime's pruning detaches a killed gate's disk), a sweep takes it.
    tempdirs.sweep(tmp_path)
    assert not (tmp_path / "run" / "tmp" / "1-1").exists() and mine.is_dir()
