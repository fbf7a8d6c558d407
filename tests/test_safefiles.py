"""What a hostile team leaves in its workspace is read without following, blocking or overreading."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sprint_orchestrator.teams.results import collect_results, keep_orchestrator_files
from sprint_orchestrator.teams.safefiles import TooLarge, read_capped, regular_files


def test_a_symlink_to_a_host_file_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (tmp_path / "RESULTS.md").symlink_to(secret)
    assert read_capped(tmp_path / "RESULTS.md", 100) is None


def test_a_fifo_does_not_block_the_reader(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "RESULTS.md")
    done = threading.Event()
    result: list[object] = []

    def read() -> None:
        result.append(read_capped(tmp_path / "RESULTS.md", 100))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(5), "reading a FIFO blocked"
    assert result == [None]


def test_a_device_is_not_read() -> None:
    assert read_capped(Path("/dev/zero"), 100) is None


def test_a_large_file_is_refused_or_truncated(tmp_path: Path) -> None:
    big = tmp_path / "usage.jsonl"
    with big.open("wb") as out:
        out.truncate(10 << 20)  # sparse: 10 MiB without writing them
    with pytest.raises(TooLarge, match=r"usage\.jsonl is 10485760 bytes"):
        read_capped(big, 1 << 20)
    assert len(read_capped(big, 1000, truncate=True) or b"") == 1000


def test_results_name_an_oversized_usage_file_and_keep_the_rest(tmp_path: Path) -> None:
    workspace, artifacts = tmp_path / "ws", tmp_path / "art"
    workspace.mkdir()
    artifacts.mkdir()
    (workspace / "RESULTS.md").write_text("# done\n")
    with (artifacts / "usage.jsonl").open("wb") as out:
        out.truncate(65 << 20)
    results = collect_results(workspace, artifacts)
    assert results.present and results.summary == "# done\n"
    assert results.usage_text is None and "usage.jsonl" in results.problems[0]


def test_artifact_listing_skips_symlinks_and_stops_at_its_limit(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    (tmp_path / "link").symlink_to("/etc/passwd")
    (tmp_path / "dirlink").symlink_to("/etc")
    assert [p.name for p in regular_files(tmp_path, 3)] == ["f0", "f1", "f2"]
    assert "link" not in [p.name for p in regular_files(tmp_path, 100)]


def test_earlier_sprint_reports_stay_in_a_full_workspace(tmp_path: Path) -> None:
    workspace, artifacts = tmp_path / "ws", tmp_path / "art"
    (workspace / ".sprint/reports").mkdir(parents=True)
    (workspace / ".sprint/reports/sprint-1.md").write_text("# report\n")
    (workspace / ".sprint/task.json").write_text("{}")
    (workspace / "TASK.md").write_text("# task\n")
    (workspace / "RESULTS.md").symlink_to("/etc/passwd")
    artifacts.mkdir()
    keep_orchestrator_files(workspace, artifacts)
    assert (workspace / ".sprint/reports/sprint-1.md").read_text() == "# report\n"
    assert not (workspace / ".sprint/task.json").exists() and (artifacts / ".sprint/task.json").exists()
    assert not (workspace / "TASK.md").exists() and (artifacts / "TASK.md").read_text() == "# task\n"
    assert not (workspace / "RESULTS.md").is_symlink() and not (artifacts / "RESULTS.md").exists()


def test_a_symlinked_sprint_directory_is_removed_not_followed(tmp_path: Path) -> None:
    workspace, artifacts, host = tmp_path / "ws", tmp_path / "art", tmp_path / "host"
    workspace.mkdir()
    artifacts.mkdir()
    host.mkdir()
    (host / "task.json").write_text("host file")
    (workspace / ".sprint").symlink_to(host)
    keep_orchestrator_files(workspace, artifacts)
    assert (host / "task.json").read_text() == "host file"  # neither moved nor deleted
    assert not (workspace / ".sprint").exists() and not (artifacts / ".sprint").exists()
