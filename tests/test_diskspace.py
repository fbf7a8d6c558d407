"""The one rule for a full disk (diskspace.py), and the git engine on a real full disk: a task's commit
that finds no space raises DiskFull, keeps the workspace, leaves no lock file or broken object, and
commits once space is freed. A tmpfs (root) filled to its last byte; real git."""

from __future__ import annotations

import ast
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

import sprint_orchestrator
from _disks import fill, tmpfs
from _gitrepo import git, make_origin, write_files
from sprint_orchestrator.diskspace import no_space
from sprint_orchestrator.errors import DiskFull, GitError
from sprint_orchestrator.gitops import GitEngine
from sprint_orchestrator.lifecycle import without_disk_wait

TEAM = ("Task Team", "team@example.com")


def test_an_oserror_of_enospc_or_edquot_says_the_disk_is_full() -> None:
    assert no_space(OSError(errno.ENOSPC, "No space left on device"))
    assert no_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not no_space(OSError(errno.EACCES, "Permission denied"))


def test_a_library_message_naming_no_space_says_so_without_an_errno() -> None:
    # pygit2 raises OSError (no errno) or GitError with libgit2's text, e.g. a loose object's write
    assert no_space(OSError("failed to write object: No space left on device"))
    assert no_space(pygit2.GitError("could not write to 'x.lock': no space left on device"))
    assert no_space("the remote refused the push: ... Disk quota exceeded")
    assert not no_space("the remote refused the push: pre-receive hook declined")
    assert not no_space(GitError("refs/heads/x moved: expected a, but it now points at b"))


def test_the_cause_of_a_wrapped_error_counts() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise GitError("could not update the worktree") from exc
    except GitError as wrapped:
        assert no_space(wrapped)


def test_every_disk_full_the_package_raises_says_no_space_left_so_the_one_rule_knows_it() -> None:
    # handlers/runner.py tells a full disk by no_space(exc) alone, DiskFull or not
    package = Path(sprint_orchestrator.__file__).parent
    messages = []
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DiskFull":
                first = node.args[0]
                parts = first.values if isinstance(first, ast.JoinedStr) else [first]
                head = parts[0]
                assert isinstance(head, ast.Constant), f"{source}:{node.lineno}: starts with no literal"
                messages.append(str(head.value))
    assert len(messages) >= 4
    assert all(no_space(message) for message in messages), messages


def test_a_task_moving_on_from_a_wait_for_space_drops_its_reason_unless_the_move_gives_one() -> None:
    waiting = {"phase": "Running", "reason": "DiskFull", "error": "no space left on device ..."}
    assert without_disk_wait(waiting, {"phase": "Gating"}) == {
        "reason": "", "error": "", "recoveryAction": "", "phase": "Gating",
    }  # fmt: skip
    assert without_disk_wait(waiting, {"phase": "Review", "reason": "NoChanges", "error": "none"}) == {
        "reason": "NoChanges", "error": "none", "recoveryAction": "", "phase": "Review",
    }  # fmt: skip
    assert without_disk_wait({"reason": "Timeout"}, {"phase": "Ready"}) == {"phase": "Ready"}


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "size=4m,mode=0700") as mounted:
        yield mounted


def fsck(gitdir: Path) -> None:
    result = subprocess.run(
        ["git", "--git-dir", str(gitdir), "fsck", "--full", "--strict", "--no-progress"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_commit_on_a_full_disk_raises_disk_full_keeps_the_work_and_commits_once_space_is_freed(
    tmp_path: Path, disk: Path
) -> None:
    origin = make_origin(tmp_path, {"README.md": "# demo\n", "src/app.py": "x = 1\n"})
    engine = GitEngine.open(str(origin), disk / "wt")
    engine.create_sprint("s1")
    ws = engine.create_task("s1", "t1", 1, ["src/app.py", "out/new.txt"])
    work = {"src/app.py": "x = 2\n", "out/new.txt": "new work\n" * 100}
    write_files(ws.workspace, work)
    before = engine.head("task/s1/t1")
    filler = fill(disk)
    with pytest.raises(DiskFull) as refused:
        engine.commit_task(ws, "s1", "t1", ["src/app.py", "out/new.txt"], *TEAM)
    message = str(refused.value)
    assert "no space left on device while committing the work of attempt 1 of task t1" in message
    assert "No space left on device" in message  # the library's own words, after ours
    assert engine.head("task/s1/t1") == before  # the branch did not move
    assert {p: (ws.workspace / p).read_text() for p in work} == work  # the work is all there
    assert not list(engine.gitdir.rglob("*.lock")), "a lock file was left behind"
    filler.unlink()
    fsck(engine.gitdir)
    result = engine.commit_task(ws, "s1", "t1", ["src/app.py", "out/new.txt"], *TEAM)
    assert result.commit is not None and sorted(result.changed_files) == ["out/new.txt", "src/app.py"]
    assert engine.head("task/s1/t1") == result.commit
    assert git(engine.gitdir, "show", f"{result.commit}:out/new.txt") == work["out/new.txt"].rstrip("\n")
    assert ws.worktree is not None and (ws.worktree / "out/new.txt").read_text() == work["out/new.txt"]
    fsck(engine.gitdir)
